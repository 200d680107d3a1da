//! End-to-end tests on a real control plane (etcd + kube-apiserver + kube-controller-manager), one per test
//! binary, shared by every test; each test works in its own namespace with its own clients.
//!
//! The rooms, one purpose each:
//!
//! - `harness/`: what the tests share (the control plane, the operator under test, cimi-sim as a provider, object
//!   builders, waiting, CimiSystems, Events, kubectl and helm, the repository's examples, the chart, the GitOps
//!   readers). Test modules import from it, never from each other.
//! - The API and the control plane: `api` (CRDs, `kubectl explain`, admission, the generated API reference),
//!   `smoke` (the control plane behaves like a cluster), `devenv` (the launcher leaves no process behind).
//! - One kind each, on cimi-sim: `provider` (CimiProvider), `machine` (CimiMachine), `system/` (CimiSystem:
//!   `lifecycle`, `profiles`, `exposed` members, `import`, mirrored `events`).
//! - Across kinds: `import` (adopting provider resources), `observe` (paged reads, meters, mirrored provider
//!   events), `resilience` (crash safety, every fault kind), `day2` (a rebuilt cluster, paused deletion, lost
//!   resources), `uninstall` (the commands of `docs/uninstall.md`), `quickstart` (`examples/quickstart/`).
//! - The operator's process: `runtime` (leader election, health, metrics, watches), `secrets` (no Secret leaks),
//!   `hostile` (tenancy and hostile providers), `tenancy` (team providers, import rights), `shards` (two shards
//!   splitting one namespace, on a control plane of their own).
//! - What users install and run: `chart/` (the Helm chart: `render`, `install`, `rbac`), `image` (the
//!   Dockerfile), `gitops/` (`examples/gitops/`: `flux`, `argocd`, `health` checks, `manifests`), `plugin`
//!   (`kubectl cimi`).

mod harness;
#[path = "../support/hostile.rs"]
mod hostile_provider;
#[path = "../support/soak/mod.rs"]
mod soak_harness;

mod api;
mod chart;
mod day2;
mod devenv;
mod gitops;
mod hostile;
mod image;
mod images;
mod import;
mod machine;
mod observe;
mod plugin;
mod provider;
mod quickstart;
mod resilience;
mod runtime;
mod secrets;
mod shards;
mod smoke;
mod soak;
mod system;
mod telemetry;
mod tenancy;
mod uninstall;
