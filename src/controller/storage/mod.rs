//! CimiVolume and CimiNetwork: provider resources that are created, observed, updated (name, description,
//! properties) and deleted, without actions, and that machines hold (the `cimi.dev/in-use` finalizer).
//!
//! - [`kind`]: what is particular to each ([`kind::StorageKind`]);
//! - [`controller`]: their guard and one pass (observe, plan, act) on the reconcile shell;
//! - [`plan`]: the next step, a pure function of what was observed;
//! - [`volume`], [`network`]: the two kinds.

pub mod controller;
pub mod kind;
pub mod network;
pub mod plan;
pub mod volume;
