//! CimiMachineImage and CimiVolumeImage on cimi-sim: a running machine captured and a new machine restored from
//! the capture with the captured machine's disks; a volume snapshotted and a new volume restored from it with its
//! capacity; an image deleted while a restored object uses it waits with a reason; Orphan keeps the provider
//! image; on the strict and no-jobs profiles. A capture whose Job fails leaves a clear condition and no half-made
//! image: retried once the provider works, exactly one image is made. A snapshot whose Job hangs past its
//! timeout is stopped and gives its volume back.

use std::time::Duration;

use cimi_operator::api::common::{DeletionPolicy, LocalObjectRef, ProviderRef, Timeouts};
use cimi_operator::api::image::{MachineImageSource, VolumeImageSource};
use cimi_operator::api::machine::{DiskSpec, MachineTemplateSpec};
use cimi_operator::api::{
    CimiMachine, CimiMachineImage, CimiMachineImageSpec, CimiMachineSpec, CimiVolume, CimiVolumeImage,
    CimiVolumeImageSpec, CimiVolumeSpec,
};
use cimi_operator::cimi::CimiClient;
use cimi_operator::cimi::query::Query;
use cimi_operator::sim::{Profile, Sim, SimConfig};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::objects::{machine, volume};
use crate::harness::operator::TestOperator;
use crate::harness::sim::{fault, provider_list, provider_resource, ready_provider, sim_client};
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(90);

fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    condition(conditions, "Ready").is_some_and(|(s, _)| s == "True")
}

/// The disks of a provider machine: capacity and where they appear.
async fn disks(cimi: &CimiClient, href: &str) -> Vec<(Value, Value)> {
    let machine = provider_resource(cimi, href).await;
    let url = cimi.resolve(machine["disks"]["href"].as_str().expect("disks")).await.expect("url");
    let page = cimi.list_page_value(&url, &Query::new(), "").await.expect("disks");
    let mut out: Vec<(Value, Value)> = cimi_operator::controller::resource::reads::entries(&page)
        .into_iter()
        .map(|d| (d["capacity"].clone(), d["initialLocation"].clone()))
        .collect();
    out.sort_by_key(|d| d.1.to_string());
    out
}

#[tokio::test]
async fn capture_snapshot_and_restore_on_the_strict_profile() {
    capture_snapshot_and_restore(Profile::Strict).await;
}

#[tokio::test]
async fn capture_snapshot_and_restore_on_the_no_jobs_profile() {
    capture_snapshot_and_restore(Profile::NoJobs).await;
}

async fn capture_snapshot_and_restore(profile: Profile) {
    let client = client().await;
    let ns = TestNamespace::new(&client, "images").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { profile, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let machine_images: Api<CimiMachineImage> = Api::namespaced(client.clone(), &ns.name);
    let volume_images: Api<CimiVolumeImage> = Api::namespaced(client.clone(), &ns.name);
    let pp = PostParams::default();

    // A running machine with a disk of its own, and a volume.
    let mut source = CimiMachine::new(
        "web-1",
        CimiMachineSpec {
            provider_ref: ProviderRef::cluster(&provider),
            template: Some(MachineTemplateSpec {
                cpu: Some(1),
                memory: Some(Quantity("1Gi".into())),
                disks: Some(vec![DiskSpec {
                    capacity: Quantity("7Gi".into()),
                    format: Some("xfs".into()),
                    initial_location: Some("/dev/vdq".into()),
                }]),
                machine_image: Some(cimi_operator::api::common::CatalogRef::by_name("Linux SUSE")),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    source.metadata.labels = Some(op.labels());
    machines.create(&pp, &source).await.expect("source machine");
    volumes.create(&pp, &volume(&op, "data", &provider)).await.expect("volume");

    // Captured once the machine is Ready (the image waits for it), and snapshotted.
    let mut golden = CimiMachineImage::new(
        "golden",
        CimiMachineImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            source: Some(MachineImageSource {
                machine_ref: LocalObjectRef { name: "web-1".into() },
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    golden.metadata.labels = Some(op.labels());
    machine_images.create(&pp, &golden).await.expect("machine image");
    let mut nightly = CimiVolumeImage::new(
        "nightly",
        CimiVolumeImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            source: Some(VolumeImageSource { volume_ref: LocalObjectRef { name: "data".into() } }),
            deletion_policy: DeletionPolicy::Orphan,
            ..Default::default()
        },
    );
    nightly.metadata.labels = Some(op.labels());
    volume_images.create(&pp, &nightly).await.expect("volume image");
    let golden = eventually("golden Ready", T, || async {
        let i = machine_images.get("golden").await.ok()?;
        ready(&i.status.as_ref()?.common.conditions).then_some(i)
    })
    .await;
    let st = golden.status.clone().expect("status");
    assert_eq!(st.type_.as_deref(), Some("IMAGE"));
    assert_eq!(st.source_machine.as_deref(), Some("web-1"));
    let web1 = machines.get("web-1").await.expect("web-1").status.expect("status").common.id.expect("href");
    assert_eq!(st.image_location.as_deref(), Some(web1.as_str()), "the image says it was taken from web-1");
    let nightly = eventually("nightly Ready", T, || async {
        let i = volume_images.get("nightly").await.ok()?;
        ready(&i.status.as_ref()?.common.conditions).then_some(i)
    })
    .await;
    assert_eq!(nightly.status.as_ref().and_then(|s| s.source_volume.as_deref()), Some("data"));

    // The capture belongs to its object: not in the provider's shared catalog, so no machine of any namespace can
    // name it as a catalog image (only `imageRef`, in this namespace).
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    let catalog = providers.get(&provider).await.expect("provider").status.and_then(|s| s.catalog).expect("catalog");
    assert!(!catalog.machine_images.iter().any(|e| e.name.as_deref() == Some("golden")), "{catalog:?}");
    let mut by_name = machine(&op, "by-name", &provider);
    by_name.spec.template.as_mut().expect("template").machine_image =
        Some(cimi_operator::api::common::CatalogRef::by_name("golden"));
    machines.create(&pp, &by_name).await.expect("by-name");
    eventually("by-name refused: not a catalog image", T, || async {
        let m = machines.get("by-name").await.ok()?;
        (condition(&m.status?.common.conditions, "Ready").map(|c| c.1).as_deref() == Some("CatalogEntryNotFound"))
            .then_some(())
    })
    .await;
    machines.delete("by-name", &DeleteParams::default()).await.expect("delete by-name");

    // Restored: a machine booting the capture (with the catalog's small config, whose disk differs) and a volume.
    let mut restored = machine(&op, "web-2", &provider);
    let template = restored.spec.template.as_mut().expect("template");
    template.machine_image = None;
    template.image_ref = Some(LocalObjectRef { name: "golden".into() });
    machines.create(&pp, &restored).await.expect("restored machine");
    let mut copy = CimiVolume::new(
        "data-copy",
        CimiVolumeSpec {
            provider_ref: ProviderRef::cluster(&provider),
            image_ref: Some(LocalObjectRef { name: "nightly".into() }),
            ..Default::default()
        },
    );
    copy.metadata.labels = Some(op.labels());
    volumes.create(&pp, &copy).await.expect("restored volume");
    let web2 = eventually("web-2 Ready", T, || async {
        let m = machines.get("web-2").await.ok()?;
        let st = m.status?;
        ready(&st.common.conditions).then_some(st.common.id?)
    })
    .await;
    assert_eq!(disks(&cimi, &web2).await, disks(&cimi, &web1).await, "the restored machine has the captured disks");
    assert_eq!(disks(&cimi, &web2).await[0].1, json!("/dev/vdq"));
    let copy = eventually("data-copy Ready", T, || async {
        let v = volumes.get("data-copy").await.ok()?;
        ready(&v.status.as_ref()?.common.conditions).then_some(v)
    })
    .await;
    let data = volumes.get("data").await.expect("data").status.expect("status");
    assert_eq!(copy.status.as_ref().and_then(|s| s.capacity.clone()), data.capacity, "the snapshot's capacity");
    let copy_href = copy.status.as_ref().and_then(|s| s.common.id.clone()).expect("href");
    let nightly_href = nightly.status.as_ref().and_then(|s| s.common.id.clone()).expect("href");
    assert_eq!(provider_resource(&cimi, &copy_href).await["restoredFrom"]["href"], json!(nightly_href));
    let golden_now = machine_images.get("golden").await.expect("golden");
    assert_eq!(golden_now.status.map(|s| s.used_by), Some(vec!["web-2".to_string()]));

    // Deleted in the wrong order: the image waits for the machine restored from it, and says so.
    machine_images.delete("golden", &DeleteParams::default()).await.expect("delete golden");
    let message = eventually("golden waiting for web-2", T, || async {
        let i = machine_images.get("golden").await.ok()?;
        let c = i.status?.common.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (c.reason == "Deleting" && c.message.contains("CimiMachine web-2")).then_some(c.message)
    })
    .await;
    assert!(message.contains("in use by"), "{message}");
    machines.delete("web-2", &DeleteParams::default()).await.expect("delete web-2");
    eventually("golden gone once web-2 is", T, || async {
        machine_images.get_opt("golden").await.ok()?.is_none().then_some(())
    })
    .await;
    let golden_href = st.common.id.clone().expect("href");
    assert!(
        !provider_list(&cimi, "machineImages")
            .await
            .iter()
            .any(|i| i["id"].as_str().is_some_and(|id| golden_href.ends_with(id))),
        "the captured image is deleted on the provider"
    );

    // Orphan: the snapshot object goes (once data-copy is gone), the provider snapshot stays.
    volumes.delete("data-copy", &DeleteParams::default()).await.expect("delete data-copy");
    volume_images.delete("nightly", &DeleteParams::default()).await.expect("delete nightly");
    eventually("nightly gone", T, || async { volume_images.get_opt("nightly").await.ok()?.is_none().then_some(()) })
        .await;
    let snapshots = provider_list(&cimi, "volumeImages").await;
    assert!(
        snapshots.iter().any(|i| i["id"].as_str().is_some_and(|id| nightly_href.ends_with(id))),
        "Orphan keeps the provider snapshot: {snapshots:?}"
    );
}

/// A capture whose provider Job fails: the image says so in its conditions, and no half-made image is left.
#[tokio::test]
async fn a_failed_capture_says_so_and_leaves_no_image() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "images-fail").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let machine_images: Api<CimiMachineImage> = Api::namespaced(client.clone(), &ns.name);
    let pp = PostParams::default();
    machines.create(&pp, &machine(&op, "web-1", &provider)).await.expect("machine");
    eventually("web-1 Ready", T, || async {
        ready(&machines.get("web-1").await.ok()?.status?.common.conditions).then_some(())
    })
    .await;
    let before = provider_list(&cimi, "machineImages").await.len();
    sim.set_faults(vec![fault(
        json!({"method": "POST", "resourceType": "MachineImageCollection", "kind": "jobFails"}),
    )]);
    let mut broken = CimiMachineImage::new(
        "broken",
        CimiMachineImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            source: Some(MachineImageSource {
                machine_ref: LocalObjectRef { name: "web-1".into() },
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    broken.metadata.labels = Some(op.labels());
    machine_images.create(&pp, &broken).await.expect("image");
    let (reason, message) = eventually("broken to report its failed Job", T, || async {
        let i = machine_images.get("broken").await.ok()?;
        let c = i.status?.common.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (c.reason == "JobFailed").then_some((c.reason, c.message))
    })
    .await;
    assert_eq!(reason, "JobFailed");
    assert!(!message.is_empty());
    // Once the provider works again the capture is retried: one image, Ready, and no failed one left behind.
    sim.set_faults(vec![]);
    eventually("broken Ready after a retry", T, || async {
        ready(&machine_images.get("broken").await.ok()?.status?.common.conditions).then_some(())
    })
    .await;
    eventually("exactly one new image on the provider, none half-made", T, || async {
        let images = provider_list(&cimi, "machineImages").await;
        let half = images.iter().filter(|i| i["state"] != "AVAILABLE").count();
        (images.len() == before + 1 && half == 0).then_some(())
    })
    .await;
}

/// An existing provider image imported ObserveOnly: mirrored and Ready, and not one write to the provider.
#[tokio::test]
async fn an_image_imported_observe_only_makes_no_writes() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "images-import").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    // Registered on the provider by hand, as another tool would have.
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage", "name": "base-2026",
        "type": "IMAGE", "imageLocation": "nfs://images/base-2026.qcow2"});
    let collection = cimi.collection_url("machineImages").await.expect("collection");
    let accepted = cimi.create("machineImages", &body).await.expect("register");
    let href = cimi.created_href(&accepted, &collection).await.expect("href").expect("an href").to_string();
    let before = sim.stats().writes;

    let machine_images: Api<CimiMachineImage> = Api::namespaced(client.clone(), &ns.name);
    let mut imported = CimiMachineImage::new(
        "base",
        CimiMachineImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            import: Some(cimi_operator::api::common::ImportSpec { href: Some(href.clone()), filter: None }),
            management_policy: cimi_operator::api::common::ManagementPolicy::ObserveOnly,
            deletion_policy: DeletionPolicy::Orphan,
            ..Default::default()
        },
    );
    imported.metadata.labels = Some(op.labels());
    machine_images.create(&PostParams::default(), &imported).await.expect("import");
    let i = eventually("base Ready", T, || async {
        let i = machine_images.get("base").await.ok()?;
        ready(&i.status.as_ref()?.common.conditions).then_some(i)
    })
    .await;
    let st = i.status.expect("status");
    assert_eq!(st.common.id.as_deref(), Some(href.as_str()));
    assert_eq!(st.image_location.as_deref(), Some("nfs://images/base-2026.qcow2"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    machine_images.delete("base", &DeleteParams::default()).await.expect("delete");
    eventually("base gone", T, || async { machine_images.get_opt("base").await.ok()?.is_none().then_some(()) }).await;
    assert_eq!(sim.stats().writes, before, "ObserveOnly: no write, from import to deletion");
    assert!(provider_list(&cimi, "machineImages").await.iter().any(|m| m["name"] == "base-2026"), "the image stays");
}

/// A capture and a snapshot committed on the provider whose answers are lost (commit-then-drop), then the
/// operator replaced: each object ends with exactly one provider image, adopted by its UID tag.
#[tokio::test]
async fn commit_then_drop_on_image_creation_makes_exactly_one_image_each() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "images-crash").await;
    let first = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &first, &ns.name, &sim).await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let machine_images: Api<CimiMachineImage> = Api::namespaced(client.clone(), &ns.name);
    let volume_images: Api<CimiVolumeImage> = Api::namespaced(client.clone(), &ns.name);
    let pp = PostParams::default();
    machines.create(&pp, &machine(&first, "web-1", &provider)).await.expect("machine");
    volumes.create(&pp, &volume(&first, "data", &provider)).await.expect("volume");
    eventually("web-1 and data Ready", T, || async {
        let m = ready(&machines.get("web-1").await.ok()?.status?.common.conditions);
        let v = ready(&volumes.get("data").await.ok()?.status?.common.conditions);
        (m && v).then_some(())
    })
    .await;
    let (images_before, snapshots_before) =
        (provider_list(&cimi, "machineImages").await.len(), provider_list(&cimi, "volumeImages").await.len());
    sim.set_faults(vec![
        fault(json!({"method": "POST", "resourceType": "MachineImageCollection", "name": "golden", "times": 1,
            "kind": "commitThenDrop"})),
        fault(json!({"method": "POST", "resourceType": "VolumeImageCollection", "name": "nightly", "times": 1,
            "kind": "commitThenDrop"})),
    ]);
    let mut golden = CimiMachineImage::new(
        "golden",
        CimiMachineImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            source: Some(MachineImageSource {
                machine_ref: LocalObjectRef { name: "web-1".into() },
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    golden.metadata.labels = Some(first.labels());
    let mut nightly = CimiVolumeImage::new(
        "nightly",
        CimiVolumeImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            source: Some(VolumeImageSource { volume_ref: LocalObjectRef { name: "data".into() } }),
            ..Default::default()
        },
    );
    nightly.metadata.labels = Some(first.labels());
    machine_images.create(&pp, &golden).await.expect("golden");
    volume_images.create(&pp, &nightly).await.expect("nightly");
    eventually("both committed on the provider", T, || async {
        let images = provider_list(&cimi, "machineImages").await.len() > images_before;
        let snapshots = provider_list(&cimi, "volumeImages").await.len() > snapshots_before;
        (images && snapshots).then_some(())
    })
    .await;
    eventually("both faults fired", T, || async { sim.faults().iter().all(|r| r.times == Some(0)).then_some(()) })
        .await;
    // The operator that asked goes away; a fresh one adopts what was committed.
    let label = first.label.1.clone();
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _second = TestOperator::start_with_label(&ns.name, &label).await;
    let golden = eventually("golden Ready after the crash", T, || async {
        let i = machine_images.get("golden").await.ok()?;
        ready(&i.status.as_ref()?.common.conditions).then_some(i)
    })
    .await;
    let nightly = eventually("nightly Ready after the crash", T, || async {
        let i = volume_images.get("nightly").await.ok()?;
        ready(&i.status.as_ref()?.common.conditions).then_some(i)
    })
    .await;
    for (collection, uid) in
        [("machineImages", golden.metadata.uid.clone()), ("volumeImages", nightly.metadata.uid.clone())]
    {
        let tagged: Vec<Value> = provider_list(&cimi, collection)
            .await
            .into_iter()
            .filter(|i| i["properties"]["cimi.dev/uid"] == json!(uid.clone().expect("uid")))
            .collect();
        assert_eq!(tagged.len(), 1, "exactly one provider image in {collection}: {tagged:?}");
    }
    assert_eq!(provider_list(&cimi, "machineImages").await.len(), images_before + 1);
    assert_eq!(provider_list(&cimi, "volumeImages").await.len(), snapshots_before + 1);
}

/// A snapshot whose provider Job hangs: the volume says it is busy (`WaitingForJob`, CAPTURING) rather than
/// being made; past `spec.timeouts.create` the image's Job is stopped and the volume is given back, Ready,
/// while the image reports the timeout; once the provider works the snapshot is made. Found by the soak: the
/// volume stayed CAPTURING for ever, and the machine waiting on it never converged.
#[tokio::test]
async fn a_hung_snapshot_past_its_timeout_gives_its_volume_back() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "images-hung").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let cimi = sim_client(&sim).await;
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let volume_images: Api<CimiVolumeImage> = Api::namespaced(client.clone(), &ns.name);
    let pp = PostParams::default();
    volumes.create(&pp, &volume(&op, "data", &provider)).await.expect("volume");
    eventually("data Ready", T, || async {
        ready(&volumes.get("data").await.ok()?.status?.common.conditions).then_some(())
    })
    .await;
    sim.set_faults(vec![fault(
        json!({"method": "POST", "resourceType": "VolumeImageCollection", "kind": "jobHangs", "times": 1}),
    )]);
    let mut snap = CimiVolumeImage::new(
        "snap",
        CimiVolumeImageSpec {
            provider_ref: ProviderRef::cluster(&provider),
            source: Some(VolumeImageSource { volume_ref: LocalObjectRef { name: "data".into() } }),
            timeouts: Some(Timeouts { create: Some("5s".into()), ..Default::default() }),
            ..Default::default()
        },
    );
    snap.metadata.labels = Some(op.labels());
    volume_images.create(&pp, &snap).await.expect("volume image");
    let busy = eventually("data to say it is being snapshotted", T, || async {
        let data = volumes.get("data").await.ok()?;
        let c = data.status?.common.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (c.status == "False" && c.reason == "WaitingForJob").then_some(c.message)
    })
    .await;
    assert!(busy.contains("CAPTURING"), "{busy}");
    let timeout = eventually("snap to report its timeout", T, || async {
        let c =
            volume_images.get("snap").await.ok()?.status?.common.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (c.reason == "Timeout").then_some(c.message)
    })
    .await;
    assert!(timeout.contains("spec.timeouts.create"), "{timeout}");
    let href = volumes.get("data").await.expect("data").status.expect("status").common.id.expect("href");
    eventually("the provider volume AVAILABLE again and data Ready", T, || async {
        let available = provider_resource(&cimi, &href).await["state"] == "AVAILABLE";
        (available && ready(&volumes.get("data").await.ok()?.status?.common.conditions)).then_some(())
    })
    .await;
    eventually("snap Ready once the provider works", T, || async {
        ready(&volume_images.get("snap").await.ok()?.status?.common.conditions).then_some(())
    })
    .await;
    eventually("one image of data on the provider, none half-made", T, || async {
        let images: Vec<Value> = provider_list(&cimi, "volumeImages")
            .await
            .into_iter()
            .filter(|i| i["imageLocation"]["href"] == href.as_str())
            .collect();
        (images.len() == 1 && images[0]["state"] == "AVAILABLE").then_some(())
    })
    .await;
}
