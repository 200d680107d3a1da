//! Reads: one resource or one page of a collection, normalised (the provider's deviations tolerated, see
//! [`normalize`](crate::cimi::normalize)) and typed into the model; the ResourceMetadata of a type.
//!
//! The typed reads take a JSON body that needs no normalisation ([`normal_form`](crate::cimi::normal_form))
//! straight from its bytes into the model; any other body, or one the model refuses that way, goes through
//! the JSON tree and the normalisation as before, so both give the same value and the same errors.

use bytes::Bytes;
use http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use super::core::CimiClient;
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::model::{self, Collection, Resource};
use crate::cimi::normal_form::{Expect, is_normal};
use crate::cimi::normalize::{ImageLocationForm, normalize_resource};
use crate::cimi::query::Query;
use crate::cimi::transport::{Request, Response, decode_body, reads_as_json};

/// A success body as a typed read takes it.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadBody {
    /// JSON the normalisation would not change, left as bytes.
    Normal(Bytes),
    /// Anything else, decoded as [`decode_body`] does.
    Decoded(Option<Value>),
}

/// Decodes a success body for a typed read expecting `expect`: [`ReadBody::Normal`] when it is JSON in normal
/// form (checked without building it), else [`decode_body`]'s answer.
pub fn read_body(headers: &HeaderMap, raw: &Bytes, href: &str, expect: Expect<'_>) -> Result<ReadBody, CimiError> {
    if reads_as_json(headers, raw) && is_normal(raw, expect) {
        return Ok(ReadBody::Normal(raw.clone()));
    }
    decode_body(headers, raw, href).map(ReadBody::Decoded)
}

/// A body read by [`read_body`] as `T`: from the bytes when they are in normal form and the model takes them,
/// else decoded, turned by `slow` (the normalisation) and typed with [`typed`]. `href` (redacted) names the
/// request in a decoding error, `model_href` the resource in a model error, as on the slow path alone.
pub fn typed_body<T: DeserializeOwned>(
    body: ReadBody,
    headers: &HeaderMap,
    href: &str,
    model_href: &Url,
    slow: impl FnOnce(Option<Value>) -> Result<Value, CimiError>,
) -> Result<T, CimiError> {
    let decoded = match body {
        ReadBody::Normal(raw) => match serde_json::from_slice(&raw) {
            Ok(t) => return Ok(t),
            // A repeated attribute, or what the model refuses anyway: the slow path says it as it always did.
            Err(_) => decode_body(headers, &raw, href)?,
        },
        ReadBody::Decoded(body) => body,
    };
    typed(slow(decoded)?, model_href)
}

/// The normalisation of a page of `item_type` entries: an empty document for no body, the collection's
/// `resourceURI` when the provider left it out.
pub(super) fn normalized_page(body: Option<Value>, item_type: &str) -> Value {
    let mut body = body.unwrap_or_else(|| Value::Object(Map::new()));
    if let Value::Object(o) = &mut body
        && !o.contains_key("resourceURI")
    {
        o.insert("resourceURI".into(), Value::String(model::type_uri(&format!("{item_type}Collection"))));
    }
    normalize_resource(&mut body, None, ImageLocationForm::Href);
    body
}

impl CimiClient {
    /// The body of `resp`, normalised, when it has one.
    pub(super) fn normalized(&self, resp: &Response, hint: Option<&str>) -> Option<Value> {
        let mut body = resp.body.clone()?;
        normalize_resource(&mut body, hint, ImageLocationForm::Href);
        Some(body)
    }

    /// GET a resource as a normalised JSON value.
    pub async fn get_value(&self, href: &Url) -> Result<Value, CimiError> {
        self.get_value_hinted(href, None, &Query::new()).await
    }

    /// GET a resource as normalised JSON, with `query` applied; `hint` names its type for the normalisation
    /// when the document does not.
    pub(super) async fn get_value_hinted(
        &self,
        href: &Url,
        hint: Option<&str>,
        query: &Query,
    ) -> Result<Value, CimiError> {
        let url = query.apply(href);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "get")).await?;
        self.normalized(&resp, hint)
            .ok_or_else(|| CimiError::protocol(&redact_url(&url), "a read answered without a document", b""))
    }

    /// GET a resource as a model type.
    pub async fn get<T: Resource + DeserializeOwned>(&self, href: &Url) -> Result<T, CimiError> {
        self.get_with(href, &Query::new()).await
    }

    /// GET a resource with query parameters (`$select`, `$expand`).
    pub async fn get_with<T: Resource + DeserializeOwned>(&self, href: &Url, query: &Query) -> Result<T, CimiError> {
        let url = query.apply(href);
        let decode = |h: &HeaderMap, raw: &Bytes, at: &str| read_body(h, raw, at, Expect::Resource);
        let resp = self.inner.transport.execute_with(&Request::get(url.clone(), "get"), &decode).await?;
        let at = redact_url(&url);
        typed_body(resp.body, &resp.headers, &at, href, |body| {
            let mut body = body.ok_or_else(|| CimiError::protocol(&at, "a read answered without a document", b""))?;
            normalize_resource(&mut body, Some(T::TYPE_NAME), ImageLocationForm::Href);
            Ok(body)
        })
    }

    /// One page (or the whole, if the provider ignores paging) of a collection at `href`, as JSON.
    pub async fn list_page_value(&self, href: &Url, query: &Query, item_type: &str) -> Result<Value, CimiError> {
        let url = query.apply(href);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "list")).await?;
        Ok(normalized_page(resp.body, item_type))
    }

    /// One page of a collection at `href`, typed.
    pub async fn list_page<T: Resource + DeserializeOwned>(
        &self,
        href: &Url,
        query: &Query,
    ) -> Result<Collection<T>, CimiError> {
        let url = query.apply(href);
        let decode = |h: &HeaderMap, raw: &Bytes, at: &str| read_body(h, raw, at, Expect::Collection(T::TYPE_NAME));
        let resp = self.inner.transport.execute_with(&Request::get(url.clone(), "list"), &decode).await?;
        typed_body(resp.body, &resp.headers, &redact_url(&url), href, |body| Ok(normalized_page(body, T::TYPE_NAME)))
    }

    /// One page of a collection of `item_type` entries at `href`, read as `P`: a shape of the caller's that keeps
    /// only what it needs of each entry (from the bytes when they are in normal form, else from the normalised
    /// JSON, as [`CimiClient::list_page`]).
    pub async fn list_page_as<P: DeserializeOwned>(
        &self,
        href: &Url,
        query: &Query,
        item_type: &str,
    ) -> Result<P, CimiError> {
        let url = query.apply(href);
        let decode = |h: &HeaderMap, raw: &Bytes, at: &str| read_body(h, raw, at, Expect::Collection(item_type));
        let resp = self.inner.transport.execute_with(&Request::get(url.clone(), "list"), &decode).await?;
        typed_body(resp.body, &resp.headers, &redact_url(&url), href, |body| Ok(normalized_page(body, item_type)))
    }

    /// The ResourceMetadata describing `type_uri` (e.g. the Credential's extension attributes), if any.
    pub async fn resource_metadata(&self, type_uri: &str) -> Result<Option<model::ResourceMetadata>, CimiError> {
        let all = self.list_all::<model::ResourceMetadata>("resourceMetadata", &Query::new()).await?;
        Ok(all.entries.into_iter().find(|m| m.type_uri.as_deref() == Some(type_uri)))
    }
}

/// A JSON value as a model type, or a protocol error naming what did not fit.
pub fn typed<T: DeserializeOwned>(v: Value, href: &Url) -> Result<T, CimiError> {
    T::deserialize(&v).map_err(|e| {
        CimiError::protocol(&redact_url(href), format!("does not match the model: {e}"), v.to_string().as_bytes())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! The typed reads give what the slow path (tree, normalisation, typing) gives, for every document: those
    //! in normal form from the bytes, the others through the slow path.
    use http::{HeaderValue, header};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::cimi::model::{Machine, MachineImage};

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    fn href() -> Url {
        Url::parse("http://h/machines").unwrap()
    }

    /// What `list_page` gave before the fast path: decode, normalise, type.
    fn slow_page<T: Resource + DeserializeOwned>(raw: &[u8]) -> Result<Collection<T>, String> {
        let body = decode_body(&json_headers(), &Bytes::copy_from_slice(raw), "u").map_err(|e| e.to_string())?;
        typed(normalized_page(body, T::TYPE_NAME), &href()).map_err(|e| e.to_string())
    }

    /// What `get` gave before the fast path.
    fn slow_get<T: Resource + DeserializeOwned>(raw: &[u8]) -> Result<T, String> {
        let body = decode_body(&json_headers(), &Bytes::copy_from_slice(raw), "u").map_err(|e| e.to_string())?;
        let mut body = body.ok_or("no document")?;
        normalize_resource(&mut body, Some(T::TYPE_NAME), ImageLocationForm::Href);
        typed(body, &href()).map_err(|e| e.to_string())
    }

    /// `list_page`'s reading now, and whether it took the fast path.
    fn page<T: Resource + DeserializeOwned>(raw: &[u8]) -> (Result<Collection<T>, String>, bool) {
        let raw = Bytes::copy_from_slice(raw);
        let h = json_headers();
        let body = match read_body(&h, &raw, "u", Expect::Collection(T::TYPE_NAME)) {
            Ok(b) => b,
            Err(e) => return (Err(e.to_string()), false),
        };
        let fast = matches!(body, ReadBody::Normal(_));
        let typed = typed_body(body, &h, "u", &href(), |b| Ok(normalized_page(b, T::TYPE_NAME)));
        (typed.map_err(|e| e.to_string()), fast)
    }

    /// `get`'s reading now, and whether it took the fast path.
    fn get<T: Resource + DeserializeOwned>(raw: &[u8]) -> (Result<T, String>, bool) {
        let raw = Bytes::copy_from_slice(raw);
        let h = json_headers();
        let body = match read_body(&h, &raw, "u", Expect::Resource) {
            Ok(b) => b,
            Err(e) => return (Err(e.to_string()), false),
        };
        let fast = matches!(body, ReadBody::Normal(_));
        let typed = typed_body(body, &h, "u", &href(), |b| {
            let mut b = b.ok_or_else(|| CimiError::protocol("u", "no document", b""))?;
            normalize_resource(&mut b, Some(T::TYPE_NAME), ImageLocationForm::Href);
            Ok(b)
        });
        (typed.map_err(|e| e.to_string()), fast)
    }

    fn machine(i: usize) -> Value {
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "id": format!("http://h/machines/{i}"),
               "name": format!("machine-{i}"), "created": "2026-11-27T20:00:00Z", "updated": "2026-11-27T20:00:00.500Z",
               "properties": {"cimi.dev/uid": format!("uid-{i}")}, "state": "STARTED", "cpu": 2, "memory": 8_000_000,
               "cpuArch": "x86_64", "disks": {"href": format!("http://h/machines/{i}/disks")},
               "vendorThing": {"a": [1]},
               "operations": [{"rel": "edit", "href": "e"}, {"rel": "delete", "href": "d"},
                              {"rel": "http://schemas.dmtf.org/cimi/1/action/stop", "href": "s"}]})
    }

    fn machines(entries: Vec<Value>) -> Value {
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "id": "http://h/machines",
               "count": entries.len(), "machines": entries, "operations": [{"rel": "add", "href": "a"}],
               "vendorPaging": {"next": null}})
    }

    #[test]
    fn documents_in_normal_form_are_typed_from_the_bytes_as_the_slow_path_types_them() {
        let mut m = machine(1);
        m["created"] = json!("2026-11-27T20:00:00.123456Z");
        let doc = machines(vec![m.clone(), machine(2)]);
        let raw = doc.to_string();
        let (fast, took) = page::<Machine>(raw.as_bytes());
        assert!(took, "a page in normal form takes the fast path");
        assert_eq!(fast, slow_page::<Machine>(raw.as_bytes()));
        let c = fast.unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.extra["vendorPaging"], json!({"next": null}));
        assert_eq!(c.entries[0].extra["vendorThing"], json!({"a": [1]}));

        let raw = m.to_string();
        let (fast, took) = get::<Machine>(raw.as_bytes());
        assert!(took);
        assert_eq!(fast, slow_get::<Machine>(raw.as_bytes()));
        assert_eq!(fast.unwrap().cpu, Some(2));

        let image = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage", "id": "i",
                           "imageLocation": {"href": "http://img"}, "state": "AVAILABLE"})
        .to_string();
        let (fast, took) = get::<MachineImage>(image.as_bytes());
        assert!(took);
        assert_eq!(fast, slow_get::<MachineImage>(image.as_bytes()));
    }

    /// Each deviation of reference §7 that the normaliser handles: the slow path, with the same result.
    #[test]
    fn deviating_documents_take_the_slow_path_and_read_as_before() {
        let with = |k: &str, v: Value| {
            let mut m = machine(1);
            m[k] = v;
            m
        };
        let mut anonymous = machine(2);
        anonymous.as_object_mut().unwrap().remove("resourceURI");
        let pages = [
            machines(vec![with("cpu", json!("4"))]),
            machines(vec![with("memory", json!("1.0E7"))]),
            machines(vec![with("operations", json!([{"rel": "edit", "href": "e", "available": "false"}]))]),
            machines(vec![with("created", json!("2012-08-15 12:15:00 UTC"))]),
            machines(vec![with("created", json!("2012-08-15T12:15:00-05:00"))]),
            machines(vec![with("updated", json!(1_344_989_700))]),
            machines(vec![with("updated", json!("yesterday-ish"))]),
            machines(vec![with("description", json!(""))]),
            machines(vec![with("operations", json!({"rel": "edit", "href": "e"}))]),
            machines(vec![with(
                "operations",
                json!([{"rel": "http://schemas.dmtf.org/cimi/1/action/delete", "href": "d"}]),
            )]),
            machines(vec![with(
                "operations",
                json!([{"rel": "http://schemas.dmtf.org/cimi/1/Action/start", "href": "s"}]),
            )]),
            machines(vec![anonymous.clone()]),
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "count": "1",
                   "machines": machine(3)}),
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "count": 0}),
            json!({"id": "http://h/machines", "count": 1, "machines": [machine(4)]}),
        ];
        for doc in pages {
            let raw = doc.to_string();
            let (now, took) = page::<Machine>(raw.as_bytes());
            assert!(!took, "{raw}");
            let before = slow_page::<Machine>(raw.as_bytes());
            assert!(before.is_ok(), "{before:?}");
            assert_eq!(now, before, "{raw}");
        }
        for doc in [with("cpu", json!(" 8 ")), anonymous, with("created", json!("Wed, 15 Aug 2012 12:15:00 +0200"))] {
            let raw = doc.to_string();
            let (now, took) = get::<Machine>(raw.as_bytes());
            assert!(!took, "{raw}");
            assert_eq!(now, slow_get::<Machine>(raw.as_bytes()));
            assert!(now.is_ok());
        }
        for location in [json!("http://img"), json!({"href": "http://img", "size": 3})] {
            let raw = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage", "imageLocation": location})
                .to_string();
            let (now, took) = get::<MachineImage>(raw.as_bytes());
            assert!(!took);
            assert_eq!(now, slow_get::<MachineImage>(raw.as_bytes()));
        }
    }

    /// Documents in normal form that the model refuses from the bytes, or reads differently from bytes and
    /// from a tree, end as on the slow path: repeated attributes (the tree keeps the last), model errors.
    #[test]
    fn what_the_fast_parse_refuses_reads_as_before() {
        let page_of =
            |rest: &str| format!(r#"{{"resourceURI":"http://schemas.dmtf.org/cimi/1/MachineCollection",{rest}}}"#);
        let entry = r#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/Machine""#;
        let docs = [
            page_of(r#""count":1,"count":2,"machines":[]"#),
            page_of(r#""id":1,"id":"c","machines":[]"#),
            page_of(&format!(r#""machines":[{entry},"id":"a","id":"b"}}]"#)),
            page_of(&format!(r#""machines":[{entry},"cpu":true}}]"#)),
            page_of(r#""count":-1.5,"machines":[]"#),
            page_of(r#""machines":[],"x":1,"x":{"y":2}"#),
        ];
        for raw in &docs {
            let (now, took) = page::<Machine>(raw.as_bytes());
            assert!(took, "{raw}");
            assert_eq!(now, slow_page::<Machine>(raw.as_bytes()), "{raw}");
        }
        assert_eq!(page::<Machine>(docs[2].as_bytes()).0.unwrap().entries[0].id.as_deref(), Some("b"));
        assert!(page::<Machine>(docs[3].as_bytes()).0.unwrap_err().contains("does not match the model"));
        for raw in ["{\"a\":", "[1]", "", "<html></html>"] {
            assert_eq!(
                page::<Machine>(raw.as_bytes()).0.map(|c| c.entries.len()),
                slow_page::<Machine>(raw.as_bytes()).map(|c| c.entries.len()),
                "{raw}"
            );
        }
    }

    /// The collection as it was typed before: through a map of the whole document.
    fn collection_through_a_map(v: &Value) -> Result<Collection<Machine>, String> {
        let mut map: Map<String, Value> = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let mut take = |k: &str| map.remove(k);
        let c = Collection {
            resource_uri: take("resourceURI").map(serde_json::from_value).transpose().map_err(|e| e.to_string())?,
            id: take("id").map(serde_json::from_value).transpose().map_err(|e| e.to_string())?,
            count: take("count").map(serde_json::from_value).transpose().map_err(|e| e.to_string())?,
            entries: take("machines")
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
            operations: take("operations")
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
            extra: Map::new(),
        };
        Ok(Collection { extra: map, ..c })
    }

    /// Random pages, in normal form or not, valid for the model or not: the typed read gives what the slow
    /// path gives, and the collection visitor what the map-based reading gave, errors included.
    #[test]
    fn random_pages_read_as_on_the_slow_path() {
        let mut rng = StdRng::seed_from_u64(2026);
        let (mut fast, mut slow) = (0, 0);
        for _ in 0..2_000 {
            let mut entries = Vec::new();
            for i in 0..rng.random_range(0..4) {
                let mut m = machine(i);
                let change = rng.random_range(0..14);
                let o = m.as_object_mut().unwrap();
                match change {
                    0 => drop(o.insert("cpu".into(), json!("2"))),
                    1 => drop(o.insert("cpu".into(), json!(true))),
                    2 => drop(o.remove("resourceURI")),
                    3 => drop(o.insert("created".into(), json!("2012-08-15 12:15:00"))),
                    4 => drop(o.insert("name".into(), json!(""))),
                    5 => drop(o.insert("operations".into(), json!({"rel": "edit", "href": "e"}))),
                    6 => drop(o.insert("disks".into(), json!({"href": 3}))),
                    7 => drop(o.insert("properties".into(), json!({"a": 1}))),
                    _ => {}
                }
                entries.push(m);
            }
            let mut doc = machines(entries);
            match rng.random_range(0..10) {
                0 => drop(doc.as_object_mut().unwrap().remove("machines")),
                1 => doc["count"] = json!("3"),
                2 => doc["count"] = json!(null),
                3 => doc["operations"] = json!([{"rel": 1}]),
                4 => doc["id"] = json!(""),
                _ => {}
            }
            let raw = doc.to_string();
            let (now, took) = page::<Machine>(raw.as_bytes());
            assert_eq!(now, slow_page::<Machine>(raw.as_bytes()), "{raw}");
            if took {
                fast += 1
            } else {
                slow += 1
            }
            let old = collection_through_a_map(&doc);
            let new = Collection::<Machine>::deserialize(&doc).map_err(|e| e.to_string());
            assert_eq!(new, old, "{raw}");
        }
        assert!(fast > 200 && slow > 200, "both paths are exercised ({fast} fast, {slow} slow)");
    }
}
