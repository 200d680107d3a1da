//! Whole collections read page by page ([`Listing`]): with `$first`/`$last`, or through the `next`
//! operation where the provider links its pages. Providers that ignore paging, omit an empty entry array or
//! truncate their answers are handled, and every listing is bounded in pages, entries and time
//! ([`ReadLimits`](crate::cimi::transport::ReadLimits)).

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::core::CimiClient;
use super::hrefs::{find_operation, id_of};
use super::read::typed;
use crate::cimi::error::{CimiError, ReadLimitKind, redact_url};
use crate::cimi::model::Resource;
use crate::cimi::query::Query;

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

impl CimiClient {
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
    /// Bounded by the transport's [`ReadLimits`](crate::cimi::transport::ReadLimits): more pages than `max_pages`,
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
        self.list_mapped_at(href, query, item_type, key, page_size, &|v| v).await
    }

    /// [`Self::list_values_at`], each entry turned by `map` as its page is read: a caller that keeps less than
    /// the whole JSON of each entry never holds every page of a large collection decoded at once.
    pub async fn list_mapped_at<T, F>(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
        key: Option<&str>,
        page_size: u64,
        map: &F,
    ) -> Result<Listing<T>, CimiError>
    where
        F: Fn(Value) -> T + Sync,
        T: Send,
    {
        let limits = self.inner.transport.config().read_limits;
        let reading = self.page_values(href, query, item_type, key, page_size.max(1), map);
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

    async fn page_values<T, F>(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
        key: Option<&str>,
        page: u64,
        map: &F,
    ) -> Result<Listing<T>, CimiError>
    where
        F: Fn(Value) -> T + Sync,
        T: Send,
    {
        let limits = self.inner.transport.config().read_limits;
        let mut seen = HashSet::new();
        let mut visited = HashSet::new();
        let mut entries: Vec<T> = Vec::new();
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
                entries.push(map(item));
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
}
