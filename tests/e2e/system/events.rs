//! Provider events of a CimiSystem and of each of its members, mirrored onto the system as Kubernetes Events
//! exactly once, a member's notes naming it, also across an operator restart.

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::sim::{Sim, SimConfig};
use kube::api::{Api, ListParams, PostParams};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::events::all_mirrored_once;
use crate::harness::examples::example_system;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{
    assert_nothing_left, credentials_secret, provider_action, provider_events, provider_for, sim_client,
};
use crate::harness::systems::{delete_and_wait, member, members_ready, system_ready, wait_system};
use crate::harness::wait::{eventually, wait_ready};

const T: Duration = Duration::from_secs(90);

/// The notes of the provider events mirrored on an object.
async fn provider_event_notes(client: &kube::Client, ns: &str, uid: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.uid={uid},reason=ProviderEvent"));
    events.list(&params).await.expect("list events").items.into_iter().filter_map(|e| e.message).collect()
}

#[tokio::test]
async fn member_provider_events_are_mirrored_onto_the_system_exactly_once_across_a_restart() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysev").await;
    let label = random_suffix();
    let (op, running) = TestOperator::start_configured(&ns.name, &label, |_| {}).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns.name);
    let creds = credentials_secret(&op, "creds", "demo", "demo");
    secrets.create(&PostParams::default(), &creds).await.expect("secret");
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    let provider = format!("prov-{}", random_suffix());
    let mut p = provider_for(&op, &provider, &sim.url(), "creds");
    p.spec.settings.poll_interval = "1s".into();
    p.spec.settings.event_interval = "1s".into();
    providers.create(&PostParams::default(), &p).await.expect("provider");
    wait_ready(&providers, &provider, "True", "Reachable").await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    systems.create(&PostParams::default(), &example_system(&op, &provider)).await.expect("create the system");
    let s = wait_system(&systems, "shop", "shop Ready with 4/4 members", |s| {
        system_ready(s) && members_ready(s) == Some("4/4")
    })
    .await;
    let uid = s.metadata.uid.clone().expect("uid");
    let st = s.status.clone().expect("status");
    let mut hrefs: Vec<String> = st.all_members().map(|m| m.href.clone()).collect();
    hrefs.push(st.common.id.clone().expect("the system href"));
    let web1 = member(&st.machines, "web1").member.href.clone();

    // The events of the system and of each member, each once, the members' notes naming them.
    let before = all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    assert!(before >= 5, "at least a create event per member and the system ({before})");
    let notes = provider_event_notes(&client, &ns.name, &uid).await;
    for named in ["machine web1: create", "machine web2: create", "volume data: create", "network net: create"] {
        assert!(notes.iter().any(|n| n.contains(named)), "a note with {named:?} in {notes:#?}");
    }

    // A member stopped on the provider: its state events show on the system, and its cursor follows.
    provider_action(&cimi, &web1, "stop").await;
    eventually("web1's stop mirrored on the system", T, || async {
        let notes = provider_event_notes(&client, &ns.name, &uid).await;
        notes.iter().any(|n| n.contains("machine web1: state STARTED -> STOPPING")).then_some(())
    })
    .await;
    eventually("web1 STARTED again on the provider", T, || async {
        let url = cimi.resolve(&web1).await.ok()?;
        (cimi.get_value(&url).await.ok()?["state"] == "STARTED").then_some(())
    })
    .await;
    wait_system(&systems, "shop", "shop whole again", |s| {
        system_ready(s)
            && members_ready(s) == Some("4/4")
            && member(&s.status.as_ref().expect("status").machines, "web1").member.state.as_deref() == Some("STARTED")
    })
    .await;
    all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    eventually("web1's eventCursor is its last provider event", T, || async {
        let last = provider_events(&cimi, &web1).await.last()?["id"].as_str()?.to_string();
        let s = systems.get("shop").await.ok()?;
        let cursor = member(&s.status?.machines, "web1").member.event_cursor.clone()?;
        (cursor.id == last).then_some(())
    })
    .await;

    // A new operator instance (new caches) mirrors nothing twice, and what happened while none ran.
    let before = all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    drop(op);
    running.task.await.expect("join").expect("the operator stops cleanly");
    provider_action(&cimi, &web1, "stop").await;
    let (op, _running) = TestOperator::start_configured(&ns.name, &label, |_| {}).await;
    wait_system(&systems, "shop", "shop whole after the restart", |s| {
        system_ready(s) && members_ready(s) == Some("4/4")
    })
    .await;
    let after = all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    assert!(after > before, "the stop made while no operator ran is mirrored: {before} -> {after}");

    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
    drop(op);
}
