//! Tenancy and hostile providers (design.md §9) on the real control plane: every attack of
//! `tests/support/hostile.rs` against one operator at once. Each asserts what the user sees (the condition
//! and its reason, or the Warning Event of a passing one), that the second origin received no request at all
//! (so no credentials either), that large bodies were read no further than the cap, and that the operator
//! keeps serving its other objects throughout.

use std::time::Duration;

use cimi_operator::api::common::{CatalogRef, ImportSpec};
use cimi_operator::api::provider::ReadLimits;
use cimi_operator::api::{CimiMachine, CimiProvider};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::objects::machine;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{credentials_secret, provider_for};
use crate::harness::wait::{condition, eventually, wait_machine, wait_ready};
use crate::hostile_provider::{Hostile, Mode, Recorder};

const T: Duration = Duration::from_secs(60);

/// The default body cap (16 MiB) plus the 1 MiB of slack the acceptance allows.
const MAX_SENT: u64 = (16 << 20) + (1 << 20);

/// A tenant's machine from the catalog.
fn tenant_machine(op: &TestOperator, name: &str, provider: &str) -> CimiMachine {
    let mut m = machine(op, name, provider);
    m.spec.description = Some("tenant machine".into());
    m
}

/// Waits for the provider's Ready condition to have `status` and `reason`; returns its message.
async fn wait_provider(providers: &Api<CimiProvider>, name: &str, status: &str, reason: &str) -> String {
    let p = wait_ready(providers, name, status, reason).await;
    p.status.into_iter().flat_map(|s| s.conditions).find(|c| c.type_ == "Ready").map(|c| c.message).unwrap_or_default()
}

/// Waits until the machine's Ready condition has `status` and `reason`; returns its message.
async fn wait_machine_reason(machines: &Api<CimiMachine>, name: &str, status: &str, reason: &str) -> String {
    let ready_of = |m: &CimiMachine| m.status.as_ref()?.common.conditions.iter().find(|c| c.type_ == "Ready").cloned();
    let what = format!("machine {name} Ready={status} ({reason})");
    let m =
        wait_machine(machines, name, &what, |m| ready_of(m).is_some_and(|c| c.status == status && c.reason == reason))
            .await;
    ready_of(&m).map(|c| c.message).unwrap_or_default()
}

/// A Warning Event of `reason` on the object `name`; returns its note.
async fn warning_event(client: &kube::Client, ns: &str, name: &str, reason: &str) -> String {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    eventually(&format!("a Warning Event {reason} on {name}"), T, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            (e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .then(|| e.note.unwrap_or_default())
        })
    })
    .await
}

#[tokio::test]
async fn hostile_providers_and_tenants_get_nothing_and_the_operator_keeps_serving() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "hostile").await;
    let op = TestOperator::start(&ns.name).await;
    let second = Recorder::start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);

    // Every hostile provider at once, plus an honest one whose objects must keep working.
    let modes = [
        Mode::Honest,
        Mode::ForeignBase,
        Mode::ForeignCollection,
        Mode::ForeignOperations,
        Mode::ForeignLocation,
        Mode::ForeignJob,
        Mode::ForeignNextPage,
        Mode::Redirect,
        Mode::HugeBody,
        Mode::EndlessBody,
        Mode::EndlessPages,
    ];
    let mut hostiles = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let h = Hostile::start(*mode, &second).await;
        let name = format!("{}-{i}", ns.name);
        let mut p = provider_for(&op, &name, &h.url, "creds");
        if *mode == Mode::EndlessPages {
            p.spec.settings.read_limits = Some(ReadLimits { max_pages: Some(20), ..Default::default() });
        }
        providers.create(&PostParams::default(), &p).await.expect("provider");
        hostiles.push((*mode, name, h));
    }
    let name_of = |mode: Mode| hostiles.iter().find(|(m, _, _)| *m == mode).map(|(_, n, _)| n.clone()).expect("mode");
    let hostile = |mode: Mode| hostiles.iter().find(|(m, _, _)| *m == mode).map(|(_, _, h)| h).expect("mode");
    let honest = name_of(Mode::Honest);

    // The control: a machine on the honest provider becomes Ready and stays so.
    wait_provider(&providers, &honest, "True", "Reachable").await;
    machines.create(&PostParams::default(), &tenant_machine(&op, "steady", &honest)).await.expect("steady");
    wait_machine_reason(&machines, "steady", "True", "Available").await;

    // A provider whose CloudEntryPoint moves everything elsewhere is refused at the probe, naming the href.
    for (mode, what) in [(Mode::ForeignBase, "baseURI"), (Mode::Redirect, "redirected"), (Mode::ForeignNextPage, "")] {
        let message = wait_provider(&providers, &name_of(mode), "False", "UntrustedHref").await;
        assert!(message.contains(second.url.trim_end_matches('/')), "{mode:?}: {message}");
        assert!(message.contains(what) && message.contains("trustedOrigins"), "{mode:?}: {message}");
    }

    // Bodies past the cap and listings without end: ReadLimitExceeded, naming the setting to raise.
    for (mode, setting) in
        [(Mode::HugeBody, "maxBodySize"), (Mode::EndlessBody, "maxBodySize"), (Mode::EndlessPages, "maxPages")]
    {
        let message = wait_provider(&providers, &name_of(mode), "False", "ReadLimitExceeded").await;
        assert!(message.contains(setting), "{mode:?}: {message}");
    }
    let huge = hostile(Mode::HugeBody).bytes_sent();
    let endless = hostile(Mode::EndlessBody).bytes_sent();
    assert!(huge <= MAX_SENT, "a 1 GiB body announced by Content-Length was read to {huge} bytes");
    assert!(endless <= MAX_SENT, "an endless body was read to {endless} bytes");
    assert!(endless >= 16 << 20, "the endless body was cut before the cap: {endless} bytes");

    // A collection on another origin: the provider is Ready, the machine that needs it says why.
    let foreign_collection = name_of(Mode::ForeignCollection);
    wait_provider(&providers, &foreign_collection, "True", "Reachable").await;
    machines.create(&PostParams::default(), &tenant_machine(&op, "m-coll", &foreign_collection)).await.expect("m-coll");
    let message = wait_machine_reason(&machines, "m-coll", "False", "UntrustedHref").await;
    assert!(message.contains("machines") && message.contains(second.url.trim_end_matches('/')), "{message}");

    // Operations on another origin: the machine is made, but an edit through its foreign `edit` is refused.
    let foreign_ops = name_of(Mode::ForeignOperations);
    wait_provider(&providers, &foreign_ops, "True", "Reachable").await;
    machines.create(&PostParams::default(), &tenant_machine(&op, "m-ops", &foreign_ops)).await.expect("m-ops");
    wait_machine_reason(&machines, "m-ops", "True", "Available").await;
    machines
        .patch("m-ops", &PatchParams::default(), &Patch::Merge(json!({"spec": {"description": "changed"}})))
        .await
        .expect("edit m-ops");
    wait_machine_reason(&machines, "m-ops", "False", "UntrustedHref").await;

    // `Location` and `CIMI-Job-URI` on another origin: the create is refused as it answers (a Warning Event
    // says so), and the machine is then found on the provider by its UID tag, never created twice.
    for (mode, name) in [(Mode::ForeignLocation, "m-loc"), (Mode::ForeignJob, "m-job")] {
        let provider = name_of(mode);
        wait_provider(&providers, &provider, "True", "Reachable").await;
        machines.create(&PostParams::default(), &tenant_machine(&op, name, &provider)).await.expect("machine");
        let note = warning_event(&client, &ns.name, name, "UntrustedHref").await;
        assert!(note.contains(second.url.trim_end_matches('/')), "{mode:?}: {note}");
        wait_machine_reason(&machines, name, "True", "Available").await;
        let creates: u64 =
            hostile(mode).sim.stats().requests.get("MachineCollection.add").map_or(0, |s| s.values().sum());
        assert_eq!(creates, 1, "{mode:?}: one create on the provider");
    }

    // A tenant's import of a URL elsewhere: refused before any request, with the href and the fix.
    let mut steal = tenant_machine(&op, "m-steal", &honest);
    steal.spec.template = None;
    steal.spec.import = Some(ImportSpec { href: Some(format!("{}machines/secret", second.url)), filter: None });
    machines.create(&PostParams::default(), &steal).await.expect("m-steal");
    let message = wait_machine_reason(&machines, "m-steal", "False", "UntrustedHref").await;
    assert!(message.contains(&format!("{}machines/secret", second.url)), "{message}");
    let m = machines.get("m-steal").await.expect("m-steal");
    let stalled = condition(&m.status.as_ref().expect("status").common.conditions, "Stalled");
    assert_eq!(stalled, Some(("True".into(), "UntrustedHref".into())));

    // A catalog href elsewhere in a spec: the provider would be told to fetch it for us; refused before the
    // create, which never happens.
    let mut image = tenant_machine(&op, "m-image", &honest);
    let foreign_image = format!("{}machineImages/1", second.url);
    image.spec.template.as_mut().expect("template").machine_image = Some(CatalogRef::by_href(&foreign_image));
    machines.create(&PostParams::default(), &image).await.expect("m-image");
    let message = wait_machine_reason(&machines, "m-image", "False", "UntrustedHref").await;
    assert!(message.contains(&foreign_image), "{message}");
    let honest_creates: u64 =
        hostile(Mode::Honest).sim.stats().requests.get("MachineCollection.add").map_or(0, |s| s.values().sum());
    assert_eq!(honest_creates, 1, "only the control machine was created on the honest provider so far");

    // The second origin never heard from the operator: no request, so no credentials.
    assert!(second.requests().is_empty(), "the second origin received {:?}", second.requests());

    // And the operator kept serving: the control machine is still Ready, and a new one becomes Ready.
    wait_machine_reason(&machines, "steady", "True", "Available").await;
    machines.create(&PostParams::default(), &tenant_machine(&op, "late", &honest)).await.expect("late");
    wait_machine_reason(&machines, "late", "True", "Available").await;
}
