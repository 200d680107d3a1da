//! Import: existing provider resources adopted by href or by a filter that must match exactly one;
//! ObserveOnly mirrors and reports drift with zero provider writes; Managed imports are tagged and
//! managed (a machine by filter, started and described as its spec says); Orphan leaves the
//! resource untagged; force-orphan works with the provider stopped.

use std::time::Duration;

use cimi_operator::api::common::{DeletionPolicy, ImportSpec, ManagementPolicy, ProviderRef};
use cimi_operator::api::{CimiMachine, CimiMachineSpec, CimiNetwork, CimiNetworkSpec, CimiVolume, CimiVolumeSpec};
use cimi_operator::sim::{Sim, SimConfig, SimHandle, Timing};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Map, json};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::operator::TestOperator;
use crate::harness::sim::{
    legacy_machine, legacy_network, legacy_volume, provider_list, provider_resource, ready_provider, sim_client,
};
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(60);

fn writes(sim: &SimHandle) -> u64 {
    sim.stats().writes
}

fn cond(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition], t: &str) -> (String, String, String) {
    conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn observe_only_machine_mirrors_reports_drift_and_never_writes() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "imp1").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let href = legacy_machine(&cimi, "legacy-vm").await;
    let before = provider_resource(&cimi, &href).await;
    let base_writes = writes(&sim);

    let mut m = CimiMachine::new(
        "observer",
        CimiMachineSpec {
            provider_ref: ProviderRef::cluster(provider.clone()),
            description: Some("made by hand".into()),
            import: Some(ImportSpec { href: Some(href.clone()), filter: None }),
            management_policy: ManagementPolicy::ObserveOnly,
            deletion_policy: DeletionPolicy::Orphan,
            ..Default::default()
        },
    );
    m.metadata.labels = Some(op.labels());
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    machines.create(&PostParams::default(), &m).await.expect("create");

    // Mirrored: Ready=True Observed, state and size in status, Synced=True (nothing differs).
    let m = eventually("observer Ready (Observed) and Synced", T, || async {
        let m = machines.get("observer").await.ok()?;
        let st = m.status.as_ref()?;
        (cond(&st.common.conditions, "Ready").1 == "Observed"
            && cond(&st.common.conditions, "Synced").0 == "True"
            && st.common.state.as_deref() == Some("STARTED"))
        .then_some(m)
    })
    .await;
    let st = m.status.expect("status");
    assert_eq!(st.common.id.as_deref(), Some(href.as_str()));
    assert!(st.cpu.is_some());
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    eventually("an Imported Event naming the machine", T, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Imported") && e.note.as_deref().is_some_and(|n| n.contains(&href)))
            .map(|_| ())
    })
    .await;

    // Drift made on the provider is reported, not corrected.
    cimi.action(&provider_resource(&cimi, &href).await, "stop", Map::new()).await.expect("stop by hand");
    let mut changes = Map::new();
    changes.insert("description".into(), json!("changed by hand"));
    cimi.update(&provider_resource(&cimi, &href).await, &changes, &[]).await.expect("edit by hand");
    let after_manual = writes(&sim);
    // Both changes are reported once an observation made after the edit is in (one made between the stop and
    // the edit reports the state alone).
    eventually("Synced=False Drifted, naming the state and the description", T, || async {
        let m = machines.get("observer").await.ok()?;
        let st = m.status.as_ref()?;
        let (_, reason, message) = cond(&st.common.conditions, "Synced");
        (reason == "Drifted"
            && st.common.state.as_deref() == Some("STOPPED")
            && message.contains("description")
            && message.contains("STOPPED"))
        .then_some(())
    })
    .await;
    // The same, field by field, in status.drift: what the spec asks, what the provider shows, since when.
    let drifted = machines.get("observer").await.expect("observer").status.expect("status").common.drift;
    let by_field: Vec<(&str, &str, &str)> =
        drifted.iter().map(|d| (d.field.as_str(), d.desired.as_str(), d.observed.as_str())).collect();
    assert!(by_field.contains(&("spec.powerState", "Started", "STOPPED")), "{drifted:?}");
    let description = drifted.iter().find(|d| d.field == "spec.description").expect("description drift");
    assert_eq!(description.observed, "changed by hand", "{drifted:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = provider_resource(&cimi, &href).await;
    assert_eq!(now["state"], json!("STOPPED"), "ObserveOnly must not start the machine");
    assert_eq!(now["description"], json!("changed by hand"));
    assert!(now["properties"].get("cimi.dev/uid").is_none(), "ObserveOnly must not tag");

    // Deleting the object leaves the machine as it is.
    machines.delete("observer", &DeleteParams::default()).await.expect("delete");
    eventually("observer gone", T, || async { machines.get_opt("observer").await.ok()?.is_none().then_some(()) }).await;
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1);
    assert_eq!(provider_resource(&cimi, &href).await["properties"], before["properties"]);
    // The only writes the provider saw since the import are the test's own two (stop, edit).
    assert_eq!(after_manual, base_writes + 2);
    assert_eq!(writes(&sim), after_manual, "ObserveOnly made provider writes");

    // The same machine imported by filter under Managed: tagged, started, its description set,
    // its own name and properties kept; deleted with Orphan, it stays, untagged.
    let mut m = CimiMachine::new(
        "manager",
        CimiMachineSpec {
            provider_ref: ProviderRef::cluster(provider.clone()),
            description: Some("managed now".into()),
            import: Some(ImportSpec { href: None, filter: Some("name='legacy-vm'".into()) }),
            deletion_policy: DeletionPolicy::Orphan,
            ..Default::default()
        },
    );
    m.metadata.labels = Some(op.labels());
    let m = machines.create(&PostParams::default(), &m).await.expect("create");
    let uid = m.metadata.uid.clone().expect("uid");
    eventually("manager Ready, the provider machine started, tagged and described", T, || async {
        let m = machines.get("manager").await.ok()?;
        let ready = cond(&m.status?.common.conditions, "Ready").1 == "Available";
        let now = provider_resource(&cimi, &href).await;
        (ready
            && now["state"] == json!("STARTED")
            && now["description"] == json!("managed now")
            && now["name"] == json!("legacy-vm")
            && now["properties"]["owner"] == json!("legacy")
            && now["properties"]["cimi.dev/uid"] == json!(uid))
        .then_some(())
    })
    .await;
    machines.delete("manager", &DeleteParams::default()).await.expect("delete");
    eventually("manager gone", T, || async { machines.get_opt("manager").await.ok()?.is_none().then_some(()) }).await;
    let left = provider_resource(&cimi, &href).await;
    assert_eq!(left["properties"], json!({"owner": "legacy"}), "Orphan removes the tags only");
    assert_eq!(left["state"], json!("STARTED"));
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1, "nothing created");
}

fn volume(op: &TestOperator, name: &str, provider: &str, import: ImportSpec, policy: DeletionPolicy) -> CimiVolume {
    let mut v = CimiVolume::new(
        name,
        CimiVolumeSpec {
            provider_ref: ProviderRef::cluster(provider),
            import: Some(import),
            deletion_policy: policy,
            ..Default::default()
        },
    );
    v.metadata.labels = Some(op.labels());
    v
}

#[tokio::test]
async fn import_by_filter_must_match_exactly_one_then_orphan_and_force_orphan() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "imp2").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    legacy_volume(&cimi, "dup").await;
    legacy_volume(&cimi, "dup").await;
    let solo = legacy_volume(&cimi, "solo").await;
    let net = legacy_network(&cimi, "legacy-net").await;
    let base_writes = writes(&sim);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let filter = |f: &str| ImportSpec { href: None, filter: Some(f.into()) };

    // Several matches and no match: a condition that says what to fix; nothing adopted.
    for (name, f, reason) in
        [("two", "name='dup'", "ImportAmbiguous"), ("none", "name='no-such-volume'", "ImportNotFound")]
    {
        volumes
            .create(&PostParams::default(), &volume(&op, name, &provider, filter(f), DeletionPolicy::Orphan))
            .await
            .expect("create");
        let v = eventually(&format!("{name}: Stalled {reason}"), T, || async {
            let v = volumes.get(name).await.ok()?;
            let st = v.status.as_ref()?;
            (condition(&st.common.conditions, "Stalled") == Some(("True".into(), reason.into()))).then_some(v)
        })
        .await;
        let st = v.status.expect("status");
        let (ready, _, message) = cond(&st.common.conditions, "Ready");
        assert_eq!(ready, "False");
        assert!(message.contains("spec.import.filter") && message.contains(f), "{message}");
        assert!(st.common.id.is_none(), "nothing adopted");
    }
    assert_eq!(writes(&sim), base_writes, "nothing was written to the provider");
    for name in ["two", "none"] {
        volumes.delete(name, &DeleteParams::default()).await.expect("delete");
    }

    // Exactly one: adopted, tagged, its own name and properties kept; Orphan then removes the tags.
    volumes
        .create(&PostParams::default(), &volume(&op, "solo", &provider, filter("name='solo'"), DeletionPolicy::Orphan))
        .await
        .expect("create solo");
    let v = eventually("solo Ready", T, || async {
        let v = volumes.get("solo").await.ok()?;
        let st = v.status.as_ref()?;
        (condition(&st.common.conditions, "Ready") == Some(("True".into(), "Available".into()))).then_some(v)
    })
    .await;
    assert_eq!(v.status.as_ref().and_then(|s| s.common.id.as_deref()), Some(solo.as_str()));
    let adopted = provider_resource(&cimi, &solo).await;
    assert_eq!(adopted["name"], json!("solo"));
    assert_eq!(adopted["properties"]["owner"], json!("legacy"));
    assert_eq!(adopted["properties"]["cimi.dev/uid"], json!(v.metadata.uid.clone().expect("uid")));
    volumes.delete("solo", &DeleteParams::default()).await.expect("delete solo");
    eventually("the other volumes and solo gone", T, || async {
        let list = volumes.list(&Default::default()).await.ok()?;
        list.items.is_empty().then_some(())
    })
    .await;
    let left = provider_resource(&cimi, &solo).await;
    assert_eq!(left["state"], json!("AVAILABLE"), "Orphan leaves the volume");
    assert_eq!(left["properties"], json!({"owner": "legacy"}), "Orphan removes the tags only");
    assert_eq!(provider_list(&cimi, "volumes").await.len(), 3);

    // A network imported by href (Managed, Delete), then force-orphaned with the provider stopped.
    let networks: Api<CimiNetwork> = Api::namespaced(client.clone(), &ns.name);
    let mut n = CimiNetwork::new(
        "adopted-net",
        CimiNetworkSpec {
            provider_ref: ProviderRef::cluster(provider.clone()),
            description: Some("adopted".into()),
            import: Some(ImportSpec { href: Some(net.clone()), filter: None }),
            ..Default::default()
        },
    );
    n.metadata.labels = Some(op.labels());
    networks.create(&PostParams::default(), &n).await.expect("create network");
    eventually("adopted-net Ready with the spec's description on the provider", T, || async {
        let n = networks.get("adopted-net").await.ok()?;
        let st = n.status.as_ref()?;
        let ready = condition(&st.common.conditions, "Ready") == Some(("True".into(), "Available".into()));
        let on_provider = provider_resource(&cimi, &net).await;
        (ready
            && on_provider["description"] == json!("adopted")
            && on_provider["properties"]["cimi.dev/uid"].is_string())
        .then_some(())
    })
    .await;
    sim.stop().await;
    networks
        .patch(
            "adopted-net",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cimi.dev/force-orphan": "true"}}})),
        )
        .await
        .expect("annotate");
    networks.delete("adopted-net", &DeleteParams::default()).await.expect("delete network");
    eventually("adopted-net gone with the provider stopped", T, || async {
        networks.get_opt("adopted-net").await.ok()?.is_none().then_some(())
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    eventually("a ForceOrphaned Event for the network", T, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("ForceOrphaned")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("adopted-net")
            })
            .map(|_| ())
    })
    .await;
}

/// Imported resources carry no tag of ours, so the tag-filtered listing misses them: with at least as many
/// imports as pages in the collection, the observer lists the collection whole and the imported objects are
/// served from it (no GET per machine per poll), and provider-side changes still show.
#[tokio::test]
async fn many_observe_only_imports_are_observed_by_listing_not_by_a_get_each() {
    const IMPORTS: usize = 6;
    const PAGE: u64 = 2;
    let client = client().await;
    let ns = TestNamespace::new(&client, "impn").await;
    let label = random_suffix();
    let (op, _running) = TestOperator::start_configured(&ns.name, &label, |c| c.observe_page_size = PAGE).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut hrefs = Vec::new();
    for i in 0..IMPORTS {
        hrefs.push(legacy_machine(&cimi, &format!("legacy-{i}")).await);
    }
    let base_writes = writes(&sim);
    for (i, href) in hrefs.iter().enumerate() {
        let mut m = CimiMachine::new(
            &format!("imported-{i}"),
            CimiMachineSpec {
                provider_ref: ProviderRef::cluster(provider.clone()),
                import: Some(ImportSpec { href: Some(href.clone()), filter: None }),
                management_policy: ManagementPolicy::ObserveOnly,
                deletion_policy: DeletionPolicy::Orphan,
                ..Default::default()
            },
        );
        m.metadata.labels = Some(op.labels());
        machines.create(&PostParams::default(), &m).await.expect("create");
    }
    eventually("every import Ready (Observed) and STARTED", T, || async {
        let list = machines.list(&Default::default()).await.ok()?.items;
        (list.len() == IMPORTS
            && list.iter().all(|m| {
                m.status.as_ref().is_some_and(|st| {
                    cond(&st.common.conditions, "Ready").1 == "Observed"
                        && st.common.state.as_deref() == Some("STARTED")
                })
            }))
        .then_some(())
    })
    .await;

    // Steady state: the whole collection is listed each poll (1 s), and no imported machine is read by a GET.
    // It begins once the observer lists the collection whole (two listings of it, count and pages, since all
    // turned Ready): what was asked before then has been answered.
    let whole = |op: &str, path: &str| op == "MachineCollection.read" && !path.contains("cimi.dev%2Fcluster");
    let ready_at = sim.stats().log.len();
    let listing = 1 + (IMPORTS as u64).div_ceil(PAGE) as usize;
    eventually("the observer lists the collection whole", T, || async {
        let log = sim.stats().log;
        (log.iter().skip(ready_at).filter(|r| whole(&r.op, &r.path)).count() >= 2 * listing).then_some(())
    })
    .await;
    let from = sim.stats().log.len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let window: Vec<(String, String)> =
        sim.stats().log.iter().skip(from).map(|r| (r.op.clone(), r.path.clone())).collect();
    let gets: Vec<&(String, String)> = window.iter().filter(|(op, _)| op == "Machine.read").collect();
    assert!(gets.is_empty(), "no GET per imported machine in the steady state: {gets:#?}");
    let whole_pages = window.iter().filter(|(op, path)| whole(op, path)).count();
    assert!(whole_pages >= 2 * (IMPORTS as u64).div_ceil(PAGE) as usize, "the collection is listed whole: {window:#?}");
    assert_eq!(writes(&sim), base_writes, "ObserveOnly never writes");

    // A change on the provider still shows: one machine stopped there is STOPPED in status (and not started).
    let current = provider_resource(&cimi, &hrefs[0]).await;
    cimi.action(&current, "stop", Map::new()).await.expect("stop on the provider");
    eventually("imported-0 shows STOPPED", T, || async {
        let m = machines.get("imported-0").await.ok()?;
        (m.status?.common.state.as_deref() == Some("STOPPED")).then_some(())
    })
    .await;
    assert_eq!(provider_resource(&cimi, &hrefs[0]).await["state"], "STOPPED", "ObserveOnly does not correct it");
    drop(op);
}
