//! cimi-sim: a CIMI provider that simulates an IaaS, for demos, tests and users' own CI.
//!
//! Start one in-process with [`Sim::start`]; the [`SimHandle`] gives its URL (the CloudEntryPoint), its
//! statistics, its fault rules, and lets a test restart it (same port, same state) or stop it. The same
//! simulator runs as the `cimi-sim` binary.
//!
//! - [`config`]: [`SimConfig`], profiles, timing, authentication and [`Limits`];
//! - [`auth`]: the credential check (constant time);
//! - [`catalog`]: the configurations, images and templates it starts with (the Primer's by default);
//! - [`store`]: the provider state and the protocol's operations on it (the store, the Job engine, reads,
//!   creates and edits, one room per kind of resource, monitoring, the journal's side of persistence);
//! - [`lifecycle`]: the state machines of machines, networks and Jobs, as pure functions;
//! - [`query`]: `$filter`, `$select`, `$expand`, `$first`/`$last`, `$orderby`;
//! - [`error`]: [`SimError`](error::SimError), the status and message a request is refused with;
//! - [`faults`]: fault rules (`GET/PUT /_sim/faults`);
//! - [`stats`]: request statistics (`GET /_sim/stats`);
//! - [`server`]: HTTP: the request pipeline, content negotiation, faults applied, responses, profiles and the
//!   admin API;
//! - [`request`]: a request read within its limits (target length, body size, time and depth);
//! - [`conn`]: connections (TLS, HTTP/1.1 and HTTP/2) and the watchdog of slow and idle ones;
//! - [`journal`]: persistence (`--state-file`), never through a symbolic link;
//! - [`sync`]: the one lock helper (a poisoned lock is recovered, never a reason to fail).

pub mod auth;
pub mod catalog;
pub mod config;
pub mod conn;
pub mod error;
pub mod faults;
pub mod journal;
pub mod lifecycle;
pub mod query;
pub mod request;
pub mod server;
pub mod stats;
pub mod store;
pub mod sync;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

pub use catalog::Catalog;
pub use config::{Auth, JobRetention, Limits, Profile, SimConfig, Timing, TlsFiles};
pub use faults::{FaultKind, FaultRule, FaultSet};
pub use stats::{RequestRecord, SimStats};

use conn::serve;
use server::{App, FaultState};
use store::Store;
use sync::lock;

/// The simulator.
pub struct Sim;

/// A running simulator.
pub struct SimHandle {
    app: Arc<App>,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Sim {
    /// Binds `config.listen` and serves; returns once the port is bound.
    pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut base = config.external_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}/"));
        if !base.ends_with('/') {
            base.push('/');
        }
        let catalog = config.catalog.clone().unwrap_or_else(Catalog::primer);
        let retention = config.job_retention;
        let fresh = || {
            let mut s = Store::new(base.clone(), config.profile, config.timing, config.seed, &catalog);
            s.set_job_retention(retention);
            s.set_cep_omit(&config.cep_omit);
            s
        };
        let (journal, store) = match &config.state_file {
            Some(path) => {
                let path = path.clone();
                let (profile, timing, seed, b) = (config.profile, config.timing, config.seed, base.clone());
                let catalog = catalog.clone();
                let (journal, mut store) = tokio::task::spawn_blocking(move || {
                    journal::Journal::open(&path, || Store::new(b, profile, timing, seed, &catalog))
                })
                .await
                .map_err(std::io::Error::other)??;
                store.set_job_retention(retention);
                store.set_cep_omit(&config.cep_omit);
                store.reseed(config.seed);
                store.rebase(&base);
                // The rebase (and the reseed) are changes like any other: journal them.
                journal.commit(&mut store);
                (Some(journal), store)
            }
            None => (None, fresh()),
        };
        let app = Arc::new(App {
            base,
            store: Mutex::new(store),
            faults: Mutex::new(FaultState::new(config.faults.clone(), config.seed)),
            stats: Mutex::new(SimStats::default()),
            journal,
            authorization: auth::expected_authorization(&config.auth),
            config,
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, app.clone(), shutdown.clone(), tls.clone()));
        Ok(SimHandle { app, addr, tls, shutdown, task: Some(task) })
    }
}

fn tls_acceptor(files: &TlsFiles) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| invalid("reading the TLS certificate", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("parsing the TLS certificate", &e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| invalid("reading the TLS key", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("the TLS identity", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl SimHandle {
    /// The CloudEntryPoint URL (the base URI, ending with `/`).
    pub fn url(&self) -> String {
        self.app.base.clone()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the statistics.
    pub fn stats(&self) -> SimStats {
        lock(&self.app.stats).clone()
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        lock(&self.app.faults).set = FaultSet { rules };
    }

    /// The fault rules now (with their remaining `times`).
    pub fn faults(&self) -> Vec<FaultRule> {
        lock(&self.app.faults).set.rules.clone()
    }

    /// Back to the catalog: resources, Jobs, faults and statistics cleared.
    pub fn reset(&self) {
        server::reset(&self.app);
    }

    /// The simulator's HTTP service, to call without a network (benchmarks measure the cost of the request
    /// handling alone with it).
    pub fn router(&self) -> axum::Router {
        server::router(self.app.clone())
    }

    /// Runs `f` on the provider state (for tests and benchmarks that need many resources quickly).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.app.store);
        let out = f(&mut store);
        if self.app.commit(&mut store) {
            drop(store);
            self.app.sync();
        }
        out
    }

    /// Simulates a provider restart: every connection is dropped and the port closed, then the same port is
    /// bound again with the same state (pending transitions continue).
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(error = %e, "rebinding the simulator port");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(serve(listener, self.app.clone(), self.shutdown.clone(), self.tls.clone())));
        Ok(())
    }

    /// Stops serving and closes every connection (the journal is already up to date; a snapshot being written
    /// is waited for).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let app = self.app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(j) = &app.journal {
                j.settle();
            }
        })
        .await;
    }

    /// Waits until the simulator stops (for the binary).
    pub async fn wait(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
