//! The API surface on a real API server: every CRD installs, `kubectl explain` shows the field docs, invalid objects
//! are refused at admission with the message a user sees, valid ones are accepted.

use cimi_operator::api::fixtures::{Check, admission_cases, create_valid_object, run_admission_case, valid_objects};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

use crate::harness::{TestNamespace, client, control_plane, random_suffix};

#[tokio::test]
async fn every_crd_is_established() {
    let client = client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for plural in ["cimiproviders", "cimimachines", "cimivolumes", "ciminetworks", "cimisystems"] {
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
    crate::harness::eventually(
        &format!("`kubectl explain {path}` to answer"),
        std::time::Duration::from_secs(60),
        || {
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
        },
    )
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
