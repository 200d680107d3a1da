//! The poll tasks: per CimiProvider and collection, one listing per `pollInterval` (filtered on our cluster
//! tag, or whole when imports make that cheaper), bounded by the provider's read limits; a resource whose state
//! or attributes changed, or that vanished, triggers a reconcile of its object.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::shared::*;
use crate::cimi::query::{Filter, Query};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::{entries, text};
use crate::names::TAG_CLUSTER;

/// The item type of a collection's entries.
pub(super) fn item_type(collection: &str) -> &'static str {
    match collection {
        "machines" => "Machine",
        "volumes" => "Volume",
        "networks" => "Network",
        "events" => "Event",
        "meters" => "Meter",
        _ => "",
    }
}

pub(super) async fn poll_loop(inner: Arc<Inner>, provider: String, collection: &'static str, poller: Arc<Poller>) {
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
                // Each entry is kept compact as its page is read (a whole listing of decoded JSON is
                // several times larger, and at 10,000 resources it was most of the operator's peak).
                let compact = |entry: Value| (text(&entry, "id").map(str::to_string), Cached::new(&entry, true));
                let url = conn.client.collection_url(collection).await;
                let listing = match url {
                    Ok(url) => {
                        list_mapped_at(
                            &conn.client,
                            &url,
                            item_type(collection),
                            Query::new(),
                            filter,
                            inner.page_size,
                            &compact,
                        )
                        .await
                    }
                    Err(error) => Err(error),
                };
                match listing {
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
pub(super) async fn timing(inner: &Inner, provider: &str) -> Timing {
    if let Some((t, at)) = lock(&inner.timings).get(provider)
        && at.elapsed() < TIMING_TTL
    {
        return *t;
    }
    let defaults = Timing::default();
    let key = crate::api::common::ProviderKey::parse(provider);
    let t = match crate::controller::registry::read_provider(&inner.client, &key).await {
        Ok(Some(p)) => {
            let parse = |text: &str, default: Duration| crate::api::common::parse_duration(text).unwrap_or(default);
            let s = &p.settings;
            Timing {
                poll: parse(&s.poll_interval, defaults.poll).max(Duration::from_secs(1)),
                meters: parse(&s.meter_interval, defaults.meters).max(Duration::from_millis(100)),
                events: parse(&s.event_interval, defaults.events).max(Duration::from_millis(100)),
            }
        }
        _ => defaults,
    };
    lock(&inner.timings).insert(provider.to_string(), (t, Instant::now()));
    t
}

/// The number of resources in a collection (one request for one entry).
pub(super) async fn collection_count(client: &CimiClient, collection: &str) -> Result<u64, CimiError> {
    let url = client.collection_url(collection).await?;
    let page = client.list_page_value(&url, &Query::new().page(1, 1), item_type(collection)).await?;
    Ok(page.get("count").and_then(Value::as_u64).unwrap_or(u64::MAX))
}

/// Lists the collection at `url` in pages (`$first`/`$last`), with `filter` when given; a provider that refuses
/// the filter (4xx) is asked again without it. Returns the entries and whether the filter was applied; `order_by`
/// asks for an ascending order on an attribute.
pub(super) async fn list_at(
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
    list_mapped_at(client, url, item_type, base, filter, page_size, &|v| v).await
}

/// [`list_at`] from the query `base`, each entry turned by `map` as its page is read.
async fn list_mapped_at<T: Send, F: Fn(Value) -> T + Sync>(
    client: &CimiClient,
    url: &Url,
    item_type: &str,
    base: Query,
    filter: Option<Filter>,
    page_size: u64,
    map: &F,
) -> Result<(Vec<T>, bool), CimiError> {
    let listing = |query: Query| async move {
        Ok::<_, CimiError>(client.list_mapped_at(url, &query, item_type, None, page_size, map).await?.entries)
    };
    let Some(filter) = filter else { return Ok((listing(base).await?, false)) };
    match listing(base.clone().filter(filter)).await {
        Err(CimiError::Invalid { .. }) => Ok((listing(base).await?, false)),
        other => other.map(|entries| (entries, true)),
    }
}

/// The newest sample of a meter: `$orderby=timestamp:desc&$first=1&$last=1`, one request. A provider
/// that ignores paging sends every sample: the newest of them is taken.
pub(super) async fn latest_sample(client: &CimiClient, samples: &Url) -> Result<Option<Value>, CimiError> {
    let query = Query::new().order_by("timestamp", true).page(1, 1);
    let page = client.list_page_value(samples, &query, "Sample").await?;
    let stamp = |v: &Value| text(v, "timestamp").and_then(parse_time).map(|t| t.0);
    Ok(entries(&page).into_iter().max_by(|a, b| stamp(a).cmp(&stamp(b))))
}

/// The listed entries by their resolved href (entries without an id dropped).
pub(super) async fn resolve_all(client: &CimiClient, listing: Vec<(Option<String>, Cached)>) -> Vec<(String, Cached)> {
    let mut out = Vec::with_capacity(listing.len());
    for (id, entry) in listing {
        let Some(id) = id else { continue };
        if let Ok(url) = client.resolve(&id).await {
            out.push((url.to_string(), entry));
        }
    }
    out
}

pub(super) fn apply_listing(
    inner: &Inner,
    poller: &Poller,
    collection: &'static str,
    listing: Vec<(String, Cached)>,
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
                    if cached.changed_from(&entry) {
                        wake.extend(owner);
                    }
                    // A GET answered after this listing started is fresher: keep it.
                    if cached.at < started {
                        *cached = entry;
                    }
                    cached.listed = true;
                }
                None => {
                    // Back after it was missing: its object looks again.
                    wake.extend(owner);
                    state.entries.insert(href, entry);
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
