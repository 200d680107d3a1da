//! CimiVolume, CimiNetwork, CimiMachineImage and CimiVolumeImage: provider resources that are created, observed,
//! updated (name, description, properties) and deleted, without actions, and that other objects hold (the
//! `cimi.dev/in-use` finalizer): machines hold their volumes and networks, restored machines and volumes their
//! images.
//!
//! - [`kind`]: what is particular to each ([`kind::StorageKind`]);
//! - [`controller`]: their guard and one pass (observe, plan, act) on the reconcile shell;
//! - [`plan`]: the next step, a pure function of what was observed;
//! - [`volume`], [`network`], [`image`]: the kinds.

pub mod controller;
pub mod image;
pub mod kind;
pub mod network;
pub mod plan;
pub mod volume;
