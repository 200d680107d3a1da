//! CimiSystem on cimi-sim: the quickstart's system becomes Ready with its members in status and `kubectl get`;
//! a member stopped on the provider shows MIXED; `powerState: Stopped` stops every machine; deletion removes every
//! member; a nested Job failing midway names the failed component and leaves nothing behind; a create committed
//! and dropped makes exactly one system; exposed members appear read-only and are garbage-collected.

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::api::system::SystemMember;
use cimi_operator::cimi::CimiClient;
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Sim, SimConfig, SimHandle};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::events::all_mirrored_once;
use crate::harness::examples::example_system;
use crate::harness::objects::secret;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{
    credentials_secret, fault, provider_events, provider_for, provider_list, ready_provider, sim_client,
};
use crate::harness::tools::run_tool;
use crate::harness::wait::{condition, eventually, is_ready, wait_ready};

const T: Duration = Duration::from_secs(90);

/// Whether the system's status says Ready=True.
fn system_ready(s: &CimiSystem) -> bool {
    s.status.as_ref().is_some_and(|st| is_ready(&st.common.conditions))
}

fn state(s: &CimiSystem) -> Option<&str> {
    s.status.as_ref()?.common.state.as_deref()
}

fn ready_string(s: &CimiSystem) -> Option<&str> {
    s.status.as_ref()?.ready.as_deref()
}

async fn wait_system(api: &Api<CimiSystem>, name: &str, what: &str, check: impl Fn(&CimiSystem) -> bool) -> CimiSystem {
    eventually(what, T, || async {
        let s = api.get(name).await.ok()?;
        check(&s).then_some(s)
    })
    .await
}

fn member<'a>(list: &'a [SystemMember], name: &str) -> &'a SystemMember {
    list.iter().find(|m| m.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no member {name} in {list:?}"))
}

/// `kubectl get cimisystems` in the namespace, as a user reads it.
fn kubectl_get(ns: &str) -> String {
    let (ok, out, err) = run_tool(Tool::Kubectl, &["get", "cimisystems", "-n", ns], None);
    assert!(ok, "kubectl get cimisystems failed: {err}");
    out
}

async fn action(cimi: &CimiClient, href: &str, name: &str) {
    let url = cimi.resolve(href).await.expect("href");
    cimi.action_href(&url, name, Map::new()).await.unwrap_or_else(|e| panic!("{name} on {href}: {e}"));
}

/// Every collection the system's members live in is empty on the provider.
async fn assert_nothing_left(cimi: &CimiClient) {
    for collection in ["systems", "machines", "volumes", "networks"] {
        let left = provider_list(cimi, collection).await;
        assert!(left.is_empty(), "{collection} left on the provider: {left:?}");
    }
}

async fn delete_and_wait(api: &Api<CimiSystem>, name: &str) {
    api.delete(name, &DeleteParams::default()).await.expect("delete the system");
    eventually(&format!("{name} to be gone"), T, || async { api.get_opt(name).await.ok()?.is_none().then_some(()) })
        .await;
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
        system_ready(s) && ready_string(s) == Some("4/4") && state(s) == Some("STARTED")
    })
    .await;
    let st = s.status.clone().expect("status");
    assert_eq!(st.machines.len(), 2, "{:?}", st.machines);
    for name in ["web1", "web2"] {
        let m = member(&st.machines, name);
        assert_eq!(m.state.as_deref(), Some("STARTED"));
        assert!(!m.addresses.is_empty(), "{name} has an IP: {m:?}");
        assert_eq!(m.cpu, Some(1));
    }
    assert_eq!(member(&st.volumes, "data").state.as_deref(), Some("AVAILABLE"));
    assert_eq!(member(&st.networks, "net").state.as_deref(), Some("STARTED"));
    assert_eq!((st.members_ready, st.members_total), (Some(4), Some(4)));
    assert_eq!(st.member_states.get("STARTED"), Some(&3));
    assert_eq!(st.member_states.get("AVAILABLE"), Some(&1));
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
    action(&cimi, &member(&st.machines, "web1").href, "stop").await;
    let s = wait_system(&systems, "shop", "shop MIXED with 3/4 members", |s| {
        state(s) == Some("MIXED")
            && ready_string(s) == Some("3/4")
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
    action(&cimi, &hung, "stop").await;
    wait_system(&systems, "shop", "shop STARTED again", |s| {
        system_ready(s) && state(s) == Some("STARTED") && ready_string(s) == Some("4/4")
    })
    .await;

    // powerState: Stopped stops every machine.
    systems
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Stopped"}})))
        .await
        .expect("stop the system");
    let s = wait_system(&systems, "shop", "shop STOPPED", |s| system_ready(s) && state(s) == Some("STOPPED")).await;
    let st = s.status.expect("status");
    assert!(st.machines.iter().all(|m| m.state.as_deref() == Some("STOPPED")), "{:?}", st.machines);
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
        system_ready(s) && ready_string(s) == Some("4/4")
    })
    .await;
    let on_provider = provider_list(&cimi, "systems").await;
    assert_eq!(on_provider.len(), 1, "exactly one system: {on_provider:?}");
    assert_eq!(on_provider[0]["properties"]["cimi.dev/uid"], json!(s.metadata.uid.clone().expect("uid")));
    assert_eq!(s.status.and_then(|st| st.common.id), on_provider[0]["id"].as_str().map(str::to_string));
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "and exactly its two machines");
}

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
    wait_system(&systems, "shop", "shop Ready", |s| system_ready(s) && ready_string(s) == Some("4/4")).await;
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
        let all: Vec<&SystemMember> = st.machines.iter().chain(&st.volumes).chain(&st.networks).collect();
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
                && st.ready.as_deref() == Some("3/3")
        })
    })
    .await;
    let st = s.status.expect("status");
    assert_eq!(st.common.id.as_deref(), Some(href.as_str()));
    assert_eq!(st.machines.iter().filter_map(|m| m.name.as_deref()).collect::<Vec<_>>(), ["web1", "web2"]);
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
    wait_system(&systems, "shop", "shop Ready", |s| system_ready(s) && ready_string(s) == Some("4/4")).await;

    // Force-orphan: the object goes without any provider call; the system stays.
    let writes = sim.stats().writes;
    let force = json!({"metadata": {"annotations": {"cimi.dev/force-orphan": "true"}}});
    systems.patch("shop", &PatchParams::default(), &Patch::Merge(force)).await.expect("annotate");
    delete_and_wait(&systems, "shop").await;
    assert_eq!(sim.stats().writes, writes, "force-orphan made provider writes");
    assert_eq!(provider_list(&cimi, "systems").await.len(), 1, "the system stays on the provider");
    assert_eq!(provider_list(&cimi, "machines").await.len(), 2, "with its machines");
}

#[tokio::test]
async fn a_create_longer_than_its_timeout_stalls_and_deletion_still_cleans_up() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "systime").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);

    // The last component's Job never ends; the spec allows the create 3 seconds.
    sim.set_faults(vec![fault(
        json!({"resourceType": "SystemCollection", "action": "add", "kind": "jobHangs", "times": 1}),
    )]);
    let mut s = example_system(&op, &provider);
    s.spec.timeouts = Some(cimi_operator::api::common::Timeouts { create: Some("3s".into()), ..Default::default() });
    systems.create(&PostParams::default(), &s).await.expect("create the system");
    let s = wait_system(&systems, "shop", "Stalled=True Timeout", |s| {
        s.status
            .as_ref()
            .is_some_and(|st| condition(&st.common.conditions, "Stalled") == Some(("True".into(), "Timeout".into())))
    })
    .await;
    let st = s.status.expect("status");
    let hung = st
        .nested_jobs
        .iter()
        .find(|n| n.job.state.as_deref() == Some("RUNNING"))
        .unwrap_or_else(|| panic!("a running nested Job: {:?}", st.nested_jobs));
    assert_eq!(hung.component.as_deref(), Some("web2"), "the last component hangs");

    // The provider gives up; deleting the object then removes everything.
    action(&cimi, &hung.job.href, "stop").await;
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
            {"name": "admin", "credentialTemplate": {"secretRef": {"name": "login"}}},
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
        system_ready(s) && state(s) == Some("STOPPED") && ready_string(s) == Some("4/4")
    })
    .await;
    let st = s.status.clone().expect("status");
    let names: Vec<&str> = st.machines.iter().filter_map(|m| m.name.as_deref()).collect();
    assert_eq!(names, ["worker1", "worker2", "worker3"]);
    assert_eq!(member(&st.volumes, "scratch").size, Some(1_073_742), "1Gi in kB");
    assert_eq!(provider_list(&cimi, "credentials").await.len(), 1, "the credential component");
    let text = serde_json::to_string(&s).expect("json");
    assert!(!text.contains("s3cret-system"), "a secret leaked into the object");
    delete_and_wait(&systems, "batch").await;
    assert_nothing_left(&cimi).await;
    assert!(provider_list(&cimi, "credentials").await.is_empty(), "the credential is deleted with its system");
}

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
    let s = wait_system(&systems, "shop", "shop Ready with 4/4", |s| system_ready(s) && ready_string(s) == Some("4/4"))
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
    let s = wait_system(&systems, "shop", "shop Ready with 4/4", |s| system_ready(s) && ready_string(s) == Some("4/4"))
        .await;
    assert!(s.status.and_then(|st| st.common.job).is_none(), "no Job to follow");
    systems
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Stopped"}})))
        .await
        .expect("stop the system");
    wait_system(&systems, "shop", "shop STOPPED", |s| system_ready(s) && state(s) == Some("STOPPED")).await;
    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
}

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
    let mut p = provider_for(&op, &provider, &sim.url(), &ns.name, "creds");
    p.spec.poll_interval = "1s".into();
    p.spec.event_interval = "1s".into();
    providers.create(&PostParams::default(), &p).await.expect("provider");
    wait_ready(&providers, &provider, "True", "Reachable").await;
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    systems.create(&PostParams::default(), &example_system(&op, &provider)).await.expect("create the system");
    let s = wait_system(&systems, "shop", "shop Ready with 4/4 members", |s| {
        system_ready(s) && ready_string(s) == Some("4/4")
    })
    .await;
    let uid = s.metadata.uid.clone().expect("uid");
    let st = s.status.clone().expect("status");
    let mut hrefs: Vec<String> =
        st.machines.iter().chain(&st.volumes).chain(&st.networks).map(|m| m.href.clone()).collect();
    hrefs.push(st.common.id.clone().expect("the system href"));
    let web1 = member(&st.machines, "web1").href.clone();

    // The events of the system and of each member, each once, the members' notes naming them.
    let before = all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    assert!(before >= 5, "at least a create event per member and the system ({before})");
    let notes = provider_event_notes(&client, &ns.name, &uid).await;
    for named in ["machine web1: create", "machine web2: create", "volume data: create", "network net: create"] {
        assert!(notes.iter().any(|n| n.contains(named)), "a note with {named:?} in {notes:#?}");
    }

    // A member stopped on the provider: its state events show on the system, and its cursor follows.
    action(&cimi, &web1, "stop").await;
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
            && ready_string(s) == Some("4/4")
            && member(&s.status.as_ref().expect("status").machines, "web1").state.as_deref() == Some("STARTED")
    })
    .await;
    all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    eventually("web1's eventCursor is its last provider event", T, || async {
        let last = provider_events(&cimi, &web1).await.last()?["id"].as_str()?.to_string();
        let s = systems.get("shop").await.ok()?;
        let cursor = member(&s.status?.machines, "web1").event_cursor.clone()?;
        (cursor.id == last).then_some(())
    })
    .await;

    // A new operator instance (new caches) mirrors nothing twice, and what happened while none ran.
    let before = all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    drop(op);
    running.task.await.expect("join").expect("the operator stops cleanly");
    action(&cimi, &web1, "stop").await;
    let (op, _running) = TestOperator::start_configured(&ns.name, &label, |_| {}).await;
    wait_system(&systems, "shop", "shop whole after the restart", |s| {
        system_ready(s) && ready_string(s) == Some("4/4")
    })
    .await;
    let after = all_mirrored_once(&client, &cimi, &ns.name, &uid, &hrefs).await;
    assert!(after > before, "the stop made while no operator ran is mirrored: {before} -> {after}");

    delete_and_wait(&systems, "shop").await;
    assert_nothing_left(&cimi).await;
    drop(op);
}
