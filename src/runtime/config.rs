//! The operator's configuration: what the library entry point [`crate::run`] needs to know.

use std::net::SocketAddr;
use std::time::Duration;

/// Where and how the operator takes the leader Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Name of the `coordination.k8s.io/v1` Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own, by default).
    pub lease_namespace: String,
    /// This replica's identity, written as the Lease's holder.
    pub identity: String,
    /// How long a Lease stays valid without renewal; a standby takes over after it (plus one retry period).
    pub lease_duration: Duration,
    /// How often the Lease is renewed, and how often a standby tries to take it.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// A Lease with the default timing: 15 s validity, renewed every 2 s.
    pub fn new(lease_name: impl Into<String>, lease_namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            lease_name: lease_name.into(),
            lease_namespace: lease_namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Configuration of one operator instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Namespaces whose objects are reconciled; empty means every namespace.
    pub namespaces: Vec<String>,
    /// A label selector applied to every watch (CimiProvider included), such as `team=a`.
    pub label_selector: Option<String>,
    /// Objects reconciled at the same time, per kind.
    pub concurrency: u16,
    /// The namespace the operator runs in: where CimiProvider Secrets and the Lease live.
    pub operator_namespace: String,
    /// A name for this cluster, tagged on provider resources as `cimi.dev/cluster`.
    pub cluster_name: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None` serves nothing.
    pub admin_addr: Option<SocketAddr>,
    /// Leader election; `None` means this instance always leads (a single replica).
    pub leader_election: Option<LeaderElectionConfig>,
    /// How long stopping controllers may take before they are aborted (a backstop: they stop on
    /// their own once in-flight reconciles finish).
    pub shutdown_grace: Duration,
    /// Entries asked for per page when the observer lists a provider collection (`$first`/`$last`). The
    /// cadences (state, meters, events) are each CimiProvider's `pollInterval`, `meterInterval` and
    /// `eventInterval`.
    pub observe_page_size: u64,
    /// The most `cimi_meter_value` series exported; 0 exports none (meters still land in status).
    pub meter_gauges_max: usize,
    /// Which managed objects this instance reconciles: its shard of them (every one when there is one shard).
    pub shard: super::shard::Shard,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            label_selector: None,
            concurrency: 8,
            operator_namespace: "cimi-system".to_string(),
            cluster_name: "default".to_string(),
            admin_addr: None,
            leader_election: None,
            shutdown_grace: Duration::from_secs(10),
            observe_page_size: 100,
            meter_gauges_max: 10_000,
            shard: super::shard::Shard::default(),
        }
    }
}

impl Config {
    /// A watcher configuration with this instance's label selector.
    pub fn watcher_config(&self) -> kube::runtime::watcher::Config {
        let config = kube::runtime::watcher::Config::default().any_semantic();
        match &self.label_selector {
            Some(selector) if !selector.trim().is_empty() => config.labels(selector),
            _ => config,
        }
    }

    /// True when objects of this namespace are reconciled.
    pub fn watches_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

/// The namespace the process runs in: `POD_NAMESPACE`, else the service account's namespace file,
/// else `cimi-system`.
pub fn detect_operator_namespace() -> String {
    if let Ok(ns) = std::env::var("POD_NAMESPACE")
        && !ns.trim().is_empty()
    {
        return ns.trim().to_string();
    }
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cimi-system".to_string())
}

/// An identity for leader election: `POD_NAME` or the host name, plus a random suffix so two
/// processes on one host differ.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "cimi-operator".to_string());
    format!("{base}-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_namespace_list_means_all() {
        let config = Config::default();
        assert!(config.watches_namespace("anything"));
        let config = Config { namespaces: vec!["a".into()], ..Config::default() };
        assert!(config.watches_namespace("a"));
        assert!(!config.watches_namespace("b"));
    }

    #[test]
    fn selector_reaches_the_watcher() {
        let config = Config { label_selector: Some("team=a".into()), ..Config::default() };
        assert_eq!(config.watcher_config().label_selector.as_deref(), Some("team=a"));
        assert_eq!(Config::default().watcher_config().label_selector, None);
    }
}
