//! [`Context`]: what every reconcile shares — the Kubernetes client, the operator's configuration, the provider
//! connections, the Event recorder, metrics, readiness, namespace labels, the observer, the controllers' stores
//! and the backoff counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::runtime::watches::Watches;
use crate::runtime::{Config, Metrics, Readiness};
use super::registry::ProviderRegistry;
use super::{namespaces, observer, stores};

/// What every reconcile shares: the Kubernetes client, the operator's configuration, the provider
/// connections and the Event recorder.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// The operator's configuration (namespaces, label selector, operator namespace, cluster name).
    pub config: Config,
    /// One CIMI connection per CimiProvider.
    pub providers: ProviderRegistry,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// The operator's metrics.
    pub metrics: Metrics,
    /// Where watches register and report their first complete list (`/readyz`).
    pub readiness: Readiness,
    /// Namespace labels, for `spec.allowedNamespaces`.
    pub namespace_labels: namespaces::NamespaceLabels,
    /// Provider state by paged collection reads; meters; provider events.
    pub observer: observer::Observer,
    /// The controllers' reflector stores, for reading related objects without listing them.
    pub stores: stores::Stores,
    /// Consecutive transient failures by object key, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for one operator instance, with metrics and readiness of its own.
    pub fn new(client: Client, config: Config) -> Arc<Self> {
        Self::with_runtime(client, config, Metrics::new(), Readiness::new())
    }

    /// A context that reports into the operator's `metrics` and `readiness`.
    pub fn with_runtime(client: Client, config: Config, metrics: Metrics, readiness: Readiness) -> Arc<Self> {
        let reporter = Reporter { controller: crate::names::FIELD_MANAGER.to_string(), instance: None };
        let providers = ProviderRegistry::default();
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            observer: observer::Observer::new(client.clone(), &config, providers.clone(), metrics.clone()),
            namespace_labels: namespaces::NamespaceLabels::default(),
            stores: stores::Stores::default(),
            client,
            config,
            providers,
            metrics,
            readiness,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// The operator's scoped watches (namespaces, label selector, readiness, metrics).
    pub fn watches(&self) -> Watches {
        Watches {
            client: self.client.clone(),
            config: self.config.clone(),
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
            recorder: Some(self.recorder.clone()),
        }
    }

    /// Counts one more transient failure of `key` and returns how many in a row.
    pub fn failed(&self, key: &str) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// How many transient failures of `key` in a row, without counting one more.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(key).copied().unwrap_or(0)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}
