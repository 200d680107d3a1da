//! The reconcilers and their shared machinery.
//!
//! - [`registry`]: one CIMI connection per CimiProvider, shared by every controller;
//! - [`provider`]: the CimiProvider controller (credentials, discovery, catalog, re-probe, in-use);
//! - [`machine`]: the CimiMachine controller (observe -> plan -> act -> status);
//! - [`volume`], [`network`]: the CimiVolume and CimiNetwork controllers;
//! - [`simple`]: the reconcile shared by volumes and networks;
//! - [`system`]: the CimiSystem controller (SystemTemplates, nested Jobs, members, exposeMembers);
//! - [`resource`]: what the managed kinds do with their provider resource (identity, import, Jobs, deletion);
//! - [`connection`]: the provider connection an object may use;
//! - [`outcome`]: provider errors turned into conditions and requeue delays;
//! - [`kubeops`]: status by server-side apply, finalizers, Events;
//! - [`watching`]: every controller's watches (namespaces, label selector, readiness, decode
//!   failures) and its reconcile metrics;
//! - [`namespaces`]: `spec.allowedNamespaces` of a CimiProvider.
//! - [`observer`]: provider state from paged collection reads, meters and provider events;
//! - [`stores`]: the controllers' caches, shared so reconciles read related objects from memory.
//!
//! [`crate::operator`] starts every controller; each reconcile shares a [`context::Context`].

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
