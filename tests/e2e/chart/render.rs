//! The chart as `helm lint` and `helm template` see it: its version and CRDs stay in step with the code, it
//! lints, renders least-privilege and hardened in each RBAC mode, renders its optional parts when asked, and its
//! values schema refuses bad values with a message that names the value.

use std::collections::BTreeSet;

use cimi_operator::devenv::tools::Tool;
use serde_json::Value;

use crate::harness::chart::{chart_arg, chart_dir, container_args, grants, helm_template};
use crate::harness::repo::{repo_file, yaml_documents};
use crate::harness::tools::run_tool;

/// `helm template` with `--set` pairs: the rendered objects, or helm's error.
fn template(namespace: &str, sets: &[&str]) -> Result<Vec<Value>, String> {
    yaml_documents(&helm_template(namespace, sets)?)
}

/// The rendered objects of `kind`.
fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The verbs `grants` holds on `resource`.
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
    let dir = repo_file(cimi_operator::api::CHART_CRDS_DIR);
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
    let chart = chart_arg();
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
    assert!(events("").is_empty(), "core Events are neither read nor written: {:?}", events(""));
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
    let resources: BTreeSet<&str> = cluster.iter().map(|(_, r, _)| r.as_str()).collect();
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
    assert_eq!(provider["spec"]["credentialSecretRef"]["name"], secret["metadata"]["name"]);
    assert_eq!(secret["metadata"]["namespace"], "ops", "in the operator's namespace, where a CimiProvider reads it");
    assert_eq!(secret["stringData"]["username"], "u");
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 1);
    assert_eq!(of_kind(&objects, "NetworkPolicy").len(), 1);

    let objects = template(
        "ops",
        &["provider.create=true", "provider.endpoint=https://cimi.example.com/", "provider.existingSecret=mine"],
    )
    .expect("renders");
    assert!(of_kind(&objects, "Secret").is_empty(), "an existing Secret is referenced, not created");
    assert_eq!(of_kind(&objects, "CimiProvider")[0]["spec"]["credentialSecretRef"]["name"], "mine");
}

#[test]
fn alerts_dashboard_tracing_and_pod_settings_render_when_asked() {
    let defaults = template("ops", &[]).expect("renders");
    assert!(of_kind(&defaults, "PrometheusRule").is_empty(), "alerts are off by default");
    assert!(of_kind(&defaults, "ConfigMap").is_empty(), "the dashboard is off by default");
    let container = &of_kind(&defaults, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    let env_names: Vec<&str> =
        container["env"].as_array().expect("env").iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(env_names.contains(&"CIMI_MEMORY_LIMIT"), "the memory limit reaches the operator: {env_names:?}");
    assert!(!env_names.iter().any(|n| n.starts_with("OTEL_")), "no traces unless asked: {env_names:?}");

    let objects = template(
        "ops",
        &[
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.labels.release=prometheus",
            "metrics.dashboard.enabled=true",
            "tracing.otlpEndpoint=http://otel-collector.observability:4318",
            "operator.extraArgs[0]=--meter-gauges-max=0",
            "operator.extraEnv[0].name=RUST_LOG",
            "operator.extraEnv[0].value=info",
            "podSecurityContext.runAsUser=null",
            "podSecurityContext.runAsGroup=null",
            "topologySpreadConstraints[0].maxSkew=1",
            "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
            "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
        ],
    )
    .expect("renders");
    let rule = of_kind(&objects, "PrometheusRule")[0];
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let file: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("files/prometheus-rules.yaml")).expect("rules file"),
    )
    .expect("rules YAML");
    assert_eq!(rule["spec"]["groups"], file["groups"], "the PrometheusRule carries the checked rules file");
    let dashboard = of_kind(&objects, "ConfigMap")[0];
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1", "found by Grafana's sidecar");
    let json: Value =
        serde_json::from_str(dashboard["data"]["cimi-operator.json"].as_str().expect("dashboard")).expect("JSON");
    assert_eq!(json["uid"], "cimi-operator");
    let pod = &of_kind(&objects, "Deployment")[0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_array().expect("args").iter().filter_map(|a| a.as_str()).collect();
    assert!(args.contains(&"--meter-gauges-max=0"), "{args:?}");
    let env = container["env"].as_array().expect("env");
    let value_of = |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].clone());
    assert_eq!(value_of("OTEL_EXPORTER_OTLP_ENDPOINT"), Some(Value::from("http://otel-collector.observability:4318")));
    assert_eq!(value_of("RUST_LOG"), Some(Value::from("info")));
    assert!(
        pod["securityContext"].get("runAsUser").is_none(),
        "OpenShift assigns its own user: {}",
        pod["securityContext"]
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["topologySpreadConstraints"][0]["topologyKey"], "topology.kubernetes.io/zone");
}

#[test]
fn two_shards_render_a_deployment_and_a_disruption_budget_each_with_the_same_rbac() {
    let objects = template("ops", &["sharding.shards=2", "replicaCount=2"]).expect("two shards render");
    let deployments = of_kind(&objects, "Deployment");
    let names: Vec<&str> = deployments.iter().filter_map(|d| d["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["e2e-cimi-operator-shard-0", "e2e-cimi-operator-shard-1"]);
    let selectors: BTreeSet<String> =
        deployments.iter().map(|d| d["spec"]["selector"]["matchLabels"].to_string()).collect();
    assert_eq!(selectors.len(), 2, "each shard selects its own pods: {selectors:?}");
    for (index, deployment) in deployments.iter().enumerate() {
        assert_eq!(deployment["spec"]["replicas"], 2, "a standby per shard");
        let template_labels = &deployment["spec"]["template"]["metadata"]["labels"];
        assert_eq!(template_labels["cimi.dev/operator-shard"], index.to_string());
        let args = container_args(deployment);
        assert!(args.contains(&"--shard-count=2") && args.contains(&format!("--shard-index={index}").as_str()));
    }
    let budgets = of_kind(&objects, "PodDisruptionBudget");
    assert_eq!(budgets.len(), 2, "one disruption budget per shard");
    for (budget, deployment) in budgets.iter().zip(&deployments) {
        assert_eq!(budget["spec"]["selector"], deployment["spec"]["selector"]);
    }
    // One service account and the same grants as one operator: every shard needs what one operator needs.
    let single = template("ops", &[]).expect("default render");
    for kind in ["ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding", "Service"] {
        let rendered = |objects: &[Value]| -> Vec<String> {
            of_kind(objects, kind).iter().map(|o| o["rules"].to_string() + &o["metadata"]["name"].to_string()).collect()
        };
        assert_eq!(rendered(&objects), rendered(&single), "{kind} is the same with two shards");
    }
    // One shard (the default) keeps the unsharded names, selector and arguments.
    let deployment = of_kind(&single, "Deployment")[0];
    assert_eq!(deployment["metadata"]["name"], "e2e-cimi-operator");
    assert!(deployment["spec"]["selector"]["matchLabels"].get("cimi.dev/operator-shard").is_none());
    assert!(!deployment.to_string().contains("--shard-"));
}

#[test]
fn bad_values_are_rejected_by_the_schema_with_a_clear_message() {
    for (sets, expected) in [
        (&["replicaCount=0"][..], "/replicaCount"),
        (&["sharding.shards=0"][..], "/sharding/shards"),
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
