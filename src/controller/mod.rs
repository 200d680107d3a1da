//! The reconcilers and their shared machinery (the layout and the path of one object are drawn in
//! `docs/architecture.md`).
//!
//! - [`shell`]: the one reconcile pass of every managed kind (scope, pause, deletion, finalizers, conditions,
//!   the status writer, Events), generic over [`shell::kind::ManagedKind`];
//! - [`machine`]: CimiMachine (sync -> observe -> plan -> act; create);
//! - [`storage`]: CimiVolume and CimiNetwork, one controller and one plan for both;
//! - [`system`]: CimiSystem (SystemTemplates, nested Jobs, members, exposeMembers);
//! - [`provider`]: CimiProvider (credentials, discovery, catalog, probe, in-use);
//! - [`resource`]: what the managed kinds do with their provider resource (reads, attributes, identity and
//!   re-adoption, import, Jobs, deletion);
//! - [`observer`]: provider state from paged collection reads, meters and provider events;
//! - [`registry`]: one CIMI connection per CimiProvider, shared by every controller;
//! - [`connection`]: the provider connection an object may use;
//! - [`outcome`]: problems and progress turned into conditions and requeue delays;
//! - [`kubeops`]: status by server-side apply, finalizers, Events;
//! - [`driver`]: each controller's watches (namespaces, label selector, readiness, decode failures) and its
//!   reconcile metrics;
//! - [`namespaces`]: `spec.allowedNamespaces` of a CimiProvider;
//! - [`stores`]: the controllers' caches, shared so reconciles read related objects from memory;
//! - [`context`]: what every reconcile shares.
//!
//! [`crate::operator`] starts every controller.

pub mod connection;
pub mod context;
pub mod driver;
pub mod kubeops;
pub mod machine;
pub mod namespaces;
pub mod observer;
pub mod outcome;
pub mod provider;
pub mod registry;
pub mod resource;
pub mod shell;
pub mod storage;
pub mod stores;
pub mod system;
