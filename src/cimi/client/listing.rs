//! Whole collections read page by page ([`Listing`]): with `$first`/`$last`, or through the `next`
//! operation where the provider links its pages. Providers that ignore paging, omit an empty entry array or
//! truncate their answers are handled, and every listing is bounded in pages, entries and time
//! ([`ReadLimits`](crate::cimi::transport::ReadLimits)).
//!
//! A typed listing ([`CimiClient::list_all_at`]) types each page in normal form straight from its bytes
//! ([`normal_form`](crate::cimi::normal_form)); other pages are read as JSON, normalised, and their entries
//! typed at the end, as every page was before.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use http::HeaderMap;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use super::core::CimiClient;
use super::hrefs::{find_operation, id_of, operation_in};
use super::read::{ReadBody, normalized_page, read_body, typed};
use crate::cimi::error::{CimiError, ReadLimitKind, redact_url};
use crate::cimi::model::Resource;
use crate::cimi::normal_form::Expect;
use crate::cimi::query::Query;
use crate::cimi::transport::{Request, decode_body};

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

/// One page as a listing reads it: the provider's `count`, its `next` operation, its entries.
struct Page<E> {
    count: Option<u64>,
    next: Option<Result<String, ()>>,
    entries: Vec<E>,
}

impl<E: PageEntry> Page<E> {
    /// The page from its normalised JSON (what [`CimiClient::list_page_value`] answers).
    fn from_json(mut body: Value, key: Option<&str>) -> Self {
        Page {
            count: body.get("count").and_then(Value::as_u64),
            next: find_operation(&body, "next"),
            entries: take_entries(&mut body, key).into_iter().map(E::from_json).collect(),
        }
    }
}

/// An entry as a listing keeps it.
trait PageEntry: Sized {
    /// Whether a page of these may be typed from its bytes.
    const FROM_BYTES: bool;
    /// The page in normal form, typed from its bytes; `None` when that fails (the JSON path then reads it).
    fn page_from_bytes(raw: &[u8], key: Option<&str>) -> Option<Page<Self>>;
    /// An entry of a page read as JSON.
    fn from_json(v: Value) -> Self;
    /// The entry's non-empty `id`, by which a repeated entry is dropped.
    fn listed_id(&self) -> Option<&str>;
}

impl PageEntry for Value {
    const FROM_BYTES: bool = false;
    fn page_from_bytes(_: &[u8], _: Option<&str>) -> Option<Page<Self>> {
        None
    }
    fn from_json(v: Value) -> Self {
        v
    }
    fn listed_id(&self) -> Option<&str> {
        id_of(self)
    }
}

/// An entry of a typed listing: typed with its page, or JSON to type at the end.
enum TypedEntry<T> {
    Typed(T),
    Json(Value),
}

impl<T: Resource + DeserializeOwned> PageEntry for TypedEntry<T> {
    const FROM_BYTES: bool = true;
    fn page_from_bytes(raw: &[u8], key: Option<&str>) -> Option<Page<Self>> {
        if key != Some(T::COLLECTION_KEY) {
            return None;
        }
        let page: BytesPage<T> = serde_json::from_slice(raw).ok()?;
        Some(Page {
            count: page.count.as_ref().and_then(Value::as_u64),
            next: page.operations.as_ref().and_then(|ops| operation_in(ops, "next")),
            entries: page.entries.into_iter().map(TypedEntry::Typed).collect(),
        })
    }
    fn from_json(v: Value) -> Self {
        TypedEntry::Json(v)
    }
    fn listed_id(&self) -> Option<&str> {
        match self {
            TypedEntry::Typed(t) => t.id().filter(|id| !id.is_empty()),
            TypedEntry::Json(v) => id_of(v),
        }
    }
}

/// A page typed from its bytes: `count` and `operations` as JSON (read as [`Page::from_json`] reads them),
/// the entries (`T::COLLECTION_KEY`) as `T`, nothing else kept. A repeated attribute keeps its last value.
struct BytesPage<T> {
    count: Option<Value>,
    operations: Option<Value>,
    entries: Vec<T>,
}

impl<'de, T: Resource + DeserializeOwned> Deserialize<'de> for BytesPage<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BytesPageVisitor(PhantomData))
    }
}

struct BytesPageVisitor<T>(PhantomData<T>);

impl<'de, T: Resource + DeserializeOwned> Visitor<'de> for BytesPageVisitor<T> {
    type Value = BytesPage<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a collection")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BytesPage<T>, A::Error> {
        let mut page = BytesPage { count: None, operations: None, entries: Vec::new() };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "count" => page.count = Some(map.next_value()?),
                "operations" => page.operations = Some(map.next_value()?),
                k if k == T::COLLECTION_KEY => page.entries = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
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
        let key = Some(T::COLLECTION_KEY);
        let listing = self.list_entries_at::<TypedEntry<T>, _, _>(href, query, T::TYPE_NAME, key, page, &|e| e).await?;
        let entries = listing
            .entries
            .into_iter()
            .map(|e| match e {
                TypedEntry::Typed(t) => Ok(t),
                TypedEntry::Json(v) => typed(v, href),
            })
            .collect::<Result<Vec<T>, _>>()?;
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
        self.list_entries_at::<Value, T, F>(href, query, item_type, key, page_size, map).await
    }

    /// [`Self::list_mapped_at`] over entries of the kind `E`.
    async fn list_entries_at<E, T, F>(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
        key: Option<&str>,
        page_size: u64,
        map: &F,
    ) -> Result<Listing<T>, CimiError>
    where
        E: PageEntry,
        F: Fn(E) -> T + Sync,
    {
        let limits = self.inner.transport.config().read_limits;
        let reading = self.page_values::<E, T, F>(href, query, item_type, key, page_size.max(1), map);
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

    /// One page at `url`: typed from its bytes when `E` can be and the page is in normal form, else read as
    /// [`Self::list_page_value`] reads it.
    async fn read_page<E: PageEntry>(
        &self,
        url: &Url,
        item_type: &str,
        key: Option<&str>,
    ) -> Result<Page<E>, CimiError> {
        let decode = |h: &HeaderMap, raw: &Bytes, at: &str| {
            if E::FROM_BYTES {
                read_body(h, raw, at, Expect::Collection(item_type))
            } else {
                decode_body(h, raw, at).map(ReadBody::Decoded)
            }
        };
        let resp = self.inner.transport.execute_with(&Request::get(url.clone(), "list"), &decode).await?;
        let body = match resp.body {
            ReadBody::Normal(raw) => match E::page_from_bytes(&raw, key) {
                Some(page) => return Ok(page),
                None => decode_body(&resp.headers, &raw, &redact_url(url))?,
            },
            ReadBody::Decoded(body) => body,
        };
        Ok(Page::from_json(normalized_page(body, item_type), key))
    }

    async fn page_values<E, T, F>(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
        key: Option<&str>,
        page: u64,
        map: &F,
    ) -> Result<Listing<T>, CimiError>
    where
        E: PageEntry,
        F: Fn(E) -> T + Sync,
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
            let read = self.read_page::<E>(&url, item_type, key).await?;
            if count.is_none() {
                count = read.count;
            }
            let next_page = match read.next {
                Some(Ok(h)) => Some(self.resolve(&h).await?),
                _ => None,
            };
            let mut items = read.entries;
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
                if let Some(id) = item.listed_id()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use http::{HeaderValue, header};
    use serde_json::json;

    use super::*;
    use crate::cimi::model::Machine;

    /// A page as the listing keeps it, entries typed: `count`, `next`, entry ids, entries.
    type Seen = (Option<u64>, Option<Result<String, ()>>, Vec<Option<String>>, Result<Vec<Machine>, String>);

    fn seen(page: Page<TypedEntry<Machine>>) -> Seen {
        let ids = page.entries.iter().map(|e| e.listed_id().map(str::to_string)).collect();
        let href = Url::parse("http://h/machines").unwrap();
        let entries = page
            .entries
            .into_iter()
            .map(|e| match e {
                TypedEntry::Typed(t) => Ok(t),
                TypedEntry::Json(v) => typed(v, &href).map_err(|e| e.to_string()),
            })
            .collect();
        (page.count, page.next, ids, entries)
    }

    /// The page as the JSON path reads it.
    fn through_json(raw: &[u8]) -> Seen {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = decode_body(&h, &Bytes::copy_from_slice(raw), "u").unwrap();
        seen(Page::from_json(normalized_page(body, "Machine"), Some("machines")))
    }

    fn machine(id: Value) -> Value {
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "id": id, "name": "m", "cpu": 2,
               "created": "2026-11-27T20:00:00Z", "operations": [{"rel": "edit", "href": "e"}]})
    }

    /// Pages in normal form read from their bytes as from their JSON: count, next page, ids and entries.
    #[test]
    fn a_page_typed_from_its_bytes_reads_as_through_json() {
        let page = |entries: Vec<Value>, count: Value, ops: Value| {
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "count": count,
                   "machines": entries, "operations": ops, "vendor": {"x": [1]}})
        };
        let docs = [
            page(vec![machine(json!("m1")), machine(json!("m2"))], json!(7), json!([{"rel": "next", "href": "p2"}])),
            page(vec![], json!(0), json!([])),
            page(vec![machine(json!("m1"))], json!(-1), json!([{"rel": "next", "href": "p", "available": false}])),
            page(vec![machine(json!("m1"))], json!(2.5), json!([{"rel": "add", "href": "a"}])),
            page(vec![machine(json!(null))], json!(1), json!([{"rel": "next", "href": 3}])),
            page(vec![machine(json!("m1"))], json!(null), json!([{"rel": "next"}, {"rel": "next", "href": "b"}])),
        ];
        for doc in docs {
            let raw = doc.to_string();
            let from_bytes = TypedEntry::<Machine>::page_from_bytes(raw.as_bytes(), Some("machines")).unwrap();
            assert_eq!(seen(from_bytes), through_json(raw.as_bytes()), "{raw}");
        }
    }

    /// What the model refuses from the bytes is left to the JSON path (which types the entries at the end).
    #[test]
    fn a_page_the_model_refuses_is_read_as_json() {
        for raw in [
            r#"{"machines":[{"resourceURI":"http://schemas.dmtf.org/cimi/1/Machine","cpu":true}]}"#,
            r#"{"machines":[{"resourceURI":"http://schemas.dmtf.org/cimi/1/Machine","id":"a","id":"b"}]}"#,
            r#"{"machines":{"id":"a"}}"#,
        ] {
            assert!(TypedEntry::<Machine>::page_from_bytes(raw.as_bytes(), Some("machines")).is_none(), "{raw}");
        }
        assert!(TypedEntry::<Machine>::page_from_bytes(b"{}", Some("machineImages")).is_none(), "another key");
        assert!(Value::page_from_bytes(b"{}", Some("machines")).is_none(), "JSON listings stay JSON");
    }
}
