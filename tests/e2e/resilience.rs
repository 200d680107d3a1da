//! Resilience: crash safety (20 times, the provider commits a create and drops the connection before
//! answering, and the operator that sent it is stopped; a fresh operator finds the machine by its UID
//! tag and never creates a second one), and every cimi-sim fault kind: each ends in the condition a
//! user should see, then recovers once the fault is cleared, with nothing leaked or duplicated (a
//! failed create leaves a machine in ERROR: it is removed before the create is retried).

use std::time::Duration;

use cimi_operator::api::common::Timeouts;
use cimi_operator::api::{CimiMachine, PowerState};
use cimi_operator::sim::{FaultKind, FaultRule, Sim, SimConfig, SimHandle, Timing};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::objects::machine_from;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{provider_list, provider_resource, ready_provider, ready_provider_polled, sim_client};
use crate::harness::wait::{eventually, machine_ready};

const T: Duration = Duration::from_secs(60);
const ITERATIONS: usize = 20;

/// A started machine of the catalog's `tiny` config.
fn tiny_machine(op: &TestOperator, name: &str, provider: &str) -> CimiMachine {
    machine_from(op, name, provider, "tiny", "Linux SUSE")
}

fn rule(kind: FaultKind) -> FaultRule {
    FaultRule {
        method: None,
        resource_type: None,
        action: None,
        name: None,
        rate: None,
        times: None,
        kind,
        window_start: None,
    }
}

/// The (status, reason, message) of a condition.
fn cond(m: &CimiMachine, t: &str) -> Option<(String, String, String)> {
    let c = m.status.as_ref()?.common.conditions.iter().find(|c| c.type_ == t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Every object Ready, and exactly one tagged provider machine per object, none untagged or orphaned.
async fn exactly_one_machine_each(machines: &Api<CimiMachine>, sim: &SimHandle, expected: usize) {
    let cimi = sim_client(sim).await;
    let deadline = tokio::time::Instant::now() + T;
    let list = loop {
        let list = machines.list(&Default::default()).await.expect("list").items;
        if list.len() == expected && list.iter().all(machine_ready) {
            break list;
        }
        if tokio::time::Instant::now() > deadline {
            let waiting: Vec<String> = list
                .iter()
                .filter(|m| !machine_ready(m))
                .map(|m| format!("{}: {:?}", m.metadata.name.clone().unwrap_or_default(), m.status))
                .collect();
            let names: Vec<String> = list.iter().filter_map(|m| m.metadata.name.clone()).collect();
            panic!("not every machine of {expected} is Ready after {T:?}: {names:?}; not Ready: {waiting:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let on_provider = provider_list(&cimi, "machines").await;
    assert_eq!(on_provider.len(), expected, "one provider machine per object: {on_provider:#?}");
    let mut uids: Vec<String> =
        on_provider.iter().filter_map(|m| m["properties"]["cimi.dev/uid"].as_str().map(str::to_string)).collect();
    uids.sort();
    let mut want: Vec<String> = list.iter().filter_map(|m| m.metadata.uid.clone()).collect();
    want.sort();
    assert_eq!(uids, want, "each provider machine carries the UID of exactly one object");
    for m in &list {
        let id = m.status.as_ref().and_then(|s| s.common.id.clone()).expect("status.id");
        assert!(on_provider.iter().any(|p| p["id"] == json!(id)), "{id} is on the provider");
    }
}

#[tokio::test]
async fn commit_then_drop_and_a_fresh_operator_make_exactly_one_machine_each_time() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "crash").await;
    let mut operator = TestOperator::start(&ns.name).await;
    let label = operator.label.1.clone();
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    // Polled every 30 s: 20 machines polled every second would spend the provider's whole request
    // budget (20/s by default) on reads.
    let provider = ready_provider_polled(&client, &operator, &ns.name, &sim, "30s").await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);

    for i in 0..ITERATIONS {
        let name = format!("crash-{i}");
        // The create is committed, then the connection drops before any answer.
        sim.set_faults(vec![FaultRule {
            method: Some("POST".into()),
            name: Some(name.clone()),
            times: Some(1),
            ..rule(FaultKind::CommitThenDrop)
        }]);
        machines.create(&PostParams::default(), &tiny_machine(&operator, &name, &provider)).await.expect("create");
        // The committed create shows in the statistics (status 0: the connection was dropped).
        eventually(&format!("{name}: the committed create in /_sim/stats"), T, || async {
            (sim.stats().count("MachineCollection.add", 0) == (i + 1) as u64).then_some(())
        })
        .await;
        // The operator saw an error for it; it is stopped, and a fresh one (new client, new caches) starts.
        // Seen in status (Synced=False) or, when the observer's next listing already led the operator to the
        // committed machine and the condition flipped back, in the Warning Event of that Ready transition.
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns.name);
        eventually(&format!("{name}: the operator saw the failed create"), T, || async {
            let m = machines.get(&name).await.ok()?;
            if cond(&m, "Synced").is_some_and(|c| c.0 == "False") {
                return Some(());
            }
            let params = kube::api::ListParams::default().fields(&format!("involvedObject.name={name}"));
            let list = events.list(&params).await.ok()?;
            list.items.iter().any(|e| e.type_.as_deref() == Some("Warning")).then_some(())
        })
        .await;
        drop(operator);
        operator = TestOperator::start_with_label(&ns.name, &label).await;
    }
    sim.set_faults(Vec::new());
    exactly_one_machine_each(&machines, &sim, ITERATIONS).await;
    assert_eq!(sim.stats().count("MachineCollection.add", 0), ITERATIONS as u64);
    drop(operator);
}

/// Each fault kind on its own machine (faults match by name), all at once, then cleared.
#[tokio::test]
async fn every_fault_kind_shows_its_condition_then_recovers() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "faults").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let post = |name: &str, kind: FaultKind| FaultRule {
        method: Some("POST".into()),
        name: Some(name.into()),
        resource_type: Some("MachineCollection".into()),
        ..rule(kind)
    };
    let start_of = |name: &str, kind: FaultKind| FaultRule {
        method: Some("POST".into()),
        name: Some(name.into()),
        action: Some("start".into()),
        ..rule(kind)
    };

    // Machines that start stopped, for the faults on the start action.
    for name in ["fails-1", "hangs-1"] {
        let mut m = tiny_machine(&op, name, &provider);
        m.spec.power_state = PowerState::Stopped;
        m.spec.timeouts = Some(Timeouts { update: Some("2s".into()), ..Default::default() });
        machines.create(&PostParams::default(), &m).await.expect("create");
    }
    eventually("fails-1 and hangs-1 STOPPED and Ready", T, || async {
        let a = machines.get("fails-1").await.ok()?;
        let b = machines.get("hangs-1").await.ok()?;
        (machine_ready(&a) && machine_ready(&b)).then_some(())
    })
    .await;

    sim.set_faults(vec![
        FaultRule { name: Some("latency-*".into()), ..rule(FaultKind::Latency { ms: 300 }) },
        post("error-1", FaultKind::Error { status: 500 }),
        post("bad-1", FaultKind::Error { status: 400 }),
        post("throttle-1", FaultKind::Throttle { retry_after: 1 }),
        post("unavail-1", FaultKind::Unavailable { seconds: 40 }),
        FaultRule { times: Some(1), ..post("drop-1", FaultKind::CommitThenDrop) },
        post("createfail-1", FaultKind::JobFails),
        start_of("fails-1", FaultKind::JobFails),
        start_of("hangs-1", FaultKind::JobHangs),
    ]);
    for name in ["error-1", "bad-1", "throttle-1", "unavail-1", "drop-1", "latency-1", "createfail-1"] {
        machines.create(&PostParams::default(), &tiny_machine(&op, name, &provider)).await.expect("create");
    }
    for name in ["fails-1", "hangs-1"] {
        machines
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Started"}})))
            .await
            .expect("start");
    }

    // What a user sees while the faults last.
    let expect = |name: &'static str, ty: &'static str, status: &'static str, reason: &'static str| {
        let machines = machines.clone();
        async move {
            eventually(&format!("{name}: {ty}={status} {reason}"), T, || async {
                let m = machines.get(name).await.ok()?;
                cond(&m, ty).filter(|c| c.0 == status && c.1 == reason)
            })
            .await
        }
    };
    let (_, _, message) = expect("error-1", "Ready", "Unknown", "ProviderUnreachable").await;
    assert!(message.contains("500"), "{message}");
    expect("error-1", "Synced", "False", "ProviderUnreachable").await;
    let (_, _, message) = expect("bad-1", "Stalled", "True", "ProviderRejected").await;
    assert!(message.contains("400"), "{message}");
    expect("throttle-1", "Synced", "False", "RateLimited").await;
    expect("unavail-1", "Ready", "Unknown", "ProviderUnreachable").await;
    let (_, _, message) = expect("createfail-1", "Stalled", "True", "JobFailed").await;
    assert!(message.contains("create Job"), "{message}");
    let (_, _, message) = expect("fails-1", "Stalled", "True", "JobFailed").await;
    assert!(message.contains("start"), "{message}");
    let (_, _, message) = expect("hangs-1", "Stalled", "True", "Timeout").await;
    assert!(message.contains("update") && message.contains("2s"), "{message}");
    // commit-then-drop and latency: the machines come up anyway, once each.
    for name in ["drop-1", "latency-1"] {
        eventually(&format!("{name} Ready despite the fault"), T, || async {
            machines.get(name).await.ok().filter(machine_ready).map(|_| ())
        })
        .await;
    }
    // Truncated collections: the operator never concludes "absent" from a short page, so never
    // creates a second machine, and says why it waits.
    // (A second create would show as a second provider machine below.)
    sim.set_faults(vec![
        FaultRule { times: Some(1), ..post("trunc-1", FaultKind::CommitThenDrop) },
        FaultRule {
            method: Some("GET".into()),
            resource_type: Some("MachineCollection".into()),
            ..rule(FaultKind::Truncate { max: 0 })
        },
    ]);
    machines.create(&PostParams::default(), &tiny_machine(&op, "trunc-1", &provider)).await.expect("create");
    let (_, _, message) = expect("trunc-1", "Synced", "False", "ProviderRejected").await;
    assert!(message.contains("served 0"), "{message}");

    // Cleared: everything recovers, one machine each. A request the provider rejected waits for a
    // human: a change of the spec retries it at once.
    sim.set_faults(Vec::new());
    machines
        .patch("bad-1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"description": "fixed"}})))
        .await
        .expect("touch bad-1");
    let names = [
        "error-1",
        "bad-1",
        "throttle-1",
        "unavail-1",
        "drop-1",
        "latency-1",
        "createfail-1",
        "fails-1",
        "hangs-1",
        "trunc-1",
    ];
    for name in names {
        eventually(&format!("{name} recovers"), T, || async {
            let m = machines.get(name).await.ok()?;
            (machine_ready(&m) && m.status.as_ref()?.common.state.as_deref() == Some("STARTED")).then_some(())
        })
        .await;
    }
    exactly_one_machine_each(&machines, &sim, names.len()).await;
}

/// A provider without Jobs: an operation that never ends (the machine stays STARTING) is bounded by
/// `spec.timeouts` all the same, and the condition says which operation, in which state, for how long.
#[tokio::test]
async fn without_jobs_a_stuck_transient_state_times_out() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "nojobs-timeout").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig {
        profile: cimi_operator::sim::Profile::NoJobs,
        timing: Timing::Instant,
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = tiny_machine(&op, "slow-1", &provider);
    m.spec.power_state = PowerState::Stopped;
    m.spec.timeouts = Some(Timeouts { update: Some("2s".into()), ..Default::default() });
    machines.create(&PostParams::default(), &m).await.expect("create");
    eventually("slow-1 STOPPED and Ready", T, || async {
        machines.get("slow-1").await.ok().filter(machine_ready).map(|_| ())
    })
    .await;
    sim.set_faults(vec![FaultRule {
        method: Some("POST".into()),
        name: Some("slow-1".into()),
        action: Some("start".into()),
        ..rule(FaultKind::JobHangs)
    }]);
    machines
        .patch("slow-1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Started"}})))
        .await
        .expect("start");
    let m = eventually("slow-1 Stalled=True Timeout", T, || async {
        let m = machines.get("slow-1").await.ok()?;
        cond(&m, "Stalled").filter(|c| c.0 == "True" && c.1 == "Timeout").map(|_| m)
    })
    .await;
    let (_, _, message) = cond(&m, "Stalled").expect("Stalled");
    assert!(message.contains("update") && message.contains("STARTING") && message.contains("2s"), "{message}");
    assert_eq!(cond(&m, "Ready").map(|c| c.1), Some("Timeout".to_string()));
}

/// An object deleted while its create Job hangs: the Job gets `spec.timeouts.create`, then the operator stops it
/// and deletes what it left, and the object goes (found by the soak: the deletion waited on the hung create
/// for ever, with the finalizer held).
#[tokio::test]
async fn an_object_deleted_during_a_hung_create_goes_once_the_create_times_out() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "delete-hung-create").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    sim.set_faults(vec![FaultRule {
        method: Some("POST".into()),
        name: Some("hung-1".into()),
        ..rule(FaultKind::JobHangs)
    }]);
    let mut m = tiny_machine(&op, "hung-1", &provider);
    m.spec.timeouts = Some(Timeouts { create: Some("3s".into()), ..Default::default() });
    machines.create(&PostParams::default(), &m).await.expect("create");
    let job = eventually("hung-1 to follow its create Job", T, || async {
        let job = machines.get("hung-1").await.ok()?.status?.common.job?;
        (job.action.as_deref() == Some("add")).then_some(job.href)
    })
    .await;
    machines.delete("hung-1", &Default::default()).await.expect("delete");
    eventually("hung-1 gone", T, || async { machines.get_opt("hung-1").await.ok()?.is_none().then_some(()) }).await;
    let job = provider_resource(&cimi, &job).await;
    assert_eq!(job["state"], "STOPPED", "the operator stopped the hung create: {job}");
    let left: Vec<_> = provider_list(&cimi, "machines").await.into_iter().filter(|m| m["name"] == "hung-1").collect();
    assert!(left.is_empty(), "nothing is left on the provider: {left:?}");
}

/// Creates the machine `name`, allowed 3 seconds to be created, whose first create is committed and its answer
/// lost (the connection dropped), and whose Job then hangs.
async fn create_lost_and_hung(
    sim: &SimHandle,
    machines: &Api<CimiMachine>,
    op: &TestOperator,
    provider: &str,
    name: &str,
) {
    let first_post =
        |kind| FaultRule { method: Some("POST".into()), name: Some(name.into()), times: Some(1), ..rule(kind) };
    sim.set_faults(vec![first_post(FaultKind::CommitThenDrop), first_post(FaultKind::JobHangs)]);
    let mut m = tiny_machine(op, name, provider);
    m.spec.timeouts = Some(Timeouts { create: Some("3s".into()), ..Default::default() });
    machines.create(&PostParams::default(), &m).await.expect("create");
}

/// A create whose answer was lost (committed, then the connection dropped) and whose Job hangs: the operator
/// finds the machine by its UID tag but never learned its Job. Once the machine has been CREATING longer than
/// `spec.timeouts.create`, the operator finds that Job in the provider's Jobs, stops it, removes what it left and
/// creates the machine again (it used to report the timeout for ever, the machine CREATING).
#[tokio::test]
async fn a_hung_create_whose_answer_was_lost_is_found_stopped_and_made_again() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "lost-hung-create").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    create_lost_and_hung(&sim, &machines, &op, &provider, "lost-1").await;
    exactly_one_machine_each(&machines, &sim, 1).await;
    let stopped: Vec<_> = provider_list(&cimi, "jobs")
        .await
        .into_iter()
        .filter(|j| j["action"] == "add" && j["state"] == "STOPPED")
        .collect();
    assert_eq!(stopped.len(), 1, "the hung create's Job, found and stopped: {stopped:#?}");
}

/// The same lost answer and hung create, the object deleted while the machine is CREATING: past the create's
/// timeout the deletion finds the Job, stops it, and deletes the machine (it waited for the state to settle for
/// ever).
#[tokio::test]
async fn an_object_deleted_during_a_hung_create_whose_answer_was_lost_goes() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "lost-hung-delete").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    create_lost_and_hung(&sim, &machines, &op, &provider, "lost-2").await;
    eventually("lost-2 to find its machine, CREATING, with no Job", T, || async {
        let st = machines.get("lost-2").await.ok()?.status?.common;
        (st.id.is_some() && st.state.as_deref() == Some("CREATING") && st.job.is_none()).then_some(())
    })
    .await;
    machines.delete("lost-2", &Default::default()).await.expect("delete");
    eventually("lost-2 gone", T, || async { machines.get_opt("lost-2").await.ok()?.is_none().then_some(()) }).await;
    assert!(provider_list(&cimi, "machines").await.is_empty(), "nothing is left on the provider");
    let running: Vec<_> = provider_list(&cimi, "jobs").await.into_iter().filter(|j| j["state"] == "RUNNING").collect();
    assert!(running.is_empty(), "no Job is left running: {running:#?}");
}

/// The guard against a controller cache that lags the operator's own status write (seen under load: a pass read
/// the older copy and ran a restart a second time, and the plugin reported the second's success after the first
/// had failed). Before running a one-shot action, the operator reads the object from the API server: a request
/// already handled there is not run again, and the pass takes the server's status instead of the older one.
#[tokio::test]
async fn a_one_shot_action_already_handled_on_the_server_is_not_run_from_an_older_copy() {
    use cimi_operator::controller::shell::kind::ManagedKind as _;
    use cimi_operator::controller::shell::status::action_already_handled;
    let client = client().await;
    let ns = TestNamespace::new(&client, "stale-action").await;
    let op = TestOperator::scope_only("stale-action");
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = tiny_machine(&op, "web-1", "nowhere");
    m.metadata.annotations = Some([("cimi.dev/action".to_string(), "restart@2".to_string())].into());
    machines.create(&PostParams::default(), &m).await.expect("create");
    // The copy a lagging cache holds: restart@2 asked, no outcome yet.
    let older = machines.get("web-1").await.expect("web-1");
    // What the pass that ran it wrote.
    let ran = json!({"status": {"lastAction": {"action": "restart", "nonce": "2", "phase": "Running",
        "job": "http://provider.example/jobs/7"}}});
    machines.patch_status("web-1", &PatchParams::default(), &Patch::Merge(ran)).await.expect("status");
    let ctx = cimi_operator::controller::context::Context::new(client.clone(), Default::default());

    let mut status = older.status_now();
    assert!(action_already_handled(&ctx, &older, &mut status, "2").await.expect("read"), "restart@2 is handled");
    let last = status.common.last_action.expect("the server's lastAction");
    assert_eq!((last.nonce.as_str(), last.job.as_deref()), ("2", Some("http://provider.example/jobs/7")));

    let mut status = older.status_now();
    assert!(!action_already_handled(&ctx, &older, &mut status, "3").await.expect("read"), "restart@3 is new");
    assert!(status.common.last_action.is_none(), "the pass's status is left as it was");
}
