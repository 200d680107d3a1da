//! Custom resource types of the `cimi.dev` API group, version `v1alpha1`.
//!
//! - [`CimiProvider`] (cluster-scoped): a CIMI endpoint, its credentials, TLS, cadences and limits;
//! - [`CimiMachine`], [`CimiVolume`], [`CimiNetwork`], [`CimiSystem`] (namespaced): provider resources;
//! - [`common`]: references, policies, import, timeouts, Job/meter/action status shared by the kinds;
//! - [`conditions`]: condition types and the builder that keeps `lastTransitionTime`;
//! - [`reasons`]: the catalogue of condition reasons (`docs/reasons.md` is generated from it);
//! - [`reference`]: the API reference (`docs/api-reference.md`) generated from the CRDs;
//! - [`managed`]: the [`managed::Managed`] trait over the four managed kinds, provider tags, annotations;
//! - [`quantity`]: Kubernetes quantities to CIMI units and back to printer strings;
//! - [`fixtures`]: admission cases (invalid objects and the message the API server answers).
//!
//! [`crds`] returns every CustomResourceDefinition; `cimi-operator crd` prints them and
//! `crds/<plural>.cimi.dev.yaml` holds one each (a test keeps them in sync with the code).

pub mod common;
pub mod conditions;
pub mod fixtures;
pub mod machine;
pub mod managed;
pub mod network;
pub mod provider;
pub mod quantity;
pub mod reasons;
pub mod reference;
pub mod system;
pub mod volume;

pub use machine::{CimiMachine, CimiMachineSpec, CimiMachineStatus, PowerState};
pub use network::{CimiNetwork, CimiNetworkSpec, CimiNetworkStatus};
pub use provider::{CimiProvider, CimiProviderSpec, CimiProviderStatus};
pub use reasons::Reason;
pub use system::{CimiSystem, CimiSystemSpec, CimiSystemStatus};
pub use volume::{CimiVolume, CimiVolumeSpec, CimiVolumeStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CustomResourceDefinition of the operator, providers first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![CimiProvider::crd(), CimiMachine::crd(), CimiVolume::crd(), CimiNetwork::crd(), CimiSystem::crd()]
}

/// One CRD as YAML (one document, no leading `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// Every CRD as one multi-document YAML stream, as `cimi-operator crd` prints it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}

/// The file name of a CRD under `crds/`: `<plural>.cimi.dev.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.spec.names.plural.clone() + "." + &crd.spec.group)
}

/// Writes one file per CRD into `dir`, returning the paths written.
pub fn write_crds(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for crd in crds() {
        let path = dir.join(crd_file_name(&crd));
        std::fs::write(&path, crd_yaml(&crd)?)?;
        written.push(path);
    }
    Ok(written)
}

/// Where the Helm chart keeps its copy of the CRDs, relative to the repository root.
pub const CHART_CRDS_DIR: &str = "charts/cimi-operator/crds";

/// Writes every generated file under `root`: `crds/<plural>.cimi.dev.yaml` (and the chart's copy in
/// [`CHART_CRDS_DIR`]), `docs/reasons.md`, `docs/admission.md` and `docs/api-reference.md` (what
/// `make crds` runs). Returns the paths written.
pub fn write_generated(root: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut written = write_crds(&root.join("crds"))?;
    written.extend(write_crds(&root.join(CHART_CRDS_DIR))?);
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs)?;
    for (name, text) in [
        ("reasons.md", reasons::reasons_markdown()),
        ("admission.md", fixtures::admission_markdown()),
        ("api-reference.md", reference::reference_markdown()),
    ] {
        let path = docs.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
