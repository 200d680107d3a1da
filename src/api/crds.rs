//! Every CustomResourceDefinition of the operator, as objects and as the YAML of `crds/`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::image::{CimiMachineImage, CimiVolumeImage};
use super::machine::CimiMachine;
use super::network::CimiNetwork;
use super::provider::{CimiNamespacedProvider, CimiProvider};
use super::system::CimiSystem;
use super::volume::CimiVolume;

/// Every CustomResourceDefinition of the operator, providers first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        CimiProvider::crd(),
        CimiNamespacedProvider::crd(),
        CimiMachine::crd(),
        CimiVolume::crd(),
        CimiNetwork::crd(),
        CimiSystem::crd(),
        CimiMachineImage::crd(),
        CimiVolumeImage::crd(),
    ]
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
