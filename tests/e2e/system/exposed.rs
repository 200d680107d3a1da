//! A CimiSystem's members exposed as objects of their own (`exposeMembers`): read-only imports owned by the system,
//! Ready without a provider write, removed when turned off and garbage-collected with the system.

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::api::system::SystemMember;
use cimi_operator::sim::{Sim, SimConfig, SimHandle};
use kube::ResourceExt as _;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::examples::example_system;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{assert_nothing_left, ready_provider, sim_client};
use crate::harness::systems::{delete_and_wait, members_ready, system_ready, wait_system};
use crate::harness::wait::{eventually, is_ready};

const T: Duration = Duration::from_secs(90);

/// The exposed member objects of `shop`: (kind/name, import href, owner uid) of each.
async fn exposed(client: &kube::Client, ns: &str) -> Vec<(String, String, String)> {
    use cimi_operator::api::{CimiMachine, CimiNetwork, CimiVolume};
    let lp = ListParams::default().labels("cimi.dev/system=shop");
    let mut out = Vec::new();
    let owner = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
        refs.iter().find(|r| r.kind == "CimiSystem").map(|r| r.uid.clone()).unwrap_or_default()
    };
    for m in Api::<CimiMachine>::namespaced(client.clone(), ns).list(&lp).await.expect("machines").items {
        assert_eq!(m.spec.management_policy, cimi_operator::api::common::ManagementPolicy::ObserveOnly);
        assert_eq!(m.spec.deletion_policy, cimi_operator::api::common::DeletionPolicy::Orphan);
        let href = m.spec.import.clone().and_then(|i| i.href).unwrap_or_default();
        out.push((format!("CimiMachine/{}", m.name_any()), href, owner(m.owner_references())));
    }
    for v in Api::<CimiVolume>::namespaced(client.clone(), ns).list(&lp).await.expect("volumes").items {
        let href = v.spec.import.clone().and_then(|i| i.href).unwrap_or_default();
        out.push((format!("CimiVolume/{}", v.name_any()), href, owner(v.owner_references())));
    }
    for n in Api::<CimiNetwork>::namespaced(client.clone(), ns).list(&lp).await.expect("networks").items {
        let href = n.spec.import.clone().and_then(|i| i.href).unwrap_or_default();
        out.push((format!("CimiNetwork/{}", n.name_any()), href, owner(n.owner_references())));
    }
    out.sort();
    out
}

async fn ready_exposed_system(
    client: &kube::Client,
    op: &TestOperator,
    ns: &str,
    sim: &SimHandle,
) -> (Api<CimiSystem>, CimiSystem) {
    let provider = ready_provider(client, op, ns, sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), ns);
    systems.create(&PostParams::default(), &example_system(op, &provider)).await.expect("create the system");
    wait_system(&systems, "shop", "shop Ready", |s| system_ready(s) && members_ready(s) == Some("4/4")).await;
    systems
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": {"exposeMembers": true}})))
        .await
        .expect("expose the members");
    let s = wait_system(&systems, "shop", "four exposed members in status", |s| {
        s.status.as_ref().is_some_and(|st| st.exposed.len() == 4)
    })
    .await;
    (systems, s)
}

#[tokio::test]
async fn exposed_members_appear_read_only_and_are_garbage_collected() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysexp").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let writes_before = sim.stats().writes;
    let (systems, s) = ready_exposed_system(&client, &op, &ns.name, &sim).await;
    let writes_ready = sim.stats().writes;
    assert!(writes_ready > writes_before, "the system was created");
    let uid = s.uid().expect("uid");
    let st = s.status.clone().expect("status");
    let objects = exposed(&client, &ns.name).await;
    let names: Vec<&str> = objects.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(
        names,
        ["CimiMachine/shop-web1", "CimiMachine/shop-web2", "CimiNetwork/shop-net", "CimiVolume/shop-data"]
    );
    for (name, href, owner) in &objects {
        assert_eq!(owner, &uid, "{name} is owned by the system");
        let all: Vec<&SystemMember> = st.all_members().collect();
        assert!(all.iter().any(|m| &m.href == href), "{name} imports a member: {href}");
    }
    // Their controllers see them for a while: not one provider write comes of it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sim.stats().writes, writes_ready, "the exposed members made provider writes");

    // Turned off, they go; turned on again, they come back.
    let set = |on: bool| json!({"spec": {"exposeMembers": on}});
    systems.patch("shop", &PatchParams::default(), &Patch::Merge(set(false))).await.expect("hide the members");
    eventually("the exposed objects deleted", T, || async {
        exposed(&client, &ns.name).await.is_empty().then_some(())
    })
    .await;
    systems.patch("shop", &PatchParams::default(), &Patch::Merge(set(true))).await.expect("expose again");
    eventually("the exposed objects back", T, || async { (exposed(&client, &ns.name).await.len() == 4).then_some(()) })
        .await;

    // Deleting the system: the members go on the provider, and the garbage collector removes the objects.
    delete_and_wait(&systems, "shop").await;
    eventually("the exposed objects garbage-collected", T, || async {
        exposed(&client, &ns.name).await.is_empty().then_some(())
    })
    .await;
    assert_nothing_left(&cimi).await;
}

#[tokio::test]
async fn exposed_members_become_ready_without_provider_writes() {
    use cimi_operator::api::{CimiMachine, CimiNetwork, CimiVolume};
    let client = client().await;
    let ns = TestNamespace::new(&client, "sysexp2").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let (_systems, _) = ready_exposed_system(&client, &op, &ns.name, &sim).await;
    let writes = sim.stats().writes;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let networks: Api<CimiNetwork> = Api::namespaced(client.clone(), &ns.name);
    let ready =
        |c: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>| c.is_some_and(|c| is_ready(c));
    eventually("the exposed members Ready", T, || async {
        let mut all = true;
        for name in ["shop-web1", "shop-web2"] {
            let m = machines.get(name).await.ok()?;
            all &= ready(m.status.as_ref().map(|s| &s.common.conditions))
                && m.status.as_ref().and_then(|s| s.common.state.as_deref()) == Some("STARTED");
        }
        let v = volumes.get("shop-data").await.ok()?;
        all &= ready(v.status.as_ref().map(|s| &s.common.conditions));
        let n = networks.get("shop-net").await.ok()?;
        all &= ready(n.status.as_ref().map(|s| &s.common.conditions));
        all.then_some(())
    })
    .await;
    assert_eq!(sim.stats().writes, writes, "the exposed members made provider writes");
}
