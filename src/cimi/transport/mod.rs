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
//! Before any of that, the URL is checked against the provider's
//! [`OriginPolicy`](crate::cimi::origin::OriginPolicy): a URL of another origin is refused without a request
//! (redirects to another origin are not followed either), and credentials go over plain `http` only where
//! [`TransportConfig::allow_plain_http`] says so. Bodies are read as a stream and refused past
//! [`ReadLimits::max_body_bytes`] (a `Content-Length` over it is refused before reading).
//!
//! TLS is rustls with the ring provider ([`install_crypto_provider`]); a CA bundle (PEM) can be added, and
//! certificate verification can be switched off only by an explicit option, which logs a warning.
//! HTTP(S) proxies come from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).
//!
//! The transport's files, by purpose:
//! - `config`: what a provider's transport is configured with ([`TransportConfig`]): the format, the
//!   credentials ([`Auth`], [`Secret`]), TLS options, timeouts, and the limits below;
//! - `limits`: the rate budget ([`Limits`]) and its token bucket, the retry policy ([`RetryPolicy`]) and the
//!   read bounds ([`ReadLimits`]);
//! - `metrics`: the client's metrics ([`ClientMetrics`]) and their labels;
//! - `request`: a request to send ([`Request`]) and a successful answer ([`Response`]);
//! - `core`: the [`Transport`] itself: the HTTP client (TLS, redirect policy, timeouts) built once per
//!   provider, and the vetting of every URL against the origin policy;
//! - `send`: sending a request: auth, the body in the provider's format, retries where safe, the span and
//!   the metrics of each attempt;
//! - `body`: bodies read as a stream within their bound, and decoded from JSON or XML;
//! - `errors`: the errors of the transport: a refused redirect, a failed connection or read, and the status
//!   label of an error.

mod body;
mod config;
mod core;
mod errors;
mod limits;
mod metrics;
mod request;
mod send;

pub use self::core::{Transport, install_crypto_provider};
pub use body::{decode_body, reads_as_json};
pub use config::{Auth, Format, Secret, TransportConfig};
pub use limits::{Limits, ReadLimits, RetryPolicy};
pub use metrics::{ClientMetrics, RefusalLabels, RequestLabels};
pub use request::{Request, Response};
