//! The operator, wired: the admin server (`/metrics`, `/healthz`, `/readyz`), leader election, and every
//! controller while this instance leads. It sits above both the runtime services ([`crate::runtime`]) and the
//! controllers ([`crate::controller`]), which never import it. [`run`] is the library's entry point
//! (`cimi_operator::run`); [`start`] returns at once with the running instance (the e2e tests use it).

use std::net::SocketAddr;
use std::sync::Arc;

use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::CimiProvider;
use crate::controller;
use crate::runtime::{Config, Metrics, Readiness, health, leader, telemetry};

/// A started operator: where its admin server listens, whether it leads, and its task.
#[derive(Debug)]
pub struct Running {
    /// The bound address of `/metrics`, `/healthz` and `/readyz`, when served.
    pub admin_addr: Option<SocketAddr>,
    /// True while this instance leads (always true without leader election).
    pub leading: watch::Receiver<bool>,
    /// The shared metrics.
    pub metrics: Metrics,
    /// The shared readiness.
    pub readiness: Readiness,
    /// Ends when the operator has shut down (Lease released, admin server stopped).
    pub task: JoinHandle<anyhow::Result<()>>,
}

/// Starts the operator and returns at once; it runs until `shutdown` is cancelled.
///
/// `client` must belong to the tokio runtime the operator runs in. Each call builds its own metrics
/// registry, so several instances can run in one process (as the e2e tests do).
pub async fn start(config: Config, client: Client, shutdown: CancellationToken) -> anyhow::Result<Running> {
    telemetry::install_crypto_provider();
    let metrics = Metrics::for_shard(config.shard);
    let readiness = Readiness::new();
    readiness.register("api/cimiproviders");
    let admin_shutdown = CancellationToken::new();
    let (admin_addr, admin_task) = match config.admin_addr {
        Some(addr) => {
            let (bound, task) = health::serve(addr, metrics.clone(), readiness.clone(), admin_shutdown.clone()).await?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };

    if config.leader_election.is_none() {
        // This instance leads from the start: not ready until its controllers have registered their watches.
        readiness.register(CONTROLLERS_STARTING);
    }
    let (leading_tx, leading_rx) = watch::channel(config.leader_election.is_none());
    let elector = config.leader_election.clone().map(|le| {
        tracing::info!(lease = %le.lease_name, namespace = %le.lease_namespace, identity = %le.identity, "leader election on");
        tokio::spawn(leader::LeaderElector::new(client.clone(), le).run(leading_tx, shutdown.clone()))
    });

    let leader_gauge = {
        let metrics = metrics.clone();
        let mut leading = leading_rx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                metrics.leader.set(i64::from(*leading.borrow_and_update()));
                tokio::select! {
                    // Without leader election the sender is gone at once: keep the value until shutdown.
                    changed = leading.changed() => if changed.is_err() { shutdown.cancelled().await; break },
                    _ = shutdown.cancelled() => break,
                }
            }
            metrics.leader.set(0);
        })
    };

    let api_check = {
        let readiness = readiness.clone();
        let client = client.clone();
        let selector = config.label_selector.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let providers: Api<CimiProvider> = Api::all(client);
            let mut params = ListParams::default().limit(1);
            if let Some(selector) = selector.filter(|s| !s.trim().is_empty()) {
                params = params.labels(&selector);
            }
            loop {
                match providers.list_metadata(&params).await {
                    Ok(_) => {
                        readiness.mark_ready("api/cimiproviders");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot list CimiProviders (are the CRDs installed?)")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        })
    };

    let controllers = spawn_controllers_while_leading(
        client.clone(),
        config.clone(),
        (metrics.clone(), readiness.clone()),
        leading_rx.clone(),
        shutdown.clone(),
    );

    tracing::info!(
        shard = config.shard.index(),
        shards = config.shard.count(),
        namespaces = ?config.namespaces,
        selector = ?config.label_selector,
        concurrency = config.concurrency,
        operator_namespace = %config.operator_namespace,
        "cimi-operator started"
    );

    let task = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!("shutting down");
        api_check.abort();
        let _ = controllers.await;
        if let Some(elector) = elector {
            // The elector releases the Lease before it returns.
            let _ = elector.await;
        }
        let _ = leader_gauge.await;
        admin_shutdown.cancel();
        if let Some(admin) = admin_task {
            let _ = admin.await;
        }
        tracing::info!("stopped");
        Ok(())
    });

    Ok(Running { admin_addr, leading: leading_rx, metrics, readiness, task })
}

/// The readiness component pending while a leading instance starts its controllers.
const CONTROLLERS_STARTING: &str = "controllers";

/// Runs the controllers while this instance leads: they start when it takes the lead and stop when it
/// loses it (or on shutdown). While they run, readiness waits for every watch they registered; a
/// standby is ready once the API answers.
fn spawn_controllers_while_leading(
    client: Client,
    config: Config,
    (metrics, readiness): (Metrics, Readiness),
    mut leading: watch::Receiver<bool>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Wait to lead.
            while !*leading.borrow_and_update() {
                tokio::select! {
                    changed = leading.changed() => if changed.is_err() { return },
                    _ = shutdown.cancelled() => return,
                }
            }
            let term = shutdown.child_token();
            readiness.register(CONTROLLERS_STARTING);
            let ctx = controller::context::Context::with_runtime(
                client.clone(),
                config.clone(),
                metrics.clone(),
                readiness.clone(),
            );
            // Every watch is registered with readiness when start returns.
            let tasks = start_controllers(ctx, term.clone());
            readiness.mark_ready(CONTROLLERS_STARTING);
            loop {
                tokio::select! {
                    changed = leading.changed() => match changed {
                        Ok(()) if !*leading.borrow_and_update() => break,
                        Ok(()) => {}
                        // No elector (a single replica): this instance leads until shutdown.
                        Err(_) => { shutdown.cancelled().await; break }
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
            term.cancel();
            // Each controller stops taking work, lets in-flight reconciles finish (each CIMI call is bounded
            // by its own timeout; a store that never synced is released) and returns. The grace is a
            // backstop for a reconcile stuck on an API server that does not answer.
            let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
            let grace = config.shutdown_grace;
            if tokio::time::timeout(grace, futures::future::join_all(tasks)).await.is_err() {
                tracing::warn!(?grace, "controllers did not stop in time; aborting them");
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
            // Their watches no longer run: a standby is not held back by them.
            readiness.forget_prefix("watch/");
            // Nor does it probe providers: their gauges go (a standby's last `1` would hide the leader's `0`).
            metrics.forget_providers();
            if shutdown.is_cancelled() {
                return;
            }
        }
    })
}

/// Starts every controller; each runs until `shutdown` is cancelled. Every watch is registered with the
/// context's readiness before this returns.
pub fn start_controllers(ctx: Arc<controller::context::Context>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(controller::provider::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(controller::provider::run_namespaced(ctx.clone(), shutdown.clone())),
        tokio::spawn(controller::machine::run(ctx.clone(), shutdown.clone())),
        tokio::spawn(controller::storage::controller::run::<crate::api::CimiVolume>(ctx.clone(), shutdown.clone())),
        tokio::spawn(controller::storage::controller::run::<crate::api::CimiNetwork>(ctx.clone(), shutdown.clone())),
        tokio::spawn(controller::storage::controller::run::<crate::api::CimiMachineImage>(
            ctx.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(controller::storage::controller::run::<crate::api::CimiVolumeImage>(
            ctx.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(controller::system::run(ctx, shutdown)),
    ]
}

/// Runs the operator until `shutdown` is cancelled: the admin server, leader election and (as they
/// land) every controller, each watch scoped to `config`'s namespaces and label selector.
pub async fn run(config: Config, client: Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let running = start(config, client, shutdown).await?;
    running.task.await?
}

/// A token cancelled on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received");
        trigger.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status_of(addr: SocketAddr, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    #[tokio::test]
    async fn run_serves_admin_and_stops_on_shutdown_even_without_an_api_server() {
        telemetry::install_crypto_provider();
        // Nothing listens on port 1: the API check stays pending, so the operator is live but not ready.
        let kube_config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        let client = Client::try_from(kube_config).expect("client");
        // A grace far longer than the test's patience: the controllers must stop on their own, although
        // their stores never synced (kube's controller waits for that before it stops).
        let config = Config {
            admin_addr: Some("127.0.0.1:0".parse().expect("addr")),
            shutdown_grace: std::time::Duration::from_secs(3600),
            ..Config::default()
        };
        let shutdown = CancellationToken::new();
        let running = start(config, client, shutdown.clone()).await.expect("start");
        let addr = running.admin_addr.expect("admin server");
        assert!(*running.leading.borrow(), "without leader election the instance leads");
        assert_eq!(status_of(addr, "/healthz").await, 200);
        assert_eq!(status_of(addr, "/readyz").await, 503);
        let pending = running.readiness.pending();
        assert!(pending.contains(&"api/cimiproviders".to_string()), "{pending:?}");
        assert!(pending.contains(&"watch/cimimachines/*".to_string()), "every watch is pending: {pending:?}");
        assert_eq!(status_of(addr, "/metrics").await, 200);
        assert!(running.metrics.encode().contains("cimi_leader 1"), "without leader election the instance leads");

        shutdown.cancel();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), running.task).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "operator stops on shutdown");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "admin server is closed");
    }
}
