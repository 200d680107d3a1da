//! The reconcilers and their shared machinery.
//!
//! - [`registry`]: one CIMI connection per CimiProvider, shared by every controller;
//! - [`provider`]: the CimiProvider controller (credentials, discovery, catalog, re-probe, in-use);
//! - [`machine`]: the CimiMachine controller (observe -> plan -> act -> status);
//! - [`volume`], [`network`]: the CimiVolume and CimiNetwork controllers;
//! - [`simple`]: the reconcile shared by volumes and networks;
//! - [`system`]: the CimiSystem controller (SystemTemplates, nested Jobs, members, exposeMembers);
//! - [`managed`]: what the managed kinds share (tags, finding by UID, following Jobs, deleting);
//! - [`outcome`]: provider errors turned into conditions and requeue delays;
//! - [`kubeops`]: status by server-side apply, finalizers, Events;
//! - [`watching`]: every controller's watches (namespaces, label selector, readiness, decode
//!   failures) and its reconcile metrics;
//! - [`namespaces`]: `spec.allowedNamespaces` of a CimiProvider.
//! - [`observer`]: provider state from paged collection reads, meters and provider events;
//! - [`stores`]: the controllers' caches, shared so reconciles read related objects from memory.
//!
//! [`start`] runs every controller until the shutdown token is cancelled.

pub mod kubeops;
pub mod machine;
pub mod managed;
pub mod namespaces;
pub mod network;
pub mod observer;
pub mod outcome;
pub mod provider;
pub mod registry;
pub mod simple;
pub mod stores;
pub mod system;
pub mod volume;
pub mod watching;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::runtime::watches::Watches;
use crate::runtime::{Config, Metrics, Readiness};
pub use registry::ProviderRegistry;

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
        let reporter = Reporter { controller: crate::FIELD_MANAGER.to_string(), instance: None };
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

/// Starts every controller; each runs until `shutdown` is cancelled. Every watch is registered
/// with `ctx.readiness` before this returns.
pub fn start(ctx: Arc<Context>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(provider::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(machine::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(simple::run::<api::CimiVolume>(ctx.clone(), shutdown.clone())),
        tokio::spawn(simple::run::<api::CimiNetwork>(ctx.clone(), shutdown.clone())),
        tokio::spawn(system::run(ctx, shutdown)),
    ]
}
