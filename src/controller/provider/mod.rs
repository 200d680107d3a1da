//! The provider controllers, one per provider kind on one implementation:
//!
//! - [`kind`]: what differs between CimiProvider and CimiNamespacedProvider;
//! - [`controller`]: the pass: users and the in-use finalizer, settings, probe, status, Events;
//! - [`plan`]: what a pass does (release, hold, recount, probe), a pure function of what it saw;
//! - [`settings`]: the Secrets, the client, plain http;
//! - [`catalog`]: the bounded catalog and the capabilities a probe reads;
//! - [`users`]: the objects that hold the provider in use.

pub mod catalog;
pub mod controller;
pub mod kind;
pub mod plan;
pub mod settings;
pub mod users;

pub use controller::{run, run_namespaced};
