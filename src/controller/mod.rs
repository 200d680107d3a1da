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
//! - [`kubeops`]: status by server-side apply, finalizers, Events.
//!
//! [`start`] runs every controller until the shutdown token is cancelled.

pub mod kubeops;
pub mod machine;
pub mod managed;
pub mod network;
pub mod outcome;
pub mod provider;
pub mod registry;
pub mod simple;
pub mod system;
pub mod volume;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::runtime::Config;
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
    /// Consecutive transient failures by object key, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for one operator instance.
    pub fn new(client: Client, config: Config) -> Arc<Self> {
        let reporter = Reporter { controller: crate::FIELD_MANAGER.to_string(), instance: None };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            providers: ProviderRegistry::default(),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more transient failure of `key` and returns how many in a row.
    pub fn failed(&self, key: &str) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }
}

/// Starts every controller; each runs until `shutdown` is cancelled.
pub fn start(client: Client, config: Config, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let ctx = Context::new(client, config);
    vec![
        tokio::spawn(provider::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(machine::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(volume::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(network::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(system::run(ctx, shutdown)),
    ]
}
