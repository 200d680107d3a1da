//! The index of resources by property (key and string value) that `$filter`s on properties read: a leaf
//! structure, kept up to date by the store ([`index`](super::index)).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::sim::query::{Filter, Op};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Resource paths by (property key, string value).
#[derive(Debug, Default, Clone)]
pub struct PropIndex {
    by_prop: FastMap<(String, String), FastSet<String>>,
    /// What each path is indexed under, to take it out when it changes.
    of_path: FastMap<String, Vec<(String, String)>>,
}

impl PropIndex {
    /// Takes `path` out of the index.
    pub(super) fn remove(&mut self, path: &str) {
        for prop in self.of_path.remove(path).unwrap_or_default() {
            if let Some(paths) = self.by_prop.get_mut(&prop) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_prop.remove(&prop);
                }
            }
        }
    }

    /// Indexes `path` under the string properties of its document `doc`.
    pub(super) fn add(&mut self, path: &str, doc: &Map<String, Value>) {
        let props: Vec<(String, String)> = doc
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
            .unwrap_or_default();
        for prop in &props {
            self.by_prop.entry(prop.clone()).or_default().insert(path.to_string());
        }
        if !props.is_empty() {
            self.of_path.insert(path.to_string(), props);
        }
    }

    /// The paths that can match `filter`, when the index can say (an equality on a property, in every branch of
    /// a disjunction); `None` when it cannot.
    pub(super) fn candidates<'a>(&'a self, filter: &Filter) -> Option<Vec<&'a String>> {
        match filter {
            Filter::Property(key, Op::Eq, value) => {
                Some(self.by_prop.get(&(key.clone(), value.clone())).map(|p| p.iter().collect()).unwrap_or_default())
            }
            Filter::And(parts) => parts.iter().filter_map(|p| self.candidates(p)).min_by_key(Vec::len),
            Filter::Or(parts) => {
                let mut all = Vec::new();
                for part in parts {
                    all.extend(self.candidates(part)?);
                }
                Some(all)
            }
            _ => None,
        }
    }
}
