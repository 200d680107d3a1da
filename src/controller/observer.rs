//! The observer: how the managed kinds learn what the provider holds, without one GET per object and
//! reconcile (design section 5 rule 10).
//!
//! - **State.** Per CimiProvider and collection (`machines`, `volumes`, `networks`) one poll task
//!   lists the collection in pages of `--observe-page-size` (`$first`/`$last`), filtered on our
//!   `cimi.dev/cluster` tag (unfiltered when the provider refuses the filter), once per provider
//!   `pollInterval`: ceil(N / page size) list requests per kind and interval. The entries are cached
//!   by href. A reconcile of an object in a steady state (Ready for its generation, no Job running)
//!   reads its observation from this cache; any other reconcile GETs the resource and stores the
//!   answer (fresher than the page it replaces). A resource missing from a listing is dropped from
//!   the cache and its object reconciled, so the next reconcile confirms "gone" by a GET. A listed
//!   resource whose state or attributes changed triggers a reconcile of its object
//!   ([`Observer::changes`], fed to `Controller::reconcile_on`).
//! - **Machine sub-collections** (network interfaces and their addresses, attached volumes) are read
//!   per machine, but only when the reconcile is not steady, when the machine's `updated` changed, or
//!   once per provider `meterInterval`; otherwise the last reading is reused ([`SubReading`]).
//! - **Meters** (per resource in CIMI) are read every provider `meterInterval`: the meter list once, then the
//!   latest sample of each meter (`$orderby=timestamp:desc&$first=1&$last=1`, one request per meter). The latest sample per
//!   aspect goes to `status.meters` and to the gauge `cimi_meter_value`, whose series are bounded by
//!   `--meter-gauges-max` and removed when the object goes away.
//! - **Events**: every provider `eventInterval` the resource's EventLog is read from `status.eventCursor`
//!   on (`$filter=timestamp>=…`); each newer event becomes one Kubernetes Event (reason
//!   `ProviderEvent`, the provider event id in the note), and the cursor advances. After a restart
//!   the first pass of each object also looks at the object's existing Events, so an event mirrored
//!   just before a crash (cursor not yet written) is not mirrored twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use url::Url;

use super::context::Context;
use super::registry::ProviderRegistry;
use crate::api::CimiProvider;
use crate::api::common::{EventCursor, ManagedStatus, MeterStatus};
use crate::cimi::query::{Filter, Query};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::entries;
use crate::names::TAG_CLUSTER;
use crate::runtime::Config;
use crate::runtime::metrics::{MeterLabels, Metrics};

/// The reason of the Kubernetes Events that mirror provider events.
pub const PROVIDER_EVENT_REASON: &str = "ProviderEvent";
/// The most provider events mirrored in one pass (the rest follow in the next passes).
const MAX_EVENTS_PER_PASS: usize = 100;
/// How long a reconcile waits for the first listing of its collection before it GETs instead.
const FIRST_POLL_WAIT: Duration = Duration::from_secs(10);
/// The attributes whose change in a listing triggers a reconcile.
const WATCHED_ATTRIBUTES: &[&str] = &[
    "state",
    "name",
    "description",
    "properties",
    "updated",
    "cpu",
    "memory",
    "capacity",
    "bootable",
    "networkType",
    "mtu",
];

/// A Kubernetes object, by namespace and name.
type Owner = (String, String);

/// The provider observation shared by every controller of one operator instance.
pub struct Observer {
    inner: Arc<Inner>,
    _stop: DropGuard,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

struct Inner {
    providers: ProviderRegistry,
    client: kube::Client,
    page_size: u64,
    cluster: String,
    timings: Mutex<HashMap<String, (Timing, Instant)>>,
    gauges_max: usize,
    metrics: Metrics,
    stop: CancellationToken,
    pollers: Mutex<HashMap<(String, &'static str), Arc<Poller>>>,
    triggers: Mutex<HashMap<&'static str, mpsc::UnboundedSender<Owner>>>,
    receivers: Mutex<HashMap<&'static str, mpsc::UnboundedReceiver<Owner>>>,
    monitors: Mutex<HashMap<String, Monitor>>,
    gauges: Mutex<GaugeSet>,
}

/// A provider's cadences: `pollInterval`, `meterInterval`, `eventInterval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// State (collection reads).
    pub poll: Duration,
    /// Meters.
    pub meters: Duration,
    /// EventLogs.
    pub events: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self { poll: Duration::from_secs(30), meters: Duration::from_secs(300), events: Duration::from_secs(60) }
    }
}

/// How long a provider's cadences are remembered before they are read again.
const TIMING_TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
struct GaugeSet {
    live: HashSet<MeterLabels>,
    warned: bool,
}

/// One provider collection's cache and its poll task.
struct Poller {
    state: Mutex<PollState>,
    first: watch::Sender<bool>,
}

#[derive(Default)]
struct PollState {
    entries: HashMap<String, Cached>,
    owners: HashMap<String, Owner>,
    unfiltered: bool,
    /// Imported resources (without our tags, so not in the tag-filtered listing) that objects observe.
    imported: HashSet<String>,
}

struct Cached {
    value: Value,
    at: Instant,
    listed: bool,
}

/// What the observer keeps per provider resource between reconciles (in memory only).
#[derive(Default)]
struct Monitor {
    meters_read: Option<Instant>,
    meters: Option<Vec<MeterRef>>,
    events_read: Option<Instant>,
    events_href: Option<Url>,
    cursor: Option<EventCursor>,
    recovered: bool,
    sub: Option<SubReading>,
}

#[derive(Clone)]
struct MeterRef {
    aspect: String,
    units: Option<String>,
    samples: Url,
}

/// The last reading of a machine's sub-collections, with the machine's `updated` at the time.
#[derive(Clone, Debug)]
pub struct SubReading {
    /// The machine's `updated` when read.
    pub updated: Option<String>,
    /// When read.
    pub at: Instant,
    /// What was read.
    pub value: Value,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_state(p: &Poller) -> MutexGuard<'_, PollState> {
    lock(&p.state)
}

impl Observer {
    /// An observer for one operator instance; its poll tasks stop when it is dropped.
    pub fn new(client: kube::Client, config: &Config, providers: ProviderRegistry, metrics: Metrics) -> Self {
        let stop = CancellationToken::new();
        let mut triggers = HashMap::new();
        let mut receivers = HashMap::new();
        for collection in ["machines", "volumes", "networks"] {
            let (tx, rx) = mpsc::unbounded_channel();
            triggers.insert(collection, tx);
            receivers.insert(collection, rx);
        }
        Self {
            inner: Arc::new(Inner {
                providers,
                client,
                page_size: config.observe_page_size.max(1),
                cluster: config.cluster_name.clone(),
                timings: Mutex::new(HashMap::new()),
                gauges_max: config.meter_gauges_max,
                metrics,
                stop: stop.clone(),
                pollers: Mutex::new(HashMap::new()),
                triggers: Mutex::new(triggers),
                receivers: Mutex::new(receivers),
                monitors: Mutex::new(HashMap::new()),
                gauges: Mutex::new(GaugeSet::default()),
            }),
            _stop: stop.drop_guard(),
        }
    }

    /// The objects of `collection` whose provider resource changed (or vanished) in a listing, for
    /// `Controller::reconcile_on`. The stream can be taken once; a second call gets an empty stream.
    pub fn changes<K>(&self, collection: &'static str) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + 'static,
    {
        let rx = lock(&self.inner.receivers).remove(collection);
        futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            let (ns, name) = rx.recv().await?;
            Some((ObjectRef::<K>::new(&name).within(&ns), Some(rx)))
        })
    }

    /// Stores what a GET of `href` answered (fresher than any listing started before) and whose it is.
    pub fn record(&self, provider: &str, collection: &'static str, href: &str, value: &Value, owner: Owner) {
        let poller = self.poller(provider, collection);
        let mut state = lock_state(&poller);
        let listed = state.entries.get(href).is_some_and(|c| c.listed);
        state.entries.insert(href.to_string(), Cached { value: value.clone(), at: Instant::now(), listed });
        state.owners.insert(href.to_string(), owner);
    }

    /// Forgets an object that goes away: its cache entry, its monitoring state and its meter gauges.
    pub fn forget(&self, provider: &str, collection: &'static str, href: Option<&str>, kind: &str, owner: &Owner) {
        if let Some(href) = href {
            if let Some(poller) = lock(&self.inner.pollers).get(&(provider.to_string(), collection)).cloned() {
                let mut state = lock_state(&poller);
                state.entries.remove(href);
                state.owners.remove(href);
                state.imported.remove(href);
            }
            let mut monitors = lock(&self.inner.monitors);
            monitors.remove(href);
            let members = member_key(href, "");
            monitors.retain(|key, _| !key.starts_with(&members));
        }
        let mut gauges = lock(&self.inner.gauges);
        let gone: Vec<MeterLabels> = gauges
            .live
            .iter()
            .filter(|l| l.kind == kind && l.namespace == owner.0 && l.name == owner.1)
            .cloned()
            .collect();
        for labels in gone {
            self.inner.metrics.meter_values.remove(&labels);
            gauges.live.remove(&labels);
        }
    }

    /// The last sub-collection reading of a machine, if still usable: same `updated`, younger than the
    /// meter interval.
    pub async fn sub_reading(&self, provider: &str, href: &str, updated: Option<&str>) -> Option<Value> {
        let every = timing(&self.inner, provider).await.meters;
        let monitors = lock(&self.inner.monitors);
        let sub = monitors.get(href)?.sub.as_ref()?;
        (sub.updated.as_deref() == updated && sub.at.elapsed() < every).then(|| sub.value.clone())
    }

    /// Stores a machine's sub-collection reading.
    pub fn store_sub_reading(&self, href: &str, updated: Option<&str>, value: Value) {
        lock(&self.inner.monitors).entry(href.to_string()).or_default().sub =
            Some(SubReading { updated: updated.map(str::to_string), at: Instant::now(), value });
    }

    fn poller(&self, provider: &str, collection: &'static str) -> Arc<Poller> {
        let mut pollers = lock(&self.inner.pollers);
        if let Some(p) = pollers.get(&(provider.to_string(), collection)) {
            return p.clone();
        }
        let (first, _) = watch::channel(false);
        let poller = Arc::new(Poller { state: Mutex::new(PollState::default()), first });
        pollers.insert((provider.to_string(), collection), poller.clone());
        tokio::spawn(poll_loop(self.inner.clone(), provider.to_string(), collection, poller.clone()));
        poller
    }
}

/// The item type of a collection's entries.
fn item_type(collection: &str) -> &'static str {
    match collection {
        "machines" => "Machine",
        "volumes" => "Volume",
        "networks" => "Network",
        "events" => "Event",
        "meters" => "Meter",
        _ => "",
    }
}

async fn poll_loop(inner: Arc<Inner>, provider: String, collection: &'static str, poller: Arc<Poller>) {
    loop {
        // Fixed rate: one listing per pollInterval, however long the listing takes.
        let cycle = Instant::now();
        let interval = match inner.providers.get(&provider) {
            Some(conn) if conn.ready => {
                let started = Instant::now();
                let (unfiltered, imported) = {
                    let state = lock_state(&poller);
                    (state.unfiltered, state.imported.len() as u64)
                };
                let mut filter = (!unfiltered).then(|| Filter::property(TAG_CLUSTER, &inner.cluster).ok()).flatten();
                if filter.is_some() && imported > 0 {
                    // Imported resources carry no tag of ours: list everything when that takes no more
                    // requests than a GET of each imported resource would.
                    match collection_count(&conn.client, collection).await {
                        Ok(total) if total.div_ceil(inner.page_size.max(1)) <= imported => filter = None,
                        Ok(_) => {}
                        Err(error) => tracing::debug!(%error, provider, collection, "observer: count failed"),
                    }
                }
                let asked = filter.is_some();
                match list_collection(&conn.client, collection, filter, inner.page_size).await {
                    Ok((listing, filtered)) => {
                        let resolved = resolve_all(&conn.client, listing).await;
                        apply_listing(&inner, &poller, collection, resolved, started);
                        if asked && !filtered {
                            lock_state(&poller).unfiltered = true;
                        }
                    }
                    Err(error) => tracing::debug!(%error, provider, collection, "observer: listing failed"),
                }
                timing(&inner, &provider).await.poll
            }
            _ => Duration::from_secs(1),
        };
        poller.first.send_replace(true);
        tokio::select! {
            _ = tokio::time::sleep(interval.saturating_sub(cycle.elapsed())) => {}
            _ = inner.stop.cancelled() => return,
        }
    }
}

/// A provider's cadences from its spec (defaults when unset or unreadable; state at least every second,
/// meters and events at least every 100 ms), read again after [`TIMING_TTL`].
async fn timing(inner: &Inner, provider: &str) -> Timing {
    if let Some((t, at)) = lock(&inner.timings).get(provider)
        && at.elapsed() < TIMING_TTL
    {
        return *t;
    }
    let api: Api<CimiProvider> = Api::all(inner.client.clone());
    let defaults = Timing::default();
    let t = match api.get_opt(provider).await {
        Ok(Some(p)) => {
            let parse = |text: &str, default: Duration| crate::api::common::parse_duration(text).unwrap_or(default);
            Timing {
                poll: parse(&p.spec.poll_interval, defaults.poll).max(Duration::from_secs(1)),
                meters: parse(&p.spec.meter_interval, defaults.meters).max(Duration::from_millis(100)),
                events: parse(&p.spec.event_interval, defaults.events).max(Duration::from_millis(100)),
            }
        }
        _ => defaults,
    };
    lock(&inner.timings).insert(provider.to_string(), (t, Instant::now()));
    t
}

/// The number of resources in a collection (one request for one entry).
async fn collection_count(client: &CimiClient, collection: &str) -> Result<u64, CimiError> {
    let url = client.collection_url(collection).await?;
    let page = client.list_page_value(&url, &Query::new().page(1, 1), item_type(collection)).await?;
    Ok(page.get("count").and_then(Value::as_u64).unwrap_or(u64::MAX))
}

/// Lists a whole collection in pages (`$first`/`$last`), with `filter` when given; a provider that
/// refuses the filter (4xx) is asked again without it. Returns the entries and whether the filter
/// was applied.
pub async fn list_collection(
    client: &CimiClient,
    collection: &str,
    filter: Option<Filter>,
    page_size: u64,
) -> Result<(Vec<Value>, bool), CimiError> {
    let url = client.collection_url(collection).await?;
    list_at(client, &url, item_type(collection), filter, page_size, None).await
}

/// Lists the collection at `url` in pages; `order_by` asks for an ascending order on an attribute.
async fn list_at(
    client: &CimiClient,
    url: &Url,
    item_type: &str,
    filter: Option<Filter>,
    page_size: u64,
    order_by: Option<&str>,
) -> Result<(Vec<Value>, bool), CimiError> {
    let mut base = Query::new();
    if let Some(attr) = order_by {
        base = base.order_by(attr, false);
    }
    let filtered = filter.is_some();
    let query = match filter {
        Some(f) => base.clone().filter(f),
        None => base.clone(),
    };
    match page_through(client, url, item_type, &query, page_size).await {
        Err(CimiError::Invalid { .. }) if filtered => {
            Ok((page_through(client, url, item_type, &base, page_size).await?, false))
        }
        other => other.map(|entries| (entries, filtered)),
    }
}

/// Every entry of the collection at `url` matching `query`, in pages of `page_size`, bounded by the
/// provider's read limits (the client's listing).
async fn page_through(
    client: &CimiClient,
    url: &Url,
    item_type: &str,
    query: &Query,
    page_size: u64,
) -> Result<Vec<Value>, CimiError> {
    Ok(client.list_values_at(url, query, item_type, None, page_size).await?.entries)
}

async fn resolve_all(client: &CimiClient, listing: Vec<Value>) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(listing.len());
    for entry in listing {
        let Some(id) = entry.get("id").and_then(Value::as_str) else { continue };
        if let Ok(url) = client.resolve(id).await {
            out.push((url.to_string(), entry));
        }
    }
    out
}

/// The attributes of a resource whose change matters to its object.
fn digest(v: &Value) -> Vec<Option<&Value>> {
    WATCHED_ATTRIBUTES.iter().map(|a| v.get(*a)).collect()
}

fn apply_listing(
    inner: &Inner,
    poller: &Poller,
    collection: &'static str,
    listing: Vec<(String, Value)>,
    started: Instant,
) {
    let mut wake: Vec<Owner> = Vec::new();
    {
        let mut state = lock_state(poller);
        let mut listed = HashSet::with_capacity(listing.len());
        for (href, entry) in listing {
            listed.insert(href.clone());
            let owner = state.owners.get(&href).cloned();
            match state.entries.get_mut(&href) {
                Some(cached) => {
                    if digest(&cached.value) != digest(&entry) {
                        wake.extend(owner);
                    }
                    // A GET answered after this listing started is fresher: keep it.
                    if cached.at < started {
                        cached.value = entry;
                        cached.at = Instant::now();
                    }
                    cached.listed = true;
                }
                None => {
                    // Back after it was missing: its object looks again.
                    wake.extend(owner);
                    state.entries.insert(href, Cached { value: entry, at: Instant::now(), listed: true });
                }
            }
        }
        let missing: Vec<String> = state
            .entries
            .iter()
            .filter(|(href, c)| !listed.contains(*href) && c.at < started)
            .map(|(href, _)| href.clone())
            .collect();
        for href in missing {
            // Missing from the listing: not trusted as gone; the object's next reconcile GETs it.
            if state.entries.remove(&href).is_some_and(|c| c.listed)
                && let Some(owner) = state.owners.get(&href)
            {
                wake.push(owner.clone());
            }
        }
    }
    if let Some(tx) = lock(&inner.triggers).get(collection) {
        for owner in wake {
            let _ = tx.send(owner);
        }
    }
}

/// Whether an object's status is steady: Ready for its current generation with no Job running, so its
/// observation may come from the observer's cache.
pub fn steady(common: &ManagedStatus, generation: Option<i64>) -> bool {
    let ready = crate::api::conditions::find(&common.conditions, crate::api::conditions::READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation);
    ready && !crate::controller::resource::jobs::job_running(common.job.as_ref())
}

/// Where and how to read one object's provider resource.
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    /// The CimiProvider.
    pub provider: &'a str,
    /// Its client.
    pub client: &'a CimiClient,
    /// The CEP collection of the resource (`machines`).
    pub collection: &'static str,
    /// The resource (`status.id`).
    pub href: &'a str,
    /// Whether the object is steady (see [`steady`]): its observation may come from the cache.
    pub steady: bool,
    /// Whether the resource was imported (`spec.import`), so carries no tag of ours.
    pub imported: bool,
}

/// Reads the provider resource of `obj` at `href` (`None` when it is gone, as
/// [`crate::controller::resource::reads::observe`] decides): from the observer's cache when the object is `steady` and
/// the resource was listed, else by a GET whose answer goes into the cache.
///
/// An `imported` resource carries no tag of ours (none at all under ObserveOnly), so the tag-filtered listing
/// misses it: it is served from the cache only when it was in the last listing, which lists the collection
/// whole while there are at least as many imported resources as pages in it; otherwise each is read by a
/// GET, and only a 404 means gone.
pub async fn observe_object<K>(ctx: &Context, obj: &K, at: &Lookup<'_>) -> Result<Option<Value>, CimiError>
where
    K: Resource<DynamicType = ()>,
{
    let Lookup { provider, client, collection, href, steady, imported } = *at;
    let uid = obj.uid().unwrap_or_default();
    let owner = (obj.namespace().unwrap_or_default(), obj.name_any());
    let poller = ctx.observer.poller(provider, collection);
    if imported {
        lock_state(&poller).imported.insert(href.to_string());
    }
    if steady {
        let mut first = poller.first.subscribe();
        let _ = tokio::time::timeout(FIRST_POLL_WAIT, first.wait_for(|done| *done)).await;
        let state = lock_state(&poller);
        let usable = |c: &&Cached| {
            if imported { c.listed } else { crate::controller::resource::reads::carries_uid(&c.value, &uid) }
        };
        if let Some(c) = state.entries.get(href).filter(usable) {
            return Ok(Some(c.value.clone()));
        }
    }
    let current = if imported {
        crate::controller::resource::reads::read_imported(client, href).await?
    } else {
        crate::controller::resource::reads::observe(client, href, &uid).await?
    };
    if let Some(v) = &current {
        ctx.observer.record(provider, collection, href, v, owner);
    }
    Ok(current)
}

/// Reads meters and mirrors events of `obj`'s provider resource `current` when they are due; returns
/// how long until the next is due. Failures are logged and retried at the next pass: they never fail
/// the reconcile.
pub async fn monitor<K>(
    ctx: &Context,
    provider: &str,
    client: &CimiClient,
    obj: &K,
    current: &Value,
    common: &mut ManagedStatus,
) -> Duration
where
    K: Resource<DynamicType = ()>,
{
    let inner = &ctx.observer.inner;
    let every = timing(inner, provider).await;
    let Some(href) = common.id.clone() else { return every.events.min(every.meters) };
    let (meters_due, events_due) = {
        let mut monitors = lock(&inner.monitors);
        let m = monitors.entry(href.clone()).or_default();
        let due = |at: Option<Instant>, every: Duration| at.is_none_or(|t| t.elapsed() >= every);
        (due(m.meters_read, every.meters), due(m.events_read, every.events))
    };
    if meters_due {
        match read_meters(inner, client, &href, current).await {
            Ok(Some(meters)) => {
                export_gauges(inner, &K::kind(&()), &obj.namespace().unwrap_or_default(), &obj.name_any(), &meters);
                common.meters = meters;
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, href, "observer: meters not read"),
        }
        lock(&inner.monitors).entry(href.clone()).or_default().meters_read = Some(Instant::now());
    }
    if events_due {
        if let Err(error) = mirror_events(ctx, client, obj, &href, current, &mut common.event_cursor, None).await {
            tracing::debug!(%error, href, "observer: events not read");
        }
        lock(&inner.monitors).entry(href.clone()).or_default().events_read = Some(Instant::now());
    }
    let monitors = lock(&inner.monitors);
    let m = monitors.get(&href);
    let left = |at: Option<Instant>, every: Duration| at.map_or(Duration::ZERO, |t| every.saturating_sub(t.elapsed()));
    left(m.and_then(|m| m.meters_read), every.meters)
        .min(left(m.and_then(|m| m.events_read), every.events))
        .max(Duration::from_millis(100))
}

/// One member of a system whose provider events are mirrored onto the system object.
pub struct Member<'a> {
    /// The member's provider href.
    pub href: &'a str,
    /// How notes name it, e.g. `machine web1`.
    pub label: String,
    /// The member's provider document (for its EventLog).
    pub doc: &'a Value,
    /// The last of its events mirrored (from status; moved on by [`monitor_members`]).
    pub cursor: Option<EventCursor>,
}

/// Mirrors the provider events of a system's members onto the system object `obj` when they are due (each
/// member on the provider's `eventInterval`), each note naming the member, and moves each member's cursor.
/// Failures are logged and retried at the next pass; returns how long until the next
/// member is due.
pub async fn monitor_members<K>(
    ctx: &Context,
    provider: &str,
    client: &CimiClient,
    obj: &K,
    system_href: &str,
    members: &mut [Member<'_>],
) -> Duration
where
    K: Resource<DynamicType = ()>,
{
    let inner = &ctx.observer.inner;
    let every = timing(inner, provider).await.events;
    let mut next = every;
    for member in members.iter_mut() {
        let key = member_key(system_href, member.href);
        let last = lock(&inner.monitors).get(&key).and_then(|m| m.events_read);
        if let Some(at) = last
            && at.elapsed() < every
        {
            next = next.min(every - at.elapsed());
            continue;
        }
        let label = Some(member.label.as_str());
        if let Err(error) = mirror_events(ctx, client, obj, &key, member.doc, &mut member.cursor, label).await {
            tracing::debug!(%error, member = member.href, "observer: member events not read");
        }
        lock(&inner.monitors).entry(key).or_default().events_read = Some(Instant::now());
    }
    next.max(Duration::from_millis(100))
}

/// The monitoring key of a system member (apart from the member's own, which an exposed object uses).
fn member_key(system_href: &str, member_href: &str) -> String {
    format!("system {system_href} member {member_href}")
}

fn short(uri: &str) -> String {
    uri.rsplit('/').next().unwrap_or(uri).to_string()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_time(s: &str) -> Option<Time> {
    s.parse::<k8s_openapi::jiff::Timestamp>().ok().map(Time)
}

/// The latest sample of each of the resource's meters; `None` when it has none.
async fn read_meters(
    inner: &Inner,
    client: &CimiClient,
    href: &str,
    current: &Value,
) -> Result<Option<Vec<MeterStatus>>, CimiError> {
    let known = lock(&inner.monitors).get(href).and_then(|m| m.meters.clone());
    let meters = match known {
        Some(m) => m,
        None => {
            let Some(list) = current.get("meters").and_then(|m| m.get("href")).and_then(Value::as_str) else {
                return Ok(None);
            };
            let url = client.resolve(list).await?;
            let (listing, _) = list_at(client, &url, "Meter", None, inner.page_size, None).await?;
            let mut out = Vec::new();
            for m in listing {
                let Some(samples) = m.get("samples").and_then(|s| s.get("href")).and_then(Value::as_str) else {
                    continue;
                };
                out.push(MeterRef {
                    aspect: m.get("aspect").and_then(Value::as_str).map(short).unwrap_or_default(),
                    units: m.get("units").and_then(Value::as_str).map(str::to_string),
                    samples: client.resolve(samples).await?,
                });
            }
            lock(&inner.monitors).entry(href.to_string()).or_default().meters = Some(out.clone());
            out
        }
    };
    if meters.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for meter in meters {
        let sample = latest_sample(client, &meter.samples).await?;
        out.push(MeterStatus {
            aspect: meter.aspect.clone(),
            units: meter.units.clone(),
            value: sample.as_ref().and_then(|s| s.get("value")).and_then(text),
            timestamp: sample.as_ref().and_then(|s| s.get("timestamp")).and_then(Value::as_str).and_then(parse_time),
        });
    }
    out.sort_by(|a, b| a.aspect.cmp(&b.aspect));
    Ok(Some(out))
}

/// The newest sample of a meter: `$orderby=timestamp:desc&$first=1&$last=1`, one request. A provider
/// that ignores paging sends every sample: the newest of them is taken.
async fn latest_sample(client: &CimiClient, samples: &Url) -> Result<Option<Value>, CimiError> {
    let query = Query::new().order_by("timestamp", true).page(1, 1);
    let page = client.list_page_value(samples, &query, "Sample").await?;
    let stamp = |v: &Value| v.get("timestamp").and_then(Value::as_str).and_then(parse_time).map(|t| t.0);
    Ok(entries(&page).into_iter().max_by(|a, b| stamp(a).cmp(&stamp(b))))
}

fn export_gauges(inner: &Inner, kind: &str, namespace: &str, name: &str, meters: &[MeterStatus]) {
    if inner.gauges_max == 0 {
        return;
    }
    let series: Vec<(MeterLabels, Option<f64>)> = meters
        .iter()
        .map(|m| {
            let labels = MeterLabels {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                aspect: m.aspect.clone(),
                units: m.units.clone().unwrap_or_default(),
            };
            (labels, m.value.as_deref().and_then(|v| v.trim().parse::<f64>().ok()))
        })
        .collect();
    let mut gauges = lock(&inner.gauges);
    // An object's meters are admitted together (whether or not each has a sample yet), so the bound keeps
    // whole objects: the first ones seen, all their aspects.
    let new: Vec<&MeterLabels> = series.iter().map(|(l, _)| l).filter(|l| !gauges.live.contains(*l)).collect();
    if !new.is_empty() {
        if gauges.live.len() + new.len() <= inner.gauges_max {
            for labels in new {
                gauges.live.insert(labels.clone());
            }
        } else if !gauges.warned {
            gauges.warned = true;
            tracing::warn!(max = inner.gauges_max, "--meter-gauges-max reached: further meters are only in status");
        }
    }
    for (labels, value) in series {
        if let Some(value) = value
            && gauges.live.contains(&labels)
        {
            inner.metrics.meter_values.get_or_create(&labels).set(value);
        }
    }
}

/// One provider event, as mirrored.
struct ProviderEvent {
    id: String,
    timestamp: Option<String>,
    warning: bool,
    action: String,
    note: String,
}

fn provider_event(e: &Value, member: Option<&str>) -> Option<ProviderEvent> {
    let id = e.get("id").and_then(Value::as_str)?.to_string();
    let type_ = e.get("type").and_then(Value::as_str).map(short).unwrap_or_else(|| "event".into());
    let content = e.get("content").cloned().unwrap_or(Value::Null);
    let field = |k: &str| content.get(k).and_then(text);
    let summary = match type_.as_str() {
        "state" => format!(
            "state {} -> {}",
            field("previous").unwrap_or_else(|| "?".into()),
            field("state").unwrap_or_else(|| "?".into())
        ),
        "model" => format!(
            "{}{}",
            field("change").unwrap_or_else(|| "change".into()),
            field("detail").map(|d| format!(": {d}")).unwrap_or_default()
        ),
        "alarm" => format!(
            "alarm {}{}",
            field("code").unwrap_or_default(),
            field("detail").map(|d| format!(": {d}")).unwrap_or_default()
        ),
        "access" => format!(
            "access {} by {}",
            field("operation").unwrap_or_default(),
            field("initiator").unwrap_or_else(|| "?".into())
        ),
        other => other.to_string(),
    };
    let severity = e.get("severity").and_then(Value::as_str).unwrap_or("");
    let outcome = e.get("outcome").and_then(Value::as_str).unwrap_or("");
    let timestamp = e.get("timestamp").and_then(Value::as_str).map(str::to_string);
    let mut note = match member {
        Some(member) => format!("provider event {id}: {member}: {summary}"),
        None => format!("provider event {id}: {summary}"),
    };
    if !severity.is_empty() {
        note.push_str(&format!(" (severity {severity})"));
    }
    if let Some(t) = &timestamp {
        note.push_str(&format!(" at {t}"));
    }
    Some(ProviderEvent {
        id,
        timestamp,
        warning: matches!(severity, "high" | "critical") || matches!(outcome, "Failure" | "Warning"),
        action: type_,
        note,
    })
}

/// The provider event id a mirrored Event's note carries.
pub fn event_id_of_note(note: &str) -> Option<&str> {
    note.strip_prefix("provider event ")?.split(": ").next()
}

/// The events of a log that come after `cursor` (all of them without one), in the log's order.
fn after_cursor(mut events: Vec<Value>, cursor: Option<&EventCursor>) -> Vec<Value> {
    let ts = |v: &Value| {
        v.get("timestamp").and_then(Value::as_str).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    events.sort_by_key(ts);
    let Some(cursor) = cursor else { return events };
    if let Some(i) = events.iter().position(|e| e.get("id").and_then(Value::as_str) == Some(cursor.id.as_str())) {
        return events.split_off(i + 1);
    }
    // The cursor's event is gone (the log was trimmed): keep what is strictly newer.
    let since = cursor.timestamp.as_deref().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    events.into_iter().filter(|e| since.is_none() || ts(e) > since).collect()
}

/// Mirrors the events of `current`'s EventLog that come after `status_cursor` as Kubernetes Events on `obj`
/// (notes prefixed by `member` when the resource is not `obj`'s own), and moves the cursor. `key` names
/// the in-memory monitoring state.
async fn mirror_events<K>(
    ctx: &Context,
    client: &CimiClient,
    obj: &K,
    key: &str,
    current: &Value,
    status_cursor: &mut Option<EventCursor>,
    member: Option<&str>,
) -> Result<(), CimiError>
where
    K: Resource<DynamicType = ()>,
{
    let inner = &ctx.observer.inner;
    let known = lock(&inner.monitors).get(key).and_then(|m| m.events_href.clone());
    let events_url = match known {
        Some(u) => u,
        None => {
            let Some(log) = current.get("eventLog").and_then(|l| l.get("href")).and_then(Value::as_str) else {
                return Ok(());
            };
            let log = client.get_value(&client.resolve(log).await?).await?;
            let Some(events) = log.get("events").and_then(|e| e.get("href")).and_then(Value::as_str) else {
                return Ok(());
            };
            let url = client.resolve(events).await?;
            lock(&inner.monitors).entry(key.to_string()).or_default().events_href = Some(url.clone());
            url
        }
    };
    let (remembered, recovered) = {
        let monitors = lock(&inner.monitors);
        let m = monitors.get(key);
        (m.and_then(|m| m.cursor.clone()), m.is_some_and(|m| m.recovered))
    };
    let cursor = remembered.or_else(|| status_cursor.clone());
    let since =
        cursor.as_ref().and_then(|c| c.timestamp.as_deref()).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let filter = match since {
        Some(t) => Some(Filter::attr("timestamp")?.ge(t)),
        None => None,
    };
    let (events, _) = list_at(client, &events_url, "Event", filter, inner.page_size, None).await?;
    let fresh = after_cursor(events, cursor.as_ref());
    if fresh.is_empty() {
        return Ok(());
    }
    let already = if recovered { HashSet::new() } else { mirrored_ids(ctx, obj).await };
    lock(&inner.monitors).entry(key.to_string()).or_default().recovered = true;
    let mut cursor = cursor;
    let reporter =
        kube::runtime::events::Reporter { controller: crate::names::FIELD_MANAGER.to_string(), instance: None };
    for e in fresh.iter().take(MAX_EVENTS_PER_PASS) {
        let Some(event) = provider_event(e, member) else { continue };
        if !already.contains(&event.id) {
            // A Recorder of its own per provider event: a shared one folds Events with the same reason
            // and action on one object into a series (keeping the first note), and each provider event
            // must stay a Kubernetes Event of its own, its id in the note.
            let recorder = kube::runtime::events::Recorder::new(ctx.client.clone(), reporter.clone());
            let published = recorder
                .publish(
                    &kube::runtime::events::Event {
                        type_: if event.warning {
                            kube::runtime::events::EventType::Warning
                        } else {
                            kube::runtime::events::EventType::Normal
                        },
                        reason: PROVIDER_EVENT_REASON.to_string(),
                        note: Some(event.note),
                        action: event.action,
                        secondary: None,
                    },
                    &obj.object_ref(&()),
                )
                .await;
            if let Err(error) = published {
                tracing::warn!(%error, "cannot publish a provider event; retried at the next pass");
                break;
            }
        }
        cursor = Some(EventCursor { id: event.id, timestamp: event.timestamp });
        lock(&inner.monitors).entry(key.to_string()).or_default().cursor = cursor.clone();
    }
    *status_cursor = cursor;
    Ok(())
}

/// The provider event ids already mirrored on the object (read once per object and process, so an
/// event mirrored just before a crash is not mirrored again).
async fn mirrored_ids<K>(ctx: &Context, obj: &K) -> HashSet<String>
where
    K: Resource<DynamicType = ()>,
{
    let Some(uid) = obj.uid() else { return HashSet::new() };
    let api: Api<CoreEvent> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let params = ListParams::default().fields(&format!("involvedObject.uid={uid},reason={PROVIDER_EVENT_REASON}"));
    match api.list(&params).await {
        Ok(list) => list
            .items
            .iter()
            .filter_map(|e| e.message.as_deref().and_then(event_id_of_note).map(str::to_string))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot list the object's Events; mirroring without the restart check");
            HashSet::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, ts: &str) -> Value {
        json!({"id": id, "timestamp": ts, "type": "http://schemas.dmtf.org/cimi/1/event/state",
            "content": {"state": "STARTED", "previous": "STARTING"}, "severity": "low"})
    }

    #[test]
    fn events_after_the_cursor_in_log_order() {
        let log = vec![
            event("e/1", "2026-01-01T00:00:00Z"),
            event("e/2", "2026-01-01T00:00:01Z"),
            event("e/3", "2026-01-01T00:00:01Z"),
            event("e/4", "2026-01-01T00:00:02Z"),
        ];
        let ids = |v: Vec<Value>| v.iter().map(|e| e["id"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
        assert_eq!(ids(after_cursor(log.clone(), None)), ["e/1", "e/2", "e/3", "e/4"]);
        let at2 = EventCursor { id: "e/2".into(), timestamp: Some("2026-01-01T00:00:01Z".into()) };
        assert_eq!(ids(after_cursor(log.clone(), Some(&at2))), ["e/3", "e/4"], "same second, later in the log");
        let gone = EventCursor { id: "e/0".into(), timestamp: Some("2026-01-01T00:00:01Z".into()) };
        assert_eq!(ids(after_cursor(log, Some(&gone))), ["e/4"], "trimmed cursor: strictly newer only");
    }

    #[test]
    fn provider_event_note_carries_the_id() {
        let e = provider_event(&event("http://p/eventLogs/1/events/7", "2026-01-01T00:00:00Z"), None).expect("event");
        assert_eq!(event_id_of_note(&e.note), Some("http://p/eventLogs/1/events/7"));
        assert!(e.note.contains("state STARTING -> STARTED"), "{}", e.note);
        assert!(!e.warning);
        let alarm = json!({"id": "a", "type": "x/event/alarm", "severity": "critical", "content": {"code": "E1"}});
        assert!(provider_event(&alarm, None).expect("alarm").warning);
        let of_member =
            provider_event(&event("http://p/eventLogs/2/events/9", "2026-01-01T00:00:00Z"), Some("machine web1"))
                .expect("event");
        assert_eq!(event_id_of_note(&of_member.note), Some("http://p/eventLogs/2/events/9"));
        assert!(of_member.note.contains(": machine web1: state STARTING -> STARTED"), "{}", of_member.note);
    }

    #[test]
    fn digest_sees_state_and_attributes_only() {
        let a = json!({"state": "STARTED", "name": "m", "operations": [1]});
        let b = json!({"state": "STARTED", "name": "m", "operations": [2]});
        let c = json!({"state": "STOPPED", "name": "m"});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
    }

    #[test]
    fn steady_means_ready_for_this_generation_without_a_job() {
        use crate::api::common::JobStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let ready = |generation| Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Available".into(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
        };
        let mut s = ManagedStatus { conditions: vec![ready(2)], ..Default::default() };
        assert!(steady(&s, Some(2)));
        assert!(!steady(&s, Some(3)), "a new generation is not steady");
        s.job = Some(JobStatus { href: "j".into(), state: Some("RUNNING".into()), ..Default::default() });
        assert!(!steady(&s, Some(2)), "a running Job is not steady");
    }
}
