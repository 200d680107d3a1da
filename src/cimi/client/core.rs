//! The client's configuration ([`ClientConfig`], [`WaitPolicy`]) and the [`CimiClient`] itself: its shared
//! state (the discovered CloudEntryPoint, a [`Discovery`], among it), its construction, and its accessors.
//!
//! The state (`Inner`) is visible to the other files of the client only; they add the operations in their
//! own `impl CimiClient` blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::cimi::error::CimiError;
use crate::cimi::model::CloudEntryPoint;
use crate::cimi::origin::OriginPolicy;
use crate::cimi::transport::{ClientMetrics, Transport, TransportConfig};

/// How the client waits for Jobs and states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitPolicy {
    /// The first poll interval; it doubles up to `poll_max`.
    pub poll_initial: Duration,
    /// The longest poll interval.
    pub poll_max: Duration,
    /// The default overall limit of one wait.
    pub timeout: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            poll_initial: Duration::from_millis(100),
            poll_max: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

/// Everything a [`CimiClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The CloudEntryPoint URL: the only URL the client is given.
    pub endpoint: Url,
    /// HTTP, auth, limits, retries, format.
    pub transport: TransportConfig,
    /// Job and state polling.
    pub wait: WaitPolicy,
    /// Entries asked for per page when reading a whole collection.
    pub page_size: u64,
    /// Origins besides the endpoint's that the client may request (`spec.trustedOrigins`), as
    /// `scheme://host[:port]`.
    pub trusted_origins: Vec<String>,
}

impl ClientConfig {
    /// Defaults for the provider `provider` at the CEP URL `endpoint`.
    pub fn new(provider: &str, endpoint: &str) -> Result<Self, CimiError> {
        let endpoint = Url::parse(endpoint).map_err(|e| CimiError::Config(format!("endpoint URL: {e}")))?;
        Ok(ClientConfig {
            endpoint,
            transport: TransportConfig::new(provider),
            wait: WaitPolicy::default(),
            page_size: 100,
            trusted_origins: Vec::new(),
        })
    }
}

/// What the CloudEntryPoint told us: the typed CEP, the base URI, and the collections by CEP attribute name.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The CEP as read.
    pub cep: CloudEntryPoint,
    /// `baseURI`, absolute.
    pub base: Url,
    /// Collection URLs by CEP attribute name (`machines`, `machineConfigs`, `resourceMetadata`...).
    pub collections: BTreeMap<String, Url>,
}

impl Discovery {
    /// The URL of a CEP collection, or [`CimiError::NotSupported`].
    pub fn collection(&self, name: &str) -> Result<&Url, CimiError> {
        self.collections.get(name).ok_or_else(|| CimiError::NotSupported { collection: name.to_string() })
    }
    /// Whether the provider exposes the collection `name`.
    pub fn supports(&self, name: &str) -> bool {
        self.collections.contains_key(name)
    }
    /// Whether the provider exposes Jobs.
    pub fn has_jobs(&self) -> bool {
        self.supports("jobs")
    }
}

/// A CIMI client for one provider. Clone it freely: clones share the connection pool, the rate budget,
/// the metrics and the discovered CloudEntryPoint.
#[derive(Debug, Clone)]
pub struct CimiClient {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of a client shares.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) config: ClientConfig,
    pub(super) transport: Transport,
    pub(super) discovery: tokio::sync::RwLock<Option<Arc<Discovery>>>,
    pub(super) add_hrefs: Mutex<HashMap<Url, Url>>,
}

impl CimiClient {
    /// A client, without contacting the provider yet.
    pub fn new(config: ClientConfig) -> Result<Self, CimiError> {
        Self::with_metrics(config, ClientMetrics::default())
    }

    /// A client recording into `metrics` (share one [`ClientMetrics`] between providers and register it once).
    pub fn with_metrics(config: ClientConfig, metrics: ClientMetrics) -> Result<Self, CimiError> {
        let origins = OriginPolicy::new(&config.endpoint, &config.trusted_origins)?;
        let transport = Transport::new(config.transport.clone(), origins, metrics)?;
        Ok(CimiClient {
            inner: Arc::new(Inner {
                config,
                transport,
                discovery: tokio::sync::RwLock::new(None),
                add_hrefs: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client that has read the CloudEntryPoint.
    pub async fn connect(config: ClientConfig) -> Result<Self, CimiError> {
        let c = Self::new(config)?;
        c.discover().await?;
        Ok(c)
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The transport (for its metrics and limits).
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }
}
