//! CimiProvider: a provider pointed at cimi-sim becomes Ready with its catalog; wrong credentials,
//! a stopped provider and Secret rotation show in its Ready condition.

use std::time::Duration;

use cimi_operator::api::common::SecretRef;
use cimi_operator::api::{CimiProvider, CimiProviderSpec};
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::harness::{TestNamespace, TestOperator, client, condition, eventually, random_suffix};

const T: Duration = Duration::from_secs(60);

/// A credentials Secret in the operator namespace, carrying the test's label.
pub fn credentials_secret(op: &TestOperator, name: &str, user: &str, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), labels: Some(op.labels()), ..Default::default() },
        data: Some(
            [
                ("username".to_string(), ByteString(user.as_bytes().to_vec())),
                ("password".to_string(), ByteString(password.as_bytes().to_vec())),
            ]
            .into_iter()
            .collect(),
        ),
        ..Default::default()
    }
}

/// A CimiProvider for a sim, polled every second, with the test's label.
pub fn provider_for(op: &TestOperator, name: &str, endpoint: &str, ns: &str, secret: &str) -> CimiProvider {
    let mut p = CimiProvider::new(
        name,
        CimiProviderSpec {
            endpoint: endpoint.to_string(),
            credentials_secret_ref: Some(SecretRef { namespace: ns.into(), name: secret.into() }),
            ca_bundle_secret_ref: None,
            insecure_skip_tls_verify: false,
            format: Default::default(),
            poll_interval: "1s".into(),
            meter_interval: "5m".into(),
            event_interval: "1m".into(),
            rate_limit: None,
            allowed_namespaces: None,
        },
    );
    p.metadata.labels = Some(op.labels());
    p
}

/// Waits for the provider's Ready condition to have `status` and `reason`.
pub async fn wait_ready(providers: &Api<CimiProvider>, name: &str, status: &str, reason: &str) -> CimiProvider {
    eventually(&format!("provider {name} Ready={status} ({reason})"), T, || async {
        let p = providers.get(name).await.ok()?;
        let st = p.status.as_ref()?;
        (condition(&st.conditions, "Ready") == Some((status.into(), reason.into()))).then_some(p)
    })
    .await
}

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
    providers
        .create(&PostParams::default(), &provider_for(&op, &name, &sim.url(), &ns.name, "creds"))
        .await
        .expect("provider");

    // Ready with the catalog.
    let p = wait_ready(&providers, &name, "True", "Reachable").await;
    let st = p.status.expect("status");
    assert!(st.ready);
    assert!(st.collections.iter().any(|c| c == "machines"), "{:?}", st.collections);
    let catalog = st.catalog.expect("catalog");
    assert!(catalog.machine_configs.iter().any(|e| e.name.as_deref() == Some("small")), "{catalog:?}");
    assert!(catalog.machine_images.iter().any(|e| e.name.as_deref() == Some("Linux SUSE")));
    assert!(catalog.counts["machineConfigs"] >= 3);
    assert!(st.last_probe_time.is_some() && st.latency.is_some());
    assert_eq!(st.base_uri.as_deref(), Some(sim.url().as_str()));
    assert_eq!(st.observed_generation, p.metadata.generation);

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
