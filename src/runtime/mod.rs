//! The runtime services the controllers use: CLI, configuration, telemetry, metrics, health, leader election,
//! shards and scoped watches. Nothing here knows the controllers; [`crate::operator`] wires both together.

pub mod cli;
pub mod config;
pub mod events;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod object_metrics;
pub mod shard;
pub mod telemetry;
pub mod watches;

pub use config::{Config, LeaderElectionConfig};
pub use health::Readiness;
pub use metrics::Metrics;
pub use shard::Shard;
