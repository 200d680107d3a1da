//! Custom resource types of the `cimi.dev` API group, version `v1alpha1`.
//!
//! - [`CimiProvider`] (cluster-scoped) and [`CimiNamespacedProvider`] (a team's own): a CIMI endpoint, its
//!   credentials, TLS, cadences, limits and import rights;
//! - [`CimiMachine`], [`CimiVolume`], [`CimiNetwork`], [`CimiSystem`] (namespaced): provider resources;
//! - [`CimiMachineImage`], [`CimiVolumeImage`] (namespaced): provider images and volume snapshots;
//! - [`common`]: references, policies, import, timeouts, Job/meter/action status shared by the kinds;
//! - [`conventions`]: the checked rules of `docs/api-conventions.md`, as a walk over a CRD schema;
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
pub mod conventions;
pub mod crds;
pub mod fixtures;
pub mod generate;
pub mod image;
pub mod machine;
pub mod managed;
pub mod network;
pub mod provider;
pub mod quantity;
pub mod reasons;
pub mod reference;
pub mod system;
pub mod volume;

pub use image::{
    CimiMachineImage, CimiMachineImageSpec, CimiMachineImageStatus, CimiVolumeImage, CimiVolumeImageSpec,
    CimiVolumeImageStatus,
};
pub use machine::{CimiMachine, CimiMachineSpec, CimiMachineStatus, PowerState};
pub use network::{CimiNetwork, CimiNetworkSpec, CimiNetworkStatus};
pub use provider::{
    CimiNamespacedProvider, CimiNamespacedProviderSpec, CimiProvider, CimiProviderSpec, CimiProviderStatus,
    ProviderSettings,
};
pub use reasons::Reason;
pub use system::{CimiSystem, CimiSystemSpec, CimiSystemStatus};
pub use volume::{CimiVolume, CimiVolumeSpec, CimiVolumeStatus};

pub use crds::{CHART_CRDS_DIR, crd_file_name, crd_yaml, crds, crds_yaml, write_crds};
pub use generate::write_generated;

#[cfg(test)]
mod tests;
