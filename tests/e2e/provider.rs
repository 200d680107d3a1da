//! CimiProvider: a provider pointed at cimi-sim becomes Ready with its catalog; wrong credentials,
//! a stopped provider and Secret rotation show in its Ready condition; objects in namespaces it does not
//! admit are refused without a provider call.

use std::time::Duration;

use cimi_operator::api::{CimiProvider, CimiVolume};
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::objects::volume;
use crate::harness::operator::TestOperator;
use crate::harness::sim::{credentials_secret, fault, provider_for, ready_provider_polled};
use crate::harness::wait::{condition, eventually, is_ready, wait_ready};

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn provider_ready_unauthorized_unreachable_and_secret_rotation() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "prov").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let addr = sim.addr();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let providers: Api<CimiProvider> = Api::all(client.clone());
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    let name = format!("prov-{}", random_suffix());
    providers.create(&PostParams::default(), &provider_for(&op, &name, &sim.url(), "creds")).await.expect("provider");

    // Ready with the catalog.
    let p = wait_ready(&providers, &name, "True", "Reachable").await;
    let st = p.status.expect("status");
    assert!(is_ready(&st.conditions), "Ready is the condition: {:?}", st.conditions);
    assert!(st.collections.iter().any(|c| c == "machines"), "{:?}", st.collections);
    let catalog = st.catalog.expect("catalog");
    assert!(catalog.machine_configs.iter().any(|e| e.name.as_deref() == Some("small")), "{catalog:?}");
    assert!(catalog.machine_images.iter().any(|e| e.name.as_deref() == Some("Linux SUSE")));
    assert!(catalog.counts["machineConfigs"] >= 3);
    assert!(st.last_probe_time.is_some() && st.latency.is_some());
    assert_eq!(st.base_uri.as_deref(), Some(sim.url().as_str()));
    assert_eq!(st.observed_generation, p.metadata.generation);
    // Capabilities from the provider's ResourceMetadata, bounded.
    let capability = |resource: &str, name: &str| {
        st.capabilities.iter().find(|c| c.resource == resource && c.name == name).map(|c| c.value.clone())
    };
    assert_eq!(capability("Machine", "MachineStopForce"), Some(None), "{:?}", st.capabilities);
    assert!(capability("Machine", "InitialStates").flatten().is_some_and(|v| v.contains("STARTED")));
    assert_eq!(capability("Volume", "SharedVolumeSupport"), Some(Some("false".to_string())));
    assert!(st.capabilities.len() <= cimi_operator::api::provider::MAX_CAPABILITIES);

    // A wrong password in the Secret: the operator reconnects and reports Unauthorized.
    let wrong = credentials_secret(&op, "creds", "demo", "not-the-password");
    secrets.patch("creds", &PatchParams::apply("e2e").force(), &Patch::Apply(&wrong)).await.expect("rotate the secret");
    let p = wait_ready(&providers, &name, "False", "Unauthorized").await;
    let message = &p.status.as_ref().expect("status").conditions[0].message;
    assert!(!message.contains("not-the-password"), "the password leaked into status: {message}");

    // Rotated back: Ready again.
    let right = credentials_secret(&op, "creds", "demo", "demo");
    secrets.patch("creds", &PatchParams::apply("e2e").force(), &Patch::Apply(&right)).await.expect("rotate back");
    wait_ready(&providers, &name, "True", "Reachable").await;

    // The provider goes away: Unreachable; it comes back on the same port: Ready.
    sim.stop().await;
    wait_ready(&providers, &name, "False", "Unreachable").await;
    let sim = Sim::start(SimConfig { listen: addr, ..SimConfig::default() }).await.expect("sim again");
    wait_ready(&providers, &name, "True", "Reachable").await;

    // Nothing references it: no finalizer, and it goes at once.
    providers.delete(&name, &DeleteParams::default()).await.expect("delete");
    eventually("the provider to be gone", T, || async { providers.get_opt(&name).await.ok()?.is_none().then_some(()) })
        .await;
    sim.stop().await;
}

/// A provider that answers its probe with 429 is busy, not gone: once Ready it stays Ready with the catalog its
/// last probe read, says it is rate limiting the probe, and its objects go on; a provider never yet probed turns
/// Ready=False RateLimited (not Unreachable) until the provider answers.
#[tokio::test]
async fn a_throttled_probe_keeps_a_ready_provider_ready() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "prov-429").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    // Polled every second; its Secret `creds` serves the second provider below too.
    let name = ready_provider_polled(&client, &op, &ns.name, &sim, "1s").await;
    let providers: Api<CimiProvider> = Api::all(client.clone());

    // Every read of the CloudEntryPoint is answered 429.
    let throttle = || {
        fault(
            serde_json::json!({"method": "GET", "resourceType": "CloudEntryPoint", "kind": "throttle", "retryAfter": 1}),
        )
    };
    sim.set_faults(vec![throttle()]);
    let p = eventually("the provider to say it is rate limited", T, || async {
        let p = providers.get(&name).await.ok()?;
        let ready = p.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")?.clone();
        ready.message.contains("rate limiting the probe").then_some((p, ready))
    })
    .await;
    let (p, ready) = p;
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Reachable"), "{ready:?}");
    assert!(ready.message.contains("429"), "{}", ready.message);
    let catalog = p.status.and_then(|st| st.catalog).expect("the catalog is kept");
    assert!(catalog.machine_configs.iter().any(|e| e.name.as_deref() == Some("small")), "{catalog:?}");
    assert!(sim.stats().requests.iter().any(|(op, by)| op.starts_with("CloudEntryPoint") && by.contains_key(&429)));
    // Its objects go on meanwhile.
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    volumes.create(&PostParams::default(), &volume(&op, "busy", &name)).await.expect("volume");
    eventually("a volume Ready while the probe is throttled", T, || async {
        let st = volumes.get("busy").await.ok()?.status?;
        (condition(&st.common.conditions, "Ready")?.0 == "True").then_some(())
    })
    .await;

    // A second provider, first probed while the endpoint throttles: RateLimited, then Ready once it answers.
    let second = format!("prov-{}", random_suffix());
    let mut provider = provider_for(&op, &second, &sim.url(), "creds");
    provider.spec.settings.poll_interval = "1s".into();
    providers.create(&PostParams::default(), &provider).await.expect("provider");
    let p = wait_ready(&providers, &second, "False", "RateLimited").await;
    let ready = p.status.as_ref().and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready")).expect("Ready");
    assert!(ready.message.contains("rate limited"), "{}", ready.message);
    sim.set_faults(Vec::new());
    wait_ready(&providers, &second, "True", "Reachable").await;
    eventually("the first provider's probe to answer again", T, || async {
        let p = providers.get(&name).await.ok()?;
        let ready = p.status.as_ref()?.conditions.iter().find(|c| c.type_ == "Ready")?.clone();
        ready.message.contains("answered in").then_some(())
    })
    .await;

    volumes.delete("busy", &DeleteParams::default()).await.expect("delete");
    eventually("the volume to be gone", T, || async {
        matches!(volumes.get_opt("busy").await, Ok(None)).then_some(())
    })
    .await;
    for p in [&name, &second] {
        providers.delete(p, &DeleteParams::default()).await.expect("delete provider");
    }
    sim.stop().await;
}

#[tokio::test]
async fn objects_outside_allowed_namespaces_are_refused_without_provider_calls() {
    let client = client().await;
    let allowed = TestNamespace::new(&client, "prov-allowed").await;
    let other = TestNamespace::new(&client, "prov-other").await;
    let tenant = format!("tenant-{}", random_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = serde_json::json!({"metadata": {"labels": {"e2e.cimi.dev/tenant": tenant}}});
    namespaces.patch(&allowed.name, &PatchParams::default(), &Patch::Merge(&label)).await.expect("label namespace");
    let op = TestOperator::start_in(&[&allowed.name, &other.name], &random_suffix()).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &allowed.name);
    secrets.create(&PostParams::default(), &credentials_secret(&op, "creds", "demo", "demo")).await.expect("secret");
    let name = format!("prov-{}", random_suffix());
    let mut provider = provider_for(&op, &name, &sim.url(), "creds");
    provider.spec.allowed_namespaces = Some(LabelSelector {
        match_labels: Some([("e2e.cimi.dev/tenant".to_string(), tenant.clone())].into_iter().collect()),
        ..Default::default()
    });
    let providers: Api<CimiProvider> = Api::all(client.clone());
    providers.create(&PostParams::default(), &provider).await.expect("provider");
    wait_ready(&providers, &name, "True", "Reachable").await;
    let writes_before = sim.stats().writes;

    // Outside: refused with a condition that says what to fix, and nothing is asked of the provider.
    let refused: Api<CimiVolume> = Api::namespaced(client.clone(), &other.name);
    refused.create(&PostParams::default(), &volume(&op, "outside", &name)).await.expect("volume");
    let status = eventually("the volume outside to be refused", T, || async {
        let st = refused.get("outside").await.ok()?.status?;
        (condition(&st.common.conditions, "Ready")? == ("False".into(), "NotAllowedNamespace".into())).then_some(st)
    })
    .await;
    assert_eq!(condition(&status.common.conditions, "Stalled"), Some(("True".into(), "NotAllowedNamespace".into())));
    let ready = status.common.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert!(
        ready.message.contains(&other.name) && ready.message.contains(&format!("e2e.cimi.dev/tenant={tenant}")),
        "the message names the namespace and the selector: {}",
        ready.message
    );
    assert_eq!(status.common.id, None, "no provider volume");
    assert_eq!(sim.stats().writes, writes_before, "no provider call made a change for it");

    // Inside: served.
    let served: Api<CimiVolume> = Api::namespaced(client.clone(), &allowed.name);
    served.create(&PostParams::default(), &volume(&op, "inside", &name)).await.expect("volume");
    eventually("the volume inside to be Ready", T, || async {
        let st = served.get("inside").await.ok()?.status?;
        (condition(&st.common.conditions, "Ready")?.0 == "True").then_some(())
    })
    .await;

    // Only the admitted object holds the provider in use: a tenant outside cannot pin it.
    let in_use = eventually("the provider to count one user", T, || async {
        let st = providers.get(&name).await.ok()?.status?;
        (st.in_use_by == Some(1)).then_some(st)
    })
    .await;
    let in_use = in_use.conditions.iter().find(|c| c.type_ == "InUse").expect("InUse");
    assert!(in_use.message.contains("inside") && !in_use.message.contains("outside"), "{}", in_use.message);

    // The served one is deleted on the provider; then the provider goes although the refused object still
    // names it; the refused object is deleted without any provider call.
    served.delete("inside", &DeleteParams::default()).await.expect("delete");
    eventually("volume inside to be gone", T, || async {
        matches!(served.get_opt("inside").await, Ok(None)).then_some(())
    })
    .await;
    providers.delete(&name, &DeleteParams::default()).await.expect("delete provider");
    eventually("the provider to be gone while an outside object names it", T, || async {
        matches!(providers.get_opt(&name).await, Ok(None)).then_some(())
    })
    .await;
    refused.delete("outside", &DeleteParams::default()).await.expect("delete");
    eventually("volume outside to be gone", T, || async {
        matches!(refused.get_opt("outside").await, Ok(None)).then_some(())
    })
    .await;
    sim.stop().await;
}

/// A provider deleted while nothing uses it (no in-use finalizer, so it goes at once) is forgotten: an object
/// that names it afterwards gets ProviderNotFound and makes no provider call, and its probe gauge goes.
#[tokio::test]
async fn a_deleted_provider_is_forgotten_even_when_nothing_used_it() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "provgone").await;
    let (op, running) = TestOperator::start_configured(&ns.name, &random_suffix(), |_| {}).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let provider = crate::harness::sim::ready_provider(&client, &op, &ns.name, &sim).await;
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let up = format!("cimi_provider_up{{provider=\"{provider}\"}} 1");
    eventually("the provider's probe gauge", Duration::from_secs(30), || async {
        running.metrics.encode().contains(&up).then_some(())
    })
    .await;
    providers.delete(&provider, &DeleteParams::default()).await.expect("delete the provider");
    eventually("the provider gone", Duration::from_secs(30), || async {
        providers.get_opt(&provider).await.ok()?.is_none().then_some(())
    })
    .await;
    let writes = sim.stats().writes;
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    volumes.create(&PostParams::default(), &volume(&op, "late", &provider)).await.expect("volume");
    eventually("late to say its provider does not exist", Duration::from_secs(30), || async {
        let v = volumes.get("late").await.ok()?;
        (condition(&v.status?.common.conditions, "Ready").map(|c| c.1).as_deref() == Some("ProviderNotFound"))
            .then_some(())
    })
    .await;
    assert_eq!(sim.stats().writes, writes, "nothing made on the deleted provider");
    let left = format!("cimi_provider_up{{provider=\"{provider}\"}}");
    assert!(!running.metrics.encode().contains(&left), "no probe gauge left for the deleted provider");
}
