//! Serving connections: the accept loop, TLS, HTTP/1.1 and HTTP/2 (hyper), and a watchdog that closes a
//! connection too slow to send a request head or idle for too long (slowloris), so that no client can hold
//! the simulator's connections open by sending nothing or trickling bytes.
//!
//! The watchdog follows each connection's [`Activity`]: a fresh connection, or one whose client has started
//! sending the next request, must deliver a whole request head within the header-read timeout (a TLS
//! handshake included); a connection with no request in flight and nothing received is closed after the idle
//! timeout. While a request is in flight the handler's own limits apply (the body-read timeout, see
//! [`request`](super::request)). The HTTP head itself is bounded in size (431 beyond it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Duration, Instant};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::config::Limits;
use super::server::{self, App, ConnDrop};

/// The fewest bytes hyper accepts as its HTTP/1 read buffer (it panics below).
const MIN_HEAD_BUFFER: usize = 8192;

/// The pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The most headers an HTTP/1.1 request may have (431 beyond).
const MAX_HEADERS: usize = 100;

/// HTTP/2 streams served at once on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Accepts connections until `shutdown`, each served on its own task.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: CancellationToken, tls: Option<TlsAcceptor>) {
    let limits = app.config.limits;
    let router = server::router(app);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, typically: wait for connections to close instead of spinning.
                tracing::debug!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, router.clone(), tls.clone(), limits, shutdown.clone()));
    }
}

/// One connection, from the TLS handshake (if any) to its end: closed when the client closes it, the
/// simulator stops, a commit-then-drop fault drops it, or the watchdog finds it too slow or idle.
async fn connection(
    stream: TcpStream,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let stream = Watched { inner: stream, activity: activity.clone() };
    let session = async {
        match tls {
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(stream) => http(stream, router, activity.clone(), &limits).await,
                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
            },
            None => http(stream, router, activity.clone(), &limits).await,
        }
    };
    tokio::select! {
        _ = session => {}
        _ = activity.expired(&limits) => tracing::debug!("closing a connection too slow or idle"),
        _ = shutdown.cancelled() => {}
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until it closes or a commit-then-drop fault drops it.
async fn http<S>(stream: S, router: axum::Router, activity: Arc<Activity>, limits: &Limits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let drop_conn = CancellationToken::new();
    let token = drop_conn.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let in_flight = InFlight::begin(activity.clone());
        req.extensions_mut().insert(ConnDrop(token.clone()));
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let answer = answer.await;
            drop(in_flight);
            answer
        }
    });
    let builder = builder(limits);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = drop_conn.cancelled() => {}
    }
}

/// hyper's connection settings: heads bounded in size; the timeouts are the watchdog's (hyper's own
/// header-read timeout would also close idle HTTP/1.1 connections, and covers neither HTTP/2 nor TLS).
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes.max(MIN_HEAD_BUFFER))
        .max_headers(MAX_HEADERS)
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    builder
}

/// A time kept as milliseconds since the connection opened, in an atomic.
const NEVER: u64 = u64::MAX;

/// What a connection is doing, as the watchdog sees it.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Requests being answered.
    in_flight: AtomicUsize,
    /// When the connection last had no request in flight (ms since `opened`).
    idle_since: AtomicU64,
    /// When the first byte of the next request arrived (ms since `opened`), [`NEVER`] while none has; a new
    /// connection counts as receiving its first request from the start.
    head_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NEVER - 1)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    /// Bytes arrived: with no request in flight, they start the next request's head.
    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.head_since.compare_exchange(NEVER, self.now(), Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// When the connection must be closed if nothing changes, `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_since.load(Ordering::Acquire) {
            NEVER => Some(self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout),
            head => Some(self.at(head) + limits.header_read_timeout),
        }
    }

    /// Resolves once the connection has been too slow sending a head, or idle too long.
    pub async fn expired(&self, limits: &Limits) {
        let recheck = limits.header_read_timeout.min(limits.idle_timeout);
        loop {
            match self.deadline(limits) {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => tokio::time::sleep(recheck).await,
            }
        }
    }
}

/// One request in flight on a connection, from the call of the service to its answer.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            activity.idle_since.store(activity.now(), Ordering::Release);
            activity.head_since.store(NEVER, Ordering::Release);
        }
    }
}

/// A connection's byte stream, telling its [`Activity`] when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..Limits::default()
        }
    }

    #[test]
    fn a_new_connection_has_the_header_timeout() {
        let activity = Activity::new();
        assert_eq!(activity.deadline(&limits()), Some(activity.opened + Duration::from_secs(10)));
    }

    #[test]
    fn between_requests_the_idle_timeout_then_the_header_timeout() {
        let activity = Arc::new(Activity::new());
        let request = InFlight::begin(activity.clone());
        assert_eq!(activity.deadline(&limits()), None, "no deadline while a request is in flight");
        activity.received();
        drop(request);
        let idle = activity.idle_since.load(Ordering::Acquire);
        assert_eq!(activity.head_since.load(Ordering::Acquire), NEVER, "body bytes start no head");
        assert_eq!(activity.deadline(&limits()), Some(activity.at(idle) + Duration::from_secs(60)));
        activity.received();
        let head = activity.head_since.load(Ordering::Acquire);
        assert_ne!(head, NEVER);
        assert_eq!(activity.deadline(&limits()), Some(activity.at(head) + Duration::from_secs(10)));
        // Later bytes of the same head do not push the deadline.
        activity.received();
        assert_eq!(activity.head_since.load(Ordering::Acquire), head);
    }

    #[tokio::test]
    async fn expiry_comes_at_the_deadline() {
        let short = Limits {
            header_read_timeout: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(80),
            ..Limits::default()
        };
        let activity = Arc::new(Activity::new());
        let request = InFlight::begin(activity.clone());
        let ends = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired(&short).await }
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!ends.is_finished(), "a request in flight keeps the connection");
        drop(request);
        let idle = Instant::now();
        let _ = ends.await;
        assert!(idle.elapsed() >= Duration::from_millis(75), "closed after the idle timeout, not before");
    }
}
