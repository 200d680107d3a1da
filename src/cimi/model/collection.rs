//! The generic collection: `{resourceURI, id, count, <entries>: [...], operations}`, where the entry array is
//! named after the item type (`machines`, `machineConfigurations`, `resourceMetadatas`, …).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::common::{Operation, Resource};

/// A collection of `T`. `count` is the number of entries after `$filter` and before paging, so a client can
/// tell when a provider returned fewer entries than exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection<T> {
    /// The collection type URI, e.g. `…/cimi/1/MachineCollection`.
    pub resource_uri: Option<String>,
    /// The collection URI.
    pub id: Option<String>,
    /// How many entries match (after filtering, before paging).
    pub count: Option<i64>,
    /// The entries served (possibly a page of them).
    pub entries: Vec<T>,
    /// The operations allowed now, e.g. `add`.
    pub operations: Vec<Operation>,
    /// Unknown attributes.
    pub extra: Map<String, Value>,
}

impl<T> Default for Collection<T> {
    fn default() -> Self {
        Collection {
            resource_uri: None,
            id: None,
            count: None,
            entries: Vec::new(),
            operations: Vec::new(),
            extra: Map::new(),
        }
    }
}

impl<T: Resource + Serialize> Serialize for Collection<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = Map::new();
        if let Some(uri) = &self.resource_uri {
            map.insert("resourceURI".into(), Value::String(uri.clone()));
        }
        if let Some(id) = &self.id {
            map.insert("id".into(), Value::String(id.clone()));
        }
        if let Some(count) = self.count {
            map.insert("count".into(), Value::from(count));
        }
        if !self.entries.is_empty() {
            let entries = serde_json::to_value(&self.entries).map_err(serde::ser::Error::custom)?;
            map.insert(T::COLLECTION_KEY.into(), entries);
        }
        if !self.operations.is_empty() {
            let ops = serde_json::to_value(&self.operations).map_err(serde::ser::Error::custom)?;
            map.insert("operations".into(), ops);
        }
        for (k, v) in &self.extra {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
        map.serialize(serializer)
    }
}

impl<'de, T: Resource + DeserializeOwned> Deserialize<'de> for Collection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut map = Map::<String, Value>::deserialize(deserializer)?;
        let resource_uri = match map.remove("resourceURI") {
            Some(v) => Some(serde_json::from_value(v).map_err(D::Error::custom)?),
            None => None,
        };
        let id = match map.remove("id") {
            Some(v) => Some(serde_json::from_value(v).map_err(D::Error::custom)?),
            None => None,
        };
        let count = match map.remove("count") {
            Some(v) => Some(serde_json::from_value(v).map_err(D::Error::custom)?),
            None => None,
        };
        let entries = match map.remove(T::COLLECTION_KEY) {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => Vec::new(),
        };
        let operations = match map.remove("operations") {
            Some(v) => serde_json::from_value(v).map_err(D::Error::custom)?,
            None => Vec::new(),
        };
        Ok(Collection { resource_uri, id, count, entries, operations, extra: map })
    }
}
