//! A CimiSystem made outside Kubernetes, imported: ObserveOnly (mirrored, never written to, not even on deletion),
//! then Managed with deletionPolicy Orphan (tagged while managed, left in place and untagged when the object goes).

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::cimi::CimiClient;
use cimi_operator::sim::{Sim, SimConfig};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::operator::TestOperator;
use crate::harness::sim::{provider_list, ready_provider, sim_client};
use crate::harness::systems::{delete_and_wait, wait_system};
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(90);

/// A system made on the provider, outside Kubernetes, from the catalog's web-tier template; returns its href.
async fn provider_side_system(cimi: &CimiClient, name: &str) -> String {
    let template = cimi.resolve("systemTemplates/web-tier").await.expect("template href");
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/SystemCreate", "name": name,
        "properties": {"owner": "ops"}, "systemTemplate": {"href": template.as_str()}});
    let url = cimi.collection_url("systems").await.expect("systems");
    let accepted = cimi.create("systems", &body).await.expect("create on the provider");
    let href = cimi.created_href(&accepted, &url).await.expect("href").expect("a system href");
    eventually("the provider-side system STARTED", T, || async {
        let doc = cimi.get_value(&href).await.ok()?;
        (doc["state"] == "STARTED").then_some(())
    })
    .await;
    href.to_string()
}

fn importing(op: &TestOperator, name: &str, provider: &str, import: Value, policy: &str) -> CimiSystem {
    let mut s: CimiSystem = serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiSystem",
        "metadata": {"name": name},
        "spec": {"providerRef": {"name": provider}, "import": import, "managementPolicy": policy,
                 "deletionPolicy": "Orphan"}
    }))
    .expect("a CimiSystem");
    s.metadata.labels = Some(op.labels());
    s
}

#[tokio::test]
async fn import_observe_only_then_managed_with_orphan() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysimp").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let href = provider_side_system(&cimi, "legacy").await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);

    // ObserveOnly, by filter: mirrored, Ready (Observed), and never written to, not even on deletion.
    let writes = sim.stats().writes;
    let view = importing(&op, "legacy-view", &provider, json!({"filter": "name='legacy'"}), "ObserveOnly");
    systems.create(&PostParams::default(), &view).await.expect("create the observer");
    let s = wait_system(&systems, "legacy-view", "legacy-view Ready (Observed) with 3/3", |s| {
        s.status.as_ref().is_some_and(|st| {
            condition(&st.common.conditions, "Ready") == Some(("True".into(), "Observed".into()))
                && st.members.as_ref().map(|m| m.summary.as_str()) == Some("3/3")
        })
    })
    .await;
    let st = s.status.expect("status");
    assert_eq!(st.common.id.as_deref(), Some(href.as_str()));
    assert_eq!(st.machines.iter().filter_map(|m| m.member.name.as_deref()).collect::<Vec<_>>(), ["web1", "web2"]);
    delete_and_wait(&systems, "legacy-view").await;
    assert_eq!(sim.stats().writes, writes, "an ObserveOnly system made provider writes");

    // Managed, by href, deletionPolicy Orphan: tagged while managed (its own properties kept); left in place
    // and untagged when the object goes.
    let managed = importing(&op, "legacy", &provider, json!({"href": href}), "Managed");
    systems.create(&PostParams::default(), &managed).await.expect("create the manager");
    let s = wait_system(&systems, "legacy", "legacy Ready (Available)", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| condition(&st.common.conditions, "Ready") == Some(("True".into(), "Available".into())))
    })
    .await;
    let url = cimi.resolve(&href).await.expect("href");
    let doc = cimi.get_value(&url).await.expect("the system");
    assert_eq!(doc["properties"]["cimi.dev/uid"], json!(s.metadata.uid.clone().expect("uid")));
    assert_eq!(doc["properties"]["owner"], "ops", "the provider's own properties are kept");
    assert_eq!(doc["name"], "legacy", "an imported system keeps its name");
    delete_and_wait(&systems, "legacy").await;
    let doc = cimi.get_value(&url).await.expect("the system is still there");
    let props = doc["properties"].as_object().cloned().unwrap_or_default();
    assert!(props.keys().all(|k| !k.starts_with("cimi.dev/")), "tags removed: {props:?}");
    assert_eq!(props.get("owner"), Some(&json!("ops")));
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "its members stay too");
}
