//! CimiSystem on the other provider dialects: a provider without Jobs (the no-jobs profile), one spoken to in XML,
//! and a 1.x-era provider (the lenient-1x profile): each creates, stops and deletes the quickstart's system. The
//! 1.x-era provider deletes only stopped systems: there the system is started again and deleted running, and the
//! operator stops it first, saying so in an Event.

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::sim::{Sim, SimConfig};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::events::events_about;
use crate::harness::examples::example_system;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{assert_nothing_left, ready_provider, sim_client};
use crate::harness::systems::{delete_and_wait, members_ready, system_ready, system_state, wait_system};
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(90);

/// A provider without Jobs (the no-jobs profile): the system converges from the states alone.
#[tokio::test]
async fn no_jobs_profile_create_stop_delete() {
    create_stop_delete_on(cimi_operator::sim::Profile::NoJobs, "sysnojobs").await;
}

/// A provider spoken to in XML.
#[tokio::test]
async fn xml_provider_create_stop_delete() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysxml").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    providers
        .patch(&provider, &PatchParams::default(), &Patch::Merge(json!({"spec": {"format": "xml"}})))
        .await
        .expect("switch to XML");
    eventually("the provider reconnected in XML", T, || async {
        let p = providers.get(&provider).await.ok()?;
        let st = p.status.as_ref()?;
        (st.observed_generation == p.metadata.generation
            && condition(&st.conditions, "Ready").is_some_and(|c| c.0 == "True"))
        .then_some(())
    })
    .await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    systems.create(&PostParams::default(), &example_system(&op, &provider)).await.expect("create the system");
    let s =
        wait_system(&systems, "shop", "shop Ready with 4/4", |s| system_ready(s) && members_ready(s) == Some("4/4"))
            .await;
    let st = s.status.expect("status");
    assert!(st.machines.iter().all(|m| m.cpu == Some(1) && !m.addresses.is_empty()), "{:?}", st.machines);
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
}

/// A 1.x-era provider (the lenient-1x profile: numbers as strings, paging ignored, and the other deviations).
#[tokio::test]
async fn lenient_1x_profile_create_stop_delete() {
    create_stop_delete_on(cimi_operator::sim::Profile::Lenient1x, "syslenient").await;
}

async fn create_stop_delete_on(profile: cimi_operator::sim::Profile, prefix: &str) {
    let client = client().await;
    let ns = TestNamespace::new(&client, prefix).await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { profile, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    systems.create(&PostParams::default(), &example_system(&op, &provider)).await.expect("create the system");
    let s =
        wait_system(&systems, "shop", "shop Ready with 4/4", |s| system_ready(s) && members_ready(s) == Some("4/4"))
            .await;
    assert!(s.status.and_then(|st| st.common.job).is_none(), "no Job to follow");
    systems
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Stopped"}})))
        .await
        .expect("stop the system");
    wait_system(&systems, "shop", "shop STOPPED", |s| system_ready(s) && system_state(s) == Some("STOPPED")).await;
    if profile == cimi_operator::sim::Profile::Lenient1x {
        systems
            .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Started"}})))
            .await
            .expect("start the system");
        wait_system(&systems, "shop", "shop STARTED", |s| system_ready(s) && system_state(s) == Some("STARTED")).await;
    }
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
    if profile == cimi_operator::sim::Profile::Lenient1x {
        let events = events_about(&client, &ns.name, "shop").await;
        let step = events.iter().find(|(reason, _)| reason == "DeleteStep").map(|(_, note)| note.as_str());
        assert!(
            step.is_some_and(|n| n.contains("stop requested first") && n.contains("STARTED")),
            "the running system was stopped before its delete, and an Event said so: {events:?}"
        );
    }
}
