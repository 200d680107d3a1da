//! CimiMachine on cimi-sim: the whole lifecycle (a template by value, a volume and a network, power
//! state through actions, a one-shot restart, a partial update, attach and detach of volumes,
//! interfaces added and removed, deletion of everything) on each sim profile; drift corrected under Managed; force-orphan and pause.

use std::time::Duration;

use cimi_operator::api::common::{CatalogRef, LocalObjectRef, ProviderRef, SecretRef};
use cimi_operator::api::machine::{MachineNetworkInterface, MachineVolume};
use cimi_operator::api::network::NetworkType;
use cimi_operator::api::{
    CimiMachine, CimiNetwork, CimiNetworkSpec, CimiProvider, CimiVolume, CimiVolumeSpec, PowerState,
};
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Profile, Sim, SimConfig, Timing};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::events::events_about;
use crate::harness::objects::{machine, secret};
use crate::harness::operator::TestOperator;
use crate::harness::sim::{fault, provider_list, ready_provider, sim_client};
use crate::harness::tools::run_tool;
use crate::harness::wait::{condition, eventually, machine_ready, wait_machine};

const T: Duration = Duration::from_secs(60);

/// The machine of these tests: a front end from the catalog, logging in with the Secret `login`.
fn front_end(op: &TestOperator, name: &str, provider: &str) -> CimiMachine {
    let mut m = machine(op, name, provider);
    m.spec.description = Some("front end".into());
    m.spec.template.as_mut().expect("template").credential_secret_ref = Some(SecretRef::new("login"));
    m
}

fn state(m: &CimiMachine) -> Option<&str> {
    m.status.as_ref()?.common.state.as_deref()
}

#[tokio::test]
async fn machine_lifecycle_on_the_strict_profile() {
    lifecycle(Profile::Strict).await;
}

#[tokio::test]
async fn machine_lifecycle_on_the_no_jobs_profile() {
    lifecycle(Profile::NoJobs).await;
}

#[tokio::test]
async fn machine_lifecycle_on_the_lenient_1x_profile() {
    lifecycle(Profile::Lenient1x).await;
}

/// The whole lifecycle against one sim profile: a machine with a volume and a network, created from a
/// template by value; stop and start through powerState; restart through the annotation; a partial
/// update; attach and detach; deletion of everything, with nothing left on the provider.
async fn lifecycle(profile: Profile) {
    let client = client().await;
    let ns = TestNamespace::new(&client, "mach").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { profile, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let login = secret("login", None, &[("userID", "admin"), ("password", "s3cret-login")]);
    secrets.create(&PostParams::default(), &login).await.expect("login secret");

    // A network and two volumes.
    let networks: Api<CimiNetwork> = Api::namespaced(client.clone(), &ns.name);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    for name in ["net", "net2"] {
        let mut net = CimiNetwork::new(
            name,
            CimiNetworkSpec {
                provider_ref: ProviderRef::cluster(provider.clone()),
                network_type: Some(NetworkType::Private),
                ..Default::default()
            },
        );
        net.metadata.labels = Some(op.labels());
        networks.create(&PostParams::default(), &net).await.expect("network");
    }
    for name in ["data", "extra"] {
        let mut v = CimiVolume::new(
            name,
            CimiVolumeSpec {
                provider_ref: ProviderRef::cluster(provider.clone()),
                capacity: Some(Quantity("1Gi".into())),
                ..Default::default()
            },
        );
        v.metadata.labels = Some(op.labels());
        volumes.create(&PostParams::default(), &v).await.expect("volume");
    }

    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = front_end(&op, "web-1", &provider);
    m.spec.volumes = vec![MachineVolume {
        volume_ref: LocalObjectRef { name: "data".into() },
        initial_location: Some("/dev/vdb".into()),
    }];
    m.spec.network_interfaces = vec![MachineNetworkInterface { network_ref: LocalObjectRef { name: "net".into() } }];
    machines.create(&PostParams::default(), &m).await.expect("create machine");

    // Created, started, with the config's cpu and memory, its volume and an address on its network.
    let m = wait_machine(&machines, "web-1", "web-1 STARTED and Ready with an IP", |m| {
        state(m) == Some("STARTED") && machine_ready(m) && m.status.as_ref().is_some_and(|s| s.ip.is_some())
    })
    .await;
    let st = m.status.clone().expect("status");
    assert_eq!(st.cpu, Some(1));
    assert_eq!(st.memory.as_deref(), Some("8000000Ki"), "8000000 KiB, as a quantity");
    assert!(st.common.id.as_deref().is_some_and(|id| id.starts_with(&sim.url())), "{:?}", st.common.id);
    if profile == Profile::Strict {
        let job = st.common.job.clone().expect("the create Job is recorded");
        assert_eq!(job.state.as_deref(), Some("SUCCESS"));
    }
    assert_eq!(st.common.observed_generation, m.metadata.generation);
    assert!(m.metadata.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == "cimi.dev/cleanup")));
    let href_of = |name: &'static str| {
        let volumes = volumes.clone();
        async move { volumes.get(name).await.expect("volume").status.and_then(|s| s.common.id).expect("volume id") }
    };
    let (data, extra) = (href_of("data").await, href_of("extra").await);
    assert_eq!(st.volumes.iter().filter_map(|v| v.href.clone()).collect::<Vec<_>>(), vec![data.clone()]);
    assert_eq!(st.volumes[0].initial_location.as_deref(), Some("/dev/vdb"));
    assert_eq!(st.network_interfaces.len(), 1);
    let text = serde_json::to_string(&m).expect("json");
    assert!(!text.contains("s3cret-login"), "a secret leaked into the object");

    // Exactly one provider machine, tagged with the object's UID.
    let on_provider = provider_list(&cimi, "machines").await;
    assert_eq!(on_provider.len(), 1, "{on_provider:?}");
    let uid = m.metadata.uid.clone().expect("uid");
    assert_eq!(on_provider[0]["properties"]["cimi.dev/uid"], json!(uid));
    assert_eq!(on_provider[0]["properties"]["cimi.dev/name"], json!("web-1"));
    assert_eq!(on_provider[0]["description"], json!("front end"));

    // Stop through powerState.
    machines
        .patch("web-1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Stopped"}})))
        .await
        .expect("stop");
    wait_machine(&machines, "web-1", "web-1 STOPPED", |m| state(m) == Some("STOPPED") && machine_ready(m)).await;

    // Start again, then restart through the annotation.
    machines
        .patch("web-1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"powerState": "Started"}})))
        .await
        .expect("start");
    wait_machine(&machines, "web-1", "web-1 STARTED again", |m| state(m) == Some("STARTED") && machine_ready(m)).await;
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cimi.dev/action": "restart@1"}}})),
        )
        .await
        .expect("restart");
    let m = wait_machine(&machines, "web-1", "restart@1 Succeeded", |m| {
        m.status
            .as_ref()
            .and_then(|s| s.common.last_action.as_ref())
            .is_some_and(|a| a.nonce == "1" && a.phase == "Succeeded")
    })
    .await;
    let last = m.status.and_then(|s| s.common.last_action).expect("last action");
    assert_eq!(last.action, "restart");
    assert_eq!(last.job.is_some(), profile == Profile::Strict);
    wait_machine(&machines, "web-1", "web-1 STARTED after the restart", |m| {
        state(m) == Some("STARTED") && machine_ready(m)
    })
    .await;

    // A partial update of the description and properties, tags kept.
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"description": "web front", "properties": {"team": "a"}}})),
        )
        .await
        .expect("update");
    eventually("the description and properties on the provider", T, || async {
        let m = provider_list(&cimi, "machines").await.into_iter().next()?;
        (m["description"] == json!("web front")
            && m["properties"]["team"] == json!("a")
            && m["properties"]["cimi.dev/uid"] == json!(uid))
        .then_some(())
    })
    .await;

    // Attach the second volume, then detach the first.
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"volumes": [
                {"volumeRef": {"name": "data"}, "initialLocation": "/dev/vdb"},
                {"volumeRef": {"name": "extra"}, "initialLocation": "/dev/vdc"}
            ]}})),
        )
        .await
        .expect("attach");
    let attached = |hrefs: Vec<String>| {
        move |m: &CimiMachine| {
            let mut seen: Vec<String> = m
                .status
                .as_ref()
                .map(|s| s.volumes.iter().filter_map(|v| v.href.clone()).collect())
                .unwrap_or_default();
            seen.sort();
            let mut want = hrefs.clone();
            want.sort();
            seen == want && machine_ready(m)
        }
    };
    wait_machine(&machines, "web-1", "both volumes attached", attached(vec![data.clone(), extra.clone()])).await;
    // Each volume names the machine that holds it, in status and in `kubectl get -o wide`'s ATTACHED column.
    for name in ["data", "extra"] {
        eventually(&format!("{name} attached to web-1 in status"), T, || async {
            let v = volumes.get(name).await.ok()?;
            (v.status?.attached_to == vec!["web-1".to_string()]).then_some(())
        })
        .await;
    }
    let (ok, out, err) = run_tool(Tool::Kubectl, &["get", "cimivolumes", "-o", "wide", "-n", &ns.name], None);
    assert!(ok, "kubectl get cimivolumes -o wide: {err}");
    let header: Vec<&str> = out.lines().next().unwrap_or_default().split_whitespace().collect();
    let column = header.iter().position(|h| *h == "ATTACHED").expect("an ATTACHED column");
    for line in out.lines().skip(1) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.get(column).copied(), Some("web-1"), "ATTACHED of {line:?} in\n{out}");
    }
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"volumes": [{"volumeRef": {"name": "extra"}, "initialLocation": "/dev/vdc"}]}}),
            ),
        )
        .await
        .expect("detach");
    wait_machine(&machines, "web-1", "only extra attached", attached(vec![extra.clone()])).await;
    // The detached volume is released: no longer held by the machine.
    eventually("data released (no in-use finalizer)", T, || async {
        let v = volumes.get("data").await.ok()?;
        (!v.metadata.finalizers.unwrap_or_default().iter().any(|f| f == "cimi.dev/in-use")).then_some(())
    })
    .await;

    // Connect a second network, then disconnect the first.
    let net_href = |name: &'static str| {
        let networks = networks.clone();
        async move { networks.get(name).await.expect("network").status.and_then(|s| s.common.id).expect("network id") }
    };
    let (net1, net2) = (net_href("net").await, net_href("net2").await);
    let connected = |hrefs: Vec<String>| {
        move |m: &CimiMachine| {
            let mut seen: Vec<String> = m
                .status
                .as_ref()
                .map(|s| s.network_interfaces.iter().filter_map(|n| n.href.clone()).collect())
                .unwrap_or_default();
            seen.sort();
            let mut want = hrefs.clone();
            want.sort();
            seen == want && machine_ready(m)
        }
    };
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"networkInterfaces": [{"networkRef": {"name": "net"}}, {"networkRef": {"name": "net2"}}]}})),
        )
        .await
        .expect("connect");
    wait_machine(&machines, "web-1", "interfaces on both networks", connected(vec![net1.clone(), net2.clone()])).await;
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"networkInterfaces": [{"networkRef": {"name": "net2"}}]}})),
        )
        .await
        .expect("disconnect");
    let m = wait_machine(&machines, "web-1", "an interface on net2 only", connected(vec![net2.clone()])).await;
    assert!(m.status.as_ref().is_some_and(|s| s.ip.is_some()), "the new interface has an address");

    // Delete everything at once: the volumes and networks wait for the machine, then all go.
    let dp = DeleteParams::default();
    for name in ["data", "extra"] {
        volumes.delete(name, &dp).await.expect("delete volume");
    }
    for name in ["net", "net2"] {
        networks.delete(name, &dp).await.expect("delete network");
    }
    machines.delete("web-1", &dp).await.expect("delete");
    eventually("every object gone", T, || async {
        let gone = machines.list(&Default::default()).await.ok()?.items.is_empty()
            && volumes.list(&Default::default()).await.ok()?.items.is_empty()
            && networks.list(&Default::default()).await.ok()?.items.is_empty();
        gone.then_some(())
    })
    .await;
    for collection in ["machines", "volumes", "networks"] {
        assert!(provider_list(&cimi, collection).await.is_empty(), "{collection} left on the provider");
    }
    if profile == Profile::Lenient1x {
        // This provider deletes only stopped machines: the running web-1 was stopped first, and an Event said so.
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
        let list = events.list(&Default::default()).await.expect("events");
        let step = list.items.iter().find(|e| {
            e.reason.as_deref() == Some("DeleteStep")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web-1")
        });
        let note = step.and_then(|e| e.note.clone()).unwrap_or_default();
        assert!(note.contains("stop requested first"), "a DeleteStep Event on web-1 naming the stop: {note:?}");
    }

    // The provider is no longer referenced: it can go.
    let providers: Api<CimiProvider> = Api::all(client.clone());
    providers.delete(&provider, &DeleteParams::default()).await.expect("delete provider");
    eventually("the provider to be gone", T, || async {
        providers.get_opt(&provider).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// Drift made on the provider behind the operator's back (power state, name, description,
/// properties) is corrected under Managed.
#[tokio::test]
async fn drift_is_corrected_under_managed() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "drift").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = front_end(&op, "drifty", &provider);
    m.spec.template.as_mut().expect("template").credential_secret_ref = None;
    m.spec.properties = Some([("team".to_string(), "a".to_string())].into_iter().collect());
    machines.create(&PostParams::default(), &m).await.expect("create");
    let m =
        wait_machine(&machines, "drifty", "drifty STARTED", |m| state(m) == Some("STARTED") && machine_ready(m)).await;
    let uid = m.metadata.uid.clone().expect("uid");
    let href = m.status.and_then(|s| s.common.id).expect("id");
    let url = cimi.resolve(&href).await.expect("href");

    // Someone stops the machine and edits it by hand.
    let current = cimi.get_value(&url).await.expect("get");
    cimi.action(&current, "stop", serde_json::Map::new()).await.expect("stop by hand");
    let mut props = current["properties"].as_object().cloned().expect("properties");
    props.insert("team".into(), json!("b"));
    props.insert("added".into(), json!("by hand"));
    let mut changes = serde_json::Map::new();
    changes.insert("name".into(), json!("renamed"));
    changes.insert("description".into(), json!("changed by hand"));
    changes.insert("properties".into(), json!(props));
    cimi.update(&cimi.get_value(&url).await.expect("get"), &changes, &[]).await.expect("edit by hand");
    assert_eq!(cimi.get_value(&url).await.expect("get")["state"], json!("STOPPED"));

    // The operator puts everything back.
    eventually("the drift corrected on the provider", T, || async {
        let now = cimi.get_value(&url).await.ok()?;
        (now["state"] == json!("STARTED")
            && now["name"] == json!("drifty")
            && now["description"] == json!("front end")
            && now["properties"]["team"] == json!("a")
            && now["properties"].get("added").is_none()
            && now["properties"]["cimi.dev/uid"] == json!(uid))
        .then_some(())
    })
    .await;
    wait_machine(&machines, "drifty", "drifty Ready again", |m| state(m) == Some("STARTED") && machine_ready(m)).await;
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1);
}

#[tokio::test]
async fn paused_force_orphan_and_in_use_provider() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "mach2").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let providers: Api<CimiProvider> = Api::all(client.clone());

    // A paused machine is not created, and says so.
    let mut m = front_end(&op, "db-1", &provider);
    m.spec.template.as_mut().expect("template").credential_secret_ref = None;
    m.spec.power_state = PowerState::Stopped;
    m.metadata.annotations = Some([("cimi.dev/paused".to_string(), "true".to_string())].into_iter().collect());
    machines.create(&PostParams::default(), &m).await.expect("create");
    wait_machine(&machines, "db-1", "Synced=False Paused", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| condition(&s.common.conditions, "Synced") == Some(("False".into(), "Paused".into())))
    })
    .await;
    assert!(provider_list(&cimi, "machines").await.is_empty());

    // Unpaused: created, and the provider is held by the in-use finalizer.
    machines
        .patch(
            "db-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cimi.dev/paused": null}}})),
        )
        .await
        .expect("unpause");
    wait_machine(&machines, "db-1", "db-1 STOPPED and Ready", |m| state(m) == Some("STOPPED") && machine_ready(m))
        .await;
    eventually("the provider InUse", T, || async {
        let p = providers.get(&provider).await.ok()?;
        let st = p.status?;
        (condition(&st.conditions, "InUse") == Some(("True".into(), "Referenced".into()))
            && p.metadata.finalizers.unwrap_or_default().iter().any(|f| f == "cimi.dev/in-use"))
        .then_some(())
    })
    .await;
    providers.delete(&provider, &DeleteParams::default()).await.expect("delete provider");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(providers.get_opt(&provider).await.expect("get").is_some(), "a referenced provider must stay");

    // Force-orphan: the object goes without provider calls; the machine stays on the provider.
    machines
        .patch(
            "db-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cimi.dev/force-orphan": "true"}}})),
        )
        .await
        .expect("force-orphan");
    machines.delete("db-1", &DeleteParams::default()).await.expect("delete");
    eventually("db-1 to be gone", T, || async { machines.get_opt("db-1").await.ok()?.is_none().then_some(()) }).await;
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1, "force-orphan must not delete on the provider");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    let found = eventually("a ForceOrphaned Event", T, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("ForceOrphaned"))
    })
    .await;
    assert_eq!(found.type_.as_deref(), Some("Warning"));

    // Now nothing references the provider: it goes.
    eventually("the provider to be gone", T, || async {
        providers.get_opt(&provider).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// A provider that offers no way to delete a machine (cimi-sim withholds delete and stop from it, on the 1.x-era
/// profile that deletes only stopped machines): the deletion stalls with DeleteNotOffered, the message and an Event
/// naming the fix, and `cimi.dev/force-orphan` releases the object, leaving the machine on the provider.
#[tokio::test]
async fn a_machine_the_provider_offers_no_way_to_delete_stalls_until_force_orphaned() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "mach5").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { profile: Profile::Lenient1x, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = front_end(&op, "stuck-1", &provider);
    m.spec.template.as_mut().expect("template").credential_secret_ref = None;
    machines.create(&PostParams::default(), &m).await.expect("create");
    wait_machine(&machines, "stuck-1", "stuck-1 STARTED and Ready", |m| {
        state(m) == Some("STARTED") && machine_ready(m)
    })
    .await;
    sim.set_faults(vec![fault(json!({"resourceType": "Machine", "name": "stuck-*", "kind": "withhold",
        "operations": ["delete", "stop"]}))]);

    machines.delete("stuck-1", &DeleteParams::default()).await.expect("delete");
    let m = wait_machine(&machines, "stuck-1", "Stalled DeleteNotOffered", |m| {
        m.status.as_ref().is_some_and(|s| {
            condition(&s.common.conditions, "Stalled") == Some(("True".into(), "DeleteNotOffered".into()))
        })
    })
    .await;
    let stalled = m.status.expect("status").common.conditions.into_iter().find(|c| c.type_ == "Stalled");
    let message = stalled.map(|c| c.message).unwrap_or_default();
    assert!(
        message.contains("STARTED") && message.contains("cimi.dev/force-orphan"),
        "the state and the fix are named: {message}"
    );
    let events = events_about(&client, &ns.name, "stuck-1").await;
    assert!(events.iter().any(|(r, n)| r == "DeleteNotOffered" && n.contains("force-orphan")), "{events:?}");
    assert!(!events.iter().any(|(r, _)| r == "DeleteStep"), "no step taken where none is offered: {events:?}");

    machines
        .patch(
            "stuck-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"cimi.dev/force-orphan": "true"}}})),
        )
        .await
        .expect("force-orphan");
    eventually("stuck-1 to be gone", T, || async { machines.get_opt("stuck-1").await.ok()?.is_none().then_some(()) })
        .await;
    let left = provider_list(&cimi, "machines").await;
    assert_eq!(left.len(), 1, "force-orphan leaves the machine on the provider: {left:?}");
    assert_eq!(left[0]["state"], "STARTED");
}

#[tokio::test]
async fn a_bad_catalog_name_stalls_and_deletion_is_not_blocked() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "mach3").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = front_end(&op, "bad-1", &provider);
    let template = m.spec.template.as_mut().expect("template");
    template.credential_secret_ref = None;
    template.machine_image = Some(CatalogRef::by_name("No Such Image"));
    machines.create(&PostParams::default(), &m).await.expect("create");
    let m = wait_machine(&machines, "bad-1", "Stalled=True CatalogEntryNotFound", |m| {
        m.status.as_ref().is_some_and(|s| {
            condition(&s.common.conditions, "Stalled") == Some(("True".into(), "CatalogEntryNotFound".into()))
        })
    })
    .await;
    let st = m.status.expect("status");
    let ready = st.common.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "CatalogEntryNotFound"));
    assert!(ready.message.contains("No Such Image"), "{}", ready.message);
    assert!(provider_list(&cimi, "machines").await.is_empty());
    machines.delete("bad-1", &DeleteParams::default()).await.expect("delete");
    eventually("bad-1 gone", T, || async { machines.get_opt("bad-1").await.ok()?.is_none().then_some(()) }).await;
}

#[tokio::test]
async fn capture_makes_a_machine_image_and_a_refused_action_fails_once() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "mach-capture").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = front_end(&op, "cap-1", &provider);
    m.spec.template.as_mut().expect("template").credential_secret_ref = None;
    machines.create(&PostParams::default(), &m).await.expect("create");
    let m = wait_machine(&machines, "cap-1", "Ready", machine_ready).await;
    let machine_href = m.status.and_then(|s| s.common.id).expect("id");
    let annotate = |value: &str| Patch::Merge(json!({"metadata": {"annotations": {"cimi.dev/action": value}}}));

    // capture: a MachineImage whose imageLocation is the machine; its href is the action's result.
    machines.patch("cap-1", &PatchParams::default(), &annotate("capture@c1")).await.expect("capture");
    let done = wait_machine(&machines, "cap-1", "capture@c1 Succeeded with a result", |m| {
        m.status
            .as_ref()
            .and_then(|s| s.common.last_action.as_ref())
            .is_some_and(|a| a.nonce == "c1" && a.phase == "Succeeded" && a.result.is_some())
    })
    .await;
    let result = done.status.and_then(|s| s.common.last_action).and_then(|a| a.result).expect("result");
    let image = cimi.get_value(&url::Url::parse(&result).expect("href")).await.expect("the image");
    assert_eq!(
        image["imageLocation"]["href"].as_str().or(image["imageLocation"].as_str()),
        Some(machine_href.as_str())
    );
    assert_eq!(image["name"], "cap-1-c1");

    // A restart the provider refuses for good: Failed once with its message, and not asked again.
    sim.set_faults(vec![cimi_operator::sim::FaultRule {
        method: Some("POST".into()),
        resource_type: Some("Machine".into()),
        action: Some("restart".into()),
        name: None,
        rate: None,
        times: None,
        kind: cimi_operator::sim::FaultKind::Error { status: 400 },
        window_start: None,
    }]);
    machines.patch("cap-1", &PatchParams::default(), &annotate("restart@r1")).await.expect("restart");
    let failed = wait_machine(&machines, "cap-1", "restart@r1 Failed", |m| {
        m.status
            .as_ref()
            .and_then(|s| s.common.last_action.as_ref())
            .is_some_and(|a| a.nonce == "r1" && a.phase == "Failed")
    })
    .await;
    let message = failed.status.and_then(|s| s.common.last_action).and_then(|a| a.message).expect("message");
    assert!(message.contains("refused restart") && message.contains("400"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarts: u64 = sim.stats().requests.get("Machine.restart").map_or(0, |s| s.values().sum());
    assert_eq!(restarts, 1, "the refused nonce is not asked again");
    wait_machine(&machines, "cap-1", "still Ready", machine_ready).await;
}
