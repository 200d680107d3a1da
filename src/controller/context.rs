//! [`Context`]: what every reconcile shares — the Kubernetes client, the operator's configuration, the provider
//! connections, the Event recorder, metrics, readiness, namespace labels, the observer, the controllers' stores
//! and the backoff counters.

use std::sync::Arc;

use kube::Client;

use super::outcome::Failures;
use super::registry::ProviderRegistry;
use super::{namespaces, observer, stores};
use crate::runtime::events::EventRecorder;
use crate::runtime::watches::Watches;
use crate::runtime::{Config, Metrics, Readiness};

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
    pub recorder: EventRecorder,
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
    pub failures: Failures,
}

impl Context {
    /// A context for one operator instance, with metrics and readiness of its own.
    pub fn new(client: Client, config: Config) -> Arc<Self> {
        Self::with_runtime(client, config, Metrics::new(), Readiness::new())
    }

    /// A context that reports into the operator's `metrics` and `readiness`.
    pub fn with_runtime(client: Client, config: Config, metrics: Metrics, readiness: Readiness) -> Arc<Self> {
        let providers = ProviderRegistry::default();
        // The reporting instance names the shard: Events say which one acted (the controller is the same for all).
        let instance = config.shard.reporting_instance(crate::names::FIELD_MANAGER);
        let recorder = EventRecorder::new(client.clone(), crate::names::FIELD_MANAGER, &instance);
        Arc::new(Self {
            observer: observer::Observer::new(
                client.clone(),
                recorder.clone(),
                &config,
                providers.clone(),
                metrics.clone(),
            ),
            recorder,
            namespace_labels: namespaces::NamespaceLabels::default(),
            stores: stores::Stores::default(),
            client,
            config,
            providers,
            metrics,
            readiness,
            failures: Failures::default(),
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
        self.failures.failed(key)
    }

    /// How many transient failures of `key` in a row, without counting one more.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.count(key)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures.succeeded(key);
    }

    /// The objects of `K` this operator watches, in `namespace` (or in every watched namespace), from the
    /// controller's store once it has listed (see [`stores::objects`]).
    pub async fn objects<K: stores::Cached>(&self, namespace: Option<&str>) -> kube::Result<Vec<Arc<K>>> {
        stores::objects(&self.stores, &self.client, &self.config, namespace).await
    }

    /// The same objects, listed from the API server (see [`stores::listed`]).
    pub async fn listed<K: stores::Cached>(&self, namespace: Option<&str>) -> kube::Result<Vec<Arc<K>>> {
        stores::listed(&self.client, &self.config, namespace).await
    }
}
