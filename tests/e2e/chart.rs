//! The Helm chart (`charts/cimi-operator`) with helm and kubectl from the tool cache: its version and
//! CRDs stay in step with the code, it lints, renders in every mode, refuses bad values, passes a
//! server-side dry run on the real API server, and a CRD upgrade keeps existing objects.

use std::path::{Path, PathBuf};

use cimi_operator::devenv::tools::Tool;
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use serde::Deserialize as _;
use serde_json::Value;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::tools::{run_tool, run_tool_with};

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/cimi-operator")
}

fn chart() -> String {
    chart_dir().display().to_string()
}

/// `helm template` with `--set` pairs: the rendered objects, or helm's error.
fn template(namespace: &str, sets: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart();
    let mut args = vec!["template", "e2e", chart.as_str(), "--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, out, err) = run_tool(Tool::Helm, &args, None);
    if !ok {
        return Err(err);
    }
    Ok(documents(&out))
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|doc| Value::deserialize(doc).ok())
        .filter(|v| !v.is_null())
        .collect()
}

fn render_yaml(namespace: &str, sets: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "e2e", chart.as_str(), "--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, out, err) = run_tool(Tool::Helm, &args, None);
    assert!(ok, "helm template {sets:?} failed: {err}");
    out
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// Every (group, resource, verb) a list of RBAC rules grants.
fn grants(rules: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    out.push((
                        group.as_str().unwrap_or_default().to_string(),
                        resource.as_str().unwrap_or_default().to_string(),
                        verb.as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

fn grants_of(grants: &[(String, String, String)], resource: &str) -> Vec<String> {
    grants.iter().filter(|(_, r, _)| r == resource).map(|(_, _, v)| v.clone()).collect()
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml::from_str(&text).expect("Chart.yaml is YAML");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "Chart.yaml appVersion must equal the crate version in Cargo.toml"
    );
    assert_eq!(chart["apiVersion"], "v2");
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(cimi_operator::api::CHART_CRDS_DIR);
    let mut expected = Vec::new();
    for crd in cimi_operator::api::crds() {
        let name = cimi_operator::api::crd_file_name(&crd);
        let want = cimi_operator::api::crd_yaml(&crd).expect("yaml");
        let have = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(have == want, "{} differs from the code: run `make crds`", dir.join(&name).display());
        expected.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .expect("chart crds dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(present, expected, "stale files in {}: run `make crds`", dir.display());
}

#[test]
fn helm_lint_passes_with_default_and_non_default_values() {
    let chart = chart();
    let (ok, out, err) = run_tool(Tool::Helm, &["lint", &chart], None);
    assert!(ok, "helm lint: {out}{err}");
    let (ok, out, err) = run_tool(
        Tool::Helm,
        &[
            "lint",
            &chart,
            "--set",
            "rbac.mode=namespaced,watch.namespaces={team-a,team-b},replicaCount=2",
            "--set",
            "provider.create=true,provider.endpoint=https://cimi.example.com/cimi,provider.credentials.token=t",
            "--set",
            "networkPolicy.enabled=true,metrics.serviceMonitor.enabled=true",
        ],
        None,
    );
    assert!(ok, "helm lint (non-default): {out}{err}");
}

#[test]
fn default_render_is_cluster_wide_least_privilege_and_hardened() {
    let objects = template("ops", &[]).expect("default values render");
    assert!(of_kind(&objects, "PodDisruptionBudget").is_empty(), "no PDB with one replica");
    assert!(of_kind(&objects, "ServiceMonitor").is_empty() && of_kind(&objects, "NetworkPolicy").is_empty());
    assert!(of_kind(&objects, "CimiProvider").is_empty() && of_kind(&objects, "Secret").is_empty());
    assert_eq!(of_kind(&objects, "Service").len(), 1, "a metrics Service");

    let cluster = grants(&of_kind(&objects, "ClusterRole")[0]["rules"]);
    for kind in ["cimiproviders", "cimimachines", "cimivolumes", "ciminetworks", "cimisystems"] {
        // Finalizers and status are written by patch; nothing is ever updated (the live RBAC test proves the
        // chart's grants equal what the operator uses). A CimiSystem's exposeMembers creates and deletes read-only
        // machines, volumes and networks.
        let expected: &[&str] = if matches!(kind, "cimimachines" | "cimivolumes" | "ciminetworks") {
            &["create", "delete", "list", "patch", "watch"]
        } else if kind == "cimiproviders" {
            &["get", "list", "patch", "watch"]
        } else {
            &["list", "patch", "watch"]
        };
        assert_eq!(grants_of(&cluster, kind), expected, "{kind}");
        assert_eq!(grants_of(&cluster, &format!("{kind}/status")), ["patch"], "{kind}/status");
        assert!(grants_of(&cluster, &format!("{kind}/finalizers")).is_empty(), "{kind}/finalizers");
    }
    let events = |group: &str| -> Vec<&str> {
        cluster.iter().filter(|(g, r, _)| g == group && r == "events").map(|(_, _, v)| v.as_str()).collect()
    };
    assert_eq!(events("events.k8s.io"), ["create", "patch"], "Events are published");
    assert_eq!(events(""), ["list"], "mirrored provider events are read back after a restart");
    assert_eq!(grants_of(&cluster, "secrets"), ["get", "list", "watch"]);
    assert_eq!(grants_of(&cluster, "namespaces"), ["get"]);
    let exposed = ["cimimachines", "cimivolumes", "ciminetworks"];
    assert!(
        !cluster.iter().any(|(_, r, v)| r == "*" || v == "*" || (v == "delete" && !exposed.contains(&r.as_str()))),
        "no wildcards, no delete but of exposed system members"
    );
    assert!(!cluster.iter().any(|(_, r, _)| r == "leases"), "the Lease is granted in the operator namespace only");
    let roles = of_kind(&objects, "Role");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0]["metadata"]["namespace"], "ops");
    assert_eq!(grants_of(&grants(&roles[0]["rules"]), "leases"), ["create", "get", "update"]);

    let deployment = of_kind(&objects, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(container["image"], format!("ghcr.io/cimi-operator/cimi-operator:{}", env!("CARGO_PKG_VERSION")));
    let args: Vec<&str> = container["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-elect") && args.contains(&"--admin-addr=0.0.0.0:8080"), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--namespace")), "every namespace by default: {args:?}");
}

#[test]
fn namespaced_mode_grants_roles_per_watched_namespace_and_a_small_cluster_role() {
    let objects = template(
        "ops",
        &["rbac.mode=namespaced", "watch.namespaces={team-a,team-b}", "replicaCount=2", "watch.selector=team=a"],
    )
    .expect("renders");
    let cluster = grants(&of_kind(&objects, "ClusterRole")[0]["rules"]);
    let resources: std::collections::BTreeSet<&str> = cluster.iter().map(|(_, r, _)| r.as_str()).collect();
    assert_eq!(
        resources.into_iter().collect::<Vec<_>>(),
        ["cimiproviders", "cimiproviders/status", "namespaces"],
        "the ClusterRole covers only cluster-scoped objects"
    );
    let events: Vec<&Value> =
        of_kind(&objects, "Role").into_iter().filter(|r| r["metadata"]["namespace"] == "default").collect();
    assert_eq!(events.len(), 1, "CimiProvider Events go to the namespace default");
    assert_eq!(
        grants(&events[0]["rules"]),
        [
            ("events.k8s.io".into(), "events".into(), "create".into()),
            ("events.k8s.io".into(), "events".into(), "patch".into())
        ]
    );
    let watched: Vec<&Value> = of_kind(&objects, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] != "ops" && r["metadata"]["namespace"] != "default")
        .collect();
    let namespaces: Vec<&str> = watched.iter().filter_map(|r| r["metadata"]["namespace"].as_str()).collect();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    for role in watched {
        let rules = grants(&role["rules"]);
        assert_eq!(grants_of(&rules, "cimimachines"), ["create", "delete", "list", "patch", "watch"]);
        assert_eq!(grants_of(&rules, "cimisystems"), ["list", "patch", "watch"]);
        assert_eq!(grants_of(&rules, "cimimachines/status"), ["patch"]);
        assert!(grants_of(&rules, "cimiproviders").is_empty());
    }
    let bindings = of_kind(&objects, "RoleBinding");
    assert_eq!(bindings.len(), 4, "one per Role");

    let pdb = of_kind(&objects, "PodDisruptionBudget");
    assert_eq!(pdb.len(), 1, "replicas 2 -> a PDB");
    assert_eq!(pdb[0]["spec"]["minAvailable"], 1);
    let container = &of_kind(&objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    for arg in ["--namespace=team-a", "--namespace=team-b", "--selector=team=a", "--leader-elect"] {
        assert!(args.contains(&arg), "{arg} in {args:?}");
    }
}

#[test]
fn optional_provider_service_monitor_and_network_policy_render_when_asked() {
    let objects = template(
        "ops",
        &[
            "provider.create=true",
            "provider.name=lab",
            "provider.endpoint=https://cimi.example.com/cimi/cloudEntryPoint",
            "provider.credentials.username=u",
            "provider.credentials.password=p",
            "metrics.serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
        ],
    )
    .expect("renders");
    let provider = of_kind(&objects, "CimiProvider")[0];
    assert_eq!(provider["spec"]["endpoint"], "https://cimi.example.com/cimi/cloudEntryPoint");
    let secret = of_kind(&objects, "Secret")[0];
    assert_eq!(provider["spec"]["credentialsSecretRef"]["name"], secret["metadata"]["name"]);
    assert_eq!(provider["spec"]["credentialsSecretRef"]["namespace"], "ops");
    assert_eq!(secret["stringData"]["username"], "u");
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 1);
    assert_eq!(of_kind(&objects, "NetworkPolicy").len(), 1);

    let objects = template(
        "ops",
        &["provider.create=true", "provider.endpoint=https://cimi.example.com/", "provider.existingSecret=mine"],
    )
    .expect("renders");
    assert!(of_kind(&objects, "Secret").is_empty(), "an existing Secret is referenced, not created");
    assert_eq!(of_kind(&objects, "CimiProvider")[0]["spec"]["credentialsSecretRef"]["name"], "mine");
}

#[test]
fn bad_values_are_rejected_by_the_schema_with_a_clear_message() {
    for (sets, expected) in [
        (&["replicaCount=0"][..], "/replicaCount"),
        (&["replicaCount=2", "leaderElection.enabled=false"][..], "/leaderElection/enabled"),
        (&["rbac.mode=everywhere"][..], "/rbac/mode"),
        (&["rbac.mode=namespaced"][..], "/watch/namespaces"),
        (&["operator.logFormat=xml"][..], "/operator/logFormat"),
        (&["leaderElection.leaseDuration=soon"][..], "/leaderElection/leaseDuration"),
        (&["provider.create=true"][..], "/provider/endpoint"),
        (&["provider.endpoint=ftp://x"][..], "/provider/endpoint"),
        (&["provider.format=yaml"][..], "/provider/format"),
        (&["watch.namespaces={Not_A_Namespace}"][..], "/watch/namespaces/0"),
        (&["unknownKey=1"][..], "unknownKey"),
    ] {
        let err = template("ops", sets).expect_err(&format!("{sets:?} must be refused"));
        assert!(err.contains("values don't meet the specifications of the schema"), "{sets:?}: {err}");
        assert!(err.contains(expected), "{sets:?}: the error names {expected}: {err}");
    }
}

/// A minimal stand-in for the Prometheus Operator's ServiceMonitor CRD (only its name and kind matter).
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn dry_run(kubeconfig: &Path, manifests: &str) -> (bool, String) {
    let (ok, out, err) = run_tool_with(
        kubeconfig,
        Tool::Kubectl,
        &["apply", "--server-side", "--dry-run=server", "--field-manager=e2e-chart", "-f", "-"],
        Some(manifests),
    );
    (ok, format!("{out}{err}"))
}

#[tokio::test]
async fn rendered_manifests_pass_a_server_side_dry_run_and_service_monitor_needs_its_crd() {
    let admin = client().await;
    let ops = TestNamespace::new(&admin, "chart-ops").await;
    let team_a = TestNamespace::new(&admin, "chart-a").await;
    let team_b = TestNamespace::new(&admin, "chart-b").await;
    let kubeconfig = crate::harness::control_plane::control_plane().kubeconfig_path().to_path_buf();
    let watched = format!("watch.namespaces={{{},{}}}", team_a.name, team_b.name);
    for sets in [
        vec![],
        vec!["rbac.mode=namespaced", watched.as_str(), "replicaCount=2"],
        vec![
            "networkPolicy.enabled=true",
            "provider.create=true",
            "provider.endpoint=https://cimi.example.com/cimi",
            "provider.credentials.token=abc",
        ],
    ] {
        let (ok, out) = dry_run(&kubeconfig, &render_yaml(&ops.name, &sets));
        assert!(ok, "server-side dry run of {sets:?}:\n{out}");
        assert!(out.contains("deployment.apps/e2e-cimi-operator serverside-applied (server dry run)"), "{out}");
    }

    // A separate control plane decides about the ServiceMonitor CRD, so the shared one stays untouched.
    let cp = ControlPlane::start(ControlPlaneConfig { controller_manager: false, ..ControlPlaneConfig::default() })
        .await
        .expect("a second control plane");
    let (ok, out, err) = run_tool_with(cp.kubeconfig_path(), Tool::Kubectl, &["create", "namespace", "ops"], None);
    assert!(ok, "{out}{err}");
    let with_monitor = render_yaml("ops", &["metrics.serviceMonitor.enabled=true"]);
    let (ok, out) = dry_run(cp.kubeconfig_path(), &with_monitor);
    assert!(!ok && out.contains("ServiceMonitor"), "without its CRD a ServiceMonitor is refused:\n{out}");
    let (ok, out) = dry_run(cp.kubeconfig_path(), &render_yaml("ops", &[]));
    assert!(ok, "the default render needs no ServiceMonitor CRD:\n{out}");
    let (ok, out, err) =
        run_tool_with(cp.kubeconfig_path(), Tool::Kubectl, &["apply", "-f", "-"], Some(SERVICE_MONITOR_CRD));
    assert!(ok, "{out}{err}");
    let accepted = crate::harness::wait::eventually(
        "the ServiceMonitor kind to be served",
        std::time::Duration::from_secs(30),
        || {
            let (ok, out) = dry_run(cp.kubeconfig_path(), &with_monitor);
            async move { ok.then_some(out) }
        },
    )
    .await;
    assert!(
        accepted.contains("servicemonitor.monitoring.coreos.com/e2e-cimi-operator serverside-applied"),
        "{accepted}"
    );
    cp.stop();
}

#[tokio::test]
async fn crd_upgrade_by_server_side_apply_then_helm_upgrade_keeps_existing_objects() {
    // A control plane of its own, without CRDs: the test installs an older chart's CRDs itself.
    let cp = ControlPlane::start(ControlPlaneConfig {
        crds_dir: None,
        controller_manager: false,
        ..ControlPlaneConfig::default()
    })
    .await
    .expect("a control plane");
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let kubectl = |args: &[&str], stdin: Option<&str>| run_tool_with(&kubeconfig, Tool::Kubectl, args, stdin);
    let helm = |args: &[&str]| run_tool_with(&kubeconfig, Tool::Helm, args, None);

    // "The previous release": the same chart whose CimiMachine CRD lacks spec.description and the IP column.
    let old_chart = tempfile::tempdir().expect("tempdir");
    copy_dir(&chart_dir(), old_chart.path());
    let machines_crd = old_chart.path().join("crds/cimimachines.cimi.dev.yaml");
    let mut crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&machines_crd).expect("crd")).expect("yaml");
    let version = &mut crd["spec"]["versions"][0];
    version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .as_object_mut()
        .expect("spec properties")
        .remove("description");
    version["additionalPrinterColumns"].as_array_mut().expect("columns").retain(|c| c["name"] != "IP");
    std::fs::write(&machines_crd, serde_yaml::to_string(&crd).expect("yaml")).expect("write old CRD");

    let (ok, out, err) = kubectl(&["create", "namespace", "ops"], None);
    assert!(ok, "{out}{err}");
    let old = old_chart.path().display().to_string();
    let (ok, out, err) = helm(&["install", "cimi", &old, "--namespace", "ops"]);
    assert!(ok, "helm install of the previous chart: {out}{err}");

    // Objects made under the old CRDs.
    let mut objects = String::new();
    for object in cimi_operator::api::fixtures::valid_objects()
        .into_iter()
        .filter(|o| o["kind"] == "CimiProvider" || o["kind"] == "CimiMachine")
    {
        let mut object = object;
        if object["kind"] == "CimiMachine" {
            object["metadata"]["namespace"] = "ops".into();
        }
        objects.push_str("---\n");
        objects.push_str(&serde_yaml::to_string(&object).expect("yaml"));
    }
    let created =
        crate::harness::wait::eventually("the old CRDs to be served", std::time::Duration::from_secs(30), || {
            let (ok, out, err) =
                kubectl(&["apply", "--server-side", "--field-manager=e2e-user", "-f", "-"], Some(&objects));
            let _ = err;
            async move { ok.then_some(out) }
        })
        .await;
    assert!(created.contains("cimimachine.cimi.dev/valid-machine serverside-applied"), "{created}");
    let before = kubectl(&["get", "cimimachines,cimiproviders", "-A", "-o", "json"], None).1;
    let columns = kubectl(&["get", "cimimachines", "-n", "ops"], None).1;
    assert!(!columns.contains(" IP "), "the old CRD has no IP column: {columns}");

    // The documented upgrade: CRDs first, by server-side apply, then helm upgrade.
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join(cimi_operator::api::CHART_CRDS_DIR);
    let crds = crds.display().to_string();
    let (ok, out, err) = kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &crds], None);
    assert!(ok, "server-side apply of the new CRDs: {out}{err}");
    assert!(out.contains("cimimachines.cimi.dev serverside-applied"), "{out}");
    let (ok, out, err) = helm(&["upgrade", "cimi", &chart(), "--namespace", "ops"]);
    assert!(ok, "helm upgrade: {out}{err}");

    // Existing objects are intact: same uids, same specs.
    let after = kubectl(&["get", "cimimachines,cimiproviders", "-A", "-o", "json"], None).1;
    let identity = |json: &str| -> Vec<(Value, Value, Value)> {
        let list: Value = serde_json::from_str(json).expect("json");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| (o["metadata"]["name"].clone(), o["metadata"]["uid"].clone(), o["spec"].clone()))
            .collect()
    };
    assert!(!identity(&before).is_empty());
    assert_eq!(identity(&before), identity(&after), "objects survive the CRD upgrade unchanged");
    // And the new schema is served: the IP column and spec.description.
    crate::harness::wait::eventually(
        "the new CimiMachine schema to be served",
        std::time::Duration::from_secs(30),
        || {
            let columns = kubectl(&["get", "cimimachines", "-n", "ops"], None).1;
            async move { columns.contains("IP").then_some(()) }
        },
    )
    .await;
    let explained = kubectl(&["explain", "cimimachine.spec.description"], None).1;
    assert!(explained.contains("FIELD: description"), "{explained}");
    let (ok, out, err) = helm(&["status", "cimi", "--namespace", "ops"]);
    assert!(ok && out.contains("REVISION: 2"), "{out}{err}");
    cp.stop();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

// --- The container image -------------------------------------------------------------------------

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn lint_dockerfile(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(repo_file("tools/lint-dockerfile.sh"))
        .arg(path)
        .output()
        .expect("run tools/lint-dockerfile.sh");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_passes_hadolint() {
    let text = std::fs::read_to_string(repo_file("Dockerfile")).expect("Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(stages.last().is_some_and(|s| s.contains("distroless")), "a minimal final base: {stages:?}");
    let final_stage = text.rsplit("\nFROM ").next().expect("final stage");
    assert!(final_stage.contains("USER 65532:65532"), "runs as a non-root user");
    let copies: Vec<&str> = final_stage.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies, ["COPY --from=build /out/cimi-operator /usr/local/bin/cimi-operator"], "the binary only");

    let (ok, out) = lint_dockerfile(&repo_file("Dockerfile"));
    assert!(ok, "hadolint finds problems in the Dockerfile:\n{out}");
    // The linter really lints: a careless Dockerfile fails with the rule it breaks.
    let dir = tempfile::tempdir().expect("tempdir");
    let careless = dir.path().join("Dockerfile");
    std::fs::write(&careless, "FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n").expect("write");
    let (ok, out) = lint_dockerfile(&careless);
    assert!(!ok && out.contains("DL3007"), "a :latest base is refused:\n{out}");
}

// --- GitOps: Argo CD health in Lua, Flux health expressions ---------------------------------------

pub const CIMI_KINDS: [&str; 5] = ["CimiProvider", "CimiMachine", "CimiVolume", "CimiNetwork", "CimiSystem"];

/// Runs the Argo CD health script on `object` under Lua 5.1: (status, message).
pub fn argo_health(object: Value) -> (String, String) {
    use mlua::LuaSerdeExt as _;
    let script = std::fs::read_to_string(repo_file("examples/gitops/argocd/health.lua")).expect("health.lua");
    let lua = mlua::Lua::new();
    let version: String = lua.globals().get("_VERSION").expect("_VERSION");
    assert_eq!(version, "Lua 5.1", "Argo CD runs health checks on Lua 5.1");
    lua.globals().set("obj", lua.to_value(&object).expect("object to Lua")).expect("set obj");
    let health: mlua::Table = lua.load(&script).eval().expect("the script returns a table");
    (health.get("status").expect("status"), health.get("message").expect("message"))
}

pub fn machine(generation: i64, status: Option<Value>) -> Value {
    let mut object = serde_json::json!({
        "apiVersion": "cimi.dev/v1alpha1",
        "kind": "CimiMachine",
        "metadata": {"name": "web-1", "namespace": "team-a", "generation": generation},
        "spec": {"providerRef": {"name": "lab"}},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

pub fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    serde_json::json!({"type": kind, "status": status, "reason": reason, "message": message})
}

#[test]
fn argo_cd_health_check_reads_ready_progressing_and_stalled_under_lua_5_1() {
    let (status, message) = argo_health(machine(1, None));
    assert_eq!((status.as_str(), message.as_str()), ("Progressing", "Waiting for the operator"));

    let ready = serde_json::json!({
        "observedGeneration": 2,
        "conditions": [condition("Ready", "True", "Available", "machine is STARTED")],
    });
    assert_eq!(
        argo_health(machine(2, Some(ready.clone()))),
        ("Healthy".into(), "Available: machine is STARTED".into())
    );
    // A spec change the operator has not seen yet is not healthy, whatever the old conditions say.
    let (status, message) = argo_health(machine(3, Some(ready)));
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 3"), "{message}");

    let progressing = serde_json::json!({
        "observedGeneration": 1,
        "conditions": [
            condition("Ready", "False", "Creating", "waiting for the provider's Job"),
            condition("Reconciling", "True", "Creating", "Job 42 is RUNNING"),
        ],
    });
    assert_eq!(
        argo_health(machine(1, Some(progressing))),
        ("Progressing".into(), "Creating: Job 42 is RUNNING".into())
    );

    let stalled = serde_json::json!({
        "observedGeneration": 1,
        "conditions": [
            condition("Ready", "False", "Unauthorized", "the provider refused the credentials"),
            condition("Stalled", "True", "Unauthorized", "the provider refused the credentials"),
        ],
    });
    assert_eq!(
        argo_health(machine(1, Some(stalled))),
        ("Degraded".into(), "Unauthorized: the provider refused the credentials".into())
    );
}

#[test]
fn argo_cd_config_map_embeds_the_health_check_for_every_cimi_kind() {
    let script = std::fs::read_to_string(repo_file("examples/gitops/argocd/health.lua")).expect("health.lua");
    let text = std::fs::read_to_string(repo_file("examples/gitops/argocd/argocd-cm.yaml")).expect("argocd-cm");
    let config: Value = serde_yaml::from_str(&text).expect("yaml");
    for kind in CIMI_KINDS {
        let key = format!("resource.customizations.health.cimi.dev_{kind}");
        assert_eq!(config["data"][&key].as_str(), Some(script.as_str()), "{key} must be health.lua verbatim");
    }
}

/// How Flux's kustomize-controller reads `object` with the example Kustomization's `healthCheckExprs` for its
/// kind (RFC 0009): a status.observedGeneration that differs from metadata.generation is `InProgress`; then the
/// `inProgress`, `failed` and `current` expressions in that order, the first that holds wins; none ->
/// `InProgress`. The object's top-level fields are the CEL variables. `Err` is an evaluation error (Flux reports
/// it and polls again).
pub fn flux_health(object: &Value) -> Result<&'static str, String> {
    let text = std::fs::read_to_string(repo_file("examples/gitops/flux/resources-kustomization.yaml")).expect("flux");
    let kustomization: Value = serde_yaml::from_str(&text).expect("yaml");
    let kind = object["kind"].as_str().expect("kind");
    let exprs = kustomization["spec"]["healthCheckExprs"]
        .as_array()
        .expect("healthCheckExprs")
        .iter()
        .find(|e| e["kind"] == kind && e["apiVersion"] == object["apiVersion"])
        .unwrap_or_else(|| panic!("no healthCheckExprs for {kind}"))
        .clone();
    let observed = object["status"]["observedGeneration"].as_i64();
    let generation = object["metadata"]["generation"].as_i64();
    if let (Some(observed), Some(generation)) = (observed, generation)
        && observed != generation
    {
        return Ok("InProgress");
    }
    let mut context = cel::Context::default();
    for (field, value) in object.as_object().expect("an object") {
        context.add_variable_from_value(field.clone(), cel::to_value(value).expect("JSON to CEL"));
    }
    for (field, status) in [("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")] {
        let Some(expr) = exprs[field].as_str() else { continue };
        let program = cel::Program::compile(expr).map_err(|e| format!("{kind}.{field} does not parse: {e}"))?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => return Ok(status),
            Ok(cel::Value::Bool(false)) => {}
            Ok(other) => return Err(format!("{kind}.{field} is not a boolean: {other:?}")),
            Err(e) => return Err(format!("{kind}.{field}: {e}")),
        }
    }
    Ok("InProgress")
}

fn object_of(kind: &str, generation: i64, status: Option<Value>) -> Value {
    let mut object = machine(generation, status);
    object["kind"] = kind.into();
    object
}

#[test]
fn flux_health_check_exprs_read_ready_progressing_and_stalled_objects_of_every_kind() {
    for kind in CIMI_KINDS {
        // Before the operator wrote anything: never current, never failed.
        let fresh = flux_health(&object_of(kind, 1, None));
        assert!(!matches!(fresh, Ok("Current" | "Failed")), "{kind} without status: {fresh:?}");
        // First contact: Reconciling, no Ready or Stalled yet.
        let first = serde_json::json!({
            "observedGeneration": 1,
            "conditions": [condition("Reconciling", "True", "Creating", "creating on the provider")],
        });
        assert_eq!(flux_health(&object_of(kind, 1, Some(first))), Ok("InProgress"), "{kind}");
        // Working: Ready=False without Stalled is in progress, not failed (`filter(..).all(..)` on the absent
        // Stalled condition would have read it as failed).
        let progressing = serde_json::json!({
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "Creating", "waiting for the provider's Job"),
                condition("Reconciling", "True", "Creating", "Job 42 is RUNNING"),
            ],
        });
        assert_eq!(flux_health(&object_of(kind, 1, Some(progressing))), Ok("InProgress"), "{kind}");
        let ready = serde_json::json!({
            "observedGeneration": 2,
            "conditions": [
                condition("Ready", "True", "Available", "machine is STARTED"),
                condition("Reconciling", "False", "Available", "in sync"),
                condition("Stalled", "False", "Available", "in sync"),
            ],
        });
        assert_eq!(flux_health(&object_of(kind, 2, Some(ready.clone()))), Ok("Current"), "{kind}");
        // A spec change the operator has not seen yet is in progress, whatever the old conditions say.
        assert_eq!(flux_health(&object_of(kind, 3, Some(ready))), Ok("InProgress"), "{kind}");
        let stalled = serde_json::json!({
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "Unauthorized", "the provider refused the credentials"),
                condition("Reconciling", "False", "Unauthorized", "waiting for new credentials"),
                condition("Stalled", "True", "Unauthorized", "the provider refused the credentials"),
            ],
        });
        assert_eq!(flux_health(&object_of(kind, 1, Some(stalled))), Ok("Failed"), "{kind}");
    }
}

#[test]
fn every_gitops_example_parses() {
    for dir in ["examples/gitops/argocd", "examples/gitops/flux", "examples/gitops/resources"] {
        for entry in std::fs::read_dir(repo_file(dir)).expect("dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("read");
                assert!(!documents(&text).is_empty(), "{} parses as YAML", path.display());
            }
        }
    }
}

#[tokio::test]
async fn gitops_cimi_resources_are_accepted_by_the_api_server() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "gitops").await;
    let dir = repo_file("examples/gitops/resources");
    let (ok, out, err) = run_tool(
        Tool::Kubectl,
        &["apply", "--server-side", "--dry-run=server", "-n", &ns.name, "-k", &dir.display().to_string()],
        None,
    );
    assert!(ok, "kubectl apply -k examples/gitops/resources (server dry run): {out}{err}");
    for object in ["cimiprovider.cimi.dev/lab", "cimimachine.cimi.dev/web-1", "cimivolume.cimi.dev/data"] {
        assert!(out.contains(object), "{object} in {out}");
    }
}

// --- RBAC proved from the API server's audit log --------------------------------------------------

const AUDIT_POLICY: &str =
    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n";

/// (verb, group, resource/subresource) of every request the impersonated `user` made, with the HTTP codes.
fn audited(log: &Path, user: &str) -> Vec<(String, String, String, i64)> {
    let text = std::fs::read_to_string(log).expect("audit log");
    let mut out: Vec<(String, String, String, i64)> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["impersonatedUser"]["username"] == user)
        .filter_map(|event| {
            let object = &event["objectRef"];
            let resource = object["resource"].as_str()?;
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_string(),
            };
            Some((
                event["verb"].as_str()?.to_string(),
                object["apiGroup"].as_str().unwrap_or_default().to_string(),
                resource,
                event["responseStatus"]["code"].as_i64().unwrap_or(0),
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Applies `yaml` with kubectl as the admin.
fn apply(kubeconfig: &Path, yaml: &str) {
    let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &["apply", "-f", "-"], Some(yaml));
    assert!(ok, "kubectl apply: {out}{err}\n{yaml}");
}

/// The status of `kind/name` (in `namespace`, or cluster-scoped) as JSON; `None` once it is gone.
fn object_json(kubeconfig: &Path, kind: &str, name: &str, namespace: Option<&str>) -> Option<Value> {
    let mut args = vec!["get", kind, name, "-o", "json", "--ignore-not-found"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &args, None);
    assert!(ok, "kubectl get {kind}/{name}: {out}{err}");
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).expect("json"))
}

fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Waits until `check` holds for `kind/name`; on timeout, fails showing the object as it was last seen.
async fn wait_for(kubeconfig: &Path, kind: &str, name: &str, ns: Option<&str>, what: &str, check: fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let seen = object_json(kubeconfig, kind, name, ns);
        if seen.as_ref().is_some_and(check) {
            return;
        }
        if std::time::Instant::now() > deadline {
            let status = seen.map(|o| o["status"].to_string()).unwrap_or_else(|| "absent".into());
            panic!("timed out after 90s waiting for {kind}/{name} {what}; status: {status}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn wait_gone(kubeconfig: &Path, kind: &str, name: &str, ns: Option<&str>) {
    let label = format!("{kind}/{name} gone");
    crate::harness::wait::eventually(&label, std::time::Duration::from_secs(90), || async {
        object_json(kubeconfig, kind, name, ns).is_none().then_some(())
    })
    .await;
}

/// Everything a user does with the operator, on every kind it manages: a provider with credentials from a
/// Secret, admitting only labelled namespaces; then per namespace a network, a volume and a machine attached to
/// both with credentials from a Secret, a one-shot restart, a stop, a system whose members are exposed as objects
/// of their own, and deletion of everything (the provider last).
async fn full_lifecycle(kubeconfig: &Path, release: &str, operator_ns: &str, namespaces: &[&str], endpoint: &str) {
    let provider = format!("{release}-sim");
    apply(
        kubeconfig,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {provider}-creds, namespace: {operator_ns}}}\n\
             stringData: {{username: demo, password: demo}}\n---\n\
             apiVersion: cimi.dev/v1alpha1\nkind: CimiProvider\nmetadata: {{name: {provider}}}\n\
             spec:\n  endpoint: {endpoint}\n  pollInterval: 1s\n  allowPlainHttp: true\n\
             \x20 credentialsSecretRef: {{namespace: {operator_ns}, name: {provider}-creds}}\n\
             \x20 allowedNamespaces: {{matchLabels: {{e2e.cimi.dev/tenant: \"yes\"}}}}\n"
        ),
    );
    wait_for(kubeconfig, "cimiprovider", &provider, None, "Ready", is_ready).await;
    for ns in namespaces {
        apply(
            kubeconfig,
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: login, namespace: {ns}}}\n\
                 stringData: {{userID: admin, password: s3cret}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiNetwork\nmetadata: {{name: net, namespace: {ns}}}\n\
                 spec: {{providerRef: {{name: {provider}}}, networkConfig: {{name: private}}}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiVolume\nmetadata: {{name: data, namespace: {ns}}}\n\
                 spec: {{providerRef: {{name: {provider}}}, capacity: 1Gi}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiMachine\nmetadata: {{name: web, namespace: {ns}}}\n\
                 spec:\n  providerRef: {{name: {provider}}}\n\
                 \x20 template:\n    machineConfig: {{name: tiny}}\n    machineImage: {{name: Linux SUSE}}\n\
                 \x20   credentialSecretRef: {{name: login}}\n\
                 \x20 networkInterfaces: [{{networkRef: {{name: net}}}}]\n\
                 \x20 volumes: [{{volumeRef: {{name: data}}, initialLocation: /dev/vdb}}]\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiSystem\nmetadata: {{name: shop, namespace: {ns}}}\n\
                 spec:\n  providerRef: {{name: {provider}}}\n  exposeMembers: true\n\
                 \x20 template:\n    componentDescriptors:\n\
                 \x20   - {{name: net, networkTemplate: {{name: private}}}}\n\
                 \x20   - {{name: disk, volumeTemplate: {{name: data-10g}}}}\n\
                 \x20   - {{name: web, quantity: 2, machineTemplate: \
                 {{machineConfig: {{name: tiny}}, machineImage: {{name: Linux SUSE}}}}}}\n"
            ),
        );
    }
    for ns in namespaces {
        wait_for(kubeconfig, "cimimachine", "web", Some(ns), "Ready and STARTED", |o| {
            is_ready(o) && o["status"]["state"] == "STARTED"
        })
        .await;
        let annotate = ["annotate", "cimimachine", "web", "-n", ns, "cimi.dev/action=restart@rbac"];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &annotate, None);
        assert!(ok, "{out}{err}");
        wait_for(kubeconfig, "cimimachine", "web", Some(ns), "restarted", |o| {
            o["status"]["lastAction"]["nonce"] == "rbac" && o["status"]["lastAction"]["completedAt"].is_string()
        })
        .await;
        let stop =
            ["patch", "cimimachine", "web", "-n", ns, "--type=merge", "-p", r#"{"spec":{"powerState":"Stopped"}}"#];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &stop, None);
        assert!(ok, "{out}{err}");
        wait_for(kubeconfig, "cimimachine", "web", Some(ns), "STOPPED", |o| {
            is_ready(o) && o["status"]["state"] == "STOPPED"
        })
        .await;
        wait_for(kubeconfig, "cimisystem", "shop", Some(ns), "Ready with its members exposed", |o| {
            is_ready(o) && o["status"]["ready"] == "4/4"
        })
        .await;
        // Turning exposeMembers off deletes the member objects (and nothing on the provider).
        let hide =
            ["patch", "cimisystem", "shop", "-n", ns, "--type=merge", "-p", r#"{"spec":{"exposeMembers":false}}"#];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &hide, None);
        assert!(ok, "{out}{err}");
        let exposed = ["get", "cimimachines,cimivolumes,ciminetworks", "-n", ns, "-l", "cimi.dev/system", "-o", "name"];
        crate::harness::wait::eventually("exposed members removed", std::time::Duration::from_secs(90), || async {
            let (ok, out, _) = run_tool_with(kubeconfig, Tool::Kubectl, &exposed, None);
            (ok && out.trim().is_empty()).then_some(())
        })
        .await;
        let show =
            ["patch", "cimisystem", "shop", "-n", ns, "--type=merge", "-p", r#"{"spec":{"exposeMembers":true}}"#];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &show, None);
        assert!(ok, "{out}{err}");
        crate::harness::wait::eventually("exposed members back", std::time::Duration::from_secs(90), || async {
            let (ok, out, _) = run_tool_with(kubeconfig, Tool::Kubectl, &exposed, None);
            (ok && out.lines().count() == 4).then_some(())
        })
        .await;
    }
    for ns in namespaces {
        let delete = [
            "delete",
            "cimimachine/web",
            "cimivolume/data",
            "ciminetwork/net",
            "cimisystem/shop",
            "-n",
            ns,
            "--wait=false",
        ];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &delete, None);
        assert!(ok, "{out}{err}");
    }
    for ns in namespaces {
        for (kind, name) in
            [("cimimachine", "web"), ("cimivolume", "data"), ("ciminetwork", "net"), ("cimisystem", "shop")]
        {
            wait_gone(kubeconfig, kind, name, Some(ns)).await;
        }
    }
    let (ok, out, err) =
        run_tool_with(kubeconfig, Tool::Kubectl, &["delete", "cimiprovider", &provider, "--wait=false"], None);
    assert!(ok, "{out}{err}");
    wait_gone(kubeconfig, "cimiprovider", &provider, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_of_both_modes_equals_what_the_operator_uses_over_the_full_lifecycle() {
    use cimi_operator::operator as runtime;
    use cimi_operator::runtime::{Config, LeaderElectionConfig};
    let policy_dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_dir.path().join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY).expect("policy");
    let cp = ControlPlane::start(ControlPlaneConfig {
        audit_policy: Some(policy),
        // The garbage collector removes the members a CimiSystem exposed.
        controller_manager: true,
        ..ControlPlaneConfig::default()
    })
    .await
    .expect("a control plane with an audit log");
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    for ns in ["ops", "team-a", "team-b"] {
        let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Kubectl, &["create", "namespace", ns], None);
        assert!(ok, "{out}{err}");
        let label = ["label", "namespace", ns, "e2e.cimi.dev/tenant=yes"];
        let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Kubectl, &label, None);
        assert!(ok, "{out}{err}");
    }
    let sim = cimi_operator::sim::Sim::start(cimi_operator::sim::SimConfig::default()).await.expect("sim");

    for (release, sets, namespaces) in [
        ("wide", vec![], vec![]),
        // Two watched namespaces: one watch per namespace, each within the Role the chart grants there.
        ("narrow", vec!["--set", "rbac.mode=namespaced,watch.namespaces={team-a,team-b}"], vec!["team-a", "team-b"]),
    ] {
        let chart = chart();
        let mut args = vec!["install", release, chart.as_str(), "--namespace", "ops"];
        args.extend(sets.iter().copied());
        let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Helm, &args, None);
        assert!(ok, "helm install {release}: {out}{err}");
        let fullname = format!("{release}-cimi-operator");
        let user = format!("system:serviceaccount:ops:{fullname}");

        // What the chart grants this service account, from the objects helm installed.
        let mut granted = std::collections::BTreeSet::new();
        for kind in ["clusterrole", "role"] {
            let mut get = vec!["get", kind, "-A", "-o", "json", "-l"];
            let selector = format!("app.kubernetes.io/instance={release}");
            get.push(&selector);
            if kind == "clusterrole" {
                get.retain(|a| *a != "-A");
            }
            let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Kubectl, &get, None);
            assert!(ok, "{out}{err}");
            let list: Value = serde_json::from_str(&out).expect("json");
            for role in list["items"].as_array().expect("items") {
                for (group, resource, verb) in grants(&role["rules"]) {
                    granted.insert((verb, group, resource));
                }
            }
        }

        // The operator, as that service account, through everything a user does.
        let groups = ["system:serviceaccounts", "system:serviceaccounts:ops", "system:authenticated"];
        let client = crate::harness::control_plane::client_of_as(&cp, &user, &groups).await;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let config = Config {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            operator_namespace: "ops".into(),
            leader_election: Some(LeaderElectionConfig {
                retry_period: std::time::Duration::from_millis(500),
                ..LeaderElectionConfig::new(fullname.clone(), "ops", format!("{release}-0"))
            }),
            ..Config::default()
        };
        let running = runtime::start(config, client.clone(), shutdown.clone()).await.expect("start");
        crate::harness::wait::eventually(
            "the operator to lead and be ready",
            std::time::Duration::from_secs(30),
            || {
                let ready = *running.leading.borrow() && running.readiness.is_ready();
                async move { ready.then_some(()) }
            },
        )
        .await;
        let lifecycle_namespaces: Vec<&str> = if namespaces.is_empty() { vec!["team-a", "team-b"] } else { namespaces };
        full_lifecycle(&kubeconfig, release, "ops", &lifecycle_namespaces, &sim.url()).await;
        shutdown.cancel();
        running.task.await.expect("task").expect("clean stop");

        // The audit log shows a denied request when there is one: a delete the chart does not grant.
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(client, "ops");
        let denied = leases.delete(&fullname, &Default::default()).await;
        assert!(matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403), "{denied:?}");

        let requests = audited(cp.audit_log_path().expect("audit log"), &user);
        let forbidden: Vec<_> = requests.iter().filter(|r| r.3 == 403).collect();
        assert_eq!(
            forbidden,
            [&("delete".to_string(), "coordination.k8s.io".to_string(), "leases".to_string(), 403)],
            "{release}: only the probe was denied; the operator itself never was"
        );
        let used: std::collections::BTreeSet<(String, String, String)> =
            requests.iter().filter(|r| r.3 != 403).map(|r| (r.0.clone(), r.1.clone(), r.2.clone())).collect();
        let outside: Vec<_> = used.difference(&granted).collect();
        assert!(outside.is_empty(), "{release}: requests the chart does not grant: {outside:?}");
        let unused: Vec<_> = granted.difference(&used).collect();
        assert!(unused.is_empty(), "{release}: the chart grants what the operator never uses: {unused:?}");
    }
    cp.stop();
}

#[test]
fn api_reference_is_generated_from_the_crds() {
    let have = std::fs::read_to_string(repo_file("docs/api-reference.md")).unwrap_or_default();
    assert!(
        have == cimi_operator::api::reference::reference_markdown(),
        "docs/api-reference.md is stale: run `make crds`"
    );
    for needle in ["## CimiMachine", "| `spec.providerRef.name` | string | yes |", "### CimiProvider.status"] {
        assert!(have.contains(needle), "the reference shows {needle}");
    }
}
