//! Observation on cimi-sim: state from paged collection reads (ceil(N / page) list requests per poll and
//! kind, no per-object GETs in the steady state), provider-side changes reaching status, meters in status
//! and on /metrics (bounded), and provider EventLog events mirrored as Kubernetes Events exactly once,
//! also across an operator restart.

use std::collections::BTreeMap;
use std::time::Duration;

use cimi_operator::api::{CimiMachine, CimiNetwork, CimiProvider};
use cimi_operator::sim::{Sim, SimConfig, SimHandle};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Map, json};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::events::{all_mirrored_once, mirrored};
use crate::harness::objects::machine;
use crate::harness::operator::{TestOperator, http_get};
use crate::harness::sim::{
    credentials_secret, provider_events, provider_for, provider_list, provider_resource, sim_client,
};
use crate::harness::wait::{eventually, is_ready, wait_ready};

const T: Duration = Duration::from_secs(90);
/// Machines of the test.
const N: usize = 5;
/// The observer's page size for the test.
const PAGE: u64 = 2;
/// The series the test's operator may export.
const GAUGES_MAX: usize = 8;

/// A private CimiNetwork with `labels`.
fn network(labels: &BTreeMap<String, String>, name: &str, provider: &str) -> CimiNetwork {
    serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiNetwork",
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerRef": {"name": provider}, "networkType": "Private"}
    }))
    .expect("network")
}

/// Sim request log entries from index `from` on: (op, path).
fn requests_since(sim: &SimHandle, from: usize) -> Vec<(String, String)> {
    sim.stats().log.iter().skip(from).map(|r| (r.op.clone(), r.path.clone())).collect()
}

#[tokio::test]
async fn observation_paged_reads_meters_and_events_exactly_once() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "obs").await;
    let label = random_suffix();
    let configure = |c: &mut cimi_operator::Config| {
        c.observe_page_size = PAGE;
        c.meter_gauges_max = GAUGES_MAX;
        c.admin_addr = Some("127.0.0.1:0".parse().expect("addr"));
    };
    let (op, running) = TestOperator::start_configured(&ns.name, &label, configure).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;

    // A provider polled every 2 s, meters every 2 s, events every second.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let provider = format!("prov-{}", random_suffix());
    let mut p = provider_for(&op, &provider, &sim.url(), "creds");
    p.spec.settings.poll_interval = "2s".into();
    p.spec.settings.meter_interval = "2s".into();
    p.spec.settings.event_interval = "1s".into();
    providers.create(&PostParams::default(), &p).await.expect("provider");
    wait_ready(&providers, &provider, "True", "Reachable").await;

    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let networks: Api<CimiNetwork> = Api::namespaced(client.clone(), &ns.name);
    for i in 0..N {
        machines.create(&PostParams::default(), &machine(&op, &format!("m-{i}"), &provider)).await.expect("m");
    }
    networks.create(&PostParams::default(), &network(&op.labels(), "net", &provider)).await.expect("network");
    eventually("every machine STARTED and Ready, the network Ready", T, || async {
        let ms = machines.list(&Default::default()).await.ok()?.items;
        let all = ms.len() == N
            && ms.iter().all(|m| {
                m.status
                    .as_ref()
                    .is_some_and(|s| s.common.state.as_deref() == Some("STARTED") && is_ready(&s.common.conditions))
            });
        let net = networks.get("net").await.ok()?;
        (all && net.status.as_ref().is_some_and(|s| is_ready(&s.common.conditions))).then_some(())
    })
    .await;

    // Steady state: each poll lists the machines in ceil(N / PAGE) pages, and nothing GETs a machine.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from = sim.stats().log.len();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let window = requests_since(&sim, from);
    let lists: Vec<&String> = window
        .iter()
        .filter(|(op, path)| {
            op == "MachineCollection.read" && path.contains("cimi.dev%2Fcluster") && !path.contains("$expand")
        })
        .map(|(_, path)| path)
        .collect();
    let polls: Vec<usize> = lists.iter().enumerate().filter(|(_, p)| p.contains("$first=1&")).map(|(i, _)| i).collect();
    assert!(polls.len() >= 2, "at least two polls in 9 s at a 2 s interval: {lists:#?}");
    let pages = (N as u64).div_ceil(PAGE) as usize;
    // The window may open in the middle of a poll (its first pages were sent before): at most the rest of one.
    assert!(polls[0] < pages, "before the first complete poll, at most the tail of one: {lists:#?}");
    for w in polls.windows(2) {
        assert_eq!(w[1] - w[0], pages, "each poll lists {N} machines in {pages} pages: {lists:#?}");
    }
    assert!(lists.len() - polls[polls.len() - 1] <= pages, "no extra listing: {lists:#?}");
    let gets: Vec<_> = window.iter().filter(|(op, _)| op == "Machine.read").collect();
    assert!(gets.is_empty(), "no machine is read one by one in the steady state: {gets:#?}");
    let network_lists = window.iter().filter(|(op, _)| op == "NetworkCollection.read").count();
    assert!(network_lists >= 3, "networks are listed too ({network_lists})");
    assert_eq!(window.iter().filter(|(op, _)| op == "Network.read").count(), 0, "no network GETs");

    // Meters: the latest sample per aspect in status, and as gauges bounded by GAUGES_MAX.
    let m0 = eventually("m-0 shows its meters", T, || async {
        let m = machines.get("m-0").await.ok()?;
        let meters = &m.status.as_ref()?.common.meters;
        (meters.len() == 4 && meters.iter().all(|x| x.value.is_some() && x.timestamp.is_some())).then_some(m)
    })
    .await;
    let meters = &m0.status.as_ref().expect("status").common.meters;
    let aspects: Vec<&str> = meters.iter().map(|m| m.aspect.as_str()).collect();
    assert_eq!(aspects, ["bandwidth", "cpu", "disk", "memory"]);
    assert_eq!(meters.iter().find(|m| m.aspect == "cpu").and_then(|m| m.units.as_deref()), Some("percent"));
    let admin = running.admin_addr.expect("admin server");
    let series =
        |text: &str| text.lines().filter(|l| l.starts_with("cimi_meter_value{") && l.contains(&ns.name)).count();
    let text = eventually("meter gauges on /metrics", T, || async {
        let (status, body) = http_get(admin, "/metrics").await;
        (status == 200 && series(&body) == GAUGES_MAX).then_some(body)
    })
    .await;
    assert!(text.contains("cimi_meter_value{kind=\"CimiMachine\",namespace=\""), "{text}");
    assert!(text.contains("aspect=\"cpu\",units=\"percent\"}"), "{text}");

    // A provider-side change shows in status: the network stopped on the provider.
    let net = networks.get("net").await.expect("net");
    let net_href = net.status.as_ref().and_then(|s| s.common.id.clone()).expect("network href");
    let current = provider_resource(&cimi, &net_href).await;
    cimi.action(&current, "stop", Map::new()).await.expect("stop the network on the provider");
    eventually("the network's status says STOPPED", T, || async {
        let n = networks.get("net").await.ok()?;
        (n.status.as_ref()?.common.state.as_deref() == Some("STOPPED")).then_some(())
    })
    .await;
    let current = provider_resource(&cimi, &net_href).await;
    cimi.action(&current, "start", Map::new()).await.expect("start the network on the provider");
    eventually("the network's status says STARTED and Ready", T, || async {
        let n = networks.get("net").await.ok()?;
        let s = n.status.as_ref()?;
        (s.common.state.as_deref() == Some("STARTED") && is_ready(&s.common.conditions)).then_some(())
    })
    .await;

    // Drift in power state: a machine stopped on the provider is started again.
    let m1 = machines.get("m-1").await.expect("m-1");
    let m1_href = m1.status.as_ref().and_then(|s| s.common.id.clone()).expect("m-1 href");
    let m1_uid = m1.metadata.uid.clone().expect("uid");
    let starts = sim.stats().count("Machine.start", 202) + sim.stats().count("Machine.start", 200);
    let current = provider_resource(&cimi, &m1_href).await;
    cimi.action(&current, "stop", Map::new()).await.expect("stop m-1 on the provider");
    eventually("the operator starts m-1 again", T, || async {
        let now = sim.stats().count("Machine.start", 202) + sim.stats().count("Machine.start", 200);
        let state = provider_resource(&cimi, &m1_href).await["state"].clone();
        (now > starts && state == json!("STARTED")).then_some(())
    })
    .await;

    // Provider events: every one mirrored exactly once, the cursor at the last.
    let before = all_mirrored_once(&client, &cimi, &ns.name, &m1_uid, std::slice::from_ref(&m1_href)).await;
    assert!(before >= 4, "create and state events of m-1 ({before})");
    let seen = mirrored(&client, &ns.name, &m1_uid).await;
    let notes: Vec<String> = seen.keys().cloned().collect();
    assert!(notes.iter().all(|id| id.starts_with(&sim.url())), "{notes:?}");
    eventually("m-1's eventCursor is its last provider event", T, || async {
        let last = provider_events(&cimi, &m1_href).await.last()?["id"].as_str()?.to_string();
        let m = machines.get("m-1").await.ok()?;
        (m.status?.common.event_cursor?.id == last).then_some(())
    })
    .await;

    // Restart: a new operator (new client, new caches) mirrors nothing twice, and mirrors what is new, even
    // when the cursor was lost (as when a process stops after publishing and before writing status).
    drop(op);
    running.task.await.expect("join").expect("the operator stops cleanly");
    let lost = json!({"status": {"eventCursor": null}});
    machines.patch_status("m-1", &PatchParams::default(), &Patch::Merge(&lost)).await.expect("drop the cursor");
    let m = machines.get("m-1").await.expect("m-1");
    assert!(m.status.and_then(|s| s.common.event_cursor).is_none(), "the cursor is gone before the restart");
    let current = provider_resource(&cimi, &m1_href).await;
    cimi.action(&current, "stop", Map::new()).await.expect("stop m-1 on the provider while no operator runs");
    let (op, _running) = TestOperator::start_configured(&ns.name, &label, configure).await;
    let after = all_mirrored_once(&client, &cimi, &ns.name, &m1_uid, std::slice::from_ref(&m1_href)).await;
    assert!(after > before, "the events of the stop (and the start that follows) are mirrored: {before} -> {after}");
    eventually("m-1 STARTED again after the restart", T, || async {
        let m = machines.get("m-1").await.ok()?;
        (m.status?.common.state.as_deref() == Some("STARTED")).then_some(())
    })
    .await;
    all_mirrored_once(&client, &cimi, &ns.name, &m1_uid, std::slice::from_ref(&m1_href)).await;

    // Objects that go away take their gauges with them (the new instance exports its own).
    for i in 0..N {
        machines.delete(&format!("m-{i}"), &DeleteParams::default()).await.expect("delete");
    }
    networks.delete("net", &DeleteParams::default()).await.expect("delete network");
    eventually("every object gone", T, || async {
        let left = machines.list(&Default::default()).await.ok()?.items.len()
            + networks.list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
    assert!(provider_list(&cimi, "machines").await.is_empty(), "every provider machine deleted");
    drop(op);
}

#[tokio::test]
async fn meter_gauges_are_removed_with_their_object() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "obsg").await;
    let label = random_suffix();
    let (op, running) = TestOperator::start_configured(&ns.name, &label, |c| {
        c.admin_addr = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let provider = format!("prov-{}", random_suffix());
    let mut p = provider_for(&op, &provider, &sim.url(), "creds");
    p.spec.settings.meter_interval = "1s".into();
    providers.create(&PostParams::default(), &p).await.expect("provider");
    wait_ready(&providers, &provider, "True", "Reachable").await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    machines.create(&PostParams::default(), &machine(&op, "g-0", &provider)).await.expect("machine");
    let admin = running.admin_addr.expect("admin server");
    let needle = format!("namespace=\"{}\",name=\"g-0\",aspect=\"cpu\",units=\"percent\"", ns.name);
    eventually("g-0's cpu gauge", T, || async {
        let (_, body) = http_get(admin, "/metrics").await;
        body.contains(&needle).then_some(())
    })
    .await;
    machines.delete("g-0", &DeleteParams::default()).await.expect("delete");
    eventually("g-0 gone, with its gauges", T, || async {
        let gone = machines.get_opt("g-0").await.ok()?.is_none();
        let (_, body) = http_get(admin, "/metrics").await;
        (gone && !body.contains("name=\"g-0\"")).then_some(())
    })
    .await;
}

/// Requests of operation `op` between two sim stats snapshots.
fn between(before: &cimi_operator::sim::SimStats, after: &cimi_operator::sim::SimStats, op: &str) -> u64 {
    let sum = |s: &cimi_operator::sim::SimStats| s.requests.get(op).map_or(0, |m| m.values().sum::<u64>());
    sum(after) - sum(before)
}

/// Starts a provider on `sim` (poll every 2 s, meters every 2 s, events every second) and `n` machines on it.
async fn provider_with_machines(
    client: &kube::Client,
    op: &TestOperator,
    ns: &str,
    sim: &SimHandle,
    prefix: &str,
    n: usize,
) -> String {
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let provider = format!("prov-{}", random_suffix());
    let mut p = provider_for(op, &provider, &sim.url(), "creds");
    p.spec.settings.poll_interval = "2s".into();
    p.spec.settings.meter_interval = "2s".into();
    p.spec.settings.event_interval = "1s".into();
    providers.create(&PostParams::default(), &p).await.expect("provider");
    wait_ready(&providers, &provider, "True", "Reachable").await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), ns);
    for i in 0..n {
        machines.create(&PostParams::default(), &machine(op, &format!("{prefix}-{i}"), &provider)).await.expect("m");
    }
    provider
}

#[tokio::test]
async fn meters_events_and_sub_collections_are_read_in_batches_where_the_provider_allows_it() {
    use cimi_operator::api::provider::ReadingMode;
    const M: usize = 4;
    let client = client().await;
    let ns = TestNamespace::new(&client, "obsb").await;
    let label = random_suffix();
    let (op, _running) = TestOperator::start_configured(&ns.name, &label, |c| c.observe_page_size = PAGE).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    // One provider as cimi-sim serves it (meters and eventLogs in the CloudEntryPoint, $expand with paths), one
    // that serves monitoring only per resource.
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let per_resource = SimConfig { cep_omit: vec!["meters".into(), "eventLogs".into()], ..SimConfig::default() };
    let sim_own = Sim::start(per_resource).await.expect("sim");
    let batched = provider_with_machines(&client, &op, &ns.name, &sim, "b", M).await;
    let own = provider_with_machines(&client, &op, &ns.name, &sim_own, "o", M).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    eventually("every machine Ready with its four meters", T, || async {
        let ms = machines.list(&Default::default()).await.ok()?.items;
        let all = ms.len() == 2 * M
            && ms.iter().all(|m| {
                m.status.as_ref().is_some_and(|s| {
                    is_ready(&s.common.conditions)
                        && s.common.meters.len() == 4
                        && s.common.meters.iter().all(|x| x.value.is_some() && x.timestamp.is_some())
                })
            });
        all.then_some(())
    })
    .await;

    // Each CimiProvider says how each aspect is read, and why not in batches.
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let modes = |p: &CimiProvider| {
        let o = p.status.as_ref()?.observation.clone()?;
        Some((o.meters?, o.events?, o.sub_collections?))
    };
    let (meters, events, subs) = eventually("the batched provider's status says Batched", T, || async {
        let m = modes(&providers.get(&batched).await.ok()?)?;
        (m.0.mode == ReadingMode::Batched && m.1.mode == ReadingMode::Batched && m.2.mode == ReadingMode::Batched)
            .then_some(m)
    })
    .await;
    assert!(meters.message.is_empty() && events.message.is_empty() && subs.message.is_empty());
    let (meters, events, subs) = eventually("the other provider's status says PerObject", T, || async {
        let m = modes(&providers.get(&own).await.ok()?)?;
        (m.0.mode == ReadingMode::PerObject && m.1.mode == ReadingMode::PerObject).then_some(m)
    })
    .await;
    assert_eq!(meters.message, "the CloudEntryPoint offers no meters collection");
    assert_eq!(events.message, "the CloudEntryPoint offers no eventLogs collection");
    assert_eq!(subs.mode, ReadingMode::Batched, "$expand still serves the sub-collections");

    // The steady state over 8 s (4 meter intervals, 8 event intervals): batched reads only on the first
    // provider, and no read of one machine's samples, events or sub-collections; per-object reads on the other.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (b0, o0) = (sim.stats(), sim_own.stats());
    let cpu_before = machines.get("b-0").await.expect("b-0").status.expect("status").common.meters[1].clone();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (b1, o1) = (sim.stats(), sim_own.stats());
    for op in [
        "SampleCollection.read",
        "EventCollection.read",
        "EventLog.read",
        "MachineNetworkInterfaceCollection.read",
        "MachineNetworkInterfaceAddressCollection.read",
        "Address.read",
        "MachineVolumeCollection.read",
    ] {
        assert_eq!(between(&b0, &b1, op), 0, "no per-object {op} on the batched provider");
    }
    // Meters: 4 machines x 4 meters = 16 in pages of PAGE, plus one count, per meter interval.
    let meter_pages = between(&b0, &b1, "MeterCollection.read");
    let per_interval = (4 * M as u64).div_ceil(PAGE) + 1;
    assert!(meter_pages >= per_interval, "the meters are read in pages: {meter_pages}");
    assert!(meter_pages <= 6 * per_interval, "at most one batched read per meter interval: {meter_pages}");
    let log_reads = between(&b0, &b1, "EventLogCollection.read");
    assert!((4..=20).contains(&log_reads), "the event logs' changes in one filtered read per second: {log_reads}");
    assert!(between(&o0, &o1, "SampleCollection.read") >= 4 * M as u64, "per-object samples on the other provider");
    assert!(between(&o0, &o1, "EventCollection.read") >= 4 * M as u64, "per-object events on the other provider");
    assert_eq!(between(&o0, &o1, "EventLogCollection.read"), 0);
    // As fresh as the cadence: the cpu meter moved on.
    assert_eq!(cpu_before.aspect, "cpu");
    eventually("b-0's cpu sample is newer", T, || async {
        let m = machines.get("b-0").await.ok()?;
        let cpu = m.status?.common.meters.into_iter().find(|x| x.aspect == "cpu")?;
        (cpu.timestamp > cpu_before.timestamp).then_some(())
    })
    .await;

    // A provider event reaches its object at once: b-1 stopped on the provider is mirrored (and started again),
    // every event exactly once.
    let cimi = sim_client(&sim).await;
    let b1m = machines.get("b-1").await.expect("b-1");
    let href = b1m.status.as_ref().and_then(|s| s.common.id.clone()).expect("href");
    let uid = b1m.metadata.uid.clone().expect("uid");
    let before = mirrored(&client, &ns.name, &uid).await.len();
    let current = provider_resource(&cimi, &href).await;
    cimi.action(&current, "stop", Map::new()).await.expect("stop b-1 on the provider");
    let after = all_mirrored_once(&client, &cimi, &ns.name, &uid, std::slice::from_ref(&href)).await;
    assert!(after > before, "the stop's events are mirrored: {before} -> {after}");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    let params = kube::api::ListParams::default().fields(&format!("involvedObject.uid={uid},reason=ProviderEvent"));
    let notes: Vec<String> =
        events.list(&params).await.expect("events").items.into_iter().filter_map(|e| e.message).collect();
    assert!(notes.iter().any(|n| n.contains("state STARTED -> STOPPING")), "{notes:#?}");
    drop(op);
}
