//! HTTP to one CIMI provider: TLS, authentication, a shared rate budget, retries, tracing and metrics.
//!
//! One [`Transport`] per provider, cloned by every caller (clones share the connection pool, the
//! concurrency limit and the token bucket). Each request:
//! 1. takes a token from the bucket (`requests_per_second`, `burst`) and a concurrency permit;
//! 2. is sent with Basic or Bearer auth (reqwest marks the header sensitive; credentials never reach a log
//!    or an error, and URLs are shown without user info);
//! 3. is retried with jittered exponential backoff only when that is safe: the method is idempotent, or the
//!    provider said that nothing happened (429 and 503, honouring `Retry-After`; refused connections);
//! 4. runs in a `cimi_request` tracing span (provider, method, href, status, duration) and is counted in
//!    [`ClientMetrics`] by provider, operation and status.
//!
//! Before any of that, the URL is checked against the provider's [`OriginPolicy`]: a URL of another origin
//! is refused without a request (redirects to another origin are not followed either), and credentials go
//! over plain `http` only where [`TransportConfig::allow_plain_http`] says so. Bodies are read as a stream
//! and refused past [`ReadLimits::max_body_bytes`] (a `Content-Length` over it is refused before reading).
//!
//! TLS is rustls with the ring provider ([`install_crypto_provider`]); a CA bundle (PEM) can be added, and
//! certificate verification can be switched off only by an explicit option, which logs a warning.
//! HTTP(S) proxies come from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rand::Rng;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;
use url::Url;

use super::error::{CimiError, ReadLimitKind, excerpt, redact_url};
use super::origin::OriginPolicy;
use super::xml_lenient;

/// Install ring as the process-wide rustls crypto provider. Idempotent: a provider already installed
/// (by us or by kube) is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The media type spoken with a provider (`CimiProvider.spec.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `application/json`
    #[default]
    Json,
    /// `application/xml`
    Xml,
}

impl Format {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        }
    }
}

/// A secret string: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How the client authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

/// The rate budget of one provider, shared by every caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Sustained requests per second (token refill rate).
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet period (bucket size).
    pub burst: u32,
    /// Requests in flight at most.
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { requests_per_second: 20.0, burst: 40, max_concurrent: 8 }
    }
}

/// When and how requests are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff; it doubles each attempt, with full jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for inside one call; a longer one is returned to the caller as
    /// [`CimiError::RateLimited`] / [`CimiError::Unavailable`] so it can requeue instead of blocking.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// How much the client reads from a provider (`CimiProvider.spec.readLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The largest response body read; a larger one is refused (before reading, when `Content-Length` says so).
    pub max_body_bytes: u64,
    /// The most pages one listing reads.
    pub max_pages: u64,
    /// The most entries one listing keeps.
    pub max_entries: u64,
    /// The longest one listing may take, all its pages together.
    pub listing_timeout: Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_body_bytes: 16 << 20,
            max_pages: 1000,
            max_entries: 100_000,
            listing_timeout: Duration::from_secs(120),
        }
    }
}

/// The most bytes of an error answer read: enough for any message, of which only an excerpt is kept.
const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;

/// Everything needed to talk to one provider.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The provider's name, used as a metrics label and in spans.
    pub provider: String,
    /// The media type.
    pub format: Format,
    /// Credentials.
    pub auth: Auth,
    /// Extra trusted CA certificates, PEM.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Trust only `ca_bundle_pem`, not the system roots as well.
    pub ca_bundle_replaces_system_roots: bool,
    /// Send credentials over plain `http` (only where the CimiProvider says so explicitly).
    pub allow_plain_http: bool,
    /// The read bounds.
    pub read_limits: ReadLimits,
    /// Skip TLS verification (lab providers only; logged as a warning).
    pub insecure_skip_tls_verify: bool,
    /// The limit for one request, connection to last byte.
    pub request_timeout: Duration,
    /// The limit to establish a connection.
    pub connect_timeout: Duration,
    /// The shared rate budget.
    pub limits: Limits,
    /// Retries.
    pub retry: RetryPolicy,
}

impl TransportConfig {
    /// Defaults for a provider named `provider`: JSON, no auth, 30 s requests, 20 req/s.
    pub fn new(provider: impl Into<String>) -> Self {
        TransportConfig {
            provider: provider.into(),
            format: Format::Json,
            auth: Auth::None,
            ca_bundle_pem: None,
            ca_bundle_replaces_system_roots: false,
            allow_plain_http: false,
            read_limits: ReadLimits::default(),
            insecure_skip_tls_verify: false,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            retry: RetryPolicy::default(),
        }
    }
}

/// Labels of a request metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The provider name.
    pub provider: String,
    /// The client operation (`get`, `list`, `create`, `update`, `delete`, `action`, `job`...).
    pub operation: String,
    /// The HTTP status, or `timeout` / `unreachable` / `error` when there was none.
    pub status: String,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Labels of a refused request or a tripped read bound.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The provider name.
    pub provider: String,
    /// `untrusted_href`, `plain_http`, or the read bound: `body_size`, `pages`, `entries`, `listing_time`,
    /// `repeated_page`.
    pub reason: String,
}

/// The client's metrics (all prefixed `cimi_client_` once registered).
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    /// Requests sent (each attempt counts).
    pub requests: Family<RequestLabels, Counter>,
    /// Request duration in seconds.
    pub duration: HistogramFamily,
    /// Attempts that were retried.
    pub retries: Family<RequestLabels, Counter>,
    /// Requests refused before they were sent, and reads stopped by a bound.
    pub refused: Family<RefusalLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for ClientMetrics {
    fn default() -> Self {
        ClientMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            retries: Family::default(),
            refused: Family::default(),
        }
    }
}

impl ClientMetrics {
    /// Register the metrics in `registry` under the `cimi_client` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("cimi_client");
        sub.register("requests", "CIMI requests sent, by provider, operation and status", self.requests.clone());
        sub.register("request_duration_seconds", "CIMI request duration", self.duration.clone());
        sub.register("retries", "CIMI requests retried, by the status that caused it", self.retries.clone());
        sub.register(
            "refused",
            "CIMI requests refused before sending (untrusted href, plain http) and reads stopped by a bound",
            self.refused.clone(),
        );
    }
}

/// A token bucket shared by every clone of a transport.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    fn new(limits: &Limits) -> Self {
        let burst = f64::from(limits.burst.max(1));
        TokenBucket { rate: limits.requests_per_second.max(0.001), burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Wait for a token.
    async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
                s.0 = (s.0 + refill).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL (from an href the provider gave).
    pub url: Url,
    /// The JSON-shaped body, written in the provider's format.
    pub body: Option<Value>,
    /// The client operation, a metrics label.
    pub operation: &'static str,
}

impl Request {
    /// A GET.
    pub fn get(url: Url, operation: &'static str) -> Self {
        Request { method: Method::GET, url, body: None, operation }
    }
    /// Whether repeating the request cannot do more than sending it once.
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS)
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status.
    pub status: StatusCode,
    /// The headers (look-ups are case-insensitive).
    pub headers: HeaderMap,
    /// The body in JSON shape (parsed from JSON or XML), `None` when empty or not a CIMI document.
    pub body: Option<Value>,
    /// The URL that answered.
    pub url: Url,
}

impl Response {
    /// A header as an absolute URL, resolved against the request URL when relative.
    pub fn header_url(&self, name: &str) -> Option<Url> {
        let raw = self.headers.get(name)?.to_str().ok()?.trim();
        if raw.is_empty() {
            return None;
        }
        self.url.join(raw).ok()
    }
}

/// The HTTP side of a CIMI client; cheap to clone, shared by all callers of one provider.
#[derive(Debug, Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: TransportConfig,
    origins: OriginPolicy,
    http: reqwest::Client,
    bucket: TokenBucket,
    permits: Semaphore,
    metrics: ClientMetrics,
}

impl Transport {
    /// Build the transport for requests to the origins of `origins` (and install the ring crypto provider
    /// if none is).
    pub fn new(config: TransportConfig, origins: OriginPolicy, metrics: ClientMetrics) -> Result<Self, CimiError> {
        install_crypto_provider();
        // Redirects are followed only within the trusted origins, at most 5 deep; any other is answered as
        // the redirect itself, which `send_once` turns into an UntrustedHref error.
        let follow = origins.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || !follow.allows(attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // Below the 60 s after which many servers (cimi-sim among them) close an idle connection, so a
            // request is never sent on a connection the provider is closing.
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_keepalive(Duration::from_secs(60))
            .redirect(redirects)
            .user_agent(concat!("cimi-operator/", env!("CARGO_PKG_VERSION")));
        if config.ca_bundle_replaces_system_roots && config.ca_bundle_pem.is_none() {
            return Err(CimiError::Config("caBundleReplacesSystemRoots needs a CA bundle".into()));
        }
        if let Some(pem) = &config.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| CimiError::Config(format!("the CA bundle is not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(CimiError::Config("the CA bundle holds no certificate".into()));
            }
            // Either the bundle alone, or the bundle beside the platform's roots.
            builder = if config.ca_bundle_replaces_system_roots {
                builder.tls_certs_only(certs)
            } else {
                builder.tls_certs_merge(certs)
            };
        }
        if config.insecure_skip_tls_verify {
            tracing::warn!(
                provider = %config.provider,
                "TLS CERTIFICATE VERIFICATION IS OFF for this provider (insecure opt-in): anyone on the path can read and change its traffic"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| CimiError::Config(format!("HTTP client: {e}")))?;
        let bucket = TokenBucket::new(&config.limits);
        let permits = Semaphore::new(config.limits.max_concurrent.max(1));
        Ok(Transport { inner: Arc::new(Inner { config, origins, http, bucket, permits, metrics }) })
    }

    /// The configuration.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// The metrics this transport records into.
    pub fn metrics(&self) -> &ClientMetrics {
        &self.inner.metrics
    }

    /// The origins this transport may request.
    pub fn origins(&self) -> &OriginPolicy {
        &self.inner.origins
    }

    /// Counts a refusal or a tripped read bound of this provider (`reason` is its metric label).
    pub fn count_refusal(&self, reason: &str) {
        let labels = RefusalLabels { provider: self.inner.config.provider.clone(), reason: reason.to_string() };
        self.inner.metrics.refused.get_or_create(&labels).inc();
    }

    /// `Ok` when `url` may be requested with this provider's credentials: its origin is trusted, and it is
    /// not plain `http` while credentials are configured and plain http is not allowed. Refusals are counted.
    pub fn vet(&self, url: &Url) -> Result<(), CimiError> {
        if let Err(e) = self.inner.origins.check(url) {
            self.count_refusal("untrusted_href");
            return Err(e);
        }
        let cfg = &self.inner.config;
        if url.scheme() == "http" && cfg.auth != Auth::None && !cfg.allow_plain_http {
            self.count_refusal("plain_http");
            return Err(CimiError::UntrustedHref {
                href: redact_url(url),
                reason: "credentials would travel in clear text over plain http; use https, or set \
                         spec.allowPlainHttp: true on the CimiProvider if the network is trusted"
                    .into(),
            });
        }
        Ok(())
    }

    /// Send a request, with retries where safe. Non-2xx answers become errors. A URL that [`Self::vet`]
    /// refuses is never sent.
    pub async fn execute(&self, req: &Request) -> Result<Response, CimiError> {
        self.vet(&req.url)?;
        let policy = self.inner.config.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = self.attempt(req, attempt).await;
            let err = match outcome {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            let Some(wait) = self.retry_wait(req, &err, attempt) else {
                return Err(err);
            };
            let labels = self.labels(req.operation, err.metric_label().to_string());
            self.inner.metrics.retries.get_or_create(&labels).inc();
            tracing::debug!(href = %redact_url(&req.url), attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
            if attempt >= policy.max_attempts {
                return Err(err);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// How long to wait before retrying, or `None` when the request must not be retried.
    fn retry_wait(&self, req: &Request, err: &CimiError, attempt: u32) -> Option<Duration> {
        let policy = self.inner.config.retry;
        let nothing_happened = match err {
            CimiError::RateLimited { .. } => true,
            CimiError::Unavailable { status: Some(503), .. } => true,
            // No status: a refused connection or a reset before any answer; `unreachable` marks the former.
            CimiError::Unavailable { status: None, message, .. } => message.starts_with("unreachable"),
            _ => false,
        };
        if !(err.is_retryable() && (nothing_happened || req.is_idempotent())) {
            return None;
        }
        let exp = policy.base_delay.saturating_mul(1u32 << (attempt - 1).min(16)).min(policy.max_delay);
        let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        match err.retry_after() {
            Some(ra) if ra > policy.max_retry_after => None,
            // Honour the provider's wait; a little jitter on top keeps callers from stampeding together.
            Some(ra) => Some(ra + Duration::from_millis(rand::rng().random_range(0..50))),
            None => Some(jittered),
        }
    }

    fn labels(&self, operation: &str, status: String) -> RequestLabels {
        RequestLabels { provider: self.inner.config.provider.clone(), operation: operation.to_string(), status }
    }

    async fn attempt(&self, req: &Request, attempt: u32) -> Result<Response, CimiError> {
        let href = redact_url(&req.url);
        let span = tracing::info_span!(
            "cimi_request",
            provider = %self.inner.config.provider,
            method = %req.method,
            href = %href,
            attempt,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        async move {
            self.inner.bucket.acquire().await;
            let _permit =
                self.inner.permits.acquire().await.map_err(|_| CimiError::Config("the transport is closed".into()))?;
            let started = Instant::now();
            let result = self.send_once(req, &href).await;
            let elapsed = started.elapsed();
            let status_label = match &result {
                Ok(r) => r.status.as_u16().to_string(),
                Err(CimiError::Timeout { .. }) => "timeout".into(),
                Err(CimiError::Unavailable { status: None, .. }) => "unreachable".into(),
                Err(e) => e.status_label(),
            };
            let span = tracing::Span::current();
            match status_label.parse::<u16>() {
                Ok(code) => span.record("status", code),
                Err(_) => span.record("status", status_label.as_str()),
            };
            span.record("duration_ms", elapsed.as_millis() as u64);
            let labels = self.labels(req.operation, status_label);
            self.inner.metrics.requests.get_or_create(&labels).inc();
            self.inner.metrics.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
            tracing::debug!("cimi request done");
            result
        }
        .instrument(span)
        .await
    }

    async fn send_once(&self, req: &Request, href: &str) -> Result<Response, CimiError> {
        let cfg = &self.inner.config;
        let mut rb = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .header(header::ACCEPT, HeaderValue::from_static(cfg.format.media_type()));
        rb = match &cfg.auth {
            Auth::None => rb,
            Auth::Basic { username, password } => rb.basic_auth(username, Some(password.expose())),
            Auth::Bearer(token) => rb.bearer_auth(token.expose()),
        };
        if let Some(body) = &req.body {
            let bytes = match cfg.format {
                Format::Json => serde_json::to_vec(body).map_err(|e| CimiError::Config(format!("body: {e}")))?,
                Format::Xml => xml_lenient::write(body).map_err(|e| CimiError::Config(format!("body: {e}")))?,
            };
            rb = rb.header(header::CONTENT_TYPE, HeaderValue::from_static(cfg.format.media_type())).body(bytes);
        }
        let resp = rb.send().await.map_err(|e| transport_error(&e, href, cfg.request_timeout))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let url = resp.url().clone();
        if status.is_redirection() {
            // Only a redirect the policy would not follow comes back: to another origin, or too deep.
            return Err(self.refused_redirect(&url, &headers, href));
        }
        if !status.is_success() {
            let raw = self.read_body(resp, MAX_ERROR_BODY_BYTES, href, false).await?;
            return Err(CimiError::from_status(status, &headers, &raw, href, req.operation));
        }
        let raw = self.read_body(resp, cfg.read_limits.max_body_bytes, href, true).await?;
        let body = decode_body(&headers, &raw, href)?;
        Ok(Response { status, headers, body, url })
    }
}

impl Transport {
    /// Reads a body of at most `cap` bytes as it streams in. Past the cap, a success body is refused with
    /// [`CimiError::ReadLimit`] (a `Content-Length` over the cap before a byte is read), and an error body
    /// (`refuse` false) is cut, since only its excerpt is kept. The connection is dropped either way.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        cap: u64,
        href: &str,
        refuse: bool,
    ) -> Result<Bytes, CimiError> {
        let timeout = self.inner.config.request_timeout;
        let too_large = |seen: String| {
            self.count_refusal(ReadLimitKind::BodySize.label());
            CimiError::ReadLimit {
                href: href.to_string(),
                limit: ReadLimitKind::BodySize,
                detail: format!(
                    "the provider sent {seen}, over the limit of {cap} bytes; raise spec.readLimits.maxBodySize if \
                     it is right"
                ),
            }
        };
        if refuse && let Some(len) = resp.content_length().filter(|l| *l > cap) {
            return Err(too_large(format!("a body of {len} bytes (Content-Length)")));
        }
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e, href, timeout))? {
            let room = usize::try_from(cap).unwrap_or(usize::MAX).saturating_sub(buf.len());
            if chunk.len() > room {
                if refuse {
                    return Err(too_large(format!("more than {cap} bytes")));
                }
                buf.extend_from_slice(&chunk[..room]);
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The error of a redirect that was not followed: to an origin the policy refuses (named), or too deep.
    fn refused_redirect(&self, from: &Url, headers: &HeaderMap, href: &str) -> CimiError {
        let target = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).and_then(|l| from.join(l.trim()).ok());
        match target {
            Some(to) => match self.inner.origins.check(&to) {
                Err(e) => {
                    self.count_refusal("untrusted_href");
                    match e {
                        CimiError::UntrustedHref { href: to, reason } => CimiError::UntrustedHref {
                            href: to,
                            reason: format!("{href} redirected there, and {reason}"),
                        },
                        other => other,
                    }
                }
                Ok(()) => CimiError::protocol(href, format!("more than 5 redirects, last to {}", redact_url(&to)), b""),
            },
            None => CimiError::protocol(href, "a redirect without a usable Location", b""),
        }
    }
}

impl CimiError {
    fn status_label(&self) -> String {
        match self {
            CimiError::Invalid { status, .. } | CimiError::Unauthorized { status, .. } => status.to_string(),
            CimiError::Unavailable { status: Some(s), .. } => s.to_string(),
            CimiError::NotFound { .. } => "404".into(),
            CimiError::RateLimited { .. } => "429".into(),
            CimiError::NotAllowedNow { .. } => "409".into(),
            CimiError::Conflict { .. } => "412".into(),
            other => other.metric_label().into(),
        }
    }
}

fn transport_error(e: &reqwest::Error, href: &str, timeout: Duration) -> CimiError {
    if e.is_timeout() {
        return CimiError::Timeout { what: format!("request to {href}"), after: timeout };
    }
    // reqwest errors may print the URL; print ours (redacted) and the error's kind only.
    let kind = if e.is_connect() {
        "unreachable"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    CimiError::Unavailable {
        href: href.to_string(),
        status: None,
        message: format!("{kind}: {detail}"),
        retry_after: None,
    }
}

/// Parse a success body: JSON or XML by `Content-Type`, sniffed when the label is missing or wrong. Empty
/// bodies, and HTML pages sent with a success status (ref §7: "Empty 200/202 bodies labelled
/// `text/html`"), are no body.
pub fn decode_body(headers: &HeaderMap, raw: &Bytes, href: &str) -> Result<Option<Value>, CimiError> {
    let text = raw.as_ref();
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    let Some(first) = first else { return Ok(None) };
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let looks_html = ctype.contains("html")
        || text.len() > 5
            && text[..text.len().min(64)].to_ascii_lowercase().windows(5).any(|w| w == b"<html" || w == b"<!doc");
    if first == b'{' || (ctype.contains("json") && first != b'<') {
        let v: Value =
            serde_json::from_slice(text).map_err(|e| CimiError::protocol(href, format!("invalid JSON: {e}"), text))?;
        return match v {
            Value::Object(_) => Ok(Some(v)),
            _ => Err(CimiError::protocol(href, "a CIMI JSON document must be an object", text)),
        };
    }
    if first == b'<' {
        if looks_html {
            tracing::debug!(href, "ignoring an HTML body on a success answer");
            return Ok(None);
        }
        return xml_lenient::parse(text).map(Some).map_err(|e| CimiError::protocol(href, e, text));
    }
    if ctype.contains("html") || ctype.starts_with("text/plain") {
        return Ok(None);
    }
    Err(CimiError::Protocol {
        href: href.to_string(),
        reason: "a success body that is neither JSON nor XML".into(),
        excerpt: excerpt(text),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(&Url::parse("http://127.0.0.1:1/cep").unwrap(), &[]).unwrap()
    }

    #[test]
    fn secrets_never_print() {
        let auth = Auth::Basic { username: "joe".into(), password: Secret::new("letmein") };
        assert!(!format!("{auth:?}").contains("letmein"));
        let cfg = TransportConfig { auth: Auth::Bearer(Secret::new("tok-123")), ..TransportConfig::new("p") };
        assert!(!format!("{cfg:?}").contains("tok-123"));
    }

    fn h(ct: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        m
    }

    /// §7: "Empty 200/202 bodies labelled `text/html`".
    #[test]
    fn empty_and_html_success_bodies_are_no_body() {
        assert_eq!(decode_body(&h("text/html"), &Bytes::from_static(b""), "u").unwrap(), None);
        assert_eq!(decode_body(&h("text/html"), &Bytes::from_static(b"  \n"), "u").unwrap(), None);
        assert_eq!(
            decode_body(&h("text/html"), &Bytes::from_static(b"<html><body>OK</body></html>"), "u").unwrap(),
            None
        );
        assert_eq!(
            decode_body(&HeaderMap::new(), &Bytes::from_static(b"<!DOCTYPE html><html></html>"), "u").unwrap(),
            None
        );
    }

    #[test]
    fn bodies_are_read_by_label_or_by_sniffing() {
        let json = Bytes::from_static(br#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/Machine","id":"m"}"#);
        assert_eq!(decode_body(&h("text/plain"), &json, "u").unwrap().unwrap()["id"], "m");
        let xml = Bytes::from_static(b"<Machine xmlns=\"http://schemas.dmtf.org/cimi/1\"><id>m</id></Machine>");
        assert_eq!(decode_body(&h("application/json"), &xml, "u").unwrap().unwrap()["id"], "m");
        assert!(matches!(
            decode_body(&h("application/json"), &Bytes::from_static(b"{\"a\":"), "u"),
            Err(CimiError::Protocol { .. })
        ));
        assert!(matches!(
            decode_body(&h("application/json"), &Bytes::from_static(b"[1]"), "u"),
            Err(CimiError::Protocol { .. })
        ));
    }

    #[tokio::test]
    async fn the_token_bucket_spaces_requests_after_the_burst() {
        let bucket = TokenBucket::new(&Limits { requests_per_second: 50.0, burst: 2, max_concurrent: 1 });
        let start = Instant::now();
        for _ in 0..7 {
            bucket.acquire().await;
        }
        // 2 at once, then 5 at 50/s: at least ~100 ms.
        assert!(start.elapsed() >= Duration::from_millis(90), "{:?}", start.elapsed());
    }

    #[test]
    fn retries_only_where_safe() {
        let t = Transport::new(TransportConfig::new("p"), policy(), ClientMetrics::default()).unwrap();
        let url = Url::parse("http://127.0.0.1:1/m").unwrap();
        let post = Request { method: Method::POST, url: url.clone(), body: None, operation: "create" };
        let get = Request::get(url, "get");
        let e500 =
            CimiError::Unavailable { href: "u".into(), status: Some(500), message: String::new(), retry_after: None };
        let e503 = CimiError::Unavailable {
            href: "u".into(),
            status: Some(503),
            message: String::new(),
            retry_after: Some(Duration::from_secs(1)),
        };
        let e429 = CimiError::RateLimited { href: "u".into(), retry_after: Some(Duration::from_secs(2)) };
        let long = CimiError::RateLimited { href: "u".into(), retry_after: Some(Duration::from_secs(3600)) };
        let reset = CimiError::Unavailable {
            href: "u".into(),
            status: None,
            message: "body interrupted: x".into(),
            retry_after: None,
        };
        let refused = CimiError::Unavailable {
            href: "u".into(),
            status: None,
            message: "unreachable: refused".into(),
            retry_after: None,
        };
        let bad = CimiError::Invalid { href: "u".into(), status: 400, message: String::new() };
        assert!(t.retry_wait(&get, &e500, 1).is_some());
        assert!(t.retry_wait(&post, &e500, 1).is_none(), "a POST that may have happened is not repeated");
        assert!(t.retry_wait(&post, &reset, 1).is_none());
        assert!(t.retry_wait(&post, &refused, 1).is_some());
        assert!(t.retry_wait(&post, &e503, 1).unwrap() >= Duration::from_secs(1));
        assert!(t.retry_wait(&post, &e429, 1).unwrap() >= Duration::from_secs(2));
        assert!(t.retry_wait(&get, &long, 1).is_none(), "a long Retry-After goes back to the caller");
        assert!(t.retry_wait(&get, &bad, 1).is_none());
    }

    /// Fuzz-style property: whatever bytes a provider sends with whatever label, decoding, normalising and
    /// typing them returns a value or an error and never panics.
    #[test]
    fn malformed_provider_output_never_panics() {
        use crate::cimi::model::{Collection, Job, Machine, MachineImage};
        use crate::cimi::normalize::{ImageLocationForm, normalize_resource};
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let dir = format!("{}/tests/fixtures/client", env!("CARGO_MANIFEST_DIR"));
        let mut seeds: Vec<Vec<u8>> =
            std::fs::read_dir(&dir).unwrap().filter_map(|e| std::fs::read(e.unwrap().path()).ok()).collect();
        seeds.push(br#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/MachineCollection","count":"2","machines":[{"id":"m","cpu":"x","created":"2012-13-45","operations":[{"rel":5}]},{"imageLocation":[]}]}"#.to_vec());
        seeds.push(br#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/Job","state":"FAILED","progress":"1e400","nestedJobs":{"href":3}}"#.to_vec());
        let labels = ["application/json", "application/xml", "text/html", "text/plain", ""];
        let mut rng = StdRng::seed_from_u64(0xF022);
        for i in 0..4000 {
            let mut body = seeds[i % seeds.len()].clone();
            for _ in 0..rng.random_range(0..6) {
                let len = body.len().max(1);
                match rng.random_range(0..4) {
                    0 if !body.is_empty() => {
                        let at = rng.random_range(0..body.len());
                        body[at] = b"<>{}[]\"',:&;=/ 0a\x00\xff"[rng.random_range(0..17)];
                    }
                    1 => body.truncate(rng.random_range(0..len)),
                    2 if !body.is_empty() => {
                        let at = rng.random_range(0..body.len());
                        let end = (at + rng.random_range(0..16)).min(body.len());
                        let chunk = body[at..end].to_vec();
                        body.splice(at..at, chunk);
                    }
                    _ => body.push(rng.random()),
                }
            }
            let headers = h(labels[i % labels.len()]);
            let Ok(Some(mut v)) = decode_body(&headers, &Bytes::from(body), "u") else {
                continue;
            };
            normalize_resource(&mut v, Some("Machine"), ImageLocationForm::Href);
            let _ = serde_json::from_value::<Machine>(v.clone());
            let _ = serde_json::from_value::<Job>(v.clone());
            let _ = serde_json::from_value::<Collection<Machine>>(v.clone());
            let _ = serde_json::from_value::<Collection<MachineImage>>(v);
        }
    }

    #[test]
    fn credentials_never_go_over_plain_http_unless_allowed() {
        let plain = Url::parse("http://127.0.0.1:1/machines").unwrap();
        let basic = Auth::Basic { username: "u".into(), password: Secret::new("p") };
        let t = |auth: Auth, allow: bool| {
            let cfg = TransportConfig { auth, allow_plain_http: allow, ..TransportConfig::new("p") };
            Transport::new(cfg, policy(), ClientMetrics::default()).unwrap()
        };
        let refused = t(basic.clone(), false).vet(&plain).unwrap_err();
        assert!(
            matches!(&refused, CimiError::UntrustedHref { reason, .. } if reason.contains("allowPlainHttp")),
            "{refused}"
        );
        assert!(t(basic, true).vet(&plain).is_ok(), "explicitly allowed");
        assert!(t(Auth::None, false).vet(&plain).is_ok(), "no credentials, nothing to protect");
        let foreign = Url::parse("http://127.0.0.2:1/machines").unwrap();
        assert!(matches!(t(Auth::None, true).vet(&foreign), Err(CimiError::UntrustedHref { .. })));
        let tr = t(Auth::None, false);
        let _ = tr.vet(&foreign);
        let labels = RefusalLabels { provider: "p".into(), reason: "untrusted_href".into() };
        assert_eq!(tr.metrics().refused.get_or_create(&labels).get(), 1, "refusals are counted");
    }

    #[tokio::test]
    async fn a_refused_url_is_never_requested() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let t = Transport::new(TransportConfig::new("p"), policy(), ClientMetrics::default()).unwrap();
        let e = t.execute(&Request::get(Url::parse(&format!("http://{addr}/x")).unwrap(), "get")).await;
        assert!(matches!(e, Err(CimiError::UntrustedHref { .. })), "{e:?}");
        assert!(listener.accept().is_err(), "no connection was made");
    }

    #[test]
    fn a_bad_ca_bundle_is_a_config_error() {
        let cfg = TransportConfig { ca_bundle_pem: Some(b"not a pem".to_vec()), ..TransportConfig::new("p") };
        assert!(matches!(Transport::new(cfg, policy(), ClientMetrics::default()), Err(CimiError::Config(_))));
    }
}
