//! Contract tests of the CIMI client over real HTTP on loopback: against a scripted provider for the
//! deviations cimi-sim does not serve, and against cimi-sim in-process.

mod deviations;
mod faults;
mod logs;
mod primer;
mod resources;
mod scripted;
mod tls;
mod typed;
