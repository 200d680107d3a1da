//! The [`Transport`] of one provider: the HTTP client built once (rustls, the redirect policy, timeouts, the
//! CA bundle), the state every clone shares (configuration, origin policy, token bucket, concurrency
//! permits, metrics), and [`Transport::vet`], which every URL passes before it is requested.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use url::Url;

use super::config::{Auth, TransportConfig};
use super::limits::TokenBucket;
use super::metrics::{ClientMetrics, RefusalLabels};
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::origin::OriginPolicy;

/// Install ring as the process-wide rustls crypto provider. Idempotent: a provider already installed
/// (by us or by kube) is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP side of a CIMI client; cheap to clone, shared by all callers of one provider.
#[derive(Debug, Clone)]
pub struct Transport {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of a transport shares.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) config: TransportConfig,
    pub(super) origins: OriginPolicy,
    pub(super) http: reqwest::Client,
    pub(super) bucket: TokenBucket,
    pub(super) permits: Semaphore,
    pub(super) metrics: ClientMetrics,
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
            .user_agent(
                config
                    .user_agent
                    .clone()
                    .unwrap_or_else(|| concat!("cimi-operator/", env!("CARGO_PKG_VERSION")).into()),
            );
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
                         spec.allowPlainHTTP: true on the CimiProvider if the network is trusted"
                    .into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cimi::transport::Secret;

    fn policy() -> OriginPolicy {
        OriginPolicy::new(&Url::parse("http://127.0.0.1:1/cep").unwrap(), &[]).unwrap()
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
            matches!(&refused, CimiError::UntrustedHref { reason, .. } if reason.contains("allowPlainHTTP")),
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

    #[test]
    fn a_bad_ca_bundle_is_a_config_error() {
        let cfg = TransportConfig { ca_bundle_pem: Some(b"not a pem".to_vec()), ..TransportConfig::new("p") };
        assert!(matches!(Transport::new(cfg, policy(), ClientMetrics::default()), Err(CimiError::Config(_))));
    }
}
