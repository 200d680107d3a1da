//! Batched monitoring: per CimiProvider one task reads meters, event-log changes and machine sub-collections
//! as paged reads of one collection each (the CloudEntryPoint's `meters` and `eventLogs`, and the machine
//! listing with `$expand`), so that their cost grows with pages, not with objects. Where the provider does
//! not allow it (no such collection, nothing inlined, or reading everything would take more requests than
//! reading ours), that aspect is read per object as before, and the CimiProvider's `status.observation` says
//! which mode each aspect uses and why.
//!
//! - **Meters**, every `meterInterval`: `meters?$expand=samples`, the newest inlined sample of each meter of
//!   our resources kept until the next read; a meter whose inlined samples are truncated (`count` larger than
//!   what is served) gets one read of its newest sample.
//! - **Events**, every `eventInterval`: `eventLogs?$filter=updated>=…&$select=targetResource,updated,summary`,
//!   whole the first time, then only the logs changed since the newest `updated` seen. A log's signature
//!   (`updated` and `summary`) is compared with the one seen when its events were last read; an object is
//!   reconciled at once when its log changed, and its events are read only then (one request).
//! - **Machine sub-collections**, every `meterInterval`: the machine listing filtered on our cluster tag with
//!   `$expand=networkInterfaces/addresses/address,volumes`, stored as each machine's reading.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::Value;
use url::Url;

use super::meter_page::{MeterPage, PageMeter};
use super::poll::{latest_sample, timing};
use super::shared::*;
use super::subs::{EXPAND, Inlined, sub_collections_inline};
use crate::api::common::MeterStatus;
use crate::api::provider::{AspectReading, Observation, ReadingMode};
use crate::cimi::query::{Filter, Query};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::{entries, ref_href, text};
use crate::names::TAG_CLUSTER;

/// How long a batched reading stays usable, in cadences: a read that comes a little late does not send every
/// object back to its own reads.
const FRESH_CADENCES: u32 = 2;

/// The most meters asked for in one page of the batched meter read (each inlines its samples; a page larger than
/// the provider's body limit is asked for again in halves).
const METER_PAGE_MAX: u64 = 100;

fn batched() -> AspectReading {
    AspectReading { mode: ReadingMode::Batched, message: String::new() }
}

fn per_object(message: impl Into<String>) -> AspectReading {
    AspectReading { mode: ReadingMode::PerObject, message: message.into() }
}

impl BatchState {
    fn batched_events(&self) -> bool {
        self.observation.events.as_ref().is_some_and(|a| a.mode == ReadingMode::Batched)
    }
}

/// The provider's batch, its task started on first use.
pub(super) fn batch(inner: &Arc<Inner>, provider: &str) -> Arc<Batch> {
    let mut batches = lock(&inner.batches);
    if let Some(b) = batches.get(provider) {
        return b.clone();
    }
    let b = Arc::new(Batch::default());
    batches.insert(provider.to_string(), b.clone());
    tokio::spawn(batch_loop(inner.clone(), provider.to_string(), b.clone()));
    b
}

/// How each aspect of `provider` is read now (`None` before the first decision).
pub(super) fn observation(inner: &Inner, provider: &str) -> Option<Observation> {
    let batch = lock(&inner.batches).get(provider).cloned()?;
    let o = lock(&batch.state).observation.clone();
    (o != Observation::default()).then_some(o)
}

/// What the batched meter reads hold for one resource.
pub(super) enum BatchedMeters {
    /// Its meters, from a fresh batched read.
    Read(Vec<MeterStatus>),
    /// The provider's meters are read in batches, the last read is fresh and does not show this resource
    /// (new since): the next one will, within a meter interval.
    NotYet,
    /// No fresh batched read: the object reads its own.
    Unknown,
}

/// The meters of `href` from the last batched read, when the provider's meters are read in batches and that
/// read is fresh.
pub(super) fn batched_meters(inner: &Inner, provider: &str, href: &str, every: Duration) -> BatchedMeters {
    let Some(batch) = lock(&inner.batches).get(provider).cloned() else { return BatchedMeters::Unknown };
    let state = lock(&batch.state);
    let Some((readings, at)) = state.meters.as_ref() else { return BatchedMeters::Unknown };
    if at.elapsed() > every * FRESH_CADENCES {
        return BatchedMeters::Unknown;
    }
    match readings.get(href) {
        Some(meters) => BatchedMeters::Read(meters.clone()),
        None => BatchedMeters::NotYet,
    }
}

/// Whether the events of `href` (monitored under `key`) must be read now, and whether the read should return
/// the log's signature (when the provider's event logs are read in batches). Without batched events they are
/// read when `interval_due`. With them, they are read when the log's signature in the last batched read differs
/// from the one the last read saw, and skipped when a batched read that started after the last read saw it
/// unchanged.
pub(super) fn events_plan(
    inner: &Inner,
    provider: &str,
    key: &str,
    href: &str,
    every: Duration,
    interval_due: bool,
) -> Option<bool> {
    let Some(batch) = lock(&inner.batches).get(provider).cloned() else {
        return interval_due.then_some(false);
    };
    let state = lock(&batch.state);
    let fresh = |t: &Instant| t.elapsed() < every * FRESH_CADENCES;
    if !state.batched_events() {
        return interval_due.then_some(false);
    }
    if !state.logs_read.as_ref().is_some_and(fresh) {
        return interval_due.then_some(true);
    }
    // A log the batched reads do not show (not listed, or listed under another href) is read on its interval.
    let Some(signature) = state.logs.get(href) else {
        return interval_due.then_some(true);
    };
    let monitors = lock(&inner.monitors);
    let Some(m) = monitors.get(key) else { return Some(true) };
    let Some(direct) = m.events_direct else { return Some(true) };
    if m.events_seen.as_ref() != Some(signature) {
        return Some(true);
    }
    match state.logs_read {
        Some(read) if read > direct => None,
        _ => interval_due.then_some(true),
    }
}

/// The hrefs whose monitoring we hold: the resources of our objects (monitored already, or known to the
/// observed collections: objects still being created count, so the first batched read in a wave of creations
/// weighs all of them) and the members of our systems.
fn ours(inner: &Inner) -> HashSet<String> {
    let mut ours: HashSet<String> = lock(&inner.monitors)
        .keys()
        .map(|k| match k.strip_prefix("system ").and_then(|r| r.split_once(" member ")) {
            Some((_, member)) => member.to_string(),
            None => k.clone(),
        })
        .collect();
    let pollers: Vec<Arc<Poller>> = lock(&inner.pollers).values().cloned().collect();
    for poller in pollers {
        ours.extend(lock_state(&poller).owners.keys().cloned());
    }
    ours
}

/// Reconciles the object whose provider resource is `href`, if an observed collection knows it.
fn wake(inner: &Inner, provider: &str, href: &str) {
    let pollers: Vec<(&'static str, Arc<Poller>)> = lock(&inner.pollers)
        .iter()
        .filter(|((p, _), _)| p == provider)
        .map(|((_, c), poller)| (*c, poller.clone()))
        .collect();
    for (collection, poller) in pollers {
        let owner = lock_state(&poller).owners.get(href).cloned();
        if let Some(owner) = owner {
            if let Some(tx) = lock(&inner.triggers).get(collection) {
                let _ = tx.send(owner);
            }
            return;
        }
    }
}

/// Our objects observed on `provider` (by the state pollers): what per-object reads would cost at least.
fn objects(inner: &Inner, provider: &str) -> usize {
    let pollers: Vec<Arc<Poller>> =
        lock(&inner.pollers).iter().filter(|((p, _), _)| p == provider).map(|(_, poller)| poller.clone()).collect();
    pollers.iter().map(|p| lock_state(p).owners.len()).sum()
}

async fn batch_loop(inner: Arc<Inner>, provider: String, batch: Arc<Batch>) {
    let mut meters_at: Option<Instant> = None;
    let mut events_at: Option<Instant> = None;
    loop {
        let Some(connection) = inner.providers.get(&provider) else {
            // The provider is gone (or disconnected): so is its batch; the next object that monitors on it starts
            // a new one.
            lock(&inner.batches).remove(&provider);
            return;
        };
        let ready = Some(connection.client).filter(|_| connection.ready);
        let mut wait = Duration::from_secs(1);
        if let Some(client) = ready {
            let every = timing(&inner, &provider).await;
            // Nothing of ours yet: decide once there is.
            if objects(&inner, &provider) > 0 {
                let before = lock(&batch.state).observation.clone();
                if meters_at.is_none_or(|t| t.elapsed() >= every.meters) {
                    meters_at = Some(Instant::now());
                    let meters = read_meters(&inner, &client).await;
                    let subs = read_subs(&inner, &provider, &client).await;
                    let mut state = lock(&batch.state);
                    match meters {
                        Ok((reading, readings)) => {
                            state.meters = readings.map(|r| (r, Instant::now()));
                            state.observation.meters = Some(reading);
                        }
                        Err(error) => {
                            tracing::debug!(%error, provider, "observer: batched meters not read");
                            state.meters = None;
                            state.observation.meters = Some(per_object(format!("the batched read failed: {error}")));
                        }
                    }
                    state.observation.sub_collections = Some(match subs {
                        Ok(reading) => reading,
                        Err(error) => {
                            tracing::debug!(%error, provider, "observer: batched sub-collections not read");
                            per_object(format!("the batched read failed: {error}"))
                        }
                    });
                }
                if events_at.is_none_or(|t| t.elapsed() >= every.events) {
                    events_at = Some(Instant::now());
                    if let Err(error) = read_logs(&inner, &provider, &client, &batch).await {
                        tracing::debug!(%error, provider, "observer: batched event logs not read");
                        let mut state = lock(&batch.state);
                        state.logs_read = None;
                        state.observation.events = Some(per_object(format!("the batched read failed: {error}")));
                    }
                }
                let after = lock(&batch.state).observation.clone();
                announce(&provider, &before, &after);
                let left = |at: Option<Instant>, every: Duration| {
                    at.map_or(Duration::ZERO, |t| every.saturating_sub(t.elapsed()))
                };
                wait = left(meters_at, every.meters).min(left(events_at, every.events)).max(Duration::from_millis(100));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.stop.cancelled() => return,
        }
    }
}

/// Logs each aspect whose reading mode changed (the CimiProvider's `status.observation` says it too, but a switch
/// to per-object reads multiplies the requests the provider sees: an operator's log should show when and why).
fn announce(provider: &str, before: &Observation, after: &Observation) {
    let aspects = [
        ("meters", &before.meters, &after.meters),
        ("sub-collections", &before.sub_collections, &after.sub_collections),
        ("events", &before.events, &after.events),
    ];
    for (aspect, was, now) in aspects {
        let Some(now) = now else { continue };
        if was.as_ref().map(|w| w.mode) == Some(now.mode) {
            continue;
        }
        match now.mode {
            ReadingMode::Batched => tracing::info!(provider, aspect, "observer: reading in batches"),
            ReadingMode::PerObject => {
                tracing::info!(provider, aspect, reason = %now.message, "observer: reading per object")
            }
        }
    }
}

/// Reads the pages of the collection at `url` matching `query`, handing each page's entries, the collection's
/// `count` and the page size in use to `each` (no listing is held whole), until `each` says stop or the collection
/// ends. A page refused for its size is asked for again in halves. A collection longer than the provider's read
/// limits allow (`maxPages`) is an error, known from the first page's `count` when the provider states one: a
/// batch is whole or not used.
async fn each_page<E: Entry>(
    client: &CimiClient,
    url: &Url,
    item_type: &str,
    query: &Query,
    page_size: u64,
    mut each: impl FnMut(Vec<E>, u64, u64) -> bool,
) -> Result<u64, CimiError> {
    let mut page_size = page_size.max(1);
    let max_pages = client.transport().config().read_limits.max_pages.max(1);
    let too_many = |page_size: u64| CimiError::ReadLimit {
        href: crate::cimi::error::redact_url(url),
        limit: crate::cimi::error::ReadLimitKind::Pages,
        detail: format!("more than {max_pages} pages of {page_size}; raise spec.readLimits.maxPages"),
    };
    let mut first: u64 = 1;
    let mut pages: u64 = 0;
    while pages < max_pages {
        let last = first.saturating_add(page_size - 1);
        let (entries, stated) = match E::page(client, url, &query.page(first, last), item_type).await {
            Err(CimiError::ReadLimit { limit: crate::cimi::error::ReadLimitKind::BodySize, .. }) if page_size > 1 => {
                page_size /= 2;
                continue;
            }
            other => other?,
        };
        pages += 1;
        let served = entries.len() as u64;
        // Without a `count`, what was served so far is all that is known.
        let count = stated.unwrap_or((first - 1).saturating_add(served));
        // What is left cannot be read within the limit: say so now rather than after `maxPages` requests.
        if let Some(total) = stated
            && served > 0
            && served <= page_size
            && pages.saturating_add(total.saturating_sub(first - 1 + served).div_ceil(page_size)) > max_pages
        {
            return Err(too_many(page_size));
        }
        if !each(entries, count, page_size) {
            return Ok(count);
        }
        let next = first.saturating_add(served);
        // The end: nothing more served, everything at once (paging ignored), or as far as the count (or, without
        // one, a short page).
        let ended = served == 0
            || served > page_size
            || match stated {
                Some(total) => next > total,
                None => served < page_size,
            };
        if ended {
            return Ok(count);
        }
        first = next;
    }
    Err(too_many(page_size))
}

/// An entry of a page as a batched read takes it.
trait Entry: Sized {
    /// One page of `item_type` entries at `url`: its entries and its `count` when stated.
    async fn page(
        client: &CimiClient,
        url: &Url,
        query: &Query,
        item_type: &str,
    ) -> Result<(Vec<Self>, Option<u64>), CimiError>;
}

/// The entry as JSON.
impl Entry for Value {
    async fn page(
        client: &CimiClient,
        url: &Url,
        query: &Query,
        item_type: &str,
    ) -> Result<(Vec<Self>, Option<u64>), CimiError> {
        let page = client.list_page_value(url, query, item_type).await?;
        Ok((entries(&page), page.get("count").and_then(Value::as_u64)))
    }
}

/// A meter with its newest inlined sample only ([`super::meter_page`]).
impl Entry for PageMeter {
    async fn page(
        client: &CimiClient,
        url: &Url,
        query: &Query,
        item_type: &str,
    ) -> Result<(Vec<Self>, Option<u64>), CimiError> {
        let page: MeterPage = client.list_page_as(url, query, item_type).await?;
        Ok((page.meters, page.count))
    }
}

/// Whether reading `count` entries in pages costs more requests than reading each of `objects` objects' own.
fn dearer(count: u64, page_size: u64, objects: usize) -> bool {
    count.div_ceil(page_size.max(1)) > objects.max(1) as u64
}

/// The batched meter read: the mode decided, and the readings when batched.
async fn read_meters(
    inner: &Inner,
    client: &CimiClient,
) -> Result<(AspectReading, Option<HashMap<String, Vec<MeterStatus>>>), CimiError> {
    let Ok(url) = client.collection_url("meters").await else {
        return Ok((per_object("the CloudEntryPoint offers no meters collection"), None));
    };
    // Each meter comes with its samples (up to a provider's whole retention): smaller pages bound what one
    // answer holds.
    let size = inner.page_size.clamp(1, METER_PAGE_MAX);
    let ours = ours(inner);
    let base = client.resolve("").await?;
    let origin = base.origin().ascii_serialization();
    let ours_here = ours.iter().filter(|href| href.starts_with(&origin)).count();
    let query = Query::new().expand(["samples"]).select(["count", "targetResource", "aspect", "units", "samples"]);
    // Each meter of ours is reduced to its newest sample as its page arrives (no page is held); one whose
    // inlined samples are truncated keeps its samples href, read after.
    let mut readings: HashMap<String, Vec<MeterStatus>> = HashMap::new();
    let mut truncated: Vec<(String, usize, Url)> = Vec::new();
    let mut not_inlined = false;
    let mut dear = None;
    let mut first_page = true;
    each_page(client, &url, "Meter", &query, size, |page: Vec<PageMeter>, count, size| {
        let listed = page.len();
        let mut mine = 0;
        for meter in page {
            let Some(target) = meter.target.as_deref() else { continue };
            let Ok(target) = base.join(target.trim()) else { continue };
            if !ours.contains(target.as_str()) {
                continue;
            }
            mine += 1;
            let Some(samples) = meter.samples else { continue };
            if samples.count.is_none() {
                not_inlined = true;
                break;
            }
            let cut = samples.truncated();
            let newest = if cut { None } else { samples.newest };
            let meters = readings.entry(target.to_string()).or_default();
            if cut && let Some(Ok(href)) = samples.href.as_deref().map(|h| base.join(h.trim())) {
                truncated.push((target.to_string(), meters.len(), href));
            }
            let (timestamp, value) = newest.unwrap_or_default();
            meters.push(MeterStatus {
                aspect: meter.aspect.as_deref().map(short).unwrap_or_default(),
                units: meter.units,
                value,
                timestamp: timestamp.as_deref().and_then(parse_time),
            });
        }
        if std::mem::take(&mut first_page) {
            // Read per object, each object of ours costs its meter list and a request per meter: at least two
            // (the first page's share of ours says how many meters are ours, but a provider lists others' meters,
            // and those of a creation wave, in any order: the share alone can be nought).
            let by_share = (count as usize).saturating_mul(mine).div_ceil(listed.max(1));
            if dearer(count, size, by_share.max(ours_here.saturating_mul(2))) {
                dear = Some(count);
                return false;
            }
        }
        !not_inlined
    })
    .await?;
    if let Some(count) = dear {
        return Ok((
            per_object(format!(
                "the provider lists {count} meters, few of them ours: reading them all takes more requests than \
                 reading ours one by one"
            )),
            None,
        ));
    }
    if not_inlined {
        return Ok((per_object("the provider does not inline a meter's samples ($expand=samples)"), None));
    }
    for (target, i, href) in truncated {
        let newest = latest_sample(client, &href).await?;
        if let Some(m) = readings.get_mut(&target).and_then(|m| m.get_mut(i)) {
            m.value = newest.as_ref().and_then(|s| s.get("value")).and_then(scalar_text);
            m.timestamp = newest.as_ref().and_then(|s| s.get("timestamp")).and_then(Value::as_str).and_then(parse_time);
        }
    }
    for meters in readings.values_mut() {
        meters.sort_by(|a, b| a.aspect.cmp(&b.aspect));
    }
    Ok((batched(), Some(readings)))
}

/// The attributes of a listed machine that its sub-collection reading uses.
const SUB_READ_KEYS: [&str; 3] = ["networkInterfaces", "volumes", "updated"];

/// The batched read of the machines' sub-collections; each of our machines' reading is stored.
async fn read_subs(inner: &Inner, provider: &str, client: &CimiClient) -> Result<AspectReading, CimiError> {
    let Some(poller) = lock(&inner.pollers).get(&(provider.to_string(), "machines")).cloned() else {
        return Ok(per_object("no machines observed yet"));
    };
    let owned: HashMap<String, Owner> = lock_state(&poller).owners.clone();
    if owned.is_empty() {
        return Ok(per_object("no machines observed yet"));
    }
    let url = client.collection_url("machines").await?;
    // No `$select`: `id` names the collection's own attribute too, and entries must keep theirs.
    let mut query = Query::new().expand(EXPAND);
    let filtered = !lock_state(&poller).unfiltered;
    if filtered && let Ok(tag) = Filter::property(TAG_CLUSTER, &inner.cluster) {
        query = query.filter(tag);
    } else {
        let count = super::poll::collection_count(client, "machines").await?;
        if dearer(count, inner.page_size, owned.len()) {
            return Ok(per_object(format!(
                "the provider refuses our tag filter and lists {count} machines: reading them all takes more \
                 requests than reading our {} machines'",
                owned.len()
            )));
        }
    }
    let base = client.resolve("").await?;
    let started = Instant::now();
    // Of each machine of ours only what the reading needs, as JSON text until it is read: every machine's whole
    // expanded document, held as a tree until the last page came, was the operator's largest transient (about
    // 100 MB at 10,000 machines).
    let mut found: Vec<(String, Box<str>)> = Vec::new();
    each_page(client, &url, "Machine", &query, inner.page_size, |page: Vec<Value>, _, _| {
        for m in page {
            let Some(id) = text(&m, "id") else { continue };
            let Ok(href) = base.join(id.trim()) else { continue };
            if !owned.contains_key(href.as_str()) {
                continue;
            }
            if let Value::Object(mut doc) = m {
                doc.retain(|k, _| SUB_READ_KEYS.contains(&k.as_str()));
                found.push((href.to_string(), Value::Object(doc).to_string().into_boxed_str()));
            }
        }
        true
    })
    .await?;
    let mut readings = Vec::with_capacity(found.len());
    for (href, doc) in found {
        let m: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        match sub_collections_inline(client, &m).await? {
            Inlined::Reading(reading) => readings.push((href, text(&m, "updated").map(str::to_string), reading)),
            // This machine reads its own.
            Inlined::Truncated => {}
            Inlined::Missing(what) => {
                return Ok(per_object(format!(
                    "the provider does not inline a machine's {what} ($expand={})",
                    EXPAND.join(",")
                )));
            }
        }
    }
    let mut changed = Vec::new();
    {
        let mut monitors = lock(&inner.monitors);
        for (href, updated, value) in readings {
            // Only machines still monitored (one forgotten meanwhile stays forgotten), and never over a reading
            // of its own made after this listing started (after an attach, say).
            let Some(m) = monitors.get_mut(&href) else { continue };
            if m.sub.as_ref().is_some_and(|s| s.at > started) {
                continue;
            }
            if m.sub.as_ref().is_some_and(|s| s.differs(&value)) {
                changed.push(href.clone());
            }
            m.sub = Some(SubReading::new(updated, started, &value, true));
        }
    }
    for href in changed {
        wake(inner, provider, &href);
    }
    Ok(batched())
}

/// The batched read of the event logs' signatures: objects whose log changed are reconciled.
async fn read_logs(inner: &Inner, provider: &str, client: &CimiClient, batch: &Batch) -> Result<(), CimiError> {
    let Ok(url) = client.collection_url("eventLogs").await else {
        lock(&batch.state).observation.events = Some(per_object("the CloudEntryPoint offers no eventLogs collection"));
        return Ok(());
    };
    let started = Instant::now();
    let (since, refused) = {
        let state = lock(&batch.state);
        (state.logs_since, state.logs_unfiltered)
    };
    let plain = Query::new().select(["count", "targetResource", "updated", "summary"]);
    let objects = objects(inner, provider);
    let ours = ours(inner);
    let base = client.resolve("").await?;
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut newest = None;
    let mut unusable = None;
    let mut dear = None;
    // Whether this page is the first of a whole (unfiltered) read, whose cost is checked.
    let first_of_whole = std::sync::atomic::AtomicBool::new(false);
    let mut collect = |page: Vec<Value>, count: u64, size: u64| {
        if first_of_whole.swap(false, std::sync::atomic::Ordering::Relaxed) && dearer(count, size, objects) {
            dear = Some(count);
            return false;
        }
        for log in page {
            let Some(target) = ref_href(&log, "targetResource") else {
                unusable = Some("the provider's event logs carry no targetResource");
                continue;
            };
            let updated = text(&log, "updated");
            let summary = log.get("summary").filter(|s| !s.is_null());
            if updated.is_none() && summary.is_none() {
                unusable = Some("the provider's event logs carry neither updated nor summary");
                continue;
            }
            if let Some(t) = updated.and_then(|u| DateTime::parse_from_rfc3339(u).ok()) {
                newest = newest.max(Some(t));
            }
            let Ok(target) = base.join(target.trim()) else { continue };
            if ours.contains(target.as_str()) {
                seen.push((target.to_string(), super::events::log_signature(&log)));
            }
        }
        true
    };
    let mut filter_refused = refused;
    let filtered = match since.filter(|_| !refused) {
        Some(t) => {
            let query = plain.clone().filter(Filter::attr("updated")?.ge(t));
            match each_page(client, &url, "EventLog", &query, inner.page_size, &mut collect).await {
                Ok(_) => true,
                Err(CimiError::Invalid { .. }) => {
                    filter_refused = true;
                    false
                }
                Err(e) => return Err(e),
            }
        }
        None => false,
    };
    if !filtered {
        // The whole collection: only while that costs no more requests than our objects' own reads.
        first_of_whole.store(true, std::sync::atomic::Ordering::Relaxed);
        each_page(client, &url, "EventLog", &plain, inner.page_size, &mut collect).await?;
    }
    let mut state = lock(&batch.state);
    state.logs_unfiltered = filter_refused;
    if let Some(count) = dear {
        state.logs_read = None;
        state.observation.events = Some(per_object(format!(
            "the provider lists {count} event logs (without a $filter on updated): reading them all takes more \
             requests than reading our {objects} objects'"
        )));
        return Ok(());
    }
    if let Some(why) = unusable {
        state.logs_read = None;
        state.observation.events = Some(per_object(why));
        return Ok(());
    }
    let mut changed = Vec::new();
    for (href, signature) in seen {
        // A log seen for the first time is read at its object's next interval; a change is read at once.
        if state.logs.get(&href).is_some_and(|old| *old != signature) {
            changed.push(href.clone());
        }
        state.logs.insert(href, signature);
    }
    state.logs.retain(|href, _| ours.contains(href));
    // The next read asks for the logs updated since the newest seen *before this read started*: a paged read is
    // not atomic, and a log that changed while it ran may be older than the newest this read saw, but not older
    // than what was known before it began. Re-reading a log costs nothing (its signature is compared).
    state.logs_since = state.logs_newest;
    state.logs_newest = state.logs_newest.max(newest);
    state.logs_read = Some(started);
    state.observation.events = Some(batched());
    drop(state);
    for href in changed {
        wake(inner, provider, &href);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cimi::{Auth, ClientConfig, Secret};
    use crate::sim::{Sim, SimConfig, SimHandle};

    #[test]
    fn a_batch_is_dearer_only_when_its_pages_outnumber_our_objects() {
        assert!(!dearer(4000, 100, 1000), "40 pages for 1,000 objects");
        assert!(dearer(200_000, 100, 1000), "2,000 pages for 1,000 objects");
        assert!(!dearer(0, 100, 0), "an empty collection costs one page");
        assert!(dearer(101, 100, 1), "two pages for one object");
    }

    async fn sim_and_client(
        limits: impl FnOnce(&mut crate::cimi::transport::ReadLimits),
    ) -> (SimHandle, CimiClient, Url) {
        // Long descriptions: a page of one config is larger than the CloudEntryPoint, a page of three much larger.
        let mut catalog = crate::sim::catalog::Catalog::primer();
        for config in catalog.collections.get_mut("machineConfigs").expect("primer configs") {
            config.insert("description".into(), Value::String("a long description ".repeat(200)));
        }
        let sim =
            Sim::start(SimConfig { catalog: Some(catalog), ..SimConfig::default() }).await.expect("cimi-sim starts");
        let mut config = ClientConfig::new("sim", &sim.url()).expect("config");
        config.transport.auth = Auth::Basic { username: "demo".into(), password: Secret::new("demo") };
        config.transport.allow_plain_http = true;
        limits(&mut config.transport.read_limits);
        let client = CimiClient::connect(config).await.expect("connect");
        let url = client.collection_url("machineConfigs").await.expect("the primer catalog has machine configs");
        (sim, client, url)
    }

    /// Reads every page of the three primer machine configs, returning the ids, page sizes and requests made.
    async fn read_configs(
        sim: &SimHandle,
        client: &CimiClient,
        url: &Url,
        size: u64,
    ) -> (Result<u64, CimiError>, Vec<String>, Vec<u64>, u64) {
        let before = sim.stats().total;
        let (mut ids, mut sizes) = (Vec::new(), Vec::new());
        let result = each_page(client, url, "MachineConfiguration", &Query::new(), size, |page, _, size| {
            ids.extend(page.iter().filter_map(|c| text(c, "name").map(str::to_string)));
            sizes.push(size);
            true
        })
        .await;
        (result, ids, sizes, sim.stats().total - before)
    }

    #[tokio::test]
    async fn a_page_too_large_for_the_body_limit_is_asked_for_again_in_halves() {
        // Measure the bodies first: a limit that holds one config but not three.
        let (sim, client, url) = sim_and_client(|_| {}).await;
        let one = client.list_page_value(&url, &Query::new().page(1, 1), "MachineConfiguration").await.expect("one");
        let all = client.list_page_value(&url, &Query::new(), "MachineConfiguration").await.expect("all");
        let (one, all) = (one.to_string().len() as u64, all.to_string().len() as u64);
        assert!(all > one * 2, "three configs take more room than one ({one} vs {all} bytes)");
        sim.stop().await;

        let (sim, client, url) = sim_and_client(|l| l.max_body_bytes = one + one / 2).await;
        let (result, ids, sizes, requests) = read_configs(&sim, &client, &url, 4).await;
        assert_eq!(result.expect("read in halves"), 3);
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((ids.len(), sorted.len()), (3, 3), "every config read once: {ids:?}");
        assert_eq!(sizes, [1, 1, 1], "pages of 4 and 2 were refused for their size, pages of 1 read");
        assert_eq!(requests, 5, "two refused pages, then three of one");
        sim.stop().await;
    }

    #[tokio::test]
    async fn a_collection_longer_than_max_pages_is_refused_at_its_first_page() {
        let (sim, client, url) = sim_and_client(|l| l.max_pages = 2).await;
        let (result, ids, _, requests) = read_configs(&sim, &client, &url, 1).await;
        match result {
            Err(CimiError::ReadLimit { limit: crate::cimi::error::ReadLimitKind::Pages, detail, .. }) => {
                assert!(detail.contains("raise spec.readLimits.maxPages"), "the error names the setting: {detail}")
            }
            other => panic!("three pages of one over a limit of two: {other:?}"),
        }
        assert_eq!((ids.len(), requests), (0, 1), "the first page's count said it: no page was handed on");
        // Within the limit, the same read is whole.
        let (result, ids, _, requests) = read_configs(&sim, &client, &url, 2).await;
        assert_eq!((result.expect("two pages of two"), ids.len(), requests), (3, 3, 2));
        sim.stop().await;
    }
}
