//! The API surface on a real API server: every CRD installs, `kubectl explain` shows the field docs, invalid objects
//! are refused at admission with the message a user sees, valid ones are accepted; and the API reference
//! (`docs/api-reference.md`) is the one generated from the CRDs.

use cimi_operator::api::fixtures::{AdmissionCase, Check, admission_cases, valid_objects};
use cimi_operator::api::{CimiMachine, CimiNamespacedProvider, CimiNetwork, CimiProvider, CimiSystem, CimiVolume};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

use crate::harness::control_plane::{TestNamespace, client, control_plane, random_suffix};
use crate::harness::repo::repo_file;
use crate::harness::wait::eventually;

#[tokio::test]
async fn every_crd_is_established() {
    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for plural in
        ["cimiproviders", "ciminamespacedproviders", "cimimachines", "cimivolumes", "ciminetworks", "cimisystems"]
    {
        let crd = crds.get(&format!("{plural}.cimi.dev")).await.expect("CRD installed");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{plural}.cimi.dev is established");
        assert!(crd.spec.names.categories.unwrap_or_default().contains(&"cimi".to_string()), "{plural} is in `cimi`");
    }
}

/// `kubectl explain` output for `path`; the OpenAPI document of a new CRD is published a little after the CRD is
/// established, so this waits for it.
async fn explain(path: &'static str) -> String {
    let kubectl = cimi_operator::devenv::tools::Tool::Kubectl.locate().expect("kubectl from make tools");
    eventually(&format!("`kubectl explain {path}` to answer"), std::time::Duration::from_secs(60), || {
        let kubectl = kubectl.clone();
        async move {
            let out = tokio::process::Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(control_plane().kubeconfig_path())
                .args(["explain", path])
                .output()
                .await
                .expect("run kubectl explain");
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    })
    .await
}

#[tokio::test]
async fn kubectl_explain_shows_field_docs() {
    let text = explain("cimimachine.spec").await;
    for field in ["providerRef", "powerState", "deletionPolicy", "managementPolicy", "volumes", "networkInterfaces"] {
        assert!(text.contains(field), "`kubectl explain cimimachine.spec` lists {field}:\n{text}");
    }
    // The field docs come through, not only the names.
    let text = explain("cimimachine.spec.powerState").await;
    assert!(text.contains("DESCRIPTION") && text.contains("Started"), "powerState is documented:\n{text}");
}

#[tokio::test]
async fn invalid_objects_are_refused_with_a_useful_message() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "admission").await;
    let cases = admission_cases();
    let cel = cases.iter().filter(|c| c.check == Check::Cel).count();
    let transitions = cases.iter().filter(|c| c.check == Check::CelTransition).count();
    assert!(cases.len() >= 12 && cel + transitions >= 6 && transitions >= 3, "coverage of the admission cases");
    let prefix = format!("a{}", &random_suffix()[..6]);
    let mut failures = Vec::new();
    for case in &cases {
        match run_admission_case(&client, &ns.name, &prefix, case).await {
            Ok(message) => println!("{}: refused: {message}", case.name),
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "admission cases that did not hold:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn valid_objects_are_accepted() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "valid").await;
    let prefix = format!("v{}", &random_suffix()[..6]);
    for object in valid_objects() {
        create_valid_object(&client, &ns.name, &prefix, &object).await.expect("a valid object is accepted");
    }
}

#[test]
fn api_reference_is_generated_from_the_crds() {
    let have = std::fs::read_to_string(repo_file("docs/api-reference.md")).unwrap_or_default();
    assert!(
        have == cimi_operator::api::reference::reference_markdown(),
        "docs/api-reference.md is stale: run `make crds`"
    );
    for needle in ["## CimiMachine", "| `spec.providerRef.name` | string | yes |", "### CimiProvider.status"] {
        assert!(have.contains(needle), "the reference shows {needle}");
    }
}

// The runners of the admission fixtures (`cimi_operator::api::fixtures` holds the cases, as data).

/// The API resource of a kind of this group, and whether it is namespaced.
fn api_resource(kind: &str) -> Option<(ApiResource, bool)> {
    match kind {
        "CimiProvider" => Some((ApiResource::erase::<CimiProvider>(&()), false)),
        "CimiNamespacedProvider" => Some((ApiResource::erase::<CimiNamespacedProvider>(&()), true)),
        "CimiMachine" => Some((ApiResource::erase::<CimiMachine>(&()), true)),
        "CimiVolume" => Some((ApiResource::erase::<CimiVolume>(&()), true)),
        "CimiNetwork" => Some((ApiResource::erase::<CimiNetwork>(&()), true)),
        "CimiSystem" => Some((ApiResource::erase::<CimiSystem>(&()), true)),
        "CimiMachineImage" => Some((ApiResource::erase::<cimi_operator::api::CimiMachineImage>(&()), true)),
        "CimiVolumeImage" => Some((ApiResource::erase::<cimi_operator::api::CimiVolumeImage>(&()), true)),
        _ => None,
    }
}

fn dynamic_api(client: &kube::Client, namespace: &str, kind: &str) -> Result<Api<DynamicObject>, String> {
    let (resource, namespaced) = api_resource(kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    Ok(if namespaced {
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    })
}

fn to_dynamic(value: &Value, name_prefix: &str) -> Result<DynamicObject, String> {
    let mut object: DynamicObject = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    object.metadata.name = object.metadata.name.map(|n| format!("{name_prefix}{n}"));
    Ok(object)
}

/// Sends one case to the API server (creating `old` first for an update case) and checks that it is refused
/// with the expected message. Namespaced objects go to `namespace`; every name gets `name_prefix`
/// (cluster-scoped CimiProviders share one namespace-less space, so each run has its own prefix, short enough
/// that names stay within 63 characters). Returns the API server's message.
async fn run_admission_case(
    client: &kube::Client,
    namespace: &str,
    name_prefix: &str,
    case: &AdmissionCase,
) -> Result<String, String> {
    let kind = case.object["kind"].as_str().unwrap_or_default();
    let api = dynamic_api(client, namespace, kind)?;
    let mut object = to_dynamic(&case.object, name_prefix)?;
    let outcome = match &case.old {
        None => api.create(&PostParams::default(), &object).await,
        Some(old) => {
            let old = to_dynamic(old, name_prefix)?;
            let created = api
                .create(&PostParams::default(), &old)
                .await
                .map_err(|e| format!("{}: the old object was refused: {e}", case.name))?;
            object.metadata.resource_version = created.metadata.resource_version;
            let name = object.metadata.name.clone().unwrap_or_default();
            api.replace(&name, &PostParams::default(), &object).await
        }
    };
    match outcome {
        Ok(_) => Err(format!("{}: accepted, expected a refusal with {:?}", case.name, case.expected_message)),
        Err(kube::Error::Api(status)) if status.message.contains(case.expected_message) => Ok(status.message),
        Err(error) => Err(format!("{}: expected {:?}, got {error}", case.name, case.expected_message)),
    }
}

/// Creates one valid object on the API server (the positive control), with `name_prefix` on its name.
async fn create_valid_object(
    client: &kube::Client,
    namespace: &str,
    name_prefix: &str,
    object: &Value,
) -> Result<(), String> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let api = dynamic_api(client, namespace, kind)?;
    let object = to_dynamic(object, name_prefix)?;
    api.create(&PostParams::default(), &object).await.map(|_| ()).map_err(|e| format!("{kind} refused: {e}"))
}
