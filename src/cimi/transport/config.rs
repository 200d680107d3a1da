//! What a provider's transport is configured with ([`TransportConfig`]): the media type ([`Format`]), the
//! credentials ([`Auth`], kept in a [`Secret`] that never prints), TLS options, timeouts, the rate budget,
//! retries and read bounds.

use std::fmt;
use std::time::Duration;

use super::limits::{Limits, ReadLimits, RetryPolicy};

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
    /// The `User-Agent` of every request; `None`: `cimi-operator/<version>`.
    pub user_agent: Option<String>,
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
            user_agent: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = Auth::Basic { username: "joe".into(), password: Secret::new("letmein") };
        assert!(!format!("{auth:?}").contains("letmein"));
        let cfg = TransportConfig { auth: Auth::Bearer(Secret::new("tok-123")), ..TransportConfig::new("p") };
        assert!(!format!("{cfg:?}").contains("tok-123"));
    }
}
