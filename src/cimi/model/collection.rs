//! The generic collection: `{resourceURI, id, count, <entries>: [...], operations}`, where the entry array is
//! named after the item type (`machines`, `machineConfigurations`, `resourceMetadatas`, …).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
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

/// Read attribute by attribute, each entry typed as it comes: no JSON tree of the whole collection is built.
/// A repeated attribute keeps its last value.
impl<'de, T: Resource + DeserializeOwned> Deserialize<'de> for Collection<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CollectionVisitor(PhantomData))
    }
}

struct CollectionVisitor<T>(PhantomData<T>);

impl<'de, T: Resource + DeserializeOwned> Visitor<'de> for CollectionVisitor<T> {
    type Value = Collection<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Collection<T>, A::Error> {
        let mut c = Collection::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "resourceURI" => c.resource_uri = Some(map.next_value()?),
                "id" => c.id = Some(map.next_value()?),
                "count" => c.count = Some(map.next_value()?),
                "operations" => c.operations = map.next_value()?,
                k if k == T::COLLECTION_KEY => c.entries = map.next_value()?,
                _ => {
                    let v = map.next_value()?;
                    c.extra.insert(key, v);
                }
            }
        }
        Ok(c)
    }
}
