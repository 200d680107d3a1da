//! Uninstalling and moving objects, as `docs/uninstall.md` says, with the commands of that page run as written
//! (kubectl from the tool cache): keeping the VMs (Orphan, then delete: the objects go, the provider resources stay
//! without any `cimi.dev/*` tag and are never re-adopted by identity); the operator removed first (deleting leaves
//! the objects and their namespace Terminating on the finalizers, with no provider call; the documented `kubectl
//! patch` releases them and leaves the provider resources; or the operator, reinstalled after `deletionPolicy:
//! Orphan` was set, finishes the deletions and keeps them); and a resource moved to another cluster and provider
//! (Orphan, delete, import by href: adopted with no create, Ready, retagged for its new owner).

use std::time::Duration;

use cimi_operator::api::common::LocalObjectRef;
use cimi_operator::api::machine::MachineVolume;
use cimi_operator::api::{CimiMachine, CimiVolume};
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Sim, SimConfig, SimHandle, Timing};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::control_plane::{TestNamespace, client, control_plane, random_suffix};
use crate::harness::events::events_about;
use crate::harness::objects::{machine, volume};
use crate::harness::operator::TestOperator;
use crate::harness::repo::repo_file;
use crate::harness::sim::{creates, provider_list, ready_provider, sim_client};
use crate::harness::wait::{condition, eventually, is_ready};

const T: Duration = Duration::from_secs(60);

/// The shell snippet of docs/uninstall.md that follows `<!-- e2e: name -->`, for the namespace `namespace` (the page
/// writes team-a).
fn documented(name: &str, namespace: &str) -> String {
    let page = repo_file("docs/uninstall.md");
    let text = std::fs::read_to_string(page).expect("docs/uninstall.md");
    let marker = format!("<!-- e2e: {name} -->");
    let (_, after) = text.split_once(&marker).unwrap_or_else(|| panic!("docs/uninstall.md has no {marker}"));
    let (fence, rest) = after.trim_start().split_once('\n').expect("a code block after the marker");
    assert!(fence.starts_with("```"), "{marker} is followed by a code block, not {fence:?}");
    let (block, _) = rest.split_once("```").expect("the code block ends");
    block.replace("team-a", namespace)
}

/// Runs a documented shell snippet as a user would: `sh -e`, kubectl (from the tool cache) on PATH, KUBECONFIG
/// of the shared control plane. Off the async runtime, which the operator under test needs meanwhile.
async fn run_documented(name: &str, namespace: &str) -> String {
    let script = documented(name, namespace);
    let kubectl = Tool::Kubectl.locate().expect("kubectl is provisioned (make tools)");
    let kubeconfig = control_plane().kubeconfig_path().to_path_buf();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        // The cache's kubectl under the name a user types.
        let bin = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(&kubectl, bin.path().join("kubectl")).expect("symlink kubectl");
        let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("sh")
            .args(["-e", "-c", &script])
            .env("PATH", path)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .expect("run sh");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "docs/uninstall.md `{name}` failed:\n{script}\n{stdout}{stderr}");
        stdout.into_owned()
    })
    .await
    .expect("the snippet ran")
}

/// The `cimi.dev/*` tags of a provider resource.
fn tags(resource: &Value) -> Vec<String> {
    resource["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .filter(|k| k.starts_with("cimi.dev/"))
        .collect()
}

/// The provider resource `href` of `collection`, if it is still there.
async fn on_provider(sim: &SimHandle, collection: &str, href: &str) -> Option<Value> {
    let cimi = sim_client(sim).await;
    provider_list(&cimi, collection).await.into_iter().find(|r| r["id"].as_str() == Some(href))
}

/// A machine from the catalog, with `volume` attached at /dev/vdb when given.
fn machine_with(op: &TestOperator, name: &str, provider: &str, volume: Option<&str>) -> CimiMachine {
    let mut m = machine(op, name, provider);
    m.spec.volumes = volume
        .into_iter()
        .map(|v| MachineVolume {
            volume_ref: LocalObjectRef { name: v.into() },
            initial_location: Some("/dev/vdb".into()),
        })
        .collect();
    m
}

/// A Ready machine (with `volumes` attached) and its provider href.
async fn ready_machine(machines: &Api<CimiMachine>, name: &str, volumes: usize) -> (CimiMachine, String) {
    eventually(&format!("machine {name} Ready"), T, || async {
        let m = machines.get(name).await.ok()?;
        let st = m.status.as_ref()?;
        let id = st.common.id.clone()?;
        (is_ready(&st.common.conditions) && st.volumes.len() == volumes).then_some((m, id))
    })
    .await
}

/// The provider href of a Ready volume.
async fn ready_volume(volumes: &Api<CimiVolume>, name: &str) -> String {
    eventually(&format!("volume {name} Ready"), T, || async {
        let st = volumes.get(name).await.ok()?.status?;
        let id = st.common.id.clone()?;
        is_ready(&st.common.conditions).then_some(id)
    })
    .await
}

#[tokio::test]
async fn keeping_the_vms_orphan_then_delete_leaves_them_untagged_and_never_readopted() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "keepvms").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    volumes.create(&PostParams::default(), &volume(&op, "data", &provider)).await.expect("volume");
    machines
        .create(&PostParams::default(), &machine_with(&op, "web-1", &provider, Some("data")))
        .await
        .expect("machine");
    let (_, machine_href) = ready_machine(&machines, "web-1", 1).await;
    let volume_href = ready_volume(&volumes, "data").await;

    // The page's two steps: deletionPolicy Orphan on every object of the namespace, then delete them and wait.
    run_documented("orphan-all", &ns.name).await;
    run_documented("delete-all", &ns.name).await;
    assert!(machines.list(&Default::default()).await.expect("list").items.is_empty(), "the machine is gone");
    assert!(volumes.list(&Default::default()).await.expect("list").items.is_empty(), "the volume is gone");
    for (collection, href) in [("machines", &machine_href), ("volumes", &volume_href)] {
        let left = on_provider(&sim, collection, href).await.unwrap_or_else(|| panic!("{href} stays on the provider"));
        assert_eq!(tags(&left), Vec::<String>::new(), "every cimi.dev tag removed from {href}");
    }
    let machine_events = events_about(&client, &ns.name, "web-1").await;
    assert!(
        machine_events.iter().any(|(r, n)| r == "Deleted" && n.contains("left in place, untagged")),
        "the machine's Event says it was kept: {machine_events:?}"
    );

    // Untagged means never re-adopted by identity: the same object again makes a new volume.
    let made = creates(&sim.stats());
    volumes.create(&PostParams::default(), &volume(&op, "data", &provider)).await.expect("volume again");
    let again = ready_volume(&volumes, "data").await;
    assert_ne!(again, volume_href, "a new provider volume, not the orphaned one");
    assert!(creates(&sim.stats()) > made, "the provider was asked to create it");
    let reasons = events_about(&client, &ns.name, "data").await;
    assert!(!reasons.iter().any(|(r, _)| r == "Readopted"), "nothing re-adopted: {reasons:?}");
    volumes.delete("data", &DeleteParams::default()).await.expect("delete the new volume");
    eventually("the new volume gone", T, || async { volumes.get_opt("data").await.ok()?.is_none().then_some(()) })
        .await;
    assert!(on_provider(&sim, "volumes", &again).await.is_none(), "deleted on the provider (Delete)");
    assert!(on_provider(&sim, "volumes", &volume_href).await.is_some(), "the orphaned volume is still there");
}

#[tokio::test]
async fn with_the_operator_gone_the_documented_commands_release_the_objects_and_keep_the_vms() {
    let client = client().await;
    let home = TestNamespace::new(&client, "opgone").await;
    let team = TestNamespace::new(&client, "opgone-a").await;
    let other = TestNamespace::new(&client, "opgone-b").await;
    let label = random_suffix();
    let watched = vec![home.name.clone(), team.name.clone(), other.name.clone()];
    let (op, running) = TestOperator::start_configured(&home.name, &label, |c| c.namespaces = watched.clone()).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let provider = ready_provider(&client, &op, &home.name, &sim).await;
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &team.name);
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &team.name);
    let other_volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &other.name);
    volumes.create(&PostParams::default(), &volume(&op, "data", &provider)).await.expect("volume");
    machines
        .create(&PostParams::default(), &machine_with(&op, "web-1", &provider, Some("data")))
        .await
        .expect("machine");
    other_volumes.create(&PostParams::default(), &volume(&op, "scratch", &provider)).await.expect("volume");
    let (web, machine_href) = ready_machine(&machines, "web-1", 1).await;
    let volume_href = ready_volume(&volumes, "data").await;
    let scratch_href = ready_volume(&other_volumes, "scratch").await;

    // The operator goes first (as `helm uninstall` does), then both team namespaces are deleted.
    drop(op);
    tokio::time::timeout(T, running.task).await.expect("the operator stops").expect("join").expect("clean stop");
    let writes = sim.stats().writes;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [&team.name, &other.name] {
        namespaces.delete(ns, &DeleteParams::default()).await.expect("delete namespace");
    }
    // What a user sees: the objects Terminating on their finalizers, the namespace Terminating because of them.
    let message = eventually("the namespace stuck on cimi.dev/cleanup", T, || async {
        let ns = namespaces.get(&team.name).await.ok()?;
        let c = ns.status?.conditions?.into_iter().find(|c| c.type_ == "NamespaceFinalizersRemaining")?;
        (c.status == "True" && c.message.as_deref()?.contains("cimi.dev/cleanup"))
            .then(|| c.message.unwrap_or_default())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck = machines.get("web-1").await.expect("web-1 is still there");
    assert!(stuck.metadata.deletion_timestamp.is_some(), "web-1 is Terminating");
    assert!(stuck.metadata.finalizers.unwrap_or_default().contains(&"cimi.dev/cleanup".to_string()), "{message}");
    let data = volumes.get("data").await.expect("data is still there");
    assert!(data.metadata.deletion_timestamp.is_some() && data.metadata.finalizers.is_some_and(|f| !f.is_empty()));
    assert_eq!(sim.stats().writes, writes, "no provider call without the operator");

    // Released by hand, one object then the rest of the namespace: gone, the provider resources left as they were
    // (still tagged: no provider call was made).
    run_documented("release-one", &team.name).await;
    eventually("web-1 gone", T, || async { machines.get_opt("web-1").await.ok()?.is_none().then_some(()) }).await;
    run_documented("release-all", &team.name).await;
    eventually("the namespace gone", T, || async {
        namespaces.get_opt(&team.name).await.ok()?.is_none().then_some(())
    })
    .await;
    let left = on_provider(&sim, "machines", &machine_href).await.expect("the provider machine stays");
    assert_eq!(left["properties"]["cimi.dev/uid"].as_str(), web.metadata.uid.as_deref(), "still tagged");
    assert!(on_provider(&sim, "volumes", &volume_href).await.is_some(), "the provider volume stays");
    assert_eq!(sim.stats().writes, writes, "released without any provider call");

    // Or the operator reinstalled, after deletionPolicy Orphan was set on the Terminating objects: it finishes the
    // deletion and keeps the provider resource, untagged.
    run_documented("orphan-all", &other.name).await;
    let (_op, _running) = TestOperator::start_configured(&home.name, &label, |c| c.namespaces = watched.clone()).await;
    eventually("the other namespace gone", T, || async {
        namespaces.get_opt(&other.name).await.ok()?.is_none().then_some(())
    })
    .await;
    let kept = on_provider(&sim, "volumes", &scratch_href).await.expect("the provider volume stays");
    assert_eq!(tags(&kept), Vec::<String>::new(), "untagged by the reinstalled operator");
    let cimi = sim_client(&sim).await;
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1, "nothing deleted on the provider");
    assert_eq!(provider_list(&cimi, "volumes").await.len(), 2, "nothing deleted on the provider");
}

#[tokio::test]
async fn a_resource_moves_to_another_cluster_and_provider_by_orphan_delete_and_import() {
    let client = client().await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;

    // The old cluster: a machine, then moved out as the page says (Orphan, delete).
    let old = TestNamespace::new(&client, "moveold").await;
    let old_op = TestOperator::start(&old.name).await;
    let old_provider = ready_provider(&client, &old_op, &old.name, &sim).await;
    let old_machines: Api<CimiMachine> = Api::namespaced(client.clone(), &old.name);
    old_machines
        .create(&PostParams::default(), &machine_with(&old_op, "web-1", &old_provider, None))
        .await
        .expect("machine");
    let (_, href) = ready_machine(&old_machines, "web-1", 0).await;
    let orphan = json!({"spec": {"deletionPolicy": "Orphan"}});
    old_machines.patch("web-1", &PatchParams::default(), &Patch::Merge(&orphan)).await.expect("Orphan");
    old_machines.delete("web-1", &DeleteParams::default()).await.expect("delete");
    eventually("the old object gone", T, || async {
        old_machines.get_opt("web-1").await.ok()?.is_none().then_some(())
    })
    .await;

    // The new cluster (another cluster name), with a CimiProvider of its own for the same endpoint: the page's
    // manifest, importing the machine by href under Managed.
    let new = TestNamespace::new(&client, "movenew").await;
    let (new_op, _running) =
        TestOperator::start_configured(&new.name, &random_suffix(), |c| c.cluster_name = "elsewhere".into()).await;
    let new_provider = ready_provider(&client, &new_op, &new.name, &sim).await;
    let made = creates(&sim.stats());
    let manifest: Value = serde_yaml::from_str(&documented("import-manifest", &new.name)).expect("the page's manifest");
    let mut moved: CimiMachine = serde_json::from_value(manifest).expect("a CimiMachine");
    assert_eq!(moved.metadata.namespace.as_deref(), Some(new.name.as_str()));
    moved.spec.provider_ref.name = new_provider.clone();
    moved.spec.import.as_mut().expect("spec.import").href = Some(href.clone());
    moved.metadata.labels = Some(new_op.labels());
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &new.name);
    let created = machines.create(&PostParams::default(), &moved).await.expect("the new object");
    let uid = created.metadata.uid.clone().expect("uid");
    let name = created.metadata.name.clone().expect("name");
    let now = eventually("the moved machine Ready on the same provider machine", T, || async {
        let m = machines.get(&name).await.ok()?;
        let st = m.status.as_ref()?;
        (condition(&st.common.conditions, "Ready") == Some(("True".into(), "Available".into()))).then_some(m)
    })
    .await;
    assert_eq!(now.status.and_then(|s| s.common.id), Some(href.clone()), "status.id is the imported href");
    assert_eq!(creates(&sim.stats()), made, "nothing created on the provider");
    let resource = on_provider(&sim, "machines", &href).await.expect("the machine");
    assert_eq!(resource["properties"]["cimi.dev/uid"], json!(uid), "tagged for its new owner");
    assert_eq!(resource["properties"]["cimi.dev/cluster"], json!("elsewhere"));
    assert_eq!(resource["properties"]["cimi.dev/namespace"], json!(new.name));
    assert_eq!(provider_list(&cimi, "machines").await.len(), 1, "still one machine");
    let reasons = events_about(&client, &new.name, &name).await;
    assert!(reasons.iter().any(|(r, n)| r == "Imported" && n.contains(&href)), "an Imported Event: {reasons:?}");

    // It is the new cluster's now: deleting the object (deletionPolicy Delete) deletes the machine.
    machines.delete(&name, &DeleteParams::default()).await.expect("delete");
    eventually("the machine deleted on the provider", T, || async {
        on_provider(&sim, "machines", &href).await.is_none().then_some(())
    })
    .await;
}
