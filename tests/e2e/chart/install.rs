//! The chart installed on a real API server: every mode's render passes a server-side dry run (a ServiceMonitor
//! only once its CRD is there, on a control plane of its own), and the documented upgrade (CRDs by server-side
//! apply, then `helm upgrade`) keeps every existing object.

use std::path::Path;
use std::time::Duration;

use cimi_operator::devenv::tools::Tool;
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use serde_json::Value;

use crate::harness::chart::{chart_arg, chart_dir, container_args, helm_template};
use crate::harness::control_plane::{TestNamespace, client, control_plane};
use crate::harness::repo::repo_file;
use crate::harness::tools::run_tool_with;
use crate::harness::wait::eventually;

/// `helm template` with `--set` pairs, which must render: the YAML.
fn render_yaml(namespace: &str, sets: &[&str]) -> String {
    helm_template(namespace, sets).unwrap_or_else(|err| panic!("helm template {sets:?} failed: {err}"))
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
    let kubeconfig = control_plane().kubeconfig_path().to_path_buf();
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
    let accepted = eventually("the ServiceMonitor kind to be served", Duration::from_secs(30), || {
        let (ok, out) = dry_run(cp.kubeconfig_path(), &with_monitor);
        async move { ok.then_some(out) }
    })
    .await;
    assert!(
        accepted.contains("servicemonitor.monitoring.coreos.com/e2e-cimi-operator serverside-applied"),
        "{accepted}"
    );

    // Two shards, installed: one Deployment per shard, each told its index, sharing one Lease name base.
    let chart = chart_arg();
    let install = ["install", "sharded", chart.as_str(), "--namespace", "ops", "--set", "sharding.shards=2"];
    let (ok, out, err) = run_tool_with(cp.kubeconfig_path(), Tool::Helm, &install, None);
    assert!(ok, "helm install with two shards: {out}{err}");
    let get = ["get", "deployments", "-n", "ops", "-l", "app.kubernetes.io/instance=sharded", "-o", "json"];
    let (ok, out, err) = run_tool_with(cp.kubeconfig_path(), Tool::Kubectl, &get, None);
    assert!(ok, "{out}{err}");
    let list: Value = serde_json::from_str(&out).expect("json");
    let deployments = list["items"].as_array().expect("items");
    let names: Vec<&str> = deployments.iter().filter_map(|d| d["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["sharded-cimi-operator-shard-0", "sharded-cimi-operator-shard-1"]);
    for (index, deployment) in deployments.iter().enumerate() {
        let args = container_args(deployment);
        for expected in ["--shard-count=2", &format!("--shard-index={index}"), "--lease-name=sharded-cimi-operator"] {
            assert!(args.contains(&expected), "shard {index} has {expected}: {args:?}");
        }
        assert_eq!(deployment["spec"]["selector"]["matchLabels"]["cimi.dev/operator-shard"], index.to_string());
    }
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
    let created = eventually("the old CRDs to be served", Duration::from_secs(30), || {
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
    let crds = repo_file(cimi_operator::api::CHART_CRDS_DIR);
    let crds = crds.display().to_string();
    let (ok, out, err) = kubectl(&["apply", "--server-side", "--force-conflicts", "-f", &crds], None);
    assert!(ok, "server-side apply of the new CRDs: {out}{err}");
    assert!(out.contains("cimimachines.cimi.dev serverside-applied"), "{out}");
    let (ok, out, err) = helm(&["upgrade", "cimi", &chart_arg(), "--namespace", "ops"]);
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
    eventually("the new CimiMachine schema to be served", Duration::from_secs(30), || {
        let columns = kubectl(&["get", "cimimachines", "-n", "ops"], None).1;
        async move { columns.contains("IP").then_some(()) }
    })
    .await;
    // The OpenAPI document behind `kubectl explain` is published a little after the CRD is served.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let explained = loop {
        let explained = kubectl(&["explain", "cimimachine.spec.description"], None).1;
        if explained.contains("FIELD: description") || tokio::time::Instant::now() > deadline {
            break explained;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
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
