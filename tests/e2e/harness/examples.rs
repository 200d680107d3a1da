//! The examples as a user applies them, scoped to a test, and the CimiSystem of the quickstart.

use cimi_operator::api::CimiSystem;
use cimi_operator::devenv::apply::read_manifests;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use super::operator::TestOperator;
use super::repo::repo_file;

/// Applies `examples/quickstart/` as a user would, scoped to a test: every object in `namespace` with the
/// test's `label`, the CimiProvider named `provider` and pointed at `endpoint` (its Secret in `namespace`).
pub async fn apply_quickstart(
    client: &kube::Client,
    namespace: &str,
    label: &(String, String),
    provider: &str,
    endpoint: &str,
) {
    apply_example(client, "examples/quickstart", namespace, label, provider, endpoint).await;
}

/// Applies the manifests of the example directory `dir` (relative to the repository) as a user would, scoped to
/// a test: every object in `namespace` with the test's `label`; a CimiProvider renamed `provider` (and every
/// reference to it), a provider of either kind pointed at `endpoint` over plain http (cimi-sim on loopback);
/// Namespaces and kustomize files left out.
pub async fn apply_example(
    client: &kube::Client,
    dir: &str,
    namespace: &str,
    label: &(String, String),
    provider: &str,
    endpoint: &str,
) {
    let dir = repo_file(dir);
    let pp = PatchParams::apply("e2e-examples").force();
    for (_, mut obj) in read_manifests(&dir).expect("the example manifests parse") {
        let types = obj.types.clone().expect("types");
        if types.kind == "Namespace" || types.api_version.starts_with("kustomize.config.k8s.io") {
            continue;
        }
        let gvk = GroupVersionKind::try_from(&types).expect("gvk");
        let ar = ApiResource::from_gvk(&gvk);
        obj.metadata.labels.get_or_insert_default().insert(label.0.clone(), label.1.clone());
        let api: Api<DynamicObject> = match types.kind.as_str() {
            "CimiProvider" => {
                obj.metadata.name = Some(provider.to_string());
                obj.data["spec"]["endpoint"] = json!(endpoint);
                obj.data["spec"]["allowPlainHTTP"] = json!(true);
                Api::all_with(client.clone(), &ar)
            }
            "CimiNamespacedProvider" => {
                obj.data["spec"]["endpoint"] = json!(endpoint);
                obj.data["spec"]["allowPlainHTTP"] = json!(true);
                Api::namespaced_with(client.clone(), namespace, &ar)
            }
            "Secret" => Api::namespaced_with(client.clone(), namespace, &ar),
            _ => {
                let reference = &mut obj.data["spec"]["providerRef"];
                if reference.get("kind").and_then(|k| k.as_str()).unwrap_or("CimiProvider") == "CimiProvider" {
                    reference["name"] = json!(provider);
                }
                Api::namespaced_with(client.clone(), namespace, &ar)
            }
        };
        obj.metadata.namespace = None;
        let name = obj.metadata.name.clone().expect("name");
        api.patch(&name, &pp, &Patch::Apply(&obj)).await.unwrap_or_else(|e| panic!("apply {}: {e}", types.kind));
    }
}

/// The CimiSystem of `examples/quickstart/50-system.yaml` (`shop`: two machines, a volume, a network), for this
/// test's provider and operator.
pub fn example_system(op: &TestOperator, provider: &str) -> CimiSystem {
    let text = std::fs::read_to_string(repo_file("examples/quickstart/50-system.yaml")).expect("the example system");
    let mut system: CimiSystem = serde_yaml::from_str(&text).expect("the example system parses");
    system.spec.provider_ref.name = provider.to_string();
    system.metadata.labels = Some(op.labels());
    system
}
