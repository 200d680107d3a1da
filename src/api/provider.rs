//! `CimiProvider`: a CIMI endpoint with its credentials, TLS settings, cadences and limits.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ManagementPolicy, SecretRef};

/// The most catalog entries listed in status per collection; counts are always complete.
pub const CATALOG_ENTRIES_PER_COLLECTION: usize = 50;
/// The most capabilities listed in status.
pub const MAX_CAPABILITIES: usize = 100;

/// The CIMI serialization the operator speaks to the provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/json`.
    #[default]
    Json,
    /// `application/xml`.
    Xml,
}

/// A CimiProvider is a CIMI endpoint that CimiMachines, CimiVolumes, CimiNetworks and CimiSystems of every admitted namespace reference. It is cluster-scoped; its Secrets live in the operator's namespace.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiProvider",
    plural = "cimiproviders",
    singular = "cimiprovider",
    status = "CimiProviderStatus",
    shortname = "cimiprov",
    category = "cimi",
    derive = "PartialEq",
    doc = "A DMTF CIMI endpoint that cimi.dev objects of admitted namespaces reference.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the provider answers as a CIMI endpoint with its credentials"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.cimiVersion", description = "The CIMI version the provider speaks"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint", description = "The CloudEntryPoint URL", priority = 1),
    printcolumn(name = "Latency", type_ = "string", json_path = ".status.latency", description = "Latency of the last probe", priority = 1),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the provider is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(self.insecureSkipTLSVerify && has(self.caBundleSecretRef))").message("caBundleSecretRef and insecureSkipTLSVerify are mutually exclusive"),
    validation = Rule::new("!has(self.caBundleSecretRef) || self.endpoint.startsWith('https://')").message("caBundleSecretRef needs an https endpoint"),
    validation = Rule::new("!self.caBundleReplacesSystemRoots || has(self.caBundleSecretRef)").message("caBundleReplacesSystemRoots needs caBundleSecretRef"),
)]
pub struct CimiProviderSpec {
    /// Endpoint, credentials, TLS, cadences, limits and import rights.
    #[serde(flatten)]
    pub settings: ProviderSettings,
    /// Only objects in namespaces matching this label selector may use the provider; absent means all namespaces. Objects elsewhere get `Ready=False` with reason NotAllowedNamespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<LabelSelector>,
}

/// A CimiNamespacedProvider is a CIMI endpoint of one namespace: a team's own provider account. Its Secrets live in its namespace, and only objects of that namespace may use it (with `providerRef.kind: CimiNamespacedProvider`).
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiNamespacedProvider",
    plural = "ciminamespacedproviders",
    singular = "ciminamespacedprovider",
    namespaced,
    status = "CimiProviderStatus",
    shortname = "cimiprovns",
    category = "cimi",
    derive = "PartialEq",
    doc = "A DMTF CIMI endpoint that cimi.dev objects of its own namespace reference.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the provider answers as a CIMI endpoint with its credentials"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.cimiVersion", description = "The CIMI version the provider speaks"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint", description = "The CloudEntryPoint URL", priority = 1),
    printcolumn(name = "Latency", type_ = "string", json_path = ".status.latency", description = "Latency of the last probe", priority = 1),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the provider is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(self.insecureSkipTLSVerify && has(self.caBundleSecretRef))").message("caBundleSecretRef and insecureSkipTLSVerify are mutually exclusive"),
    validation = Rule::new("!has(self.caBundleSecretRef) || self.endpoint.startsWith('https://')").message("caBundleSecretRef needs an https endpoint"),
    validation = Rule::new("!self.caBundleReplacesSystemRoots || has(self.caBundleSecretRef)").message("caBundleReplacesSystemRoots needs caBundleSecretRef"),
    validation = Rule::new("!has(self.importRights) || self.importRights.all(r, !has(r.namespaces))").message("importRights of a CimiNamespacedProvider cannot name namespaces: only its own namespace uses it"),
)]
pub struct CimiNamespacedProviderSpec {
    /// Endpoint, credentials, TLS, cadences, limits and import rights.
    #[serde(flatten)]
    pub settings: ProviderSettings,
}

/// What both provider kinds are made of: the endpoint, its credentials and TLS, the cadences of observation,
/// the limits kept towards it, and who may import its resources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSettings {
    /// The CloudEntryPoint URL, such as `https://cimi.example.net/`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() in ['http', 'https']").message("endpoint must be an http or https URL"))]
    pub endpoint: String,
    /// A Secret with keys `username` and `password`, or `token`: in the operator's namespace for a CimiProvider, in its own namespace for a CimiNamespacedProvider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_secret_ref: Option<SecretRef>,
    /// A Secret (in the same namespace as the credential's) whose key `ca.crt` holds the CA bundle that signs the provider's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretRef>,
    /// Accept any certificate from the provider. For tests only.
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: bool,
    /// The serialization to speak: json (default) or xml.
    #[serde(default)]
    pub format: Format,
    /// How often the state of every resource is read, in paged collection reads. Default `30s`.
    #[serde(default = "default_poll_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new(r"!self.matches('^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) >= duration('1s')").message("pollInterval must be at least 1s"))]
    pub poll_interval: String,
    /// How often meters are read. Default `5m`.
    #[serde(default = "default_meter_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub meter_interval: String,
    /// How often provider EventLogs are read. Default `1m`.
    #[serde(default = "default_event_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub event_interval: String,
    /// The request budget the operator keeps towards this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Origins (`scheme://host[:port]`), besides the endpoint's, that the operator may send requests and credentials to, for providers whose baseURI, collections or Jobs live on another host. Every other href, from the provider or from a spec, is refused with reason UntrustedHref.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 512)))]
    #[x_kube(validation = Rule::new("self.all(o, isURL(o) && url(o).getScheme() in ['http', 'https'] && url(o).getEscapedPath() in ['', '/'] && !o.contains('@') && !o.contains('?') && !o.contains('#'))").message("trustedOrigins: each entry must be an origin, scheme://host[:port], with scheme http or https and no path, user info, query or fragment"))]
    pub trusted_origins: Vec<String>,
    /// Send credentials over plain `http://` (the endpoint or a trusted origin). Without it, a plain-http provider with credentials is not Ready (reason PlainHttpNotAllowed). For labs and loopback simulators only.
    #[serde(default, rename = "allowPlainHTTP")]
    pub allow_plain_http: bool,
    /// Bounds on what the operator reads from the provider; each that trips gives reason ReadLimitExceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_limits: Option<ReadLimits>,
    /// Trust only the CA bundle of caBundleSecretRef for the provider's certificate, not the system roots as well.
    #[serde(default)]
    pub ca_bundle_replaces_system_roots: bool,
    /// Who may adopt the provider's existing resources with `spec.import`, and how. Absent: every namespace that may use the provider may import, ObserveOnly only. Present: a namespace may import with the policies of the rights whose `namespaces` select it (a right without `namespaces` selects every namespace that may use the provider); any other import is refused with reason ImportNotAllowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub import_rights: Option<Vec<ImportRight>>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            endpoint: String::new(),
            credential_secret_ref: None,
            ca_bundle_secret_ref: None,
            insecure_skip_tls_verify: false,
            format: Format::default(),
            poll_interval: default_poll_interval(),
            meter_interval: default_meter_interval(),
            event_interval: default_event_interval(),
            rate_limit: None,
            trusted_origins: Vec::new(),
            allow_plain_http: false,
            read_limits: None,
            ca_bundle_replaces_system_roots: false,
            import_rights: None,
        }
    }
}

/// One grant of `spec.import`: the namespaces it applies to and the management policies they may import with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportRight {
    /// The namespaces (by label) this right applies to; absent means every namespace that may use the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<LabelSelector>,
    /// ObserveOnly, Managed, or both: how imported objects may treat the adopted resource (Managed may change and delete it).
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = Rule::new("self.all(p, self.exists_one(q, q == p))").message("importRights: each management policy at most once"))]
    pub management_policies: Vec<ManagementPolicy>,
}

/// Bounds on what the operator reads from a provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadLimits {
    /// The largest response body read, as a quantity such as `16Mi` (default). A larger body is refused; a `Content-Length` over it before a byte is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('4Ki')) >= 0 && quantity(self).compareTo(quantity('1Gi')) <= 0").message("readLimits.maxBodySize must be a quantity between 4Ki and 1Gi"))]
    pub max_body_size: Option<String>,
    /// The most pages one listing of a collection reads. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_pages: Option<i64>,
    /// The most entries one listing keeps. Default 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_entries: Option<i64>,
    /// The longest one listing may take, all pages together, such as `2m` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub listing_timeout: Option<String>,
}

impl ReadLimits {
    /// The client's bounds: these, with the client's defaults where unset (or unusable).
    pub fn to_client(&self) -> crate::cimi::ReadLimits {
        let defaults = crate::cimi::ReadLimits::default();
        let positive = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0);
        crate::cimi::ReadLimits {
            max_body_bytes: self
                .max_body_size
                .as_deref()
                .and_then(|q| super::quantity::parse_quantity(q).ok())
                .and_then(|b| u64::try_from(b).ok())
                .filter(|b| *b > 0)
                .unwrap_or(defaults.max_body_bytes),
            max_pages: positive(self.max_pages).unwrap_or(defaults.max_pages),
            max_entries: positive(self.max_entries).unwrap_or(defaults.max_entries),
            listing_timeout: self
                .listing_timeout
                .as_deref()
                .and_then(|t| super::common::parse_duration(t).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(defaults.listing_timeout),
        }
    }
}

fn default_poll_interval() -> String {
    "30s".to_string()
}
fn default_meter_interval() -> String {
    "5m".to_string()
}
fn default_event_interval() -> String {
    "1m".to_string()
}

/// The request budget towards one provider, shared fairly by every object that uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.burst >= self.requestsPerSecond").message("rateLimit.burst must be at least rateLimit.requestsPerSecond"))]
pub struct RateLimit {
    /// Sustained requests per second. Default 20.
    #[serde(default = "default_rps")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: i32,
    /// Requests that may be made at once after a quiet period. Default 40.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 100000))]
    pub burst: i32,
    /// Requests in flight at the same time. Default 8.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: i32,
}

fn default_rps() -> i32 {
    20
}
fn default_burst() -> i32 {
    40
}
fn default_max_concurrent() -> i32 {
    8
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { requests_per_second: default_rps(), burst: default_burst(), max_concurrent: default_max_concurrent() }
    }
}

/// What the operator learned of the provider at its last probe (both provider kinds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiProviderStatus {
    /// Ready, InUse, and Stalled when a human must act (bad credentials, not a CIMI endpoint, TLS, refused hrefs, read limits); see docs/reasons.md for every reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec that the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The CIMI version the CloudEntryPoint states (or 1.x when it states none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cimi_version: Option<String>,
    /// The provider's baseURI.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "baseURI")]
    pub base_uri: Option<String>,
    /// The collections the CloudEntryPoint offers, such as machines and volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Capabilities from ResourceMetadata (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    /// A bounded view of the provider's catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<Catalog>,
    /// When the provider was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// How long the last probe took, such as `12ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// How many cimi.dev objects reference this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use_by: Option<i32>,
    /// How the operator reads meters, provider events and machine sub-collections from this provider: batched
    /// through the CloudEntryPoint's collections where the provider allows it, else per object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
}

/// How each monitoring aspect of a provider's resources is read (absent until first decided).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// The latest sample of each meter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meters: Option<AspectReading>,
    /// Provider events (each resource's EventLog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<AspectReading>,
    /// Machine network interfaces (with their addresses) and attached volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_collections: Option<AspectReading>,
}

/// How one aspect is read, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AspectReading {
    /// `Batched`: paged reads of one collection per provider, whose count grows with pages; `PerObject`: reads of
    /// each object's own resources.
    pub mode: ReadingMode,
    /// What decided it, such as `the CloudEntryPoint offers no meters collection`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Batched or per object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReadingMode {
    /// Paged reads of one collection per provider.
    Batched,
    /// Reads of each object's own resources.
    PerObject,
}

/// One capability of a provider resource type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// The resource type it applies to, such as `Machine`.
    pub resource: String,
    /// The capability's name, such as `DefaultInitialState`.
    pub name: String,
    /// Its value; absent means boolean true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The provider's catalog: names and hrefs of what objects can be made from, capped per collection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Machine configurations (sizes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_configs: Vec<CatalogEntry>,
    /// Machine images of the catalog, not those made by CimiMachineImages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_images: Vec<CatalogEntry>,
    /// Machine templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_templates: Vec<CatalogEntry>,
    /// Volume configurations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_configs: Vec<CatalogEntry>,
    /// Volume images (snapshots) of the catalog, not those made by CimiVolumeImages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_images: Vec<CatalogEntry>,
    /// Volume templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_templates: Vec<CatalogEntry>,
    /// Network configurations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_configs: Vec<CatalogEntry>,
    /// Network templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_templates: Vec<CatalogEntry>,
    /// System templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_templates: Vec<CatalogEntry>,
    /// The full size of each collection, by collection name, even where the lists above are capped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, i64>,
    /// True when at least one list above was capped.
    #[serde(default)]
    pub truncated: bool,
}

/// One catalog entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// The entry's CIMI name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The entry's href.
    pub href: String,
}

/// The credentials a CimiProvider's Secret holds (`secret` names it in errors): keys `username` and
/// `password` (HTTP Basic), else `token` (Bearer); a trailing newline of a value is not part of it.
pub fn credentials_from_secret(data: &BTreeMap<String, Vec<u8>>, secret: &str) -> Result<crate::cimi::Auth, String> {
    use crate::cimi::{Auth, Secret};
    let key = |k: &str| data.get(k).map(|v| String::from_utf8_lossy(v).trim_end_matches(['\n', '\r']).to_string());
    match (key("username"), key("password"), key("token")) {
        (Some(username), Some(password), _) => Ok(Auth::Basic { username, password: Secret::new(password) }),
        (_, _, Some(token)) => Ok(Auth::Bearer(Secret::new(token))),
        _ => Err(format!("Secret {secret} needs keys username and password, or token")),
    }
}

impl ProviderSettings {
    /// The CIMI client configuration these settings describe for the provider `name` (its key: `name` for a
    /// CimiProvider, `namespace/name` for a CimiNamespacedProvider), with the credentials and CA bundle read
    /// from its Secrets: endpoint, format, TLS, the origins credentials may go to, plain http, read limits and
    /// the rate budget. Shared by the operator and `kubectl cimi`; each sets its own timeouts and retries.
    pub fn client_config(
        &self,
        name: &str,
        auth: crate::cimi::Auth,
        ca_bundle_pem: Option<Vec<u8>>,
    ) -> Result<crate::cimi::ClientConfig, crate::cimi::CimiError> {
        let spec = self;
        let mut config = crate::cimi::ClientConfig::new(name, &spec.endpoint)?;
        config.trusted_origins = spec.trusted_origins.clone();
        let transport = &mut config.transport;
        transport.auth = auth;
        transport.ca_bundle_pem = ca_bundle_pem;
        transport.ca_bundle_replaces_system_roots = spec.ca_bundle_replaces_system_roots;
        transport.insecure_skip_tls_verify = spec.insecure_skip_tls_verify;
        transport.allow_plain_http = spec.allow_plain_http;
        transport.read_limits = spec.read_limits.clone().unwrap_or_default().to_client();
        transport.format = match spec.format {
            Format::Json => crate::cimi::Format::Json,
            Format::Xml => crate::cimi::Format::Xml,
        };
        if let Some(limits) = &spec.rate_limit {
            transport.limits = crate::cimi::Limits {
                requests_per_second: f64::from(limits.requests_per_second),
                burst: u32::try_from(limits.burst).unwrap_or(1),
                max_concurrent: usize::try_from(limits.max_concurrent).unwrap_or(1),
            };
        }
        Ok(config)
    }
}
