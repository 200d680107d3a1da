//! Operator runtime: CLI, configuration, telemetry, metrics, health, leader election.
