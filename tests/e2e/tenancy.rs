//! Tenancy on the API: a team's own provider (CimiNamespacedProvider) serves its namespace and no other, and
//! imports follow the provider's `importRights` (ObserveOnly only by default; Managed where granted; never a
//! resource tagged for another cluster or namespace).

use std::time::Duration;

use cimi_operator::api::common::{DeletionPolicy, ImportSpec, ManagementPolicy, ProviderRef};
use cimi_operator::api::{
    CimiMachine, CimiMachineSpec, CimiNamespacedProvider, CimiNamespacedProviderSpec, CimiProvider,
};
use cimi_operator::sim::{Sim, SimConfig, SimHandle, Timing};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::objects::machine;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{
    credentials_secret, legacy_machine, machine_by_hand, provider_for, provider_settings, sim_client,
};
use crate::harness::wait::{condition, eventually, is_ready, wait_ready};

const T: Duration = Duration::from_secs(60);

/// The Ready condition of machine `name`: (status, reason, message).
async fn ready_of(machines: &Api<CimiMachine>, name: &str) -> Option<(String, String, String)> {
    let m = machines.get(name).await.ok()?;
    let c = m.status?.common.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason, c.message))
}

/// Waits until machine `name` is Ready=False with `reason`; returns the message.
async fn refused(machines: &Api<CimiMachine>, name: &str, reason: &str) -> String {
    eventually(&format!("{name} refused with {reason}"), T, || async {
        let (status, why, message) = ready_of(machines, name).await?;
        (status == "False" && why == reason).then_some(message)
    })
    .await
}

/// The provider requests the sim logged for `path` (its last segments, such as `machines/12`).
fn requests_for(sim: &SimHandle, path: &str) -> usize {
    sim.stats().log.iter().filter(|r| r.path.ends_with(path)).count()
}

#[tokio::test]
async fn a_team_provider_serves_its_own_namespace_and_no_other() {
    let client = client().await;
    let team = TestNamespace::new(&client, "team").await;
    let other = TestNamespace::new(&client, "other").await;
    let op = TestOperator::start_in(&[&team.name, &other.name], &random_suffix()).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");

    // The team's provider account: its Secret and its provider, both in the team's namespace.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &team.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "ours", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiNamespacedProvider> = Api::namespaced(client.clone(), &team.name);
    let mut provider = CimiNamespacedProvider::new(
        "cloud",
        CimiNamespacedProviderSpec { settings: provider_settings(&sim.url(), "ours") },
    );
    provider.metadata.labels = Some(op.labels());
    providers.create(&PostParams::default(), &provider).await.expect("namespaced provider");
    eventually("the team's provider Ready", T, || async {
        let p = providers.get("cloud").await.ok()?;
        is_ready(&p.status?.conditions).then_some(())
    })
    .await;

    // A machine of the team on it: created and Ready.
    let mut ours = machine(&op, "web", "cloud");
    ours.spec.provider_ref = ProviderRef::namespaced("cloud");
    let team_machines: Api<CimiMachine> = Api::namespaced(client.clone(), &team.name);
    team_machines.create(&PostParams::default(), &ours).await.expect("team machine");
    eventually("the team's machine Ready", T, || async {
        let m = team_machines.get("web").await.ok()?;
        is_ready(&m.status?.common.conditions).then_some(())
    })
    .await;

    // Another namespace naming it finds no such provider there, and nothing reaches the provider for it.
    let creates_before = sim.stats().requests.get("MachineCollection.add").map_or(0, |by| by.values().sum::<u64>());
    let mut theirs = machine(&op, "intruder", "cloud");
    theirs.spec.provider_ref = ProviderRef::namespaced("cloud");
    let other_machines: Api<CimiMachine> = Api::namespaced(client.clone(), &other.name);
    other_machines.create(&PostParams::default(), &theirs).await.expect("other machine");
    let message = refused(&other_machines, "intruder", "ProviderNotFound").await;
    assert!(
        message.contains("no CimiNamespacedProvider named cloud") && message.contains(&other.name),
        "the message names the kind, the provider and where it was looked for: {message}"
    );
    let creates_after = sim.stats().requests.get("MachineCollection.add").map_or(0, |by| by.values().sum::<u64>());
    assert_eq!(creates_after, creates_before, "the other namespace's machine made nothing on the team's provider");

    // The provider counts its own namespace's user only, and its status is the one every provider has.
    let p = eventually("the team's provider in use by one object", T, || async {
        let p = providers.get("cloud").await.ok()?;
        (p.status.as_ref()?.in_use_by == Some(1)).then_some(p)
    })
    .await;
    let st = p.status.expect("status");
    assert_eq!(condition(&st.conditions, "InUse").map(|c| c.0), Some("True".to_string()));
    assert!(st.catalog.is_some_and(|c| !c.machine_configs.is_empty()), "the catalog is read as for a CimiProvider");
}

#[tokio::test]
async fn imports_follow_the_providers_import_rights() {
    let client = client().await;
    let a = TestNamespace::new(&client, "impa").await;
    let b = TestNamespace::new(&client, "impb").await;
    let op = TestOperator::start_in(&[&a.name, &b.name], &random_suffix()).await;
    let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("sim");
    let cimi = sim_client(&sim).await;

    // A provider with no importRights: the default.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &a.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let name = format!("rights-{}", random_suffix());
    let mut provider = provider_for(&op, &name, &sim.url(), "creds");
    provider.spec.settings.import_rights = None;
    providers.create(&PostParams::default(), &provider).await.expect("provider");
    wait_ready(&providers, &name, "True", "Reachable").await;

    let import = |object: &str, href: &str, policy: ManagementPolicy| {
        let mut m = CimiMachine::new(
            object,
            CimiMachineSpec {
                provider_ref: ProviderRef::cluster(&name),
                import: Some(ImportSpec { href: Some(href.to_string()), filter: None }),
                management_policy: policy,
                deletion_policy: DeletionPolicy::Orphan,
                ..Default::default()
            },
        );
        m.metadata.labels = Some(op.labels());
        m
    };
    let in_a: Api<CimiMachine> = Api::namespaced(client.clone(), &a.name);
    let in_b: Api<CimiMachine> = Api::namespaced(client.clone(), &b.name);

    // ObserveOnly is granted by default.
    let seen = legacy_machine(&cimi, "legacy-seen").await;
    in_a.create(&PostParams::default(), &import("seen", &seen, ManagementPolicy::ObserveOnly)).await.expect("create");
    eventually("the ObserveOnly import Ready (Observed)", T, || async {
        let (status, reason, _) = ready_of(&in_a, "seen").await?;
        (status == "True" && reason == "Observed").then_some(())
    })
    .await;

    // Managed is not, and the resource is not even read.
    let taken = legacy_machine(&cimi, "legacy-taken").await;
    let path = taken.rsplit_once("/machines/").map(|(_, id)| format!("machines/{id}")).expect("a machine href");
    let reads_before = requests_for(&sim, &path);
    in_a.create(&PostParams::default(), &import("taken", &taken, ManagementPolicy::Managed)).await.expect("create");
    let message = refused(&in_a, "taken", "ImportNotAllowed").await;
    assert!(
        message.contains(&format!("grants namespace {} imports with managementPolicy ObserveOnly only", a.name))
            && message.contains("the default"),
        "the message says what is granted and that it is the default: {message}"
    );
    assert_eq!(requests_for(&sim, &path), reads_before, "a refused import reads nothing of the resource");

    // The provider's owner grants Managed imports to namespaces labelled import=managed; namespace a gets it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({"metadata": {"labels": {"e2e.cimi.dev/import": "managed"}}});
    namespaces.patch(&a.name, &PatchParams::default(), &Patch::Merge(&label)).await.expect("label namespace a");
    let rights = json!({"spec": {"importRights": [
        {"managementPolicies": ["ObserveOnly"]},
        {"namespaces": {"matchLabels": {"e2e.cimi.dev/import": "managed"}}, "managementPolicies": ["Managed"]}
    ]}});
    providers.patch(&name, &PatchParams::default(), &Patch::Merge(&rights)).await.expect("grant");
    eventually("the grant reaches the operator, and the Managed import is adopted", T, || async {
        // A Stalled object waits for a change: touch it once in a while, as a user fixing it would.
        let touch = json!({"metadata": {"annotations": {"e2e.cimi.dev/touched": random_suffix()}}});
        let _ = in_a.patch("taken", &PatchParams::default(), &Patch::Merge(&touch)).await;
        let (status, _, _) = ready_of(&in_a, "taken").await?;
        (status == "True").then_some(())
    })
    .await;
    let adopted = cimi.get_value(&cimi.resolve(&taken).await.expect("href")).await.expect("the provider machine");
    assert_eq!(adopted["properties"]["cimi.dev/namespace"], a.name.as_str(), "Managed: tagged as ours");

    // Namespace b has no such label: still ObserveOnly only.
    let other = legacy_machine(&cimi, "legacy-other").await;
    in_b.create(&PostParams::default(), &import("taken-too", &other, ManagementPolicy::Managed)).await.expect("create");
    let message = refused(&in_b, "taken-too", "ImportNotAllowed").await;
    assert!(message.contains(&b.name) && !message.contains("the default"), "{message}");

    // A resource tagged for another namespace, or for another cluster, is nobody else's to import.
    for (object, tags) in [
        (
            "not-ours-ns",
            json!({"cimi.dev/cluster": "e2e", "cimi.dev/namespace": "someone-else", "cimi.dev/uid": "gone"}),
        ),
        (
            "not-ours-cluster",
            json!({"cimi.dev/cluster": "staging", "cimi.dev/namespace": a.name, "cimi.dev/uid": "gone"}),
        ),
    ] {
        let href = machine_by_hand(&cimi, object, tags).await;
        in_a.create(&PostParams::default(), &import(object, &href, ManagementPolicy::ObserveOnly))
            .await
            .expect("create");
        let message = refused(&in_a, object, "ImportConflict").await;
        assert!(message.contains("belongs to cluster"), "{object}: {message}");
    }
}
