//! The quickstart of `examples/quickstart/`, applied as a user would (against an in-process sim instead
//! of the one on 127.0.0.1:8780): everything becomes Ready, the machine runs with an IP, stops, starts
//! and restarts, and deleting everything removes everything on the provider.

use std::time::Duration;

use cimi_operator::api::{CimiMachine, CimiNetwork, CimiSystem, CimiVolume};
use cimi_operator::sim::{Sim, SimConfig};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::examples::apply_quickstart;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{provider_list, sim_client};
use crate::harness::wait::{eventually, is_ready, wait_machine, wait_ready};

const T: Duration = Duration::from_secs(90);

#[tokio::test]
async fn quickstart_end_to_end() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "quick").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = format!("demo-{}", random_suffix());

    // Apply the manifests, scoped to this test: its namespace, its label, its sim.
    apply_quickstart(&client, &ns.name, &op.label, &provider, &sim.url()).await;

    // Everything Ready.
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    wait_ready(&providers, &provider, "True", "Reachable").await;
    let networks: Api<CimiNetwork> = Api::namespaced(client.clone(), &ns.name);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let net = eventually("demo-net Ready", T, || async {
        let n = networks.get("demo-net").await.ok()?;
        n.status.as_ref().is_some_and(|s| is_ready(&s.common.conditions)).then_some(n)
    })
    .await;
    let vol = eventually("demo-data Ready", T, || async {
        let v = volumes.get("demo-data").await.ok()?;
        v.status.as_ref().is_some_and(|s| is_ready(&s.common.conditions)).then_some(v)
    })
    .await;
    let vol_status = vol.status.expect("volume status");
    assert_eq!(vol_status.capacity.as_deref(), Some("10737419k"), "10Gi in kB, as a quantity");
    assert_eq!(vol_status.common.state.as_deref(), Some("AVAILABLE"));
    let m = wait_machine(&machines, "web-1", "web-1 STARTED, Ready, with an IP", |m| {
        m.status.as_ref().is_some_and(|s| {
            s.common.state.as_deref() == Some("STARTED") && is_ready(&s.common.conditions) && s.ip.is_some()
        })
    })
    .await;
    let st = m.status.expect("status");
    assert_eq!((st.cpu, st.memory.as_deref()), (Some(1), Some("8000000Ki")));
    assert_eq!(st.network_interfaces.len(), 1);
    assert_eq!(st.network_interfaces[0].href, net.status.and_then(|s| s.common.id));
    assert_eq!(st.volumes.len(), 1, "{:?}", st.volumes);
    assert_eq!(st.volumes[0].href, vol_status.common.id);
    assert_eq!(st.volumes[0].initial_location.as_deref(), Some("/dev/vdb"));
    // The volume is held by the machine.
    let vol = volumes.get("demo-data").await.expect("volume");
    assert!(vol.metadata.finalizers.unwrap_or_default().iter().any(|f| f == "cimi.dev/in-use"));

    // Stop, start, restart.
    let merge = |v: serde_json::Value| Patch::Merge(v);
    machines
        .patch("web-1", &PatchParams::default(), &merge(json!({"spec": {"powerState": "Stopped"}})))
        .await
        .expect("stop");
    wait_machine(&machines, "web-1", "web-1 STOPPED", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| s.common.state.as_deref() == Some("STOPPED") && is_ready(&s.common.conditions))
    })
    .await;
    machines
        .patch("web-1", &PatchParams::default(), &merge(json!({"spec": {"powerState": "Started"}})))
        .await
        .expect("start");
    wait_machine(&machines, "web-1", "web-1 STARTED", |m| {
        m.status
            .as_ref()
            .is_some_and(|s| s.common.state.as_deref() == Some("STARTED") && is_ready(&s.common.conditions))
    })
    .await;
    machines
        .patch(
            "web-1",
            &PatchParams::default(),
            &merge(json!({"metadata": {"annotations": {"cimi.dev/action": "restart@demo"}}})),
        )
        .await
        .expect("restart");
    wait_machine(&machines, "web-1", "restart@demo Succeeded", |m| {
        m.status
            .as_ref()
            .and_then(|s| s.common.last_action.as_ref())
            .is_some_and(|a| a.nonce == "demo" && a.phase == "Succeeded")
    })
    .await;

    // The system of the quickstart: Ready, all its members too.
    let systems: Api<CimiSystem> = Api::namespaced(client.clone(), &ns.name);
    eventually("the shop system Ready with 4/4 members", T, || async {
        let s = systems.get("shop").await.ok()?;
        let st = s.status.as_ref()?;
        (is_ready(&st.common.conditions) && st.members.as_ref().map(|m| m.summary.as_str()) == Some("4/4"))
            .then_some(())
    })
    .await;

    // The backups of the quickstart: a snapshot of the volume and a capture of the machine, Ready.
    let machine_images: Api<cimi_operator::api::CimiMachineImage> = Api::namespaced(client.clone(), &ns.name);
    let volume_images: Api<cimi_operator::api::CimiVolumeImage> = Api::namespaced(client.clone(), &ns.name);
    eventually("the snapshot and the capture Ready", T, || async {
        let snapshot = is_ready(&volume_images.get("demo-data-nightly").await.ok()?.status?.common.conditions);
        let capture = is_ready(&machine_images.get("web-1-golden").await.ok()?.status?.common.conditions);
        (snapshot && capture).then_some(())
    })
    .await;

    // Delete everything at once: the volume and network wait for the machine, then all go.
    let dp = DeleteParams::default();
    volume_images.delete("demo-data-nightly", &dp).await.expect("delete snapshot");
    machine_images.delete("web-1-golden", &dp).await.expect("delete capture");
    systems.delete("shop", &dp).await.expect("delete system");
    volumes.delete("demo-data", &dp).await.expect("delete volume");
    networks.delete("demo-net", &dp).await.expect("delete network");
    machines.delete("web-1", &dp).await.expect("delete machine");
    eventually("every object gone", T, || async {
        let gone = machines.get_opt("web-1").await.ok()?.is_none()
            && volumes.get_opt("demo-data").await.ok()?.is_none()
            && networks.get_opt("demo-net").await.ok()?.is_none()
            && systems.get_opt("shop").await.ok()?.is_none()
            && machine_images.get_opt("web-1-golden").await.ok()?.is_none()
            && volume_images.get_opt("demo-data-nightly").await.ok()?.is_none();
        gone.then_some(())
    })
    .await;
    for collection in ["machines", "volumes", "networks", "systems"] {
        assert!(provider_list(&cimi, collection).await.is_empty(), "{collection} left on the provider");
    }
    let orphaned = provider_list(&cimi, "volumeImages").await;
    assert!(orphaned.iter().any(|i| i["name"] == "demo-data-nightly"), "the Orphan snapshot stays: {orphaned:?}");
    providers.delete(&provider, &dp).await.expect("delete provider");
    eventually("the provider gone", T, || async { providers.get_opt(&provider).await.ok()?.is_none().then_some(()) })
        .await;
}
