//! cimi-operator: a Kubernetes operator for IaaS resources of any DMTF CIMI provider.
//!
//! The crate is one package with a library and thin binaries:
//! - [`cimi`]: the CIMI client and the shared resource model;
//! - [`sim`]: `cimi-sim`, a faithful CIMI provider that simulates an IaaS;
//! - [`api`]: the custom resource types (`cimi.dev/v1alpha1`);
//! - [`controller`]: the reconcilers;
//! - [`runtime`]: CLI, configuration, telemetry, metrics, health and leader election: the services controllers use;
//! - [`operator`]: the wiring: starts the runtime services and, while this instance leads, every controller;
//! - [`names`]: the names every part agrees on (API group, field manager, finalizers, annotations, tags);
//! - `devenv` (feature `devenv`): the local control plane used by tests and demos;
//! - [`plugin`]: `kubectl cimi`, the companion CLI (binary `kubectl-cimi`).

pub mod api;
pub mod cimi;
pub mod controller;
#[cfg(feature = "devenv")]
pub mod devenv;
pub mod names;
pub mod operator;
pub mod plugin;
pub mod runtime;
pub mod sim;

pub use names::*;
pub use operator::run;
pub use runtime::Config;
