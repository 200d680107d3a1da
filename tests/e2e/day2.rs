//! Day 2 under GitOps: a cluster rebuilt from Git re-adopts its provider resources by identity (no duplicate
//! VMs), a paused object's deletion waits without any provider call, and a resource lost on the provider is
//! reported or recreated as the object asks.

use std::time::Duration;

use cimi_operator::api::common::ResourceGonePolicy;
use cimi_operator::api::{CimiMachine, CimiMachineImage, CimiNetwork, CimiSystem, CimiVolume, CimiVolumeImage};
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use cimi_operator::sim::{Sim, SimConfig, Timing};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::events::events_about;
use crate::harness::examples::apply_quickstart;
use crate::harness::objects::{machine, volume};
use crate::harness::operator::TestOperator;
use crate::harness::sim::{creates, provider_list, ready_provider, sim_client};
use crate::harness::wait::{condition, eventually, is_ready, machine_ready, wait_machine};

const T: Duration = Duration::from_secs(90);

/// The quickstart's managed objects (kind, name).
const OBJECTS: &[(&str, &str)] = &[
    ("CimiNetwork", "demo-net"),
    ("CimiVolume", "demo-data"),
    ("CimiMachine", "web-1"),
    ("CimiSystem", "shop"),
    ("CimiVolumeImage", "demo-data-nightly"),
    ("CimiMachineImage", "web-1-golden"),
];

/// One cluster of the rebuild test: its own control plane and an operator with the given cluster name.
struct Cluster {
    cp: ControlPlane,
    client: kube::Client,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Cluster {
    async fn start(namespace: &str, cluster_name: &str) -> Cluster {
        let cp = ControlPlane::start(ControlPlaneConfig::default()).await.expect("a control plane");
        let client = cp.client().await.expect("client");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(namespace.into()), ..Default::default() },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await.expect("namespace");
        let config = cimi_operator::Config {
            namespaces: vec![namespace.to_string()],
            operator_namespace: namespace.to_string(),
            cluster_name: cluster_name.to_string(),
            ..Default::default()
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        cimi_operator::operator::start(config, client.clone(), shutdown.clone()).await.expect("operator starts");
        Cluster { cp, client, shutdown }
    }

    /// The quickstart applied and every object Ready.
    async fn apply_and_wait(&self, namespace: &str, endpoint: &str) {
        let label = ("e2e.cimi.dev/rebuild".to_string(), "yes".to_string());
        apply_quickstart(&self.client, namespace, &label, "demo", endpoint).await;
        let machines: Api<CimiMachine> = Api::namespaced(self.client.clone(), namespace);
        let volumes: Api<CimiVolume> = Api::namespaced(self.client.clone(), namespace);
        let networks: Api<CimiNetwork> = Api::namespaced(self.client.clone(), namespace);
        let systems: Api<CimiSystem> = Api::namespaced(self.client.clone(), namespace);
        let volume_images: Api<CimiVolumeImage> = Api::namespaced(self.client.clone(), namespace);
        let machine_images: Api<CimiMachineImage> = Api::namespaced(self.client.clone(), namespace);
        eventually("every quickstart object Ready", T, || async {
            let m = machines.get("web-1").await.ok()?.status?;
            let v = volumes.get("demo-data").await.ok()?.status?;
            let n = networks.get("demo-net").await.ok()?.status?;
            let s = systems.get("shop").await.ok()?.status?;
            let vi = volume_images.get("demo-data-nightly").await.ok()?.status?;
            let mi = machine_images.get("web-1-golden").await.ok()?.status?;
            let all = is_ready(&vi.common.conditions)
                && is_ready(&mi.common.conditions)
                && is_ready(&m.common.conditions)
                && m.ip.is_some()
                && m.volumes.len() == 1
                && is_ready(&v.common.conditions)
                && is_ready(&n.common.conditions)
                && is_ready(&s.common.conditions)
                && s.members.as_ref().map(|m| m.summary.as_str()) == Some("4/4");
            all.then_some(())
        })
        .await;
    }

    /// The reasons of the Events on the object `name`.
    async fn event_reasons(&self, namespace: &str, name: &str) -> Vec<String> {
        events_about(&self.client, namespace, name).await.into_iter().map(|(reason, _)| reason).collect()
    }

    /// The operator and the control plane go, nothing deleted: the cluster is lost.
    fn lose(self) {
        self.shutdown.cancel();
        self.cp.stop();
    }
}

#[tokio::test]
async fn a_cluster_rebuilt_from_git_readopts_everything_without_a_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(SimConfig {
        state_file: Some(dir.path().join("sim.json")),
        timing: Timing::Instant,
        ..SimConfig::default()
    })
    .await
    .expect("sim with a state file");
    let namespace = format!("rebuild-{}", random_suffix());

    // Cluster A ("prod") makes everything, then is lost without deleting anything.
    let a = Cluster::start(&namespace, "prod").await;
    a.apply_and_wait(&namespace, &sim.url()).await;
    let counts = provider_counts(&sim).await;
    a.lose();
    // What A still had in flight when it was lost has reached the provider by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = sim.stats();

    // Cluster B, from the same Git with the same cluster name: every object on its old resource, no create.
    let started_b = chrono::Utc::now();
    let b = Cluster::start(&namespace, "prod").await;
    b.apply_and_wait(&namespace, &sim.url()).await;
    let after = sim.stats();
    let made_by_b: Vec<(String, u64)> = after
        .requests
        .iter()
        .filter(|(op, _)| creates_or_deletes(op))
        .map(|(op, by)| {
            (op.clone(), by.values().sum::<u64>() - before.requests.get(op).map_or(0, |b| b.values().sum()))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let adds: Vec<String> = after
        .log
        .iter()
        .filter(|r| creates_or_deletes(&r.op) && r.at > started_b)
        .map(|r| format!("{} {} {} {}", r.at, r.method, r.path, r.status))
        .collect();
    assert!(
        made_by_b.is_empty(),
        "B created, attached, deleted or detached nothing on the provider: {made_by_b:?} {adds:?} (B started {started_b})"
    );
    let again = provider_counts(&sim).await;
    assert_eq!(again, counts, "no duplicate on the provider");
    for (kind, name) in OBJECTS {
        let reasons = b.event_reasons(&namespace, name).await;
        assert!(reasons.iter().any(|r| r == "Readopted"), "{kind} {name} has a Readopted Event: {reasons:?}");
    }
    let machines: Api<CimiMachine> = Api::namespaced(b.client.clone(), &namespace);
    let web = machines.get("web-1").await.expect("web-1");
    let id = web.status.as_ref().and_then(|s| s.common.id.clone()).expect("web-1 id");
    let cimi = sim_client(&sim).await;
    let resource = cimi.get_value(&url::Url::parse(&id).expect("href")).await.expect("the provider machine");
    assert_eq!(
        resource["properties"]["cimi.dev/uid"].as_str(),
        web.metadata.uid.as_deref(),
        "the provider machine now carries B's UID"
    );
    b.lose();

    // Cluster C with another cluster name: new resources, nothing adopted.
    let c = Cluster::start(&namespace, "staging").await;
    c.apply_and_wait(&namespace, &sim.url()).await;
    assert!(creates(&sim.stats()) > creates(&after), "C created its own resources");
    let grown = provider_counts(&sim).await;
    assert!(grown.iter().zip(&counts).all(|(g, c)| g > c), "C's resources are new: {grown:?} vs {counts:?}");
    for (_, name) in OBJECTS {
        let reasons = c.event_reasons(&namespace, name).await;
        assert!(!reasons.iter().any(|r| r == "Readopted"), "{name} adopted nothing: {reasons:?}");
    }
    c.lose();
    sim.stop().await;
}

/// Whether a sim operation label makes or removes something (a resource, an attachment, an interface).
fn creates_or_deletes(op: &str) -> bool {
    op.ends_with(".add") || op.ends_with(".delete")
}

/// How many machines, volumes, networks, systems and images the provider holds.
async fn provider_counts(sim: &cimi_operator::sim::SimHandle) -> Vec<usize> {
    let cimi = sim_client(sim).await;
    let mut out = Vec::new();
    for collection in ["machines", "volumes", "networks", "systems", "machineImages", "volumeImages"] {
        out.push(provider_list(&cimi, collection).await.len());
    }
    out
}

#[tokio::test]
async fn a_paused_object_deleted_makes_no_provider_call_until_unpaused() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "pausedel").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    volumes.create(&PostParams::default(), &volume(&op, "keep", &provider)).await.expect("create");
    eventually("the volume Ready", T, || async {
        let st = volumes.get("keep").await.ok()?.status?;
        is_ready(&st.common.conditions).then_some(())
    })
    .await;

    // Paused, then deleted (as Argo CD prunes): the finalizer stays and the provider hears nothing.
    let merge = |v: serde_json::Value| Patch::Merge(v);
    volumes
        .patch(
            "keep",
            &PatchParams::default(),
            &merge(json!({"metadata": {"annotations": {"cimi.dev/paused": "true"}}})),
        )
        .await
        .expect("pause");
    eventually("Synced=False Paused", T, || async {
        let st = volumes.get("keep").await.ok()?.status?;
        (condition(&st.common.conditions, "Synced")? == ("False".into(), "Paused".into())).then_some(())
    })
    .await;
    let from = sim.stats().log.len();
    volumes.delete("keep", &DeleteParams::default()).await.expect("delete");
    let message = eventually("the deletion to wait for the pause", T, || async {
        let v = volumes.get("keep").await.ok()?;
        v.metadata.deletion_timestamp.as_ref()?;
        let c = v.status?.common.conditions.into_iter().find(|c| c.type_ == "Synced")?;
        (c.reason == "Paused" && c.message.contains("deletion waits")).then_some(c.message)
    })
    .await;
    assert!(message.contains("cimi.dev/paused"), "{message}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = volumes.get("keep").await.expect("still there");
    assert!(v.metadata.finalizers.unwrap_or_default().iter().any(|f| f == "cimi.dev/cleanup"), "the finalizer stays");
    // (The observer's listings of the whole collection go on; no call is about this volume.)
    let calls: Vec<String> =
        sim.stats().log.iter().skip(from).map(|r| r.op.clone()).filter(|op| op.starts_with("Volume.")).collect();
    assert!(calls.is_empty(), "no provider call for the paused volume: {calls:?}");
    assert_eq!(provider_list(&cimi, "volumes").await.len(), 1, "the provider volume is still there");

    // Unpaused: deleted as usual.
    volumes
        .patch("keep", &PatchParams::default(), &merge(json!({"metadata": {"annotations": {"cimi.dev/paused": null}}})))
        .await
        .expect("unpause");
    eventually("the volume gone", T, || async { volumes.get_opt("keep").await.ok()?.is_none().then_some(()) }).await;
    assert!(provider_list(&cimi, "volumes").await.is_empty(), "deleted on the provider");
}

#[tokio::test]
async fn a_resource_lost_on_the_provider_is_reported_or_recreated_as_asked() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "gone").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    for (name, policy) in [("pet", ResourceGonePolicy::Report), ("cattle", ResourceGonePolicy::Recreate)] {
        let mut m = machine(&op, name, &provider);
        m.spec.resource_gone_policy = policy;
        machines.create(&PostParams::default(), &m).await.expect("create");
    }
    let mut first_ids = Vec::new();
    for name in ["pet", "cattle"] {
        let m = wait_machine(&machines, name, "Ready", machine_ready).await;
        let id = m.status.and_then(|s| s.common.id).expect("id");
        // Deleted on the provider behind the operator's back.
        let url = url::Url::parse(&id).expect("href");
        cimi.delete_href(&url).await.expect("delete on the provider");
        first_ids.push(id);
    }

    // Report (the default): ResourceGone, for good.
    let pet = wait_machine(&machines, "pet", "ResourceGone", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| condition(&s.common.conditions, "Ready") == Some(("False".into(), "ResourceGone".into())))
    })
    .await;
    let message =
        pet.status.expect("status").common.conditions.into_iter().find(|c| c.type_ == "Ready").expect("Ready").message;
    assert!(message.contains("resourceGonePolicy: Recreate"), "the message names the choice: {message}");

    // Recreate: a new provider machine, Ready again, with a Warning Event saying what was lost.
    let cattle = wait_machine(&machines, "cattle", "Ready on a new provider machine", |m| {
        m.status.as_ref().is_some_and(|s| {
            is_ready(&s.common.conditions)
                && s.common.id.as_deref() != Some(first_ids[1].as_str())
                && s.common.id.is_some()
        })
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    let recreating = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .find(|e| {
            e.reason.as_deref() == Some("Recreating")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("cattle")
        })
        .expect("a Recreating Event on cattle");
    assert_eq!(recreating.type_.as_deref(), Some("Warning"));
    assert!(recreating.note.unwrap_or_default().contains("lost"));
    let uid = cattle.metadata.uid.clone().expect("uid");
    let live: Vec<_> =
        provider_list(&cimi, "machines").await.into_iter().filter(|m| m["properties"]["cimi.dev/uid"] == uid).collect();
    assert_eq!(live.len(), 1, "exactly one provider machine for cattle");
    let pet = machines.get("pet").await.expect("pet");
    assert_eq!(
        condition(&pet.status.expect("status").common.conditions, "Ready"),
        Some(("False".into(), "ResourceGone".into())),
        "Report stays"
    );
}

#[tokio::test]
async fn a_status_restored_from_a_backup_readopts_its_resource() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "restore").await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);

    // The volume as it was backed up: Ready, with its status.
    let op = TestOperator::start_with_label(&ns.name, "restore").await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    volumes.create(&PostParams::default(), &volume(&op, "data", &provider)).await.expect("create");
    let backed_up = eventually("the volume Ready", T, || async {
        let v = volumes.get("data").await.ok()?;
        v.status.as_ref().is_some_and(|s| is_ready(&s.common.conditions)).then_some(v)
    })
    .await;
    let status = backed_up.status.clone().expect("status");
    let href = status.common.id.clone().expect("id");

    // The cluster is lost (the operator goes; the object goes without a provider call), then restored with
    // its status: a new UID, the old status.id.
    let object = volume(&op, "data", &provider);
    drop(op);
    volumes
        .patch("data", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .expect("release");
    volumes.delete("data", &DeleteParams::default()).await.expect("delete");
    eventually("the object gone", T, || async { volumes.get_opt("data").await.ok()?.is_none().then_some(()) }).await;
    let restored = volumes.create(&PostParams::default(), &object).await.expect("restore");
    volumes
        .patch_status(
            "data",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": serde_json::to_value(&status).expect("status")})),
        )
        .await
        .expect("restore the status");
    // The operator comes back after the restore, and finds status.id set.
    let _op = TestOperator::start_with_label(&ns.name, "restore").await;

    // Re-adopted: Ready on the same provider volume, now tagged with the new UID; nothing created.
    let readopted = eventually("the restored volume Ready on its old resource", T, || async {
        let v = volumes.get("data").await.ok()?;
        let s = v.status.as_ref()?;
        (is_ready(&s.common.conditions) && s.common.id.as_deref() == Some(href.as_str())).then_some(v)
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    let readopt = eventually("a Readopted Event on the restored object", T, || async {
        events.list(&Default::default()).await.ok()?.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("Readopted")
                && e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == readopted.metadata.uid.as_deref()
        })
    })
    .await;
    assert!(readopt.note.unwrap_or_default().contains(backed_up.metadata.uid.as_deref().expect("old uid")));
    let on_provider = provider_list(&cimi, "volumes").await;
    assert_eq!(on_provider.len(), 1, "nothing created");
    assert_eq!(on_provider[0]["properties"]["cimi.dev/uid"].as_str(), restored.metadata.uid.as_deref());
}
