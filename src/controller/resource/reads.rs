//! Reading a provider resource as the managed kinds need it: its properties and our UID tag on it (a resource
//! without it is not ours: ids get reused), a collection's entries, the operations offered now, a GET that
//! says "gone", a lookup by UID tag that never concludes "absent" from a truncated page.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cimi::model::ResourceState;
use crate::cimi::query::{Filter, Query};
use crate::cimi::{CimiClient, CimiError};
use crate::names::TAG_UID;

/// The string attribute `name` of a provider document.
pub fn text<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.get(name).and_then(Value::as_str)
}

/// The `state` of a provider resource ([`ResourceState::Unknown`] when it has none).
pub fn state(doc: &Value) -> ResourceState {
    ResourceState::parse(text(doc, "state").unwrap_or_default())
}

/// The integer attribute `name` of a provider document.
pub fn int(doc: &Value, name: &str) -> Option<i64> {
    doc.get(name).and_then(Value::as_i64)
}

/// The boolean attribute `name` of a provider document.
pub fn boolean(doc: &Value, name: &str) -> Option<bool> {
    doc.get(name).and_then(Value::as_bool)
}

/// The href of the reference attribute `name` (`{"href": …}`) of a provider document.
pub fn ref_href<'a>(doc: &'a Value, name: &str) -> Option<&'a str> {
    doc.get(name).and_then(|r| r.get("href")).and_then(Value::as_str)
}

/// The properties of a provider resource.
pub fn properties_of(resource: &Value) -> BTreeMap<String, String> {
    resource
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// Whether the resource carries our UID tag (ids get reused: without it, it is not ours).
pub fn carries_uid(resource: &Value, uid: &str) -> bool {
    properties_of(resource).get(TAG_UID).is_some_and(|v| v == uid)
}

/// The UID tag a resource carries, if any.
pub fn uid_tag(resource: &Value) -> Option<String> {
    properties_of(resource).get(TAG_UID).cloned()
}

/// The entries of a collection document: its one array of objects (other than `operations`).
pub fn entries(page: &Value) -> Vec<Value> {
    let Value::Object(doc) = page else { return Vec::new() };
    doc.iter()
        .filter(|(k, _)| k.as_str() != "operations")
        .find_map(|(_, v)| v.as_array().filter(|a| a.iter().all(Value::is_object)).cloned())
        .unwrap_or_default()
}

/// The short names of the operations a resource offers now (`edit`, `delete`, `start`...).
pub fn operations(resource: &Value) -> Vec<String> {
    resource
        .get("operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o.get("available").and_then(Value::as_bool) != Some(false))
        .filter_map(|o| o.get("rel").and_then(Value::as_str))
        .map(|rel| rel.rsplit('/').next().unwrap_or(rel).to_string())
        .collect()
}

/// Reads the resource at `href`: `None` when it is gone (404/410, or it lacks our UID tag).
pub async fn observe(client: &CimiClient, href: &str, uid: &str) -> Result<Option<Value>, CimiError> {
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(v) if carries_uid(&v, uid) => Ok(Some(v)),
        Ok(_) => Ok(None),
        Err(CimiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks for a resource of `collection` that carries our UID tag (a crash between a POST and the
/// status write leaves one behind), with a `$filter` and a check of the tag on what comes back. It
/// fails rather than answer "none" when the provider served fewer entries than its `count` says: a
/// truncated page must never lead to a second create, nor to a finalizer removed too early.
pub async fn find_by_uid(client: &CimiClient, collection: &str, uid: &str) -> Result<Option<Value>, CimiError> {
    let url = client.collection_url(collection).await?;
    let query = Query::new().filter(Filter::property(TAG_UID, uid)?);
    let page = client.list_page_value(&url, &query, "").await?;
    let found = entries(&page);
    if let Some(hit) = found.iter().find(|e| carries_uid(e, uid)) {
        return Ok(Some(hit.clone()));
    }
    let count = page.get("count").and_then(Value::as_u64).unwrap_or(0);
    if count > found.len() as u64 {
        return Err(CimiError::Protocol {
            href: url.to_string(),
            excerpt: String::new(),
            reason: format!(
                "the provider counts {count} {collection} tagged with this object's UID but served {}; \
                 not creating anything until it serves them all",
                found.len()
            ),
        });
    }
    Ok(None)
}

/// Reads an adopted resource at `href`: `None` when the provider answers 404/410. Unlike [`observe`],
/// it does not require our UID tag (an ObserveOnly import never carries it).
pub async fn read_imported(client: &CimiClient, href: &str) -> Result<Option<Value>, CimiError> {
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(v) => Ok(Some(v)),
        Err(CimiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn gone_means_without_our_uid() {
        assert!(carries_uid(&json!({"properties": {"cimi.dev/uid": "u1"}}), "u1"));
        assert!(!carries_uid(&json!({"properties": {"cimi.dev/uid": "u2"}}), "u1"));
        assert!(!carries_uid(&json!({"name": "reused id"}), "u1"));
    }

    #[test]
    fn operations_by_short_name() {
        let m = json!({"operations": [
            {"rel": "edit", "href": "m/1"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/start", "href": "m/1/start"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/stop", "href": "m/1/stop", "available": false}
        ]});
        assert_eq!(operations(&m), ["edit", "start"]);
    }

    #[test]
    fn entries_are_the_array_of_objects() {
        let page = json!({"count": 1, "operations": [{"rel": "add"}], "machines": [{"id": "m/1"}]});
        assert_eq!(entries(&page).len(), 1);
        assert!(entries(&json!({"count": 0})).is_empty());
    }
}
