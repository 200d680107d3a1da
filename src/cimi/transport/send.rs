//! Sending a request: the URL vetted, a token and a permit taken, the request built (accept header,
//! credentials, the body in the provider's format), retried with jittered backoff only where that is safe,
//! and each attempt traced in a `cimi_request` span and counted in the metrics.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use rand::Rng;
use tracing::Instrument;

use super::body::decode_body;
use super::config::{Auth, Format};
use super::core::Transport;
use super::errors::transport_error;
use super::limits::MAX_ERROR_BODY_BYTES;
use super::metrics::RequestLabels;
use super::request::{Request, Response};
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::xml_lenient;

impl Transport {
    /// Send a request, with retries where safe. Non-2xx answers become errors. A URL that [`Self::vet`]
    /// refuses is never sent.
    pub async fn execute(&self, req: &Request) -> Result<Response, CimiError> {
        self.execute_with(req, &decode_body).await
    }

    /// [`Self::execute`], the success body decoded by `decode` (given the headers, the bytes and the redacted
    /// href) in place of [`decode_body`]; its error counts as the attempt's, as a decoding error does.
    pub async fn execute_with<B, F>(&self, req: &Request, decode: &F) -> Result<Response<B>, CimiError>
    where
        F: Fn(&HeaderMap, &Bytes, &str) -> Result<B, CimiError> + Sync,
    {
        self.vet(&req.url)?;
        let policy = self.inner.config.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = self.attempt(req, attempt, decode).await;
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
        RequestLabels::new(&self.inner.config.provider, operation, status)
    }

    async fn attempt<B, F>(&self, req: &Request, attempt: u32, decode: &F) -> Result<Response<B>, CimiError>
    where
        F: Fn(&HeaderMap, &Bytes, &str) -> Result<B, CimiError> + Sync,
    {
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
            let result = self.send_once(req, &href, decode).await;
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

    async fn send_once<B, F>(&self, req: &Request, href: &str, decode: &F) -> Result<Response<B>, CimiError>
    where
        F: Fn(&HeaderMap, &Bytes, &str) -> Result<B, CimiError> + Sync,
    {
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
        let body = decode(&headers, &raw, href)?;
        Ok(Response { status, headers, body, url })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cimi::origin::OriginPolicy;
    use crate::cimi::transport::{ClientMetrics, TransportConfig};
    use http::Method;
    use url::Url;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(&Url::parse("http://127.0.0.1:1/cep").unwrap(), &[]).unwrap()
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
}
