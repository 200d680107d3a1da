//! What the end-to-end tests share, one room per purpose. Test modules import from here (and from the
//! hostile-provider support module), never from each other.
//!
//! - [`control_plane`]: the shared control plane of this binary, admin and impersonating clients, a namespace per
//!   test.
//! - [`operator`]: the operator under test, in process ([`operator::TestOperator`]) or as the `cimi-operator`
//!   binary ([`operator::OperatorProcess`]), and its admin server.
//! - [`sim`]: cimi-sim as the provider of a test: its CimiProvider and credentials Secret, a CIMI client to look
//!   at the provider side, resources made there by hand, faults, request counts.
//! - [`systems`]: a CimiSystem's Ready, state, members; waiting for it, deleting it.
//! - [`objects`]: the CIMI objects and Secrets the tests create, built with the test's label.
//! - [`wait`]: polling until something holds; conditions as a user reads them.
//! - [`events`]: Kubernetes Events about an object, provider events mirrored onto it.
//! - [`tools`]: kubectl and helm from the tool cache.
//! - [`repo`]: files of the repository and YAML streams.
//! - [`examples`]: `examples/quickstart/` applied as a user would, and its CimiSystem.
//! - [`chart`]: the Helm chart rendered, and the RBAC it grants.
//! - [`gitops`]: `examples/gitops/` read as Flux and Argo CD read it, and their health checks.

pub mod chart;
pub mod control_plane;
pub mod events;
pub mod examples;
pub mod gitops;
pub mod objects;
pub mod operator;
pub mod repo;
pub mod sim;
pub mod systems;
pub mod tools;
pub mod wait;
