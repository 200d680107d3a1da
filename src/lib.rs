//! cimi-operator: a Kubernetes operator for IaaS resources of any DMTF CIMI provider.
//!
//! The crate is one package with a library and thin binaries:
//! - [`cimi`]: the CIMI client and the shared resource model;
//! - [`sim`]: `cimi-sim`, a faithful CIMI provider that simulates an IaaS;
//! - [`api`]: the custom resource types (`cimi.dev/v1alpha1`);
//! - [`controller`]: the reconcilers;
//! - [`runtime`]: CLI, configuration, telemetry, metrics, health and leader election;
//! - `devenv` (feature `devenv`): the local control plane used by tests and demos.

pub mod api;
pub mod cimi;
pub mod controller;
#[cfg(feature = "devenv")]
pub mod devenv;
pub mod runtime;
pub mod sim;

/// The API group of every custom resource.
pub const API_GROUP: &str = "cimi.dev";
/// The API version of every custom resource.
pub const API_VERSION: &str = "v1alpha1";
/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cimi-operator";
/// The finalizer on managed kinds: provider cleanup before the object goes.
pub const FINALIZER_CLEANUP: &str = "cimi.dev/cleanup";
/// The finalizer on providers, and on volumes and networks held by a machine.
pub const FINALIZER_IN_USE: &str = "cimi.dev/in-use";
