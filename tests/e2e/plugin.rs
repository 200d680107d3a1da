//! `kubectl cimi`, run the way users run it: the real kubectl of the tool cache finds the plugin binary on
//! `PATH`, against the test control plane, an operator and cimi-sim. Each test shares one operator and one
//! sim across the commands it checks: a machine's status, tree, restart and stop with --wait, a failing
//! action, the GitOps warning, meters, events and catalog; a CimiSystem with one broken member (tree and
//! status) then stopped with --wait; a catalog larger than status keeps; import (list, forbidden Secret,
//! manifests that adopt without a single provider write, then nothing left to list); doctor on each cimi-sim
//! profile.

use std::collections::BTreeMap;
use std::time::Duration;

use cimi_operator::api::common::{DeletionPolicy, ImportSpec, ManagementPolicy, ProviderRef};
use cimi_operator::api::{CimiMachine, CimiMachineSpec, CimiProvider, CimiSystem};
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Profile, Sim, SimConfig, SimHandle, Timing};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Map, Value, json};

use crate::harness::control_plane::{TestNamespace, client, control_plane, random_suffix};
use crate::harness::examples::example_system;
use crate::harness::objects::machine_from;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{
    credentials_secret, fault, legacy_machine, legacy_network, legacy_volume, provider_action, provider_for,
    provider_list, ready_provider, sim_client,
};
use crate::harness::systems::{member, members_ready, system_ready, wait_system};
use crate::harness::tools::{ToolRun, kubectl_apply, run_tool, run_tool_env};
use crate::harness::wait::{condition, eventually, is_ready, wait_ready};

const T: Duration = Duration::from_secs(90);

/// `kubectl cimi ARGS` with extra environment variables: kubectl finds `kubectl-cimi` on `PATH`. The process
/// runs on a blocking thread: the operator and the sim of the test serve on this runtime meanwhile.
async fn cimi_env(args: &[&str], env: &[(&str, String)]) -> ToolRun {
    let plugin = std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-cimi"));
    let dir = plugin.parent().expect("the plugin's directory");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut all: Vec<(String, String)> = vec![("PATH".into(), path)];
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let mut argv = vec!["cimi".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let env: Vec<(&str, String)> = all.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        run_tool_env(control_plane().kubeconfig_path(), Tool::Kubectl, &argv, &env, None)
    })
    .await
    .expect("kubectl cimi ran")
}

/// `kubectl apply -f -` of a YAML stream on the shared control plane.
fn apply(yaml: &str) {
    kubectl_apply(control_plane().kubeconfig_path(), yaml);
}

/// `kubectl cimi ARGS`.
async fn cimi(args: &[&str]) -> ToolRun {
    cimi_env(args, &[]).await
}

/// `kubectl cimi ARGS`, which must succeed; its stdout.
async fn cimi_ok(args: &[&str]) -> String {
    let run = cimi(args).await;
    assert_eq!(run.code, Some(0), "kubectl cimi {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

/// The line of `text` that starts with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start_matches(['│', ' ']).starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

/// A Ready provider for `sim` that reads meters every second and events every second.
async fn watched_provider(client: &kube::Client, op: &TestOperator, ns: &str, sim: &SimHandle) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets.create(&PostParams::default(), &credentials_secret(op, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let name = format!("prov-{}", random_suffix());
    let mut p = provider_for(op, &name, &sim.url(), "creds");
    p.spec.settings.meter_interval = "1s".into();
    p.spec.settings.event_interval = "1s".into();
    providers.create(&PostParams::default(), &p).await.expect("provider");
    wait_ready(&providers, &name, "True", "Reachable").await;
    name
}

#[tokio::test]
async fn machine_status_tree_actions_meters_events_and_catalog() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "plug").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let provider = watched_provider(&client, &op, &ns.name, &sim).await;
    let (key, value) = &op.label;
    // Applied with kubectl, as users do (so no other field manager owns spec.powerState).
    apply(&format!(
        r#"
apiVersion: cimi.dev/v1alpha1
kind: CimiNetwork
metadata: {{name: net, namespace: {ns}, labels: {{{key}: "{value}"}}}}
spec: {{providerRef: {{name: {provider}}}, networkType: Private}}
---
apiVersion: cimi.dev/v1alpha1
kind: CimiVolume
metadata: {{name: data, namespace: {ns}, labels: {{{key}: "{value}"}}}}
spec: {{providerRef: {{name: {provider}}}, capacity: 1Gi}}
---
apiVersion: cimi.dev/v1alpha1
kind: CimiMachine
metadata: {{name: web-1, namespace: {ns}, labels: {{{key}: "{value}"}}}}
spec:
  providerRef: {{name: {provider}}}
  template: {{machineConfig: {{name: small}}, machineImage: {{name: Linux SUSE}}}}
  volumes: [{{volumeRef: {{name: data}}, initialLocation: /dev/vdb}}]
  networkInterfaces: [{{networkRef: {{name: net}}}}]
---
apiVersion: cimi.dev/v1alpha1
kind: CimiMachine
metadata: {{name: bad-1, namespace: {ns}, labels: {{{key}: "{value}"}}}}
spec:
  providerRef: {{name: {provider}}}
  template: {{machineConfig: {{name: small}}, machineImage: {{name: No Such Image}}}}
"#,
        ns = ns.name
    ));
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    eventually("web-1 STARTED with an IP, bad-1 Stalled", T, || async {
        let web = machines.get("web-1").await.ok()?.status?;
        let bad = machines.get("bad-1").await.ok()?.status?;
        (is_ready(&web.common.conditions)
            && web.common.state.as_deref() == Some("STARTED")
            && web.ip.is_some()
            && condition(&bad.common.conditions, "Stalled").is_some_and(|c| c.0 == "True"))
        .then_some(())
    })
    .await;
    let n = ns.name.as_str();

    // status: the provider healthy, bad-1 not Ready and Stalled with its reason.
    let out = cimi_ok(&["status", "-n", n]).await;
    let p = line(&out, &provider);
    assert!(p.contains("True") && p.contains("Reachable"), "{out}");
    let not_ready = out.split("NOT READY").nth(1).expect("a NOT READY section");
    assert!(line(not_ready, "CimiMachine/bad-1").contains("CatalogEntryNotFound"), "{out}");
    let stalled = out.split("STALLED, NEEDS A HUMAN (1)").nth(1).expect("one Stalled object");
    assert!(line(stalled, "CimiMachine/bad-1").contains("No Such Image"), "{out}");
    assert!(out.contains(&format!("4 objects in namespace {n}: 3 Ready, 1 not Ready")), "{out}");
    let doc: Value = serde_json::from_str(&cimi_ok(&["status", "-n", n, "-o", "json"]).await).expect("status JSON");
    assert_eq!(doc["summary"]["stalled"], 1, "{doc}");
    assert_eq!(doc["stalled"][0]["reason"], "CatalogEntryNotFound", "{doc}");

    // tree: the machine, its provider, volume and network, each Ready.
    let out = cimi_ok(&["tree", "cimimachine/web-1", "-n", n]).await;
    let root = line(&out, "CimiMachine/web-1");
    assert!(root.contains("True") && root.contains("STARTED"), "{out}");
    assert!(line(&out, &format!("├─ CimiProvider/{provider}")).contains("Reachable"), "{out}");
    let volume = line(&out, "├─ CimiVolume/data");
    assert!(volume.contains("True") && volume.contains("AVAILABLE") && volume.contains("attached at /dev/vdb"));
    let network = line(&out, "└─ CimiNetwork/net");
    assert!(network.contains("STARTED") && network.contains("interface "), "{out}");

    // restart --wait: a fresh nonce, followed to Succeeded; no GitOps warning for kubectl's own objects.
    let run = cimi(&["restart", "cimimachine/web-1", "-n", n, "--wait"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("restart succeeded on CimiMachine/web-1"), "{}", run.stdout);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let m = machines.get("web-1").await.expect("web-1");
    let annotation = m.metadata.annotations.clone().unwrap_or_default()["cimi.dev/action"].clone();
    let last = m.status.and_then(|s| s.common.last_action).expect("lastAction");
    assert_eq!((annotation, last.phase.as_str()), (format!("restart@{}", last.nonce), "Succeeded"));

    // A restart the provider fails: exit 4 with the provider's message.
    sim.set_faults(vec![fault(
        json!({"resourceType": "Machine", "action": "restart", "kind": "jobFails", "times": 1}),
    )]);
    let run = cimi(&["restart", "web-1", "-n", n, "--wait"]).await;
    assert_eq!(run.code, Some(4), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("restart failed on CimiMachine/web-1"), "{}", run.stderr);
    assert!(run.stderr.contains("the provider failed the operation (injected fault)"), "{}", run.stderr);
    sim.set_faults(Vec::new());

    // stop --wait: spec.powerState Stopped, followed until the machine is STOPPED.
    let run = cimi(&["stop", "machine/web-1", "-n", n, "--wait", "--timeout", "60s"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("CimiMachine/web-1 is STOPPED"), "{}", run.stdout);
    assert!(run.stderr.contains("spec.powerState set to Stopped"), "{}", run.stderr);
    let m = machines.get("web-1").await.expect("web-1");
    assert_eq!(m.spec.power_state, cimi_operator::api::PowerState::Stopped);
    assert_eq!(m.status.and_then(|s| s.common.state).as_deref(), Some("STOPPED"));

    // An object Argo CD manages: start warns that Git would revert it, and still starts.
    let (ok, _, err) =
        run_tool(Tool::Kubectl, &["label", "cimimachine/web-1", "-n", n, "argocd.argoproj.io/instance=shop"], None);
    assert!(ok, "{err}");
    let run = cimi(&["start", "cimimachine", "web-1", "-n", n, "--wait"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("warning: cimimachine/web-1: Argo CD manages it"), "{}", run.stderr);
    assert!(run.stdout.contains("CimiMachine/web-1 is STARTED"), "{}", run.stdout);

    // meters and events, as the operator mirrored them.
    let out = eventually("meters of web-1", T, || async {
        let out = cimi_ok(&["meters", "cimimachine/web-1", "-n", n]).await;
        (out.starts_with("ASPECT") && out.contains("percent")).then_some(out)
    })
    .await;
    assert!(line(&out, "cpu").contains("percent"), "{out}");
    let out = eventually("provider events of web-1", T, || async {
        let out = cimi_ok(&["events", "cimimachine/web-1", "-n", n]).await;
        out.contains("state STARTING -> STARTED").then_some(out)
    })
    .await;
    assert!(out.starts_with("AGE") && out.contains("state"), "{out}");
    let all = cimi_ok(&["events", "cimimachine/web-1", "-n", n, "--all"]).await;
    assert!(all.contains("ActionStarted") && all.contains("ProviderEvent"), "{all}");

    // catalog: from status, as JSON, and live from the provider.
    let out = cimi_ok(&["catalog", &provider]).await;
    assert!(out.lines().any(|l| l.starts_with("machineConfigs") && l.contains("small")), "{out}");
    assert!(out.contains("Linux SUSE") && !out.contains("Partial"), "{out}");
    let doc: Value = serde_json::from_str(&cimi_ok(&["catalog", &provider, "-o", "json"]).await).expect("catalog JSON");
    assert_eq!(doc["source"], "status");
    assert_eq!(doc["collections"]["machineConfigs"]["partial"], false, "{doc}");
    assert!(doc["collections"]["machineConfigs"]["count"].as_i64() >= Some(3), "{doc}");
    let live = cimi_ok(&[
        "catalog",
        &provider,
        "--live",
        "--operator-namespace",
        n,
        "--collection",
        "machineImages",
        "-o",
        "yaml",
    ])
    .await;
    assert!(live.contains("source: provider") && live.contains("Linux SUSE") && !live.contains("machineConfigs"));

    // What scripts rely on: not found is 3, an unsupported action 2, help lists the exit codes.
    let run = cimi(&["tree", "machine/nope", "-n", n]).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("cimimachine/nope") && run.stderr.contains("not found"), "{}", run.stderr);
    let run = cimi(&["capture", "cimisystem/shop", "-n", n]).await;
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("CIMI captures machines, not systems"), "{}", run.stderr);
    let help = cimi_ok(&["--help"]).await;
    assert!(help.contains("Exit codes") && help.contains("doctor") && help.contains("import"), "{help}");
    let stop_help = cimi_ok(&["stop", "--help"]).await;
    assert!(stop_help.contains("kubectl cimi stop cimisystem/shop --wait"), "{stop_help}");
    assert!(cimi_ok(&["completion", "bash"]).await.contains("kubectl-cimi"));
}

#[tokio::test]
async fn system_with_a_broken_member_tree_status_then_stop_with_wait() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "plugsys").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi_client = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let mut system = example_system(&op, &provider);
    system.metadata.namespace = Some(ns.name.clone());
    apply(&serde_yaml::to_string(&system).expect("yaml"));
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    let s =
        wait_system(&systems, "shop", "shop Ready 4/4", |s| system_ready(s) && members_ready(s) == Some("4/4")).await;

    // One member stopped on the provider, and the start that would heal it hangs: web1 is broken.
    sim.set_faults(vec![fault(json!({"resourceType": "System", "action": "start", "kind": "jobHangs"}))]);
    let web1 = &member(&s.status.as_ref().expect("status").machines, "web1").member.href;
    provider_action(&cimi_client, web1, "stop").await;
    let s = eventually("shop MIXED 3/4, its start Job running", T, || async {
        let s = systems.get("shop").await.ok()?;
        let st = s.status.as_ref()?;
        let running = st.common.job.as_ref().is_some_and(|j| j.state.as_deref() == Some("RUNNING"));
        let nested = st.nested_jobs.iter().any(|j| j.component.as_deref() == Some("web1"));
        (st.common.state.as_deref() == Some("MIXED")
            && st.members.as_ref().map(|m| m.summary.as_str()) == Some("3/4")
            && running
            && nested)
            .then_some(s)
    })
    .await;
    let n = ns.name.as_str();

    let out = cimi_ok(&["tree", "cimisystem/shop", "-n", n]).await;
    let root = line(&out, "CimiSystem/shop");
    assert!(root.contains("False") && root.contains("MIXED"), "{out}");
    let broken = line(&out, "├─ Machine web1");
    // Stopped on the provider, then STARTING under the start that hangs.
    assert!(broken.contains("STOPPED") || broken.contains("STARTING"), "{out}");
    assert!(broken.contains("False") && broken.contains("start RUNNING"), "{out}");
    assert!(broken.contains("NotInDesiredState") && broken.contains("wants it STARTED"), "{out}");
    let healthy = line(&out, "├─ Machine web2");
    assert!(healthy.contains("True") && healthy.contains("STARTED"), "{out}");
    assert!(line(&out, "├─ Volume data").contains("AVAILABLE"), "{out}");
    assert!(line(&out, "└─ Network net").contains("True"), "{out}");
    let doc: Value =
        serde_json::from_str(&cimi_ok(&["tree", "cimisystem/shop", "-n", n, "-o", "json"]).await).expect("json");
    let members = doc["children"].as_array().expect("children");
    let web1_node = members.iter().find(|c| c["object"] == "Machine web1").expect("web1 node");
    assert_eq!(web1_node["ready"], "False", "{doc}");
    assert_eq!(web1_node["reason"], "NotInDesiredState", "{doc}");

    // status: the system not Ready, its provider Job running with its action and progress.
    let out = cimi_ok(&["status", "-n", n]).await;
    let jobs = out.split("PROVIDER JOBS RUNNING (1)").nth(1).expect("one Job running");
    let job = line(jobs, "CimiSystem/shop");
    assert!(job.contains("start") && job.contains("RUNNING") && job.contains('%'), "{out}");
    let not_ready = out.split("NOT READY (1)").nth(1).expect("one object not Ready");
    assert!(line(not_ready, "CimiSystem/shop").contains("False"), "{out}");
    let all: Value = serde_json::from_str(&cimi_ok(&["status", "-A", "-o", "json"]).await).expect("status -A JSON");
    assert!(all["jobs"].as_array().expect("jobs").iter().any(|j| j["namespace"] == n && j["name"] == "shop"), "{all}");

    // The hung start is given up on the provider; the system heals; then stop --wait stops every machine.
    sim.set_faults(Vec::new());
    let hung = s.status.as_ref().and_then(|st| st.nested_jobs.iter().find(|j| j.component.as_deref() == Some("web1")));
    provider_action(&cimi_client, &hung.expect("the hung Job").job.href, "stop").await;
    wait_system(&systems, "shop", "shop Ready 4/4 again", |s| system_ready(s) && members_ready(s) == Some("4/4")).await;

    // A one-shot restart of the whole system, followed to its end; capture is refused (not a system action).
    let restarts =
        |sim: &SimHandle| -> u64 { sim.stats().requests.get("System.restart").map_or(0, |s| s.values().sum()) };
    let before = restarts(&sim);
    let run = cimi(&["restart", "cimisystem/shop", "-n", n, "--wait", "--timeout", "90s"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("restart succeeded on CimiSystem/shop"), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(restarts(&sim), before + 1, "one restart on the provider");
    let last = systems.get("shop").await.expect("shop").status.expect("status").common.last_action.expect("lastAction");
    assert_eq!((last.action.as_str(), last.phase.as_str()), ("restart", "Succeeded"));
    let run = cimi(&["capture", "cimisystem/shop", "-n", n]).await;
    assert_eq!(run.code, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("CIMI captures machines, not systems"), "{}", run.stderr);

    let run = cimi(&["stop", "cimisystem/shop", "-n", n, "--wait", "--timeout", "90s"]).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("CimiSystem/shop is STOPPED"), "{}", run.stdout);
    for m in provider_list(&cimi_client, "machines").await {
        assert_eq!(m["state"], "STOPPED", "{m}");
    }
}

#[tokio::test]
async fn import_lists_adopts_without_a_provider_write_then_lists_nothing() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "plugimp").await;
    let op = TestOperator::start(&ns.name).await;
    // A catalog with more images than a CimiProvider's status keeps (50 per collection).
    let mut catalog = cimi_operator::sim::Catalog::primer();
    let images = catalog.collections.entry("machineImages".into()).or_default();
    for i in 0..57 {
        images.push(
            serde_json::from_value(json!({"id": format!("extra-{i}"), "name": format!("Extra {i}"),
                "state": "AVAILABLE", "type": "IMAGE", "imageLocation": {"href": format!("data/extra-{i}")}}))
            .expect("an image"),
        );
    }
    let config = SimConfig { timing: Timing::Instant, catalog: Some(catalog), ..SimConfig::default() };
    let sim = Sim::start(config).await.expect("sim");
    let cimi_client = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let n = ns.name.as_str();

    // The catalog says what its status holds only part of, and how to see the rest.
    let out = cimi_ok(&["catalog", &provider]).await;
    assert!(out.contains("machineImages: 50 of 60"), "{out}");
    assert!(out.contains(&format!("kubectl cimi catalog {provider} --live")), "{out}");
    let live: Value = serde_json::from_str(
        &cimi_ok(&["catalog", &provider, "--live", "--operator-namespace", n, "-o", "json"]).await,
    )
    .expect("catalog JSON");
    let listed = live["collections"]["machineImages"]["entries"].as_array().map(Vec::len);
    assert_eq!((listed, live["collections"]["machineImages"]["partial"].as_bool()), (Some(60), Some(false)));

    // A brownfield estate: two machines (one stopped), a volume and a network made by hand; one more machine
    // already imported ObserveOnly (never tagged), and one the operator made (tagged).
    legacy_machine(&cimi_client, "legacy-vm").await;
    let db = legacy_machine(&cimi_client, "Legacy DB").await;
    let db_url = cimi_client.resolve(&db).await.expect("href");
    cimi_client.action_href(&db_url, "stop", Map::new()).await.expect("stop legacy-db");
    legacy_volume(&cimi_client, "legacy-data").await;
    legacy_network(&cimi_client, "legacy-net").await;
    let observed = legacy_machine(&cimi_client, "observed-vm").await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = CimiMachine::new(
        "observed",
        CimiMachineSpec {
            provider_ref: ProviderRef::cluster(provider.clone()),
            import: Some(ImportSpec { href: Some(observed.clone()), filter: None }),
            management_policy: ManagementPolicy::ObserveOnly,
            deletion_policy: DeletionPolicy::Orphan,
            ..Default::default()
        },
    );
    m.metadata.labels = Some(op.labels());
    machines.create(&PostParams::default(), &m).await.expect("observed");
    let mut managed = machine_from(&op, "managed-1", &provider, "tiny", "Linux SUSE");
    managed.metadata.namespace = Some(ns.name.clone());
    machines.create(&PostParams::default(), &managed).await.expect("managed-1");
    eventually("observed and managed-1 Ready", T, || async {
        let a = machines.get("observed").await.ok()?.status?;
        let b = machines.get("managed-1").await.ok()?.status?;
        (is_ready(&a.common.conditions) && a.common.id.is_some() && is_ready(&b.common.conditions)).then_some(())
    })
    .await;

    // The listing: what no object manages, and nothing else.
    let out = cimi_ok(&["import", &provider, "-n", n, "--operator-namespace", n]).await;
    for name in ["legacy-vm", "Legacy DB", "legacy-data", "legacy-net"] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    assert!(!out.contains("observed-vm") && !out.contains("managed-1"), "{out}");
    let db_line = out.lines().find(|l| l.contains("Legacy DB")).unwrap_or_default();
    assert!(db_line.contains("STOPPED") && db_line.contains("CimiMachine/legacy-db"), "{out}");
    assert!(out.contains("4 provider resources no object manages"), "{out}");
    let networks_only = cimi_ok(&["import", &provider, "-n", n, "--operator-namespace", n, "--kind", "network"]).await;
    assert!(networks_only.contains("legacy-net") && !networks_only.contains("legacy-vm"), "{networks_only}");
    let filtered =
        cimi_ok(&["import", &provider, "-n", n, "--operator-namespace", n, "--filter", "name='legacy-data'"]).await;
    assert!(filtered.contains("legacy-data") && !filtered.contains("legacy-net"), "{filtered}");

    // Someone who may read the CimiProvider but not its Secret gets a clear error.
    let suffix = random_suffix();
    let (role, user) = (format!("plugin-e2e-{suffix}"), format!("plugin-viewer-{suffix}"));
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": role},
                "rules": [{"apiGroups": ["cimi.dev"], "resources": ["cimiproviders"], "verbs": ["get", "list"]}]}))
            .expect("role"),
        )
        .await
        .expect("create the role");
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": role},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}))
            .expect("binding"),
        )
        .await
        .expect("create the binding");
    let run = cimi(&["import", &provider, "-n", n, "--operator-namespace", n, "--as", &user]).await;
    let _ = bindings.delete(&role, &DeleteParams::default()).await;
    let _ = roles.delete(&role, &DeleteParams::default()).await;
    assert_eq!(run.code, Some(6), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("cannot read Secret {n}/creds")), "{}", run.stderr);

    // The manifests, as files and as one stream; applied, they adopt without a single provider write.
    let dir = tempfile::tempdir().expect("dir");
    let dir_arg = dir.path().display().to_string();
    let files =
        cimi_ok(&["import", &provider, "-n", n, "--operator-namespace", n, "--all", "--output-dir", &dir_arg]).await;
    assert_eq!(files.lines().count(), 4, "{files}");
    assert!(dir.path().join("machine-legacy-db.yaml").exists(), "{files}");
    let label = format!("{}={}", op.label.0, op.label.1);
    let run = cimi(&["import", &provider, "-n", n, "--operator-namespace", n, "--all", "-l", &label]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.matches("\n---\n").count() + usize::from(run.stdout.starts_with("---\n")), 4);
    assert!(run.stderr.contains("4 manifests") && run.stderr.contains("ObserveOnly"), "{}", run.stderr);
    let before = sim.stats().writes;
    let counts = |c: &'static str| {
        let cimi_client = cimi_client.clone();
        async move { provider_list(&cimi_client, c).await.len() }
    };
    let sizes = (counts("machines").await, counts("volumes").await, counts("networks").await);
    apply(&run.stdout);
    let db_object = eventually("the four imports Ready (Observed) and Synced", T, || async {
        let lp = Default::default();
        let imported: Vec<(String, bool)> = machines
            .list(&lp)
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|m| ["legacy-vm", "legacy-db"].contains(&m.metadata.name.as_deref().unwrap_or("")))
            .map(|m| {
                let st = m.status.clone().unwrap_or_default();
                let ok = condition(&st.common.conditions, "Ready") == Some(("True".into(), "Observed".into()))
                    && condition(&st.common.conditions, "Synced").is_some_and(|c| c.0 == "True");
                (m.metadata.name.clone().unwrap_or_default(), ok)
            })
            .collect();
        let vol: Api<cimi_operator::api::CimiVolume> = Api::namespaced(client.clone(), n);
        let net: Api<cimi_operator::api::CimiNetwork> = Api::namespaced(client.clone(), n);
        let v = vol.get("legacy-data").await.ok()?.status?;
        let w = net.get("legacy-net").await.ok()?.status?;
        (imported.len() == 2
            && imported.iter().all(|(_, ok)| *ok)
            && is_ready(&v.common.conditions)
            && is_ready(&w.common.conditions))
        .then_some(())?;
        machines.get("legacy-db").await.ok()
    })
    .await;
    assert_eq!(db_object.spec.power_state, cimi_operator::api::PowerState::Stopped, "the power state is mirrored");
    assert_eq!(sim.stats().writes, before, "adopting made no provider write");
    assert_eq!((counts("machines").await, counts("volumes").await, counts("networks").await), sizes, "nothing created");
    assert_eq!(cimi_client.get_value(&db_url).await.expect("db")["state"], "STOPPED");

    // Run again: nothing left to import.
    let out = cimi_ok(&["import", &provider, "-n", n, "--operator-namespace", n]).await;
    assert!(out.contains("is managed by an object"), "{out}");
    assert!(!out.contains("legacy"), "{out}");
    let run = cimi(&["import", &provider, "-n", n, "--operator-namespace", n, "--all"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""), "{}", run.stderr);

    // drift: none while the provider matches; started by hand, the ObserveOnly legacy-db drifts and says how.
    let out = cimi_ok(&["drift", "cimimachine/legacy-db", "-n", n]).await;
    assert!(out.contains("CimiMachine/legacy-db: no drift"), "{out}");
    cimi_client.action_href(&db_url, "start", Map::new()).await.expect("start legacy-db by hand");
    let out = eventually("legacy-db drifts", T, || async {
        let out = cimi_ok(&["drift", "cimimachine/legacy-db", "-n", n]).await;
        out.contains("differs from its spec").then_some(out)
    })
    .await;
    assert!(out.contains("Synced=False Drifted"), "{out}");
    let row = line(&out, "spec.powerState");
    assert!(row.contains("Stopped") && row.contains("STARTED"), "{out}");
    let doc: Value =
        serde_json::from_str(&cimi_ok(&["drift", "cimimachine/legacy-db", "-n", n, "-o", "json"]).await).expect("json");
    assert_eq!(doc["drift"][0]["field"], "spec.powerState", "{doc}");
    assert_eq!(
        (doc["drift"][0]["desired"].as_str(), doc["drift"][0]["observed"].as_str()),
        (Some("Stopped"), Some("STARTED"))
    );
    assert!(doc["drift"][0]["since"].is_string(), "{doc}");
    assert_eq!(cimi_client.get_value(&db_url).await.expect("db")["state"], "STARTED", "ObserveOnly: not corrected");
}

/// The verdicts of a doctor report, by finding id.
fn verdicts(report: &Value) -> BTreeMap<String, String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (f["id"].as_str().unwrap_or_default().to_string(), f["verdict"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test]
async fn doctor_reports_each_sim_profile() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "plugdoc").await;
    let start = |profile| Sim::start(SimConfig { profile, timing: Timing::Instant, ..SimConfig::default() });
    let strict = start(Profile::Strict).await.expect("strict sim");
    let no_jobs = start(Profile::NoJobs).await.expect("no-jobs sim");
    let lenient = start(Profile::Lenient1x).await.expect("lenient sim");

    // strict, through a CimiProvider and its Secret (no operator needed: the plugin reads both itself).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret = serde_json::from_value(json!({"metadata": {"name": "creds"},
        "stringData": {"username": "demo", "password": "demo"}}))
    .expect("secret");
    secrets.create(&PostParams::default(), &secret).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let name = format!("doctor-{}", random_suffix());
    let p: CimiProvider = serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider", "metadata": {"name": name},
        "spec": {"endpoint": strict.url(), "credentialSecretRef": {"name": "creds"},
                 "allowPlainHTTP": true}
    }))
    .expect("provider");
    providers.create(&PostParams::default(), &p).await.expect("provider");
    let text = cimi_ok(&["doctor", &name, "--operator-namespace", &ns.name]).await;
    assert!(text.starts_with(&format!("CIMI doctor: {} (cimiprovider/{name})", strict.url())), "{text}");
    assert!(text.contains("WORKS (") && text.contains("Verdict: the operator can use this endpoint"), "{text}");
    let strict_report: Value =
        serde_json::from_str(&cimi_ok(&["doctor", &name, "--operator-namespace", &ns.name, "-o", "json"]).await)
            .expect("json");
    let _ = providers.delete(&name, &DeleteParams::default()).await;

    // no-jobs, by URL with credentials from the environment.
    let env = |password: &str| vec![("CIMI_USERNAME", "demo".to_string()), ("CIMI_PASSWORD", password.to_string())];
    // Credentials over plain http only when asked for, as a CimiProvider's spec.allowPlainHTTP.
    let run = cimi_env(&["doctor", &no_jobs.url()], &env("demo")).await;
    assert_eq!(run.code, Some(8), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("transport") && run.stdout.contains("plain http"), "{}", run.stdout);
    let run = cimi_env(&["doctor", &no_jobs.url(), "--allow-plain-http", "-o", "json"], &env("demo")).await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let no_jobs_report: Value = serde_json::from_str(&run.stdout).expect("json");

    // lenient-1x, by URL with credentials from a file.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("creds.yaml");
    std::fs::write(&file, "username: demo\npassword: demo\n").expect("write");
    let file_arg = file.display().to_string();
    let lenient_report: Value = serde_json::from_str(
        &cimi_ok(&["doctor", &lenient.url(), "--credentials-file", &file_arg, "--allow-plain-http", "-o", "json"])
            .await,
    )
    .expect("json");

    let (s, j, l) = (verdicts(&strict_report), verdicts(&no_jobs_report), verdicts(&lenient_report));
    for (report, v) in [(&strict_report, &s), (&no_jobs_report, &j), (&lenient_report, &l)] {
        assert_eq!(report["usable"], true, "{report}");
        for id in [
            "entry-point",
            "authentication",
            "format-json",
            "format-xml",
            "machines",
            "volumes",
            "networks",
            "systems",
            "filter",
        ] {
            assert_eq!(v.get(id).map(String::as_str), Some("ok"), "{id} in {report}");
        }
    }
    // Jobs, meters and event logs: only the strict profile has them.
    for id in ["jobs", "meters", "event-logs"] {
        assert_eq!(s[id], "ok", "strict {id}");
    }
    assert_eq!((j["jobs"].as_str(), l["jobs"].as_str()), ("adapted", "adapted"));
    assert_eq!((j["meters"].as_str(), j["event-logs"].as_str()), ("unsupported", "unsupported"));
    let no_jobs_jobs = no_jobs_report["findings"].as_array().expect("findings").iter().find(|f| f["id"] == "jobs");
    assert!(no_jobs_jobs.expect("jobs")["operator"].as_str().unwrap_or("").contains("states"));
    // The deviations of reference section 7 that only lenient-1x serves.
    for id in [
        "dev-paging-ignored",
        "dev-strings-for-numbers",
        "dev-dates",
        "dev-entries-without-resource-uri",
        "dev-image-location",
        "dev-both-delete-rels",
        "dev-spec-version-header",
        "dev-cep-without-credentials",
    ] {
        assert_eq!((s[id].as_str(), j[id].as_str(), l[id].as_str()), ("ok", "ok", "adapted"), "{id}");
    }
    // What only a write would show is named, not probed.
    assert_eq!(l["dev-delete-500"], "notProbed");

    // Refused credentials: exit 8, the report says why.
    let run = cimi_env(&["doctor", &no_jobs.url(), "--allow-plain-http"], &env("wrong")).await;
    assert_eq!(run.code, Some(8), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("THE OPERATOR CANNOT USE IT") && run.stdout.contains("authentication"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("the operator cannot use"), "{}", run.stderr);

    // The doctor only read, through the CIMI tree.
    for sim in [&strict, &no_jobs, &lenient] {
        let stats = sim.stats();
        assert!(stats.total > 0);
        assert_eq!(stats.writes, 0, "the doctor wrote to the provider");
        assert!(stats.log.iter().all(|r| r.method == "GET"), "{:?}", stats.log);
    }
}

/// Images through the plugin: `status` counts them, `tree` of the capture shows the machine that boots from
/// it, and `tree` of a snapshot the volume restored from it.
#[tokio::test]
async fn images_in_status_and_tree() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "plug-img").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let (key, value) = &op.label;
    let n = ns.name.as_str();
    apply(&format!(
        "apiVersion: cimi.dev/v1alpha1\nkind: CimiMachine\nmetadata: {{name: web-1, namespace: {n}, labels: {{{key}: '{value}'}}}}\n\
         spec: {{providerRef: {{name: {provider}}}, template: {{machineConfig: {{name: tiny}}, machineImage: {{name: Linux SUSE}}}}}}\n---\n\
         apiVersion: cimi.dev/v1alpha1\nkind: CimiVolume\nmetadata: {{name: data, namespace: {n}, labels: {{{key}: '{value}'}}}}\n\
         spec: {{providerRef: {{name: {provider}}}, capacity: 1Gi}}\n---\n\
         apiVersion: cimi.dev/v1alpha1\nkind: CimiMachineImage\nmetadata: {{name: golden, namespace: {n}, labels: {{{key}: '{value}'}}}}\n\
         spec: {{providerRef: {{name: {provider}}}, source: {{machineRef: {{name: web-1}}}}}}\n---\n\
         apiVersion: cimi.dev/v1alpha1\nkind: CimiVolumeImage\nmetadata: {{name: nightly, namespace: {n}, labels: {{{key}: '{value}'}}}}\n\
         spec: {{providerRef: {{name: {provider}}}, source: {{volumeRef: {{name: data}}}}}}\n---\n\
         apiVersion: cimi.dev/v1alpha1\nkind: CimiMachine\nmetadata: {{name: web-2, namespace: {n}, labels: {{{key}: '{value}'}}}}\n\
         spec: {{providerRef: {{name: {provider}}}, template: {{machineConfig: {{name: tiny}}, imageRef: {{name: golden}}}}}}\n---\n\
         apiVersion: cimi.dev/v1alpha1\nkind: CimiVolume\nmetadata: {{name: data-copy, namespace: {n}, labels: {{{key}: '{value}'}}}}\n\
         spec: {{providerRef: {{name: {provider}}}, imageRef: {{name: nightly}}}}\n"
    ));
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), n);
    let volumes: Api<cimi_operator::api::CimiVolume> = Api::namespaced(client.clone(), n);
    eventually("web-2 and data-copy Ready", T, || async {
        let m = is_ready(&machines.get("web-2").await.ok()?.status?.common.conditions);
        let v = is_ready(&volumes.get("data-copy").await.ok()?.status?.common.conditions);
        (m && v).then_some(())
    })
    .await;
    // Six objects counted, the two images among them, all Ready.
    let status = cimi_ok(&["status", "-n", n]).await;
    assert!(status.contains(&format!("6 objects in namespace {n}: 6 Ready")), "{status}");
    let tree = cimi_ok(&["tree", "machineimage/golden", "-n", n]).await;
    let child = |tree: &str, object: &str| tree.lines().find(|l| l.contains(object)).unwrap_or_default().to_string();
    assert!(child(&tree, "CimiMachine/web-2").contains("boots from it"), "{tree}");
    let tree = cimi_ok(&["tree", "cimivi/nightly", "-n", n]).await;
    assert!(child(&tree, "CimiVolume/data-copy").contains("restored from it"), "{tree}");
}
