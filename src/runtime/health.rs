//! The admin server: `/metrics`, `/healthz` and `/readyz` on one port.
//!
//! Readiness turns true once every registered component (each watch, the leader election) has
//! reported in; `/readyz` names the ones still pending.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;

/// Components that must report before the operator is ready. Cheap to clone; clones share state.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    pending: Arc<Mutex<BTreeSet<String>>>,
}

impl Readiness {
    /// A readiness with nothing pending (ready until a component registers).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component that must report before the operator is ready, such as `watch/CimiMachine`.
    pub fn register(&self, component: impl Into<String>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(component.into());
        }
    }

    /// Marks a component as ready.
    pub fn mark_ready(&self, component: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(component);
        }
    }

    /// Forgets every pending component whose name starts with `prefix` (the watches of stopped controllers).
    pub fn forget_prefix(&self, prefix: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|c| !c.starts_with(prefix));
        }
    }

    /// The components not ready yet.
    pub fn pending(&self) -> Vec<String> {
        self.pending.lock().map(|p| p.iter().cloned().collect()).unwrap_or_default()
    }

    /// True once nothing is pending.
    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The admin routes, for serving or for tests.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(AdminState { metrics, readiness })
}

async fn metrics_handler(State(state): State<AdminState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

async fn ready_handler(State(state): State<AdminState>) -> impl IntoResponse {
    let pending = state.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ok".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("waiting for: {}", pending.join(", ")))
    }
}

/// Binds the admin server and serves it until `shutdown`; returns the bound address (useful with
/// port 0) and the server task.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(metrics, readiness);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(error) = served {
            tracing::error!(%error, "admin server failed");
        }
    });
    tracing::info!(%bound, "admin server listening (/metrics, /healthz, /readyz)");
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, response)
    }

    #[tokio::test]
    async fn readyz_waits_for_every_component_and_metrics_answer() {
        let metrics = Metrics::new();
        metrics.leader.set(1);
        let readiness = Readiness::new();
        readiness.register("watch/CimiMachine");
        readiness.register("watch/CimiProvider");
        let shutdown = CancellationToken::new();
        let (addr, task) = serve("127.0.0.1:0".parse().expect("addr"), metrics, readiness.clone(), shutdown.clone())
            .await
            .expect("serve");

        assert_eq!(get_text(addr, "/healthz").await.0, 200);
        let (status, body) = get_text(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(body.contains("watch/CimiMachine"), "{body}");
        readiness.mark_ready("watch/CimiMachine");
        readiness.mark_ready("watch/CimiProvider");
        assert_eq!(get_text(addr, "/readyz").await.0, 200);
        let (status, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("cimi_leader 1"), "{body}");

        shutdown.cancel();
        task.await.expect("server stops");
    }
}
