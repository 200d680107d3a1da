//! `examples/quickstart/` as a user applies it, scoped to a test, and the CimiSystem of that quickstart.

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
    let dir = repo_file("examples/quickstart");
    let pp = PatchParams::apply("e2e-quickstart").force();
    for (_, mut obj) in read_manifests(&dir).expect("the quickstart manifests parse") {
        let types = obj.types.clone().expect("types");
        if types.kind == "Namespace" {
            continue;
        }
        let gvk = GroupVersionKind::try_from(&types).expect("gvk");
        let ar = ApiResource::from_gvk(&gvk);
        obj.metadata.labels.get_or_insert_default().insert(label.0.clone(), label.1.clone());
        let api: Api<DynamicObject> = match types.kind.as_str() {
            "CimiProvider" => {
                obj.metadata.name = Some(provider.to_string());
                obj.data["spec"]["endpoint"] = json!(endpoint);
                Api::all_with(client.clone(), &ar)
            }
            "Secret" => {
                obj.metadata.namespace = Some(namespace.to_string());
                Api::namespaced_with(client.clone(), namespace, &ar)
            }
            _ => {
                obj.data["spec"]["providerRef"]["name"] = json!(provider);
                Api::namespaced_with(client.clone(), namespace, &ar)
            }
        };
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
