//! The health checks the GitOps examples configure, Argo CD's in Lua (`examples/gitops/argocd/health.lua`, embedded
//! in argocd-cm for every cimi.dev kind) and Flux's in CEL (the `healthCheckExprs` of the resources'
//! Kustomization), run as the tools run them: on objects at first contact, working, Ready and stalled, and on live
//! objects from an operator working against cimi-sim (a Ready provider and machine, a stalled machine, a provider
//! that refuses the credentials).

use std::time::Duration;

use cimi_operator::api::{CimiMachine, CimiProvider};
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::gitops::{argo_health, argocd_cm, flux_health, lua_health};
use crate::harness::objects::machine_from;
use crate::harness::operator::TestOperator;
use crate::harness::repo::repo_file;
use crate::harness::sim::{credentials_secret, provider_for, ready_provider};
use crate::harness::wait::eventually;

const T: Duration = Duration::from_secs(60);

/// The cimi.dev kinds, each with a health check in both tools.
/// Every cimi.dev kind, from the CRDs (a new kind needs its health checks without anyone remembering to add it).
fn cimi_kinds() -> Vec<String> {
    cimi_operator::api::crds().into_iter().map(|crd| crd.spec.names.kind).collect()
}

/// A CimiMachine as the operator leaves it at `generation`, with `status` when it wrote one.
fn machine(generation: i64, status: Option<Value>) -> Value {
    let mut object = serde_json::json!({
        "apiVersion": "cimi.dev/v1alpha1",
        "kind": "CimiMachine",
        "metadata": {"name": "web-1", "namespace": "team-a", "generation": generation},
        "spec": {"providerRef": {"name": "lab"}},
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

/// A condition as the operator writes it.
fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    serde_json::json!({"type": kind, "status": status, "reason": reason, "message": message})
}

/// An object of `kind` as the operator leaves it at `generation`, with `status` when it wrote one.
fn object_of(kind: &str, generation: i64, status: Option<Value>) -> Value {
    let mut object = machine(generation, status);
    object["kind"] = kind.into();
    object
}

/// A CimiProvider as the operator writes it when the provider refuses the credentials, or cannot be reached.
fn provider_object(reason: &str, stalled: bool) -> Value {
    let message = "the provider answered 401 to the given credentials";
    let mut conditions = vec![json!({"type": "Ready", "status": "False", "reason": reason, "message": message})];
    if stalled {
        conditions.push(json!({"type": "Stalled", "status": "True", "reason": reason, "message": message}));
    }
    json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider",
        "metadata": {"name": "lab", "generation": 2},
        "spec": {"endpoint": "https://cimi.example.net/cimi/cloudEntryPoint"},
        "status": {"observedGeneration": 2, "conditions": conditions},
    })
}

#[test]
fn argo_cd_health_check_reads_ready_progressing_and_stalled_under_lua_5_1() {
    let (status, message) = argo_health(machine(1, None));
    assert_eq!((status.as_str(), message.as_str()), ("Progressing", "Waiting for the operator"));

    let ready = serde_json::json!({
        "observedGeneration": 2,
        "conditions": [condition("Ready", "True", "Available", "machine is STARTED")],
    });
    assert_eq!(
        argo_health(machine(2, Some(ready.clone()))),
        ("Healthy".into(), "Available: machine is STARTED".into())
    );
    // A spec change the operator has not seen yet is not healthy, whatever the old conditions say.
    let (status, message) = argo_health(machine(3, Some(ready)));
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 3"), "{message}");

    let progressing = serde_json::json!({
        "observedGeneration": 1,
        "conditions": [
            condition("Ready", "False", "Creating", "waiting for the provider's Job"),
            condition("Reconciling", "True", "Creating", "Job 42 is RUNNING"),
        ],
    });
    assert_eq!(
        argo_health(machine(1, Some(progressing))),
        ("Progressing".into(), "Creating: Job 42 is RUNNING".into())
    );

    let stalled = serde_json::json!({
        "observedGeneration": 1,
        "conditions": [
            condition("Ready", "False", "Unauthorized", "the provider refused the credentials"),
            condition("Stalled", "True", "Unauthorized", "the provider refused the credentials"),
        ],
    });
    assert_eq!(
        argo_health(machine(1, Some(stalled))),
        ("Degraded".into(), "Unauthorized: the provider refused the credentials".into())
    );
}

#[test]
fn argo_cd_config_map_embeds_the_health_check_for_every_cimi_kind() {
    let script = std::fs::read_to_string(repo_file("examples/gitops/argocd/health.lua")).expect("health.lua");
    let text = std::fs::read_to_string(repo_file("examples/gitops/argocd/argocd-cm.yaml")).expect("argocd-cm");
    let config: Value = serde_yaml::from_str(&text).expect("yaml");
    for kind in cimi_kinds() {
        let kind = kind.as_str();
        let key = format!("resource.customizations.health.cimi.dev_{kind}");
        assert_eq!(config["data"][&key].as_str(), Some(script.as_str()), "{key} must be health.lua verbatim");
    }
}

#[test]
fn flux_health_check_exprs_read_ready_progressing_and_stalled_objects_of_every_kind() {
    for kind in cimi_kinds() {
        let kind = kind.as_str();
        // Before the operator wrote anything: never current, never failed.
        let fresh = flux_health(&object_of(kind, 1, None));
        assert!(!matches!(fresh, Ok("Current" | "Failed")), "{kind} without status: {fresh:?}");
        // First contact: Reconciling, no Ready or Stalled yet.
        let first = serde_json::json!({
            "observedGeneration": 1,
            "conditions": [condition("Reconciling", "True", "Creating", "creating on the provider")],
        });
        assert_eq!(flux_health(&object_of(kind, 1, Some(first))), Ok("InProgress"), "{kind}");
        // Working: Ready=False without Stalled is in progress, not failed (`filter(..).all(..)` on the absent
        // Stalled condition would have read it as failed).
        let progressing = serde_json::json!({
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "Creating", "waiting for the provider's Job"),
                condition("Reconciling", "True", "Creating", "Job 42 is RUNNING"),
            ],
        });
        assert_eq!(flux_health(&object_of(kind, 1, Some(progressing))), Ok("InProgress"), "{kind}");
        let ready = serde_json::json!({
            "observedGeneration": 2,
            "conditions": [
                condition("Ready", "True", "Available", "machine is STARTED"),
                condition("Reconciling", "False", "Available", "in sync"),
                condition("Stalled", "False", "Available", "in sync"),
            ],
        });
        assert_eq!(flux_health(&object_of(kind, 2, Some(ready.clone()))), Ok("Current"), "{kind}");
        // A spec change the operator has not seen yet is in progress, whatever the old conditions say.
        assert_eq!(flux_health(&object_of(kind, 3, Some(ready))), Ok("InProgress"), "{kind}");
        let stalled = serde_json::json!({
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "Unauthorized", "the provider refused the credentials"),
                condition("Reconciling", "False", "Unauthorized", "waiting for new credentials"),
                condition("Stalled", "True", "Unauthorized", "the provider refused the credentials"),
            ],
        });
        assert_eq!(flux_health(&object_of(kind, 1, Some(stalled))), Ok("Failed"), "{kind}");
    }
}

#[test]
fn a_provider_that_needs_a_human_is_degraded_in_argo_cd_and_failed_in_flux() {
    let config = argocd_cm();
    let script = config["data"]["resource.customizations.health.cimi.dev_CimiProvider"].as_str().expect("script");
    let refused = provider_object("Unauthorized", true);
    let (status, message) = lua_health(script, &refused);
    assert_eq!(status, "Degraded", "{message}");
    assert!(message.starts_with("Unauthorized: "), "{message}");
    assert_eq!(flux_health(&refused), Ok("Failed"));
    // Unreachable may come back by itself: no Stalled, so both keep waiting instead of failing.
    let unreachable = provider_object("Unreachable", false);
    assert_eq!(lua_health(script, &unreachable).0, "Progressing");
    assert_eq!(flux_health(&unreachable), Ok("InProgress"));
}

/// Both tools' verdicts on the object as it is now: (Argo CD health status, Flux status).
async fn verdicts(machines: &Api<CimiMachine>, name: &str) -> (String, Result<&'static str, String>, Value) {
    let object = serde_json::to_value(machines.get(name).await.expect("get")).expect("json");
    let (argo, _) = argo_health(object.clone());
    (argo, flux_health(&object), object)
}

#[tokio::test]
async fn argo_cd_and_flux_health_checks_agree_with_the_live_operator() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "gitops").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;

    // The provider the operator marked Ready reads as healthy in both.
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let object = serde_json::to_value(providers.get(&provider).await.expect("provider")).expect("json");
    assert_eq!(argo_health(object.clone()).0, "Healthy", "{object}");
    assert_eq!(flux_health(&object), Ok("Current"), "{object}");

    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let good = machine_from(&op, "good", &provider, "tiny", "Linux SUSE");
    machines.create(&PostParams::default(), &good).await.expect("good");
    let bad = machine_from(&op, "bad", &provider, "tiny", "No Such Image");
    machines.create(&PostParams::default(), &bad).await.expect("bad");

    // From the first status write until Ready, the good machine is never failed nor degraded; then both read it
    // as healthy.
    eventually("the good machine healthy in Argo CD and current in Flux", T, || async {
        let (argo, flux, object) = verdicts(&machines, "good").await;
        assert_ne!(argo, "Degraded", "{object}");
        assert!(!matches!(flux, Ok("Failed")), "{object}");
        (argo == "Healthy" && flux == Ok("Current")).then_some(())
    })
    .await;

    // The stalled machine fails Flux's check at once and is degraded in Argo CD; neither waits for a timeout.
    let (argo, flux, object) = eventually("the bad machine degraded and failed", T, || async {
        let (argo, flux, object) = verdicts(&machines, "bad").await;
        assert_ne!(argo, "Healthy", "{object}");
        assert!(!matches!(flux, Ok("Current")), "{object}");
        (argo == "Degraded").then_some((argo, flux, object))
    })
    .await;
    assert_eq!(flux, Ok("Failed"), "{object}");
    let (_, message) = argo_health(object);
    assert!(message.contains("No Such Image"), "Argo CD shows what to fix: {message} ({argo})");
}

#[tokio::test]
async fn a_provider_refusing_the_credentials_is_degraded_and_failed_on_the_live_operator() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "gitopsprov").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets
        .create(&PostParams::default(), &credentials_secret(&op, "wrong", "demo", "not-the-password"))
        .await
        .expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let name = format!("refused-{}", random_suffix());
    providers.create(&PostParams::default(), &provider_for(&op, &name, &sim.url(), "wrong")).await.expect("provider");
    let script = argocd_cm()["data"]["resource.customizations.health.cimi.dev_CimiProvider"]
        .as_str()
        .expect("script")
        .to_string();
    let (argo, flux) = eventually("the refused provider Degraded in Argo CD", T, || async {
        let object = serde_json::to_value(providers.get(&name).await.ok()?).expect("json");
        let (argo, message) = lua_health(&script, &object);
        assert_ne!(argo, "Healthy", "{object}");
        (argo == "Degraded").then(|| ((argo, message), flux_health(&object)))
    })
    .await;
    assert!(argo.1.starts_with("Unauthorized"), "Argo CD shows why: {}", argo.1);
    assert_eq!(flux, Ok("Failed"), "Flux fails the Kustomization at once");
    providers.delete(&name, &Default::default()).await.expect("delete the provider");
}
