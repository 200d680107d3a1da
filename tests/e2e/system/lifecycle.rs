//! CimiSystem on cimi-sim, from creation to deletion: the quickstart's system becomes Ready with its members in
//! status and `kubectl get`; a member stopped on the provider shows MIXED; `powerState: Stopped` stops every machine;
//! deletion removes every member; a nested Job failing midway names the failed component and leaves nothing behind;
//! a create committed and dropped makes exactly one system; a create longer than its timeout is stopped
//! and made again, and one deleted during a hung create goes once it times out; a template by value takes a
//! credential from a Secret; a paused system is not created, then force-orphaned it stays on the provider.

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Sim, SimConfig, SimHandle};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::examples::example_system;
use crate::harness::objects::secret;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{
    assert_nothing_left, fault, provider_action, provider_list, provider_resource, ready_provider, sim_client,
};
use crate::harness::systems::{delete_and_wait, member, members_ready, system_ready, system_state, wait_system};
use crate::harness::tools::run_tool;
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(90);

/// `kubectl get cimisystems` in the namespace, as a user reads it.
fn kubectl_get(ns: &str) -> String {
    let (ok, out, err) = run_tool(Tool::Kubectl, &["get", "cimisystems", "-n", ns], None);
    assert!(ok, "kubectl get cimisystems failed: {err}");
    out
}

#[tokio::test]
async fn example_system_members_mixed_power_and_deletion() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sys").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    systems.create(&PostParams::default(), &example_system(&op, &provider)).await.expect("create the system");

    // Ready, every member listed with its state, the machines with their IPs; 4/4 in kubectl.
    let s = wait_system(&systems, "shop", "shop Ready with 4/4 members", |s| {
        system_ready(s) && members_ready(s) == Some("4/4") && system_state(s) == Some("STARTED")
    })
    .await;
    let st = s.status.clone().expect("status");
    assert_eq!(st.machines.len(), 2, "{:?}", st.machines);
    for name in ["web1", "web2"] {
        let m = member(&st.machines, name);
        assert_eq!(m.member.state.as_deref(), Some("STARTED"));
        assert!(!m.addresses.is_empty(), "{name} has an IP: {m:?}");
        assert_eq!(m.cpu, Some(1));
    }
    assert_eq!(member(&st.volumes, "data").member.state.as_deref(), Some("AVAILABLE"));
    assert_eq!(member(&st.networks, "net").state.as_deref(), Some("STARTED"));
    let counts = st.members.clone().expect("member counts");
    assert_eq!((counts.ready, counts.total, counts.summary.as_str()), (4, 4, "4/4"));
    assert_eq!(counts.states.get("STARTED"), Some(&3));
    assert_eq!(counts.states.get("AVAILABLE"), Some(&1));
    let job = st.common.job.clone().expect("the create Job is recorded");
    assert_eq!((job.action.as_deref(), job.state.as_deref()), (Some("add"), Some("SUCCESS")));
    assert_eq!(st.nested_jobs.len(), 4, "one nested Job per member: {:?}", st.nested_jobs);
    assert!(st.nested_jobs.iter().all(|n| n.job.state.as_deref() == Some("SUCCESS") && n.component.is_some()));
    let on_provider = provider_list(&cimi, "systems").await;
    assert_eq!(on_provider.len(), 1, "{on_provider:?}");
    assert_eq!(on_provider[0]["properties"]["cimi.dev/uid"], json!(s.metadata.uid.clone().expect("uid")));
    assert_eq!(on_provider[0]["properties"]["cimi.dev/name"], json!("shop"));
    // The provider is held while the system references it.
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    eventually("the provider InUse by the system", T, || async {
        let p = providers.get(&provider).await.ok()?;
        (condition(&p.status?.conditions, "InUse") == Some(("True".into(), "Referenced".into()))).then_some(())
    })
    .await;
    let listing = kubectl_get(&ns.name);
    let line = listing.lines().find(|l| l.starts_with("shop")).unwrap_or_else(|| panic!("no shop in {listing}"));
    assert!(line.contains("4/4") && line.contains("STARTED") && line.contains("True"), "{listing}");

    // One member stopped on the provider: MIXED. The start the operator then asks for hangs (an injected fault),
    // so the mixed state holds still while we look; its nested Job is in status.
    sim.set_faults(vec![fault(json!({"resourceType": "System", "action": "start", "kind": "jobHangs"}))]);
    provider_action(&cimi, &member(&st.machines, "web1").member.href, "stop").await;
    let s = wait_system(&systems, "shop", "shop MIXED with 3/4 members", |s| {
        system_state(s) == Some("MIXED")
            && members_ready(s) == Some("3/4")
            && s.status.as_ref().is_some_and(|st| {
                st.nested_jobs
                    .iter()
                    .any(|n| n.component.as_deref() == Some("web1") && n.job.state.as_deref() == Some("RUNNING"))
            })
    })
    .await;
    let listing = kubectl_get(&ns.name);
    let line = listing.lines().find(|l| l.starts_with("shop")).unwrap_or_default().to_string();
    assert!(line.contains("MIXED") && line.contains("3/4"), "{listing}");
    assert_eq!(
        condition(&s.status.clone().expect("status").common.conditions, "Ready").map(|c| c.0),
        Some("False".into())
    );
    // The provider gives up on the hung start; the operator starts web1 again and the system is whole.
    sim.set_faults(Vec::new());
    let hung = s
        .status
        .as_ref()
        .and_then(|st| st.nested_jobs.iter().find(|n| n.component.as_deref() == Some("web1")))
        .map(|n| n.job.href.clone())
        .expect("the hung nested Job");
    provider_action(&cimi, &hung, "stop").await;
    wait_system(&systems, "shop", "shop STARTED again", |s| {
        system_ready(s) && system_state(s) == Some("STARTED") && members_ready(s) == Some("4/4")
    })
    .await;

    // powerState: Stopped stops every machine.
    systems
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Stopped"}})))
        .await
        .expect("stop the system");
    let s =
        wait_system(&systems, "shop", "shop STOPPED", |s| system_ready(s) && system_state(s) == Some("STOPPED")).await;
    let st = s.status.expect("status");
    assert!(st.machines.iter().all(|m| m.member.state.as_deref() == Some("STOPPED")), "{:?}", st.machines);
    for m in provider_list(&cimi, "machines").await {
        assert_eq!(m["state"], "STOPPED", "{m}");
    }

    // Deletion removes the system and every member on the provider.
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
}

#[tokio::test]
async fn a_nested_job_failing_midway_names_the_component_and_leaves_nothing() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysfail").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);

    // The system's create: the last component's Job (web2's) fails; the others succeed.
    sim.set_faults(vec![fault(
        json!({"resourceType": "SystemCollection", "action": "add", "kind": "jobFails", "times": 1}),
    )]);
    systems.create(&PostParams::default(), &example_system(&op, &provider)).await.expect("create the system");
    let s = wait_system(&systems, "shop", "Ready=False JobFailed naming web2", |s| {
        s.status
            .as_ref()
            .and_then(|st| st.common.conditions.iter().find(|c| c.type_ == "Ready" && c.reason == "JobFailed"))
            .is_some_and(|c| c.message.contains("web2"))
    })
    .await;
    let st = s.status.expect("status");
    assert_eq!(condition(&st.common.conditions, "Stalled"), Some(("True".into(), "JobFailed".into())));
    let web2 = st.nested_jobs.iter().find(|n| n.component.as_deref() == Some("web2")).expect("web2's nested Job");
    assert_eq!(web2.job.state.as_deref(), Some("FAILED"));
    let web1 = st.nested_jobs.iter().find(|n| n.component.as_deref() == Some("web1")).expect("web1's nested Job");
    assert_eq!(web1.job.state.as_deref(), Some("SUCCESS"), "the failure came midway");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    eventually("a ComponentFailed Event", T, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ComponentFailed") && e.note.as_deref().is_some_and(|n| n.contains("web2"))
            })
            .then_some(())
    })
    .await;

    // Deleting the object leaves nothing on the provider.
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
}

#[tokio::test]
async fn commit_then_drop_on_the_system_create_makes_exactly_one_system() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "syscrash").await;
    let first = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &first, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);

    // The create is committed, then the connection drops before any answer.
    sim.set_faults(vec![fault(
        json!({"method": "POST", "resourceType": "SystemCollection", "name": "shop", "times": 1, "kind": "commitThenDrop"}),
    )]);
    systems.create(&PostParams::default(), &example_system(&first, &provider)).await.expect("create the system");
    eventually("the committed system on the provider", T, || async {
        (!provider_list(&cimi, "systems").await.is_empty()).then_some(())
    })
    .await;
    assert!(sim.faults().iter().all(|r| r.times == Some(0)), "the fault fired");
    // The operator that asked goes away; a fresh one adopts the system by its UID tag.
    let label = first.label.1.clone();
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _second = TestOperator::start_with_label(&ns.name, &label).await;
    let s = wait_system(&systems, "shop", "shop Ready after the crash", |s| {
        system_ready(s) && members_ready(s) == Some("4/4")
    })
    .await;
    let on_provider = provider_list(&cimi, "systems").await;
    assert_eq!(on_provider.len(), 1, "exactly one system: {on_provider:?}");
    assert_eq!(on_provider[0]["properties"]["cimi.dev/uid"], json!(s.metadata.uid.clone().expect("uid")));
    assert_eq!(s.status.and_then(|st| st.common.id), on_provider[0]["id"].as_str().map(str::to_string));
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "and exactly its two machines");
}

#[tokio::test]
async fn paused_then_force_orphaned() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "syspause").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);

    // Paused: nothing is created, and the object says why.
    let mut s = example_system(&op, &provider);
    s.metadata.annotations = Some([("cimi.dev/paused".to_string(), "true".to_string())].into_iter().collect());
    systems.create(&PostParams::default(), &s).await.expect("create the system");
    wait_system(&systems, "shop", "Synced=False Paused", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| condition(&st.common.conditions, "Synced") == Some(("False".into(), "Paused".into())))
    })
    .await;
    assert!(provider_list(&cimi, "systems").await.is_empty(), "a paused system was created");

    // Unpaused: created and Ready.
    let unpause = json!({"metadata": {"annotations": {"cimi.dev/paused": null}}});
    systems.patch("shop", &PatchParams::default(), &Patch::Merge(unpause)).await.expect("unpause");
    wait_system(&systems, "shop", "shop Ready", |s| system_ready(s) && members_ready(s) == Some("4/4")).await;

    // Force-orphan: the object goes without any provider call; the system stays.
    let writes = sim.stats().writes;
    let force = json!({"metadata": {"annotations": {"cimi.dev/force-orphan": "true"}}});
    systems.patch("shop", &PatchParams::default(), &Patch::Merge(force)).await.expect("annotate");
    delete_and_wait(&systems, "shop").await;
    assert_eq!(sim.stats().writes, writes, "force-orphan made provider writes");
    assert_eq!(provider_list(&cimi, "systems").await.len(), 1, "the system stays on the provider");
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "with its machines");
}

/// Creates the example system `shop` allowed 3 seconds to be created, whose first create never ends: the Job of
/// its last component hangs.
async fn create_shop_whose_create_hangs(sim: &SimHandle, systems: &Api<CimiSystem>, op: &TestOperator, provider: &str) {
    sim.set_faults(vec![fault(
        json!({"resourceType": "SystemCollection", "action": "add", "kind": "jobHangs", "times": 1}),
    )]);
    let mut s = example_system(op, provider);
    s.spec.timeouts = Some(cimi_operator::api::common::Timeouts { create: Some("3s".into()), ..Default::default() });
    systems.create(&PostParams::default(), &s).await.expect("create the system");
}

#[tokio::test]
async fn a_create_longer_than_its_timeout_is_stopped_and_made_again() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "systime").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);

    create_shop_whose_create_hangs(&sim, &systems, &op, &provider).await;
    let s = wait_system(&systems, "shop", "Stalled=True Timeout", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| condition(&st.common.conditions, "Stalled") == Some(("True".into(), "Timeout".into())))
    })
    .await;
    let st = s.status.expect("status");
    let first = st.common.id.clone().expect("the first system's href");
    let stalled = st.common.conditions.iter().find(|c| c.type_ == "Stalled").expect("Stalled");
    assert!(stalled.message.contains("asked the provider to stop it"), "{}", stalled.message);

    // The operator stopped the hung Job, removed what the create left and created the system again.
    let s =
        wait_system(&systems, "shop", "Ready with 4/4 members", |s| system_ready(s) && members_ready(s) == Some("4/4"))
            .await;
    let second = s.status.and_then(|st| st.common.id).expect("the second system's href");
    assert_ne!(first, second, "a new system");
    let on_provider: Vec<String> =
        provider_list(&cimi, "systems").await.iter().filter_map(|v| v["id"].as_str().map(str::to_string)).collect();
    assert_eq!(on_provider.len(), 1, "the failed system is gone: {on_provider:?}");
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "two machines, none left from the first create");
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
}

/// A system deleted while its create hangs on a component Job: the create gets `spec.timeouts.create`, then the
/// operator stops the component Jobs still running and the system's own, and deletes what was made (found by the
/// soak: the deletion stopped only the system's Job, which kept waiting on the hung component, for ever).
#[tokio::test]
async fn a_system_deleted_during_a_hung_create_goes_once_the_create_times_out() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysdelhung").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    create_shop_whose_create_hangs(&sim, &systems, &op, &provider).await;
    // Deleted as soon as the create is under way, before a pass has followed its component Jobs.
    let job = eventually("shop to record its create Job", T, || async {
        let job = systems.get("shop").await.ok()?.status?.common.job?;
        (job.action.as_deref() == Some("add")).then_some(job.href)
    })
    .await;
    systems.delete("shop", &Default::default()).await.expect("delete the system");
    eventually("shop gone", T, || async { systems.get_opt("shop").await.ok()?.is_none().then_some(()) }).await;
    let job = provider_resource(&cimi, &job).await;
    assert_ne!(job["state"], "RUNNING", "the hung create was ended: {job}");
    for nested in job["nestedJobs"].as_array().into_iter().flatten() {
        let nested = provider_resource(&cimi, nested["href"].as_str().unwrap_or("")).await;
        assert_ne!(nested["state"], "RUNNING", "no component Job is left running: {nested}");
    }
    assert_nothing_left(&cimi).await;
}

/// A system create whose answer was lost (committed, then the connection dropped) and whose component Job hangs:
/// the operator finds the system by its UID tag but not its Job. Past `spec.timeouts.create` it finds that Job in
/// the provider's Jobs, stops it and its component Jobs, and creates the system again.
#[tokio::test]
async fn a_hung_create_whose_answer_was_lost_is_found_stopped_and_made_again() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "syslosthung").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    let first_post =
        |kind: &str| fault(json!({"resourceType": "SystemCollection", "action": "add", "kind": kind, "times": 1}));
    sim.set_faults(vec![first_post("commitThenDrop"), first_post("jobHangs")]);
    let mut s = example_system(&op, &provider);
    s.spec.timeouts = Some(cimi_operator::api::common::Timeouts { create: Some("3s".into()), ..Default::default() });
    systems.create(&PostParams::default(), &s).await.expect("create the system");
    wait_system(&systems, "shop", "Ready with 4/4 members", |s| system_ready(s) && members_ready(s) == Some("4/4"))
        .await;
    assert_eq!(provider_list(&cimi, "systems").await.len(), 1, "the first system is gone, the second made");
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "two machines, none left from the first create");
    let running: Vec<_> = provider_list(&cimi, "jobs").await.into_iter().filter(|j| j["state"] == "RUNNING").collect();
    assert!(running.is_empty(), "no Job is left running: {running:#?}");
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
}

#[tokio::test]
async fn a_template_by_value_with_a_credential_from_a_secret() {
    use k8s_openapi::api::core::v1::Secret;
    let client = client().await;
    let ns = TestNamespace::new(&client, "syscred").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let login = secret("login", None, &[("userID", "admin"), ("password", "s3cret-system")]);
    secrets.create(&PostParams::default(), &login).await.expect("login secret");
    let mut s: CimiSystem = serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiSystem", "metadata": {"name": "batch"},
        "spec": {"providerRef": {"name": provider}, "powerState": "Stopped", "template": {"componentDescriptors": [
            {"name": "admin", "credentialTemplate": {"credentialSecretRef": {"name": "login"}}},
            {"name": "scratch", "volumeTemplate": {"capacity": "1Gi"}},
            {"name": "worker", "quantity": 3, "machineTemplate": {
                "machineConfig": {"name": "tiny"}, "machineImage": {"name": "Linux SUSE"},
                "credential": {"href": "#admin"}}}
        ]}}
    }))
    .expect("a CimiSystem");
    s.metadata.labels = Some(op.labels());
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    systems.create(&PostParams::default(), &s).await.expect("create the system");
    let s = wait_system(&systems, "batch", "batch Ready, STOPPED, 4/4", |s| {
        system_ready(s) && system_state(s) == Some("STOPPED") && members_ready(s) == Some("4/4")
    })
    .await;
    let st = s.status.clone().expect("status");
    let names: Vec<&str> = st.machines.iter().filter_map(|m| m.member.name.as_deref()).collect();
    assert_eq!(names, ["worker1", "worker2", "worker3"]);
    assert_eq!(member(&st.volumes, "scratch").capacity.as_deref(), Some("1073742k"), "1Gi in kB, as a quantity");
    assert_eq!(provider_list(&cimi, "credentials").await.len(), 1, "the credential component");
    let text = serde_json::to_string(&s).expect("json");
    assert!(!text.contains("s3cret-system"), "a secret leaked into the object");
    delete_and_wait(&systems, "batch").await;
    assert_nothing_left(&cimi).await;
    assert!(provider_list(&cimi, "credentials").await.is_empty(), "the credential is deleted with its system");
}
