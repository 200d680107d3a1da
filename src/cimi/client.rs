//! [`CimiClient`]: discovery from the CloudEntryPoint, collections, and the CIMI operations.
//!
//! The client knows one URL, the CloudEntryPoint's. Everything else is an `href` the provider gave: collection
//! refs in the CEP (relative ones resolved against `baseURI`), the `add` operation of a collection, the `edit`,
//! `delete` and action operations of a resource. It never builds a path. A collection the CEP does not list
//! is [`CimiError::NotSupported`] before any request is made.
//!
//! Every href is resolved and checked by [`CimiClient::resolve`] against the provider's
//! [`OriginPolicy`](super::origin::OriginPolicy) before it is requested (the transport checks again), and
//! every listing is bounded in pages, entries and time ([`ReadLimits`](super::transport::ReadLimits)).
//!
//! ```no_run
//! use cimi_operator::cimi::{CimiClient, ClientConfig, query::{Filter, Query}};
//! use cimi_operator::cimi::model::{Machine, MachineImage};
//! # async fn demo() -> Result<(), cimi_operator::cimi::CimiError> {
//! let client = CimiClient::connect(ClientConfig::new("lab", "http://127.0.0.1:8780/cimi/cloudEntryPoint")?).await?;
//! let images = client.list_all::<MachineImage>("machineImages", &Query::new()).await?;
//! let running = client
//!     .list_all::<Machine>("machines", &Query::new().filter(Filter::attr("state")?.eq("STARTED")))
//!     .await?;
//! # let _ = (images, running); Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use super::error::{CimiError, ReadLimitKind, redact_url};
use super::model::{self, CloudEntryPoint, Collection, Resource};
use super::normalize::{ImageLocationForm, normalize_resource, type_name};
use super::origin::OriginPolicy;
use super::query::{Query, select_url};
use super::transport::{ClientMetrics, Request, Response, Transport, TransportConfig};

/// The header naming the Job of an operation.
pub const JOB_HEADER: &str = "CIMI-Job-URI";

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

/// What a provider answered to a write (create, update, delete, action).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// 200, 201, 202 or 204.
    pub status: u16,
    /// The `Location` header, absolute.
    pub location: Option<Url>,
    /// The Job: the `CIMI-Job-URI` header, or the id of a Job sent as the body.
    pub job: Option<Url>,
    /// The body, when there was a CIMI document.
    pub body: Option<Value>,
}

impl Accepted {
    /// Whether the provider finished the work before answering (200, 201, 204).
    pub fn is_complete(&self) -> bool {
        self.status != 202
    }
}

/// A whole collection read page by page.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    /// The entries, in the provider's order, without duplicates.
    pub entries: Vec<T>,
    /// The provider's `count` (entries matching, before paging), when it gave one.
    pub count: Option<u64>,
    /// True when the provider served fewer entries than its `count` and paging could not get the rest.
    pub truncated: bool,
}

/// A CIMI client for one provider. Clone it freely: clones share the connection pool, the rate budget,
/// the metrics and the discovered CloudEntryPoint.
#[derive(Debug, Clone)]
pub struct CimiClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    transport: Transport,
    discovery: tokio::sync::RwLock<Option<Arc<Discovery>>>,
    add_hrefs: Mutex<HashMap<Url, Url>>,
}

/// Body value of a resource's operation with `rel`, honouring a 2.0 `available: false`.
pub(crate) fn find_operation(resource: &Value, rel: &str) -> Option<Result<String, ()>> {
    let ops = resource.get("operations")?.as_array()?;
    let op = ops.iter().find(|o| o.get("rel").and_then(Value::as_str) == Some(rel))?;
    if op.get("available").and_then(Value::as_bool) == Some(false) {
        return Some(Err(()));
    }
    op.get("href").and_then(Value::as_str).map(|h| Ok(h.to_string()))
}

/// Takes the entries out of a collection document: the array `key`, else its one array of objects other
/// than `operations`.
pub fn take_entries(doc: &mut Value, key: Option<&str>) -> Vec<Value> {
    let Value::Object(map) = doc else { return Vec::new() };
    let key = match key {
        Some(k) => Some(k.to_string()),
        None => map
            .iter()
            .filter(|(k, _)| k.as_str() != "operations")
            .find(|(_, v)| v.as_array().is_some_and(|a| a.iter().all(Value::is_object)))
            .map(|(k, _)| k.clone()),
    };
    match key.and_then(|k| map.get_mut(&k)).map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// The `id` of a JSON-shaped resource.
pub fn id_of(resource: &Value) -> Option<&str> {
    resource.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())
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

    /// Read (or re-read) the CloudEntryPoint.
    pub async fn discover(&self) -> Result<Arc<Discovery>, CimiError> {
        let url = self.inner.config.endpoint.clone();
        let href = redact_url(&url);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "discover")).await?;
        let mut body = resp.body.ok_or_else(|| CimiError::protocol(&href, "the CloudEntryPoint has no body", b""))?;
        normalize_resource(&mut body, Some("CloudEntryPoint"), ImageLocationForm::Href);
        let base_raw = body.get("baseURI").and_then(Value::as_str).unwrap_or("");
        // baseURI is mandatory; a provider that leaves it out gets the CEP URL's directory.
        let base = if base_raw.is_empty() { resp.url.join("./") } else { resp.url.join(base_raw) }
            .map_err(|e| CimiError::protocol(&href, format!("baseURI: {e}"), base_raw.as_bytes()))?;
        // Every relative href resolves against baseURI: one on another origin would send them all there.
        self.inner.transport.vet(&base).map_err(|e| match e {
            CimiError::UntrustedHref { href, reason } => {
                CimiError::UntrustedHref { href, reason: format!("the CloudEntryPoint's baseURI: {reason}") }
            }
            other => other,
        })?;
        let mut collections = BTreeMap::new();
        if let Value::Object(obj) = &body {
            for (k, v) in obj {
                if k == "operations" {
                    continue;
                }
                if let Some(h) = v.get("href").and_then(Value::as_str)
                    && let Ok(u) = base.join(h)
                {
                    collections.insert(k.clone(), u);
                }
            }
        }
        let cep: CloudEntryPoint = serde_json::from_value(body.clone())
            .map_err(|e| CimiError::protocol(&href, format!("CloudEntryPoint: {e}"), body.to_string().as_bytes()))?;
        let d = Arc::new(Discovery { cep, base, collections });
        *self.inner.discovery.write().await = Some(d.clone());
        Ok(d)
    }

    /// The discovered CloudEntryPoint (read on first use).
    pub async fn discovery(&self) -> Result<Arc<Discovery>, CimiError> {
        if let Some(d) = self.inner.discovery.read().await.as_ref() {
            return Ok(d.clone());
        }
        self.discover().await
    }

    /// The URL of a CEP collection (`machines`, `machineImages`...), or [`CimiError::NotSupported`].
    pub async fn collection_url(&self, name: &str) -> Result<Url, CimiError> {
        Ok(self.discovery().await?.collection(name)?.clone())
    }

    /// Resolve an href (the provider's or a spec's) against `baseURI`, and check that it may be requested:
    /// [`CimiError::UntrustedHref`] when its origin is not the provider's nor a trusted one.
    pub async fn resolve(&self, href: &str) -> Result<Url, CimiError> {
        let base = match self.inner.discovery.read().await.as_ref() {
            Some(d) => d.base.clone(),
            None => self.inner.config.endpoint.clone(),
        };
        let url = base.join(href.trim()).map_err(|e| CimiError::Protocol {
            href: redact_url(&base),
            reason: format!("unusable href: {e}"),
            excerpt: super::error::excerpt(href.as_bytes()),
        })?;
        self.inner.transport.vet(&url)?;
        Ok(url)
    }

    fn normalized(&self, resp: &Response, hint: Option<&str>) -> Option<Value> {
        let mut body = resp.body.clone()?;
        normalize_resource(&mut body, hint, ImageLocationForm::Href);
        Some(body)
    }

    /// GET a resource as a normalised JSON value.
    pub async fn get_value(&self, href: &Url) -> Result<Value, CimiError> {
        self.get_value_hinted(href, None, &Query::new()).await
    }

    async fn get_value_hinted(&self, href: &Url, hint: Option<&str>, query: &Query) -> Result<Value, CimiError> {
        let url = query.apply(href);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "get")).await?;
        self.normalized(&resp, hint)
            .ok_or_else(|| CimiError::protocol(&redact_url(&url), "a read answered without a document", b""))
    }

    /// GET a resource as a model type.
    pub async fn get<T: Resource + DeserializeOwned>(&self, href: &Url) -> Result<T, CimiError> {
        let v = self.get_value_hinted(href, Some(T::TYPE_NAME), &Query::new()).await?;
        typed(v, href)
    }

    /// GET a resource with query parameters (`$select`, `$expand`).
    pub async fn get_with<T: Resource + DeserializeOwned>(&self, href: &Url, query: &Query) -> Result<T, CimiError> {
        let v = self.get_value_hinted(href, Some(T::TYPE_NAME), query).await?;
        typed(v, href)
    }

    /// One page (or the whole, if the provider ignores paging) of a collection at `href`, as JSON.
    pub async fn list_page_value(&self, href: &Url, query: &Query, item_type: &str) -> Result<Value, CimiError> {
        let url = query.apply(href);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "list")).await?;
        let mut body = resp.body.unwrap_or_else(|| Value::Object(Map::new()));
        if let Value::Object(o) = &mut body
            && !o.contains_key("resourceURI")
        {
            o.insert("resourceURI".into(), Value::String(model::type_uri(&format!("{item_type}Collection"))));
        }
        normalize_resource(&mut body, None, ImageLocationForm::Href);
        Ok(body)
    }

    /// One page of a collection at `href`, typed.
    pub async fn list_page<T: Resource + DeserializeOwned>(
        &self,
        href: &Url,
        query: &Query,
    ) -> Result<Collection<T>, CimiError> {
        let v = self.list_page_value(href, query, T::TYPE_NAME).await?;
        typed(v, href)
    }

    /// Every entry of the CEP collection `name` matching `query`, paging with `$first`/`$last`.
    pub async fn list_all<T: Resource + DeserializeOwned>(
        &self,
        name: &str,
        query: &Query,
    ) -> Result<Listing<T>, CimiError> {
        let url = self.collection_url(name).await?;
        self.list_all_at(&url, query).await
    }

    /// Every entry of the collection at `href` (a CEP collection or a sub-collection such as a machine's
    /// `volumes`). Providers that ignore paging, omit an empty entry array, or truncate are handled: the
    /// result says `truncated` when fewer entries than `count` could be read. The read is bounded like
    /// [`Self::list_values_at`].
    pub async fn list_all_at<T: Resource + DeserializeOwned>(
        &self,
        href: &Url,
        query: &Query,
    ) -> Result<Listing<T>, CimiError> {
        let page = self.inner.config.page_size;
        let listing = self.list_values_at(href, query, T::TYPE_NAME, Some(T::COLLECTION_KEY), page).await?;
        let entries = listing.entries.into_iter().map(|v| typed(v, href)).collect::<Result<Vec<T>, _>>()?;
        Ok(Listing { entries, count: listing.count, truncated: listing.truncated })
    }

    /// Every entry of the collection at `href` matching `query`, as JSON, read `page_size` entries at a
    /// time: with `$first`/`$last`, or through the `next` operation of each page where the provider links its
    /// pages. `key` names the entry array (else the one array of objects other than `operations`).
    ///
    /// Bounded by the transport's [`ReadLimits`](super::transport::ReadLimits): more pages than `max_pages`,
    /// more entries than `max_entries`, a next page already read, or a listing longer than `listing_timeout`
    /// is [`CimiError::ReadLimit`], counted in the `refused` metric.
    pub async fn list_values_at(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
        key: Option<&str>,
        page_size: u64,
    ) -> Result<Listing<Value>, CimiError> {
        let limits = self.inner.transport.config().read_limits;
        let reading = self.page_values(href, query, item_type, key, page_size.max(1));
        match tokio::time::timeout(limits.listing_timeout, reading).await {
            Ok(result) => result,
            Err(_) => Err(self.read_limit(
                href,
                ReadLimitKind::ListingTime,
                format!(
                    "the listing took longer than {:?}; raise spec.readLimits.listingTimeout if the provider is \
                     just slow",
                    limits.listing_timeout
                ),
            )),
        }
    }

    fn read_limit(&self, href: &Url, limit: ReadLimitKind, detail: String) -> CimiError {
        self.inner.transport.count_refusal(limit.label());
        CimiError::ReadLimit { href: redact_url(href), limit, detail }
    }

    async fn page_values(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
        key: Option<&str>,
        page: u64,
    ) -> Result<Listing<Value>, CimiError> {
        let limits = self.inner.transport.config().read_limits;
        let mut seen = std::collections::HashSet::new();
        let mut visited = std::collections::HashSet::new();
        let mut entries: Vec<Value> = Vec::new();
        let mut count: Option<u64> = None;
        let first = query.first_index().unwrap_or(1);
        let mut next = first;
        let end = query.last_index();
        // The next page the provider linked (`next` operation), once it links them.
        let mut linked: Option<Url> = None;
        for pages in 1u64.. {
            if pages > limits.max_pages {
                return Err(self.read_limit(
                    href,
                    ReadLimitKind::Pages,
                    format!(
                        "more than {} pages; raise spec.readLimits.maxPages if the collection is that large",
                        limits.max_pages
                    ),
                ));
            }
            let (url, asked) = match &linked {
                Some(u) => (u.clone(), None),
                None => {
                    let last = end.map_or(next + page - 1, |e| e.min(next + page - 1));
                    (query.page(next, last).apply(href), Some(last - next + 1))
                }
            };
            visited.insert(url.clone());
            let mut body = self.list_page_value(&url, &Query::new(), item_type).await?;
            if count.is_none() {
                count = body.get("count").and_then(Value::as_u64);
            }
            let next_page = match find_operation(&body, "next") {
                Some(Ok(h)) => Some(self.resolve(&h).await?),
                _ => None,
            };
            let mut items = take_entries(&mut body, key);
            let mut served = items.len() as u64;
            // Ref §7: "`$first`/`$last` ignored (the whole collection comes back)". More entries than asked
            // for means this is the whole collection: apply the window here, and stop paging.
            let ignored_paging = asked.is_some_and(|n| served > n);
            if ignored_paging {
                let from = usize::try_from(next - 1).unwrap_or(usize::MAX);
                let to = end.map_or(items.len(), |e| usize::try_from(e).unwrap_or(usize::MAX).min(items.len()));
                items = items.into_iter().skip(from).take(to.saturating_sub(from)).collect();
                served = items.len() as u64;
            }
            let mut fresh = 0u64;
            for item in items {
                // Entries without an id cannot repeat; entries with one are kept once (providers that ignore
                // `$first` serve the same entries again).
                if let Some(id) = id_of(&item)
                    && !seen.insert(id.to_string())
                {
                    continue;
                }
                fresh += 1;
                entries.push(item);
                if entries.len() as u64 > limits.max_entries {
                    return Err(self.read_limit(
                        href,
                        ReadLimitKind::Entries,
                        format!(
                            "more than {} entries; raise spec.readLimits.maxEntries if the collection is that large",
                            limits.max_entries
                        ),
                    ));
                }
            }
            let wanted = match (count, end) {
                (Some(c), Some(e)) => c.min(e),
                (Some(c), None) => c,
                (None, Some(e)) => e,
                (None, None) => u64::MAX,
            };
            let have = (first - 1) + entries.len() as u64;
            if ignored_paging || have >= wanted || fresh == 0 {
                break;
            }
            match next_page {
                Some(u) => {
                    if visited.contains(&u) {
                        return Err(self.read_limit(
                            href,
                            ReadLimitKind::RepeatedPage,
                            format!("the next page {} was read already: the provider's pages loop", redact_url(&u)),
                        ));
                    }
                    linked = Some(u);
                }
                // A provider that linked its pages is done when a page links no further.
                None if linked.is_some() => break,
                // A short page ends the collection when the provider gave no `count`. With a `count`, a
                // provider that truncates its answers is asked for the rest; one that then gives nothing new
                // is done.
                None => {
                    if count.is_none() && asked.is_some_and(|n| served < n) {
                        break;
                    }
                    next += fresh;
                }
            }
        }
        let truncated = count.is_some_and(|c| {
            let expected = match end {
                Some(e) => e.min(c).saturating_sub(first - 1),
                None => c.saturating_sub(first - 1),
            };
            (entries.len() as u64) < expected
        });
        if truncated {
            tracing::warn!(href = %redact_url(href), count, got = entries.len(), "collection truncated by the provider");
        }
        Ok(Listing { entries, count, truncated })
    }

    /// The `add` href of the collection at `collection` (read once from the collection's operations).
    pub async fn add_href(&self, collection: &Url) -> Result<Url, CimiError> {
        if let Some(u) = self.inner.add_hrefs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(collection)
        {
            return Ok(u.clone());
        }
        let body = self.list_page_value(collection, &Query::new().first(1).last(1), "").await?;
        let href = match find_operation(&body, model::REL_ADD) {
            Some(Ok(h)) => h,
            _ => {
                return Err(CimiError::NotAllowedNow {
                    href: redact_url(collection),
                    operation: "add".into(),
                    message: "the collection offers no add operation".into(),
                });
            }
        };
        let url = self.resolve(&href).await?;
        self.inner
            .add_hrefs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(collection.clone(), url.clone());
        Ok(url)
    }

    async fn write(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
        operation: &'static str,
    ) -> Result<Accepted, CimiError> {
        if let Some(b) = &body {
            self.vet_body_hrefs(b).await?;
        }
        let resp = self.inner.transport.execute(&Request { method, url, body, operation }).await?;
        let body = self.normalized(&resp, None);
        // Header URIs, like every CIMI href, resolve against baseURI when relative; one on an origin that is
        // not trusted fails the call (the write happened: the caller finds its result by the UID tag).
        let location = self.header_href(&resp, http::header::LOCATION.as_str()).await?;
        let mut job = self.header_href(&resp, JOB_HEADER).await?;
        if job.is_none()
            && let Some(b) = &body
            && b.get("resourceURI").and_then(Value::as_str).map(type_name) == Some("Job")
            && let Some(id) = id_of(b)
        {
            job = Some(self.resolve(id).await?);
        }
        let status = resp.status.as_u16();
        if !matches!(resp.status, StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::NO_CONTENT)
        {
            tracing::debug!(status, "unusual success status, treated as done");
        }
        Ok(Accepted { status, location, job, body })
    }

    /// Checks every `href` a request body carries (template, config, image, volume references — often
    /// written by a user in a spec) as if it were requested: the provider would act on it for us. `#name`
    /// references inside a SystemTemplate are symbolic and pass.
    async fn vet_body_hrefs(&self, body: &Value) -> Result<(), CimiError> {
        let mut stack = vec![body];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        match child {
                            Value::String(h) if k == "href" && !h.starts_with('#') => {
                                self.resolve(h).await.map_err(|e| match e {
                                    CimiError::UntrustedHref { href, reason } => CimiError::UntrustedHref {
                                        href,
                                        reason: format!("an href of the request body: {reason}"),
                                    },
                                    other => other,
                                })?;
                            }
                            _ => stack.push(child),
                        }
                    }
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        Ok(())
    }

    async fn header_href(&self, resp: &Response, name: &str) -> Result<Option<Url>, CimiError> {
        let Some(raw) = resp.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        match self.resolve(raw).await {
            Ok(u) => Ok(Some(u)),
            Err(CimiError::UntrustedHref { href, reason }) => {
                Err(CimiError::UntrustedHref { href, reason: format!("the {name} header: {reason}") })
            }
            // Not a URL against baseURI: try the request URL, and check that too.
            Err(_) => match resp.header_url(name) {
                Some(u) => self.inner.transport.vet(&u).map(|()| Some(u)),
                None => Ok(None),
            },
        }
    }

    /// POST a create body (a `…Create`, or a template, config, image or credential by value) to the `add`
    /// href of the CEP collection `collection`.
    pub async fn create(&self, collection: &str, body: &impl Serialize) -> Result<Accepted, CimiError> {
        let url = self.collection_url(collection).await?;
        self.create_at(&url, body).await
    }

    /// POST a create body to the `add` href of the collection at `collection`.
    pub async fn create_at(&self, collection: &Url, body: &impl Serialize) -> Result<Accepted, CimiError> {
        let body = to_body(body)?;
        let add = self.add_href(collection).await?;
        self.write(Method::POST, add, Some(body), "create").await
    }

    /// The href of what a create made: `Location`, else the id in the body, else the Job's affected resources
    /// (other than its target, the collection). Follows the Job when one is needed and running.
    pub async fn created_href(&self, accepted: &Accepted, collection: &Url) -> Result<Option<Url>, CimiError> {
        if let Some(l) = &accepted.location
            && l != collection
        {
            return Ok(Some(l.clone()));
        }
        if let Some(b) = &accepted.body
            && b.get("resourceURI").and_then(Value::as_str).map(type_name) != Some("Job")
            && let Some(id) = id_of(b)
        {
            return Ok(Some(self.resolve(id).await?));
        }
        if let Some(job) = &accepted.job {
            let j = self.get_value_hinted(job, Some("Job"), &Query::new()).await?;
            let target = j.get("targetResource").and_then(|t| t.get("href")).and_then(Value::as_str).unwrap_or("");
            if let Some(list) = j.get("affectedResources").and_then(Value::as_array) {
                for r in list {
                    if let Some(h) = r.get("href").and_then(Value::as_str)
                        && h != target
                    {
                        let u = self.resolve(h).await?;
                        if &u != collection {
                            return Ok(Some(u));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Partial update (`PUT <edit>?$select=…`) of exactly the attributes in `changes`, plus `erase` (listed
    /// and absent from the body, so the provider erases them). `current` is the resource as last read; its
    /// `edit` operation gives the href.
    pub async fn update(
        &self,
        current: &Value,
        changes: &Map<String, Value>,
        erase: &[&str],
    ) -> Result<Accepted, CimiError> {
        let href = self.operation_href(current, model::REL_EDIT).await?;
        let mut select: Vec<&str> = changes.keys().map(String::as_str).collect();
        select.extend(erase.iter().copied().filter(|e| !changes.contains_key(*e)));
        if select.is_empty() {
            return Err(CimiError::Config("an update must change or erase at least one attribute".into()));
        }
        let mut body = changes.clone();
        if let Some(uri) = current.get("resourceURI") {
            body.insert("resourceURI".into(), uri.clone());
        }
        self.write(Method::PUT, select_url(&href, &select), Some(Value::Object(body)), "update").await
    }

    /// Partial update of the resource at `href` (read first for its `edit` operation).
    pub async fn update_href(
        &self,
        href: &Url,
        changes: &Map<String, Value>,
        erase: &[&str],
    ) -> Result<Accepted, CimiError> {
        let current = self.get_value(href).await?;
        self.update(&current, changes, erase).await
    }

    /// Delete through the resource's `delete` operation. A provider that answers 500 or 404 is checked with a
    /// GET: gone is [`CimiError::NotFound`] (which a caller deleting something reads as done).
    pub async fn delete(&self, current: &Value) -> Result<Accepted, CimiError> {
        let href = self.operation_href(current, model::REL_DELETE).await?;
        match self.write(Method::DELETE, href.clone(), None, "delete").await {
            Ok(a) => Ok(a),
            Err(e @ (CimiError::NotFound { .. } | CimiError::Unavailable { status: Some(500), .. })) => {
                // Ref §7: "Deleting an already deleted resource answering 500 instead of 404: re-read before
                // concluding." Design rule 1: a 404 to a DELETE is confirmed by a GET.
                let id = id_of(current).map(str::to_string);
                let check = match id {
                    Some(i) => self.resolve(&i).await?,
                    None => href,
                };
                match self.get_value(&check).await {
                    Err(gone @ CimiError::NotFound { .. }) => Err(gone),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Delete the resource at `href` (read first for its `delete` operation; already gone is NotFound).
    pub async fn delete_href(&self, href: &Url) -> Result<Accepted, CimiError> {
        let current = self.get_value(href).await?;
        self.delete(&current).await
    }

    /// Invoke the action `action` (`start`, or a full rel URI) through the resource's operations, with
    /// extra `params` (`force`...). Absent or `available: false` is [`CimiError::NotAllowedNow`]; the URL is
    /// never guessed.
    pub async fn action(
        &self,
        current: &Value,
        action: &str,
        params: Map<String, Value>,
    ) -> Result<Accepted, CimiError> {
        let rel = if action.contains("://") { action.to_string() } else { model::action_uri(action) };
        let href = self.operation_href(current, &rel).await?;
        let mut body = params;
        body.insert("resourceURI".into(), Value::String(model::Action::resource_uri()));
        body.insert("action".into(), Value::String(rel));
        self.write(Method::POST, href, Some(Value::Object(body)), "action").await
    }

    /// Capture (or snapshot, with `action` `snapshot`) a machine into a new MachineImage: POST a MachineImage
    /// named `name` whose `imageLocation` is the machine to the href of the machine's `capture` (or
    /// `snapshot`) operation, normally the machineImages collection (reference §3.2). The new image's href is
    /// then [`Self::created_href`] of the answer.
    pub async fn capture(&self, machine: &Value, action: &str, name: &str) -> Result<Accepted, CimiError> {
        let href = self.operation_href(machine, &model::action_uri(action)).await?;
        let location = id_of(machine).ok_or_else(|| CimiError::Config("a machine to capture needs its id".into()))?;
        let location = self.resolve(location).await?;
        let body = serde_json::json!({
            "resourceURI": model::type_uri("MachineImage"),
            "name": name,
            "imageLocation": location.as_str(),
        });
        self.write(Method::POST, href, Some(body), "create").await
    }

    /// Invoke an action on the resource at `href` (read first for its operations).
    pub async fn action_href(
        &self,
        href: &Url,
        action: &str,
        params: Map<String, Value>,
    ) -> Result<Accepted, CimiError> {
        let current = self.get_value(href).await?;
        self.action(&current, action, params).await
    }

    /// Attach a volume: POST a MachineVolume to the `add` href of the machine's `volumes` collection.
    pub async fn attach_volume(
        &self,
        machine: &Value,
        volume: &Url,
        initial_location: &str,
    ) -> Result<Accepted, CimiError> {
        let volumes = machine
            .get("volumes")
            .and_then(|v| v.get("href"))
            .and_then(Value::as_str)
            .ok_or_else(|| CimiError::NotSupported { collection: "machine volumes".into() })?;
        let coll = self.resolve(volumes).await?;
        let body = serde_json::json!({
            "resourceURI": model::type_uri("MachineVolume"),
            "initialLocation": initial_location,
            "volume": {"href": volume.as_str()},
        });
        self.create_at(&coll, &body).await
    }

    /// Detach: delete the MachineVolume entry (a 200 with the updated collection as its body is fine).
    pub async fn detach_volume(&self, machine_volume: &Value) -> Result<Accepted, CimiError> {
        self.delete(machine_volume).await
    }

    /// The href of the operation `rel` of `current`; both delete rels count as delete (normalised earlier).
    pub async fn operation_href(&self, current: &Value, rel: &str) -> Result<Url, CimiError> {
        let who = id_of(current).unwrap_or("the resource").to_string();
        match find_operation(current, rel) {
            Some(Ok(h)) => self.resolve(&h).await,
            Some(Err(())) => Err(CimiError::NotAllowedNow {
                href: who,
                operation: rel.to_string(),
                message: "the provider lists it as not available now".into(),
            }),
            None => Err(CimiError::NotAllowedNow {
                href: who,
                operation: rel.to_string(),
                message: format!(
                    "not among the operations offered now ({})",
                    current
                        .get("operations")
                        .and_then(Value::as_array)
                        .map(|ops| ops
                            .iter()
                            .filter_map(|o| o.get("rel").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                ),
            }),
        }
    }

    /// The ResourceMetadata describing `type_uri` (e.g. the Credential's extension attributes), if any.
    pub async fn resource_metadata(&self, type_uri: &str) -> Result<Option<model::ResourceMetadata>, CimiError> {
        let all = self.list_all::<model::ResourceMetadata>("resourceMetadata", &Query::new()).await?;
        Ok(all.entries.into_iter().find(|m| m.type_uri.as_deref() == Some(type_uri)))
    }
}

/// The template of a `…Create` body.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// The template's attributes inline (nested configs, images, credentials may be values or `{href}`).
    ByValue(Value),
    /// A provider template by href, with attributes overridden for this instantiation only; a `null`
    /// override erases the attribute.
    ByReference {
        /// The template's href.
        href: String,
        /// Overrides.
        overrides: Map<String, Value>,
    },
}

/// A `<Type>Create` body (`MachineCreate`, `VolumeCreate`, `CredentialCreate`...): name, description and
/// properties for the new resource, and the `<type>Template` by value or by reference.
pub fn create_body(
    type_name: &str,
    name: &str,
    description: Option<&str>,
    properties: &BTreeMap<String, String>,
    template: Template,
) -> Value {
    let mut body = Map::new();
    body.insert("resourceURI".into(), Value::String(model::type_uri(&format!("{type_name}Create"))));
    body.insert("name".into(), Value::String(name.to_string()));
    if let Some(d) = description {
        body.insert("description".into(), Value::String(d.to_string()));
    }
    if !properties.is_empty() {
        let props: Map<String, Value> = properties.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        body.insert("properties".into(), Value::Object(props));
    }
    let mut key: String = type_name.chars().take(1).flat_map(char::to_lowercase).collect();
    key.push_str(type_name.get(1..).unwrap_or(""));
    key.push_str("Template");
    let template = match template {
        Template::ByValue(v) => v,
        Template::ByReference { href, mut overrides } => {
            overrides.insert("href".into(), Value::String(href));
            Value::Object(overrides)
        }
    };
    body.insert(key, template);
    Value::Object(body)
}

/// A JSON value as a model type, or a protocol error naming what did not fit.
pub fn typed<T: DeserializeOwned>(v: Value, href: &Url) -> Result<T, CimiError> {
    T::deserialize(&v).map_err(|e| {
        CimiError::protocol(&redact_url(href), format!("does not match the model: {e}"), v.to_string().as_bytes())
    })
}

/// A body for a write: serialised, with its `resourceURI` checked.
fn to_body(body: &impl Serialize) -> Result<Value, CimiError> {
    let v = serde_json::to_value(body).map_err(|e| CimiError::Config(format!("body: {e}")))?;
    match v.get("resourceURI").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => Ok(v),
        _ => Err(CimiError::Config("a CIMI request body needs its resourceURI".into())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_are_found_by_rel_and_availability() {
        let m = json!({"operations": [
            {"rel": "edit", "href": "machines/1"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/start", "href": "machines/1/start", "available": false}
        ]});
        assert_eq!(find_operation(&m, "edit"), Some(Ok("machines/1".into())));
        assert_eq!(find_operation(&m, "http://schemas.dmtf.org/cimi/1/action/start"), Some(Err(())));
        assert_eq!(find_operation(&m, "delete"), None);
        assert_eq!(find_operation(&json!({}), "delete"), None);
    }

    #[tokio::test]
    async fn absent_operations_are_not_allowed_now_and_no_url_is_guessed() {
        let c = CimiClient::new(ClientConfig::new("p", "http://127.0.0.1:9/cep").unwrap()).unwrap();
        let m = json!({"id": "http://127.0.0.1:9/machines/1", "operations": [{"rel": "edit", "href": "machines/1"}]});
        let e = c.action(&m, "start", Map::new()).await.unwrap_err();
        assert!(
            matches!(e, CimiError::NotAllowedNow { ref operation, .. } if operation.ends_with("/action/start")),
            "{e}"
        );
        let e = c.delete(&m).await.unwrap_err();
        assert!(matches!(e, CimiError::NotAllowedNow { .. }), "{e}");
    }

    #[test]
    fn create_bodies_by_value_and_by_reference() {
        let mut props = BTreeMap::new();
        props.insert("cimi.dev/uid".to_string(), "u1".to_string());
        let mut overrides = Map::new();
        overrides.insert("initialState".into(), json!("STOPPED"));
        overrides.insert("userData".into(), Value::Null);
        let b = create_body(
            "Machine",
            "web1",
            None,
            &props,
            Template::ByReference { href: "machineTemplates/t".into(), overrides },
        );
        assert_eq!(
            b,
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "web1",
                   "properties": {"cimi.dev/uid": "u1"},
                   "machineTemplate": {"href": "machineTemplates/t", "initialState": "STOPPED", "userData": null}})
        );
        let b = create_body(
            "Volume",
            "data",
            Some("d"),
            &BTreeMap::new(),
            Template::ByValue(json!({"volumeConfig": {"href": "c"}})),
        );
        assert_eq!(b["volumeTemplate"], json!({"volumeConfig": {"href": "c"}}));
        assert_eq!(b["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/VolumeCreate"));
    }

    #[test]
    fn bodies_need_a_resource_uri() {
        assert!(to_body(&json!({"name": "x"})).is_err());
        assert!(to_body(&model::Action::new("start")).is_ok());
    }
}
