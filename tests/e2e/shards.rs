//! Two shards over one namespace, as two `cimi-operator run` processes on a control plane of their own with an
//! audit log: every object is written by exactly the shard that owns it (the audit log by user agent, the Events
//! by reporting instance), a machine attaches a volume of the other shard, a shard killed with SIGKILL leaves the
//! other's objects working and its own waiting until it returns, and nothing is created twice on the provider.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cimi_operator::api::common::LocalObjectRef;
use cimi_operator::api::machine::MachineVolume;
use cimi_operator::api::{CimiMachine, CimiProvider, CimiVolume};
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use cimi_operator::runtime::Shard;
use cimi_operator::runtime::shard::LABEL_SHARD;
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use serde_json::Value;

use crate::harness::objects::{machine, volume};
use crate::harness::operator::{OperatorProcess, TestOperator, http_get};
use crate::harness::sim::{credentials_secret, provider_for, provider_list, sim_client};
use crate::harness::wait::{eventually, machine_ready, wait_machine, wait_ready};

/// An audit policy that logs every request's metadata (with its user agent).
const AUDIT_POLICY: &str =
    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n";

const NS: &str = "team";
const LEASE: &str = "e2e-shards";
const T: Duration = Duration::from_secs(60);

/// One shard as a `cimi-operator run` process (SIGKILLed when dropped; its log kept if the test fails).
struct ShardProcess {
    process: OperatorProcess,
    admin: std::net::SocketAddr,
}

impl ShardProcess {
    fn start(kubeconfig: &Path, index: u32, run: &str) -> Self {
        // A free port for its admin server (bound and released: nothing else on loopback takes it meanwhile).
        let admin = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
        let (identity, index_arg, admin_arg) =
            (format!("shard-{index}-{run}"), index.to_string(), format!("--admin-addr={admin}"));
        let args = [
            ["--namespace", NS, "--operator-namespace", NS, "--cluster-name", "e2e", "--log-level", "warn"].as_slice(),
            &["--leader-elect", "--lease-name", LEASE, "--lease-duration", "4s", "--lease-retry-period", "1s"],
            &["--lease-identity", &identity, "--shard-count", "2", "--shard-index", &index_arg, &admin_arg],
        ]
        .concat();
        let log_name = format!("shard-{index}-{run}-{}", std::process::id());
        ShardProcess { process: OperatorProcess::start_on(kubeconfig, &log_name, &args, &[]), admin }
    }

    fn kill(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

/// The writes (create, update, patch, delete) each shard made, from the audit log: by shard index, the set of
/// (resource with subresource, name) it wrote in group `group`.
fn writes_by_shard(log: &Path, group: &str) -> BTreeMap<u32, BTreeSet<(String, String)>> {
    let text = std::fs::read_to_string(log).expect("audit log");
    let mut out: BTreeMap<u32, BTreeSet<(String, String)>> = BTreeMap::new();
    for event in text.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()) {
        let Some(shard) = event["userAgent"].as_str().and_then(|a| a.strip_prefix("cimi-operator/shard-")) else {
            continue;
        };
        let verb = event["verb"].as_str().unwrap_or_default();
        let object = &event["objectRef"];
        if !["create", "update", "patch", "delete"].contains(&verb) || object["apiGroup"].as_str() != Some(group) {
            continue;
        }
        let resource = match object["subresource"].as_str() {
            Some(sub) => format!("{}/{sub}", object["resource"].as_str().unwrap_or_default()),
            None => object["resource"].as_str().unwrap_or_default().to_string(),
        };
        let name = object["name"].as_str().unwrap_or_default().to_string();
        out.entry(shard.parse().expect("a shard index")).or_default().insert((resource, name));
    }
    out
}

fn pinned<K: kube::Resource>(mut object: K, shard: u32) -> K {
    object.meta_mut().labels.get_or_insert_with(BTreeMap::new).insert(LABEL_SHARD.into(), shard.to_string());
    object
}

/// The shard that owns `name` in the test's namespace (with its pin, if any).
fn owner(name: &str, pins: &BTreeMap<String, u32>) -> u32 {
    pins.get(name).copied().unwrap_or_else(|| Shard::owner_of(2, NS, name, None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_the_objects_and_a_killed_shard_waits_for_its_return() {
    let policy_dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_dir.path().join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY).expect("policy");
    let cp = ControlPlane::start(ControlPlaneConfig {
        audit_policy: Some(policy),
        controller_manager: false,
        ..ControlPlaneConfig::default()
    })
    .await
    .expect("a control plane with an audit log");
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let client = cp.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace { metadata: ObjectMeta { name: Some(NS.into()), ..Default::default() }, ..Default::default() };
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace");
    let sim = Sim::start(SimConfig::default()).await.expect("sim");

    let mut shard0 = ShardProcess::start(&kubeconfig, 0, "a");
    let mut shard1 = ShardProcess::start(&kubeconfig, 1, "a");

    // Objects carry the scope label of no in-process operator: the two processes watch the whole namespace.
    let scope = TestOperator::scope_only("shards");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    secrets.create(&PostParams::default(), &credentials_secret(&scope, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    providers
        .create(&PostParams::default(), &provider_for(&scope, "lab", &sim.url(), "creds"))
        .await
        .expect("provider");
    wait_ready(&providers, "lab", "True", "Reachable").await;

    // Six machines split by the hash, and a machine of shard 0 whose volume is pinned to shard 1.
    let mut pins = BTreeMap::new();
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), NS);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), NS);
    let hashed: Vec<String> = (0..6).map(|n| format!("vm-{n}")).collect();
    let split: BTreeSet<u32> = hashed.iter().map(|n| owner(n, &pins)).collect();
    assert_eq!(split, BTreeSet::from([0, 1]), "the six names fall in both shards");
    volumes.create(&PostParams::default(), &pinned(volume(&scope, "data", "lab"), 1)).await.expect("volume");
    pins.insert("data".to_string(), 1);
    let mut web = pinned(machine(&scope, "web", "lab"), 0);
    web.spec.volumes =
        vec![MachineVolume { volume_ref: LocalObjectRef { name: "data".into() }, initial_location: None }];
    machines.create(&PostParams::default(), &web).await.expect("machine web");
    pins.insert("web".to_string(), 0);
    for name in &hashed {
        machines.create(&PostParams::default(), &machine(&scope, name, "lab")).await.expect("machine");
    }
    for name in hashed.iter().chain(std::iter::once(&"web".to_string())) {
        wait_machine(&machines, name, "Ready", machine_ready).await;
    }

    // The cross-shard volume is attached: the machine (shard 0) lists it, the volume (shard 1) names the machine.
    let data_href =
        eventually("the volume's href", T, || async { volumes.get("data").await.ok()?.status?.common.id }).await;
    wait_machine(&machines, "web", "its volume attached", |m| {
        m.status.as_ref().is_some_and(|s| s.volumes.iter().any(|v| v.href.as_deref() == Some(data_href.as_str())))
    })
    .await;
    eventually("data attached to web in its status", T, || async {
        (volumes.get("data").await.ok()?.status?.attached_to == vec!["web".to_string()]).then_some(())
    })
    .await;

    // In-use counts read every shard's objects: the provider (written by shard 0) counts all of them, and the
    // volume (shard 1) is held by the machine of shard 0.
    let total = i32::try_from(hashed.len() + 2).expect("a few objects");
    eventually("the provider to count the objects of both shards", T, || async {
        (providers.get("lab").await.ok()?.status?.in_use_by == Some(total)).then_some(())
    })
    .await;
    let held = volumes.get("data").await.expect("data").metadata.finalizers.unwrap_or_default();
    assert!(held.iter().any(|f| f == "cimi.dev/in-use"), "data is held by web: {held:?}");

    // Each shard says who it is: its metrics carry its index.
    let (code, metrics) = http_get(shard1.admin, "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("cimi_leader{cimi_shard=\"1\"} 1"), "shard 1 leads its own Lease: {metrics}");

    // Killed: shard 0's objects go on, shard 1's wait.
    shard1.kill();
    machines.create(&PostParams::default(), &pinned(machine(&scope, "late-0", "lab"), 0)).await.expect("late-0");
    machines.create(&PostParams::default(), &pinned(machine(&scope, "late-1", "lab"), 1)).await.expect("late-1");
    pins.insert("late-0".to_string(), 0);
    pins.insert("late-1".to_string(), 1);
    wait_machine(&machines, "late-0", "Ready on shard 0 alone", machine_ready).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = machines.get("late-1").await.expect("late-1");
    assert!(
        waiting.status.is_none() && waiting.metadata.finalizers.is_none(),
        "no shard but the stopped one touches late-1: {:?}",
        waiting.status
    );

    // Back (a new process; the dead one's Lease expires): its objects are picked up.
    let shard1_again = ShardProcess::start(&kubeconfig, 1, "b");
    wait_machine(&machines, "late-1", "Ready once shard 1 is back", machine_ready).await;

    // Every object was written by the shard that owns it, and by no other (status, finalizers, Events).
    let log = cp.audit_log_path().expect("audit log").to_path_buf();
    let writes = writes_by_shard(&log, "cimi.dev");
    let mut names: BTreeSet<String> = hashed.iter().cloned().collect();
    names.extend(["web", "data", "late-0", "late-1"].map(String::from));
    for name in &names {
        let writers: BTreeSet<u32> = writes
            .iter()
            .filter(|(_, objects)| objects.iter().any(|(resource, n)| n == name && resource != "cimiproviders"))
            .map(|(shard, _)| *shard)
            .collect();
        assert_eq!(writers, BTreeSet::from([owner(name, &pins)]), "{name} written by {writers:?}: {writes:?}");
    }
    let provider_writers: Vec<u32> = writes
        .iter()
        .filter(|(_, objects)| objects.iter().any(|(resource, _)| resource.starts_with("cimiproviders")))
        .map(|(shard, _)| *shard)
        .collect();
    assert_eq!(provider_writers, [0], "only shard 0 probes and writes the provider");
    let leases = writes_by_shard(&log, "coordination.k8s.io");
    for (shard, objects) in &leases {
        let names: BTreeSet<&str> = objects.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, BTreeSet::from([format!("{LEASE}-shard-{shard}").as_str()]), "each shard its own Lease");
    }
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let events = events.list(&ListParams::default()).await.expect("events").items;
    let ours: Vec<&Event> =
        events.iter().filter(|e| e.reporting_controller.as_deref() == Some("cimi-operator")).collect();
    assert!(ours.len() >= names.len(), "every object has its Events: {}", ours.len());
    for event in ours {
        let name = event.regarding.as_ref().and_then(|r| r.name.clone()).unwrap_or_default();
        if names.contains(&name) {
            let expected = format!("cimi-operator-shard-{}", owner(&name, &pins));
            assert_eq!(event.reporting_instance.as_deref(), Some(expected.as_str()), "{name}: {:?}", event.note);
        }
    }

    // Nothing was created twice on the provider: one machine per object, one volume.
    let cimi = sim_client(&sim).await;
    let created: Vec<String> = provider_list(&cimi, "machines")
        .await
        .iter()
        .filter_map(|m| m["properties"]["cimi.dev/name"].as_str().map(str::to_string))
        .collect();
    let unique: BTreeSet<&String> = created.iter().collect();
    assert_eq!(created.len(), names.len() - 1, "one provider machine per CimiMachine: {created:?}");
    assert_eq!(unique.len(), created.len(), "no machine twice: {created:?}");
    assert_eq!(provider_list(&cimi, "volumes").await.len(), 1, "one volume");
    let stats = sim.stats();
    let adds = |op: &str| -> u64 {
        stats
            .requests
            .get(op)
            .map_or(0, |by| by.iter().filter(|(code, _)| (200..300).contains(*code)).map(|(_, n)| n).sum())
    };
    assert_eq!(
        (adds("MachineCollection.add"), adds("VolumeCollection.add")),
        (names.len() as u64 - 1, 1),
        "every create the provider answered: {:?}",
        stats.requests
    );

    drop(shard1_again);
    shard0.kill();
    cp.stop();
}
