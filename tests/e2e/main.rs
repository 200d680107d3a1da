//! End-to-end tests on a real control plane (etcd + kube-apiserver + kube-controller-manager), one per test
//! binary, shared by every test; each test works in its own namespace with its own clients.

mod harness;
#[path = "../support/hostile.rs"]
mod hostile_provider;

mod api;
mod chart;
mod day2;
mod devenv;
mod gitops;
mod hostile;
mod import;
mod machine;
mod observe;
mod plugin;
mod provider;
mod quickstart;
mod resilience;
mod runtime;
mod secrets;
mod smoke;
mod system;
mod uninstall;
