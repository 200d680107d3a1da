//! Secrets never leak: a canary password sits in every Secret this test uses (the provider's
//! credentials, a second provider's wrong credentials, a machine's login credential, its userData),
//! and appears neither in the operator's logs (the `cimi-operator run` binary at debug level, its
//! output captured), nor in any Event, nor in any object's status.

use std::time::Duration;

use base64::Engine as _;
use cimi_operator::api::common::{CatalogRef, ProviderRef, SecretKeyRef, SecretRef};
use cimi_operator::api::machine::MachineTemplateSpec;
use cimi_operator::api::{CimiMachine, CimiMachineSpec, CimiProvider};
use cimi_operator::sim::{Auth, Sim, SimConfig, Timing};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::objects::secret;
use crate::harness::operator::OperatorProcess;
use crate::harness::sim::provider_spec;
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_canary_password_never_reaches_logs_events_or_status() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "canary").await;
    let canary = format!("CANARY-{}-pw", random_suffix());
    let canary_b64 = base64::engine::general_purpose::STANDARD.encode(format!("#cloud-config\npassword: {canary}\n"));
    let label = ("e2e.cimi.dev/test".to_string(), random_suffix());
    let labels: std::collections::BTreeMap<String, String> = [label.clone()].into_iter().collect();
    let selector = format!("{}={}", label.0, label.1);
    let args = [
        ["--operator-namespace", &ns.name, "--namespace", &ns.name, "--selector", &selector].as_slice(),
        &["--cluster-name", "e2e", "--admin-addr", "off", "--log-level", "debug"],
    ]
    .concat();
    let operator = OperatorProcess::start(&format!("canary-{}", ns.name), &args);
    let sim = Sim::start(SimConfig {
        auth: Auth::Basic { user: "demo".into(), password: canary.clone() },
        timing: Timing::Instant,
        ..SimConfig::default()
    })
    .await
    .expect("sim");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    for s in [
        secret("creds", Some(&labels), &[("username", "demo"), ("password", &canary)]),
        secret("wrong-creds", Some(&labels), &[("username", "demo"), ("password", &format!("{canary}-wrong"))]),
        secret("login", Some(&labels), &[("userID", "admin"), ("password", &canary)]),
        secret("userdata", Some(&labels), &[("userData", &format!("#cloud-config\npassword: {canary}\n"))]),
    ] {
        secrets.create(&PostParams::default(), &s).await.expect("secret");
    }
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let good = format!("canary-{}", random_suffix());
    let bad = format!("canary-bad-{}", random_suffix());
    let mut p = CimiProvider::new(&good, provider_spec(&sim.url(), "creds"));
    p.metadata.labels = Some(labels.clone());
    providers.create(&PostParams::default(), &p).await.expect("provider");
    let mut p = CimiProvider::new(&bad, provider_spec(&sim.url(), "wrong-creds"));
    p.metadata.labels = Some(labels.clone());
    providers.create(&PostParams::default(), &p).await.expect("bad provider");

    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let mut m = CimiMachine::new(
        "canary-vm",
        CimiMachineSpec {
            provider_ref: ProviderRef::cluster(good.clone()),
            template: Some(MachineTemplateSpec {
                machine_config: Some(CatalogRef::by_name("tiny")),
                machine_image: Some(CatalogRef::by_name("Linux SUSE")),
                credential_secret_ref: Some(SecretRef::new("login")),
                user_data_secret_ref: Some(SecretKeyRef { name: "userdata".into(), key: "userData".into() }),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    m.metadata.labels = Some(labels.clone());
    machines.create(&PostParams::default(), &m).await.expect("machine");
    // A machine on the provider with wrong credentials, and one whose credential Secret lacks a key
    // it is asked for: error paths that must not leak either.
    let mut stuck = m.clone();
    stuck.metadata.name = Some("canary-stuck".into());
    stuck.spec.provider_ref.name = bad.clone();
    machines.create(&PostParams::default(), &stuck).await.expect("machine on the bad provider");
    let mut nokey = m.clone();
    nokey.metadata.name = Some("canary-nokey".into());
    if let Some(t) = nokey.spec.template.as_mut() {
        t.user_data_secret_ref = Some(SecretKeyRef { name: "userdata".into(), key: "missing".into() });
    }
    machines.create(&PostParams::default(), &nokey).await.expect("machine with a missing key");

    eventually("canary-vm Ready", T, || async {
        let m = machines.get("canary-vm").await.ok()?;
        condition(&m.status?.common.conditions, "Ready").filter(|c| c.0 == "True").map(|_| ())
    })
    .await;
    eventually("the bad provider Unauthorized", T, || async {
        let p = providers.get(&bad).await.ok()?;
        condition(&p.status?.conditions, "Ready").filter(|c| c.1 == "Unauthorized").map(|_| ())
    })
    .await;
    eventually("canary-nokey Stalled on its Secret", T, || async {
        let m = machines.get("canary-nokey").await.ok()?;
        condition(&m.status?.common.conditions, "Stalled").filter(|c| c.1 == "SecretNotFound").map(|_| ())
    })
    .await;
    // The provider did get the credential and the userData (so the operator did read them).
    let on_provider = sim.with_store(|s| serde_json::to_string(&*s).unwrap_or_default());
    assert!(on_provider.contains(&canary_b64) || on_provider.contains(&canary), "the sim got the userData");

    // Delete everything, so deletion paths are logged as well. The provider with wrong credentials
    // cannot confirm that nothing was created: that machine needs the escape hatch.
    machines
        .patch(
            "canary-stuck",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"annotations": {"cimi.dev/force-orphan": "true"}}}),
            ),
        )
        .await
        .expect("force-orphan");
    machines.delete_collection(&DeleteParams::default(), &Default::default()).await.expect("delete machines");
    eventually("machines gone", T, || async {
        machines.list(&Default::default()).await.ok()?.items.is_empty().then_some(())
    })
    .await;

    let objects = [
        serde_json::to_string(&machines.list(&Default::default()).await.expect("machines").items).expect("json"),
        serde_json::to_string(&providers.get(&good).await.expect("provider")).expect("json"),
        serde_json::to_string(&providers.get(&bad).await.expect("provider")).expect("json"),
    ]
    .join("\n");
    let events_v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    let core_events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns.name);
    let all_events: Api<k8s_openapi::api::core::v1::Event> = Api::all(client.clone());
    let events = [
        serde_json::to_string(&events_v1.list(&Default::default()).await.expect("events").items).expect("json"),
        serde_json::to_string(&core_events.list(&Default::default()).await.expect("events").items).expect("json"),
        serde_json::to_string(&all_events.list(&Default::default()).await.expect("events").items).expect("json"),
    ]
    .join("\n");
    assert!(events.contains("Created"), "the operator published Events: {events}");
    let log = operator.log();
    assert!(log.contains("DEBUG") || log.contains("debug"), "the operator logged at debug level: {log}");
    for (what, text) in [("logs", &log), ("Events", &events), ("objects", &objects)] {
        assert!(!text.contains(&canary), "the canary password leaked into {what}");
        assert!(!text.contains(&canary_b64), "the base64 userData leaked into {what}");
    }
    providers.delete(&good, &DeleteParams::default()).await.expect("delete provider");
    providers.delete(&bad, &DeleteParams::default()).await.expect("delete provider");
}
