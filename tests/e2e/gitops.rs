//! The GitOps health checks read what the operator really writes: the Argo CD Lua script and the Flux
//! healthCheckExprs of `examples/gitops/` are run on live objects from an operator working against cimi-sim,
//! at first contact, once Ready, and once stalled.

use std::time::Duration;

use cimi_operator::api::{CimiMachine, CimiProvider};
use cimi_operator::sim::{Sim, SimConfig};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::chart::{argo_health, flux_health};
use crate::harness::{TestNamespace, TestOperator, client, eventually};
use crate::machine::ready_provider;

const T: Duration = Duration::from_secs(60);

fn machine(op: &TestOperator, name: &str, provider: &str, image: &str) -> CimiMachine {
    serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1",
        "kind": "CimiMachine",
        "metadata": {"name": name, "labels": op.labels()},
        "spec": {
            "providerRef": {"name": provider},
            "template": {"machineConfig": {"name": "tiny"}, "machineImage": {"name": image}},
        },
    }))
    .expect("a CimiMachine")
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
    machines.create(&PostParams::default(), &machine(&op, "good", &provider, "Linux SUSE")).await.expect("good");
    machines.create(&PostParams::default(), &machine(&op, "bad", &provider, "No Such Image")).await.expect("bad");

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
