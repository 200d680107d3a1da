//! The store itself: every resource as a JSON document in its collection (with what is never served kept
//! aside), sub-collections, creation order and ids, the paths and hrefs that name them, and the lookups the
//! protocol needs (what a path names, a name, an ETag). The other rooms of the store add the operations.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::protocol::Target;
use super::schema::{COLLECTIONS, resource_metadata};
use crate::cimi::model::MetadataAttribute;
use crate::sim::catalog::Catalog;
use crate::sim::config::{JobRetention, Profile, Timing};

/// A hash map with a fast (non-cryptographic) hasher: paths are not attacker-chosen in a simulator.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with the same hasher.
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A map from paths to values that, when tracking is on, remembers which paths were written since the last
/// `take_dirty`: the journal of a persisted simulator writes only those (see [`persist`](super::persist)).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tracked<V> {
    pub(super) map: FastMap<String, V>,
    #[serde(skip)]
    dirty: Option<FastSet<String>>,
    /// When on, the paths written since the last `take_touched`: what an index of the values must look at again.
    #[serde(skip)]
    touched: Option<FastSet<String>>,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Tracked { map: FastMap::default(), dirty: None, touched: None }
    }
}

impl<V> Tracked<V> {
    fn mark(&mut self, key: &str) {
        for set in [&mut self.dirty, &mut self.touched].into_iter().flatten() {
            if !set.contains(key) {
                set.insert(key.to_string());
            }
        }
    }
    /// The value at a path.
    pub(super) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }
    /// Whether a path holds a value.
    pub(super) fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
    /// The value at a path, to change (the path is remembered as written).
    pub(super) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        if self.map.contains_key(key) {
            self.mark(key);
        }
        self.map.get_mut(key)
    }
    /// Sets the value at a path.
    pub(super) fn insert(&mut self, key: String, value: V) {
        self.mark(&key);
        self.map.insert(key, value);
    }
    /// Removes the value at a path.
    pub(super) fn remove(&mut self, key: &str) -> Option<V> {
        let out = self.map.remove(key);
        if out.is_some() {
            self.mark(key);
        }
        out
    }
    /// Every value, to change (every path is remembered as written).
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        for set in [&mut self.dirty, &mut self.touched].into_iter().flatten() {
            set.extend(self.map.keys().cloned());
        }
        self.map.values_mut()
    }
    /// Every path and value.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.map.iter()
    }
    /// Starts (or stops) remembering written paths.
    pub(super) fn track(&mut self, on: bool) {
        self.dirty = on.then(FastSet::default);
    }
    /// Starts remembering the paths written, for an index; returns false when it already did (true: an index
    /// must look at every path once).
    pub(super) fn watch_writes(&mut self) -> bool {
        let started = self.touched.is_none();
        if started {
            self.touched = Some(FastSet::default());
        }
        started
    }
    /// The paths written since the last `take_touched`, or `None` when writes are not watched.
    pub(super) fn touched(&self) -> Option<&FastSet<String>> {
        self.touched.as_ref()
    }
    /// The paths written since the last call, forgotten.
    pub(super) fn take_touched(&mut self) -> Vec<String> {
        self.touched.as_mut().map(|t| t.drain().collect()).unwrap_or_default()
    }
    /// The paths written since the last call (empty when tracking is off).
    pub(super) fn take_dirty(&mut self) -> Vec<String> {
        match &mut self.dirty {
            Some(d) => d.drain().collect(),
            None => Vec::new(),
        }
    }
}

/// One stored resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// The type name, e.g. `Machine`.
    pub type_name: String,
    /// The path of the collection it belongs to.
    pub coll: String,
    /// Creation order.
    pub seq: u64,
    /// The attributes served (without resourceURI, id and operations, which are rendered).
    pub doc: Map<String, Value>,
    /// Incremented on every change; the ETag.
    pub version: u64,
    /// Write-only attributes and simulator bookkeeping, never served.
    pub hidden: Map<String, Value>,
    /// Other collections listing it (a machine's meters are also in `meters`).
    #[serde(default)]
    pub also: Vec<String>,
    /// Its sub-collections (removed with it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subs: Vec<String>,
}

impl Stored {
    /// The `state` attribute, empty when there is none.
    pub(super) fn state(&self) -> &str {
        self.doc.get("state").and_then(Value::as_str).unwrap_or("")
    }
    /// A string kept aside (never served).
    pub(super) fn hidden_str(&self, key: &str) -> Option<&str> {
        self.hidden.get(key).and_then(Value::as_str)
    }
}

/// One collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Coll {
    /// The type of its entries.
    pub item_type: String,
    /// The resource it belongs to (sub-collections).
    pub owner: Option<String>,
    /// Its members, in creation order.
    pub members: BTreeMap<u64, String>,
}

/// One step of a pending transition (the Job engine that runs them is in `jobs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    /// Set the `state` of the resource at this path.
    State(String, String),
    /// Remove the resource at this path.
    Remove(String),
}

/// Transitions that complete a Job when done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The Job path, when Jobs are on.
    pub job: Option<String>,
    /// The steps with their due times.
    pub steps: Vec<(DateTime<Utc>, Step)>,
    /// How many steps there were.
    pub total: usize,
    /// The resources and the state each goes to if the Job fails or is stopped (a resource not listed stays as
    /// it is): the one made or changed, and any other the Job holds (a snapshot's source volume, CAPTURING while
    /// it runs). A state file written when a Job could hold only one resource reads as well.
    #[serde(deserialize_with = "revert_list")]
    pub revert: Vec<(String, String)>,
    /// Fail at the last step.
    pub fail: bool,
    /// Never advance (until stopped).
    pub hang: bool,
}

/// Reads `Pending.revert` as a list, or as the one pair (or `null`) that state files held before.
fn revert_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Revert {
        List(Vec<(String, String)>),
        One(Option<(String, String)>),
    }
    Ok(match Revert::deserialize(d)? {
        Revert::List(list) => list,
        Revert::One(one) => one.into_iter().collect(),
    })
}

/// The whole provider state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    /// The base URI (ends with `/`).
    pub base: String,
    /// The profile.
    pub profile: Profile,
    /// The timing.
    pub timing: Timing,
    /// Overrides the timing's range of one transition's duration, in milliseconds (in-process only, for tests
    /// that must see a transient state: `SimHandle::with_store(|s| s.step_millis = Some((300, 400)))`).
    #[serde(skip)]
    pub step_millis: Option<(u64, u64)>,
    #[serde(skip, default = "default_rng")]
    pub(super) rng: StdRng,
    pub(super) seq: u64,
    pub(super) resources: Tracked<Stored>,
    pub(super) colls: Tracked<Coll>,
    pub(super) pending: Vec<Pending>,
    pub(super) deleted: HashSet<String>,
    pub(super) credential_attrs: Vec<MetadataAttribute>,
    pub(super) cep: Map<String, Value>,
    pub(super) cep_version: u64,
    /// Parent Jobs waiting for their nested Jobs, with their system.
    #[serde(default)]
    pub(super) parents: Vec<(String, String)>,
    /// When finished Jobs were last pruned.
    #[serde(skip)]
    pub(super) last_prune: Option<DateTime<Utc>>,
    /// Which finished Jobs are kept (configuration, not state).
    #[serde(skip)]
    pub(super) retention: JobRetention,
    /// CloudEntryPoint collections left out of the CloudEntryPoint (configuration, not state).
    #[serde(skip)]
    pub(super) cep_omit: Vec<String>,
    /// When each meter collection was last sampled whole (for reads that inline samples).
    #[serde(skip)]
    pub(super) bulk_sampled: HashMap<String, DateTime<Utc>>,
    /// The resources by property (key and value), for `$filter`s on properties.
    #[serde(skip)]
    pub(super) props: super::props::PropIndex,
}

fn default_rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

/// The time of a change (the wall clock: transitions are due at wall-clock times).
pub(super) fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A timestamp as served (`xs:dateTime`, whole seconds, UTC).
pub(super) fn stamp(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The href of a reference `{"href": …}`, trimmed.
pub(super) fn href(v: &Value) -> Option<&str> {
    v.get("href").and_then(Value::as_str).map(str::trim)
}

impl Store {
    /// Leaves these collections (such as `meters` and `eventLogs`) out of the CloudEntryPoint, as providers do
    /// that serve monitoring only per resource; the resources keep their own `meters` and `eventLog`.
    pub fn set_cep_omit(&mut self, names: &[String]) {
        self.cep_omit = names.to_vec();
        self.cep_version += 1;
    }
}

impl Store {
    /// A fresh store with the catalog loaded.
    pub fn new(base: String, profile: Profile, timing: Timing, seed: u64, catalog: &Catalog) -> Store {
        let mut store = Store {
            base,
            profile,
            timing,
            step_millis: None,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            resources: Tracked::default(),
            colls: Tracked::default(),
            pending: Vec::new(),
            deleted: HashSet::new(),
            credential_attrs: catalog.credential_attributes.clone(),
            cep: Map::new(),
            cep_version: 1,
            parents: Vec::new(),
            last_prune: None,
            retention: JobRetention::default(),
            cep_omit: Vec::new(),
            bulk_sampled: HashMap::new(),
            props: Default::default(),
        };
        for (path, item) in COLLECTIONS {
            store
                .colls
                .insert(path.to_string(), Coll { item_type: item.to_string(), owner: None, members: BTreeMap::new() });
        }
        store.cep.insert("name".into(), json!("cimi-sim"));
        store.cep.insert("description".into(), json!("a simulated CIMI provider"));
        for (id, doc) in resource_metadata(&store.credential_attrs, store.profile.jobs()) {
            store.insert(&format!("resourceMetadata/{id}"), "ResourceMetadata", "resourceMetadata", doc);
        }
        for (coll, entries) in &catalog.collections {
            if !store.colls.contains_key(coll) {
                continue;
            }
            for entry in entries {
                let mut doc = entry.clone();
                let id =
                    doc.remove("id").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| store.next_id());
                doc.remove("resourceURI");
                let doc = store.absolutize(Value::Object(doc));
                if let Value::Object(doc) = doc {
                    let path = format!("{coll}/{id}");
                    let Some(type_name) = store.colls.get(coll).map(|c| c.item_type.clone()) else {
                        continue;
                    };
                    store.insert(&path, &type_name, coll, doc);
                }
            }
        }
        store
    }

    /// A write-only attribute of a resource (never served; for tests that prove it was kept).
    pub fn secret(&self, path: &str, name: &str) -> Option<Value> {
        self.resources.get(path)?.hidden.get(name).cloned()
    }

    /// Moves every href under a new base URI (a persisted store loaded by a simulator on another address).
    pub fn rebase(&mut self, base: &str) {
        if self.base == base {
            return;
        }
        let old = std::mem::replace(&mut self.base, base.to_string());
        fn walk(v: &mut Value, old: &str, new: &str) {
            match v {
                Value::String(s) => {
                    if let Some(rest) = s.strip_prefix(old) {
                        *s = format!("{new}{rest}");
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(|x| walk(x, old, new)),
                Value::Object(o) => o.values_mut().for_each(|x| walk(x, old, new)),
                _ => {}
            }
        }
        for st in self.resources.values_mut() {
            for v in st.doc.values_mut() {
                walk(v, &old, base);
            }
        }
    }

    /// Re-seeds the random choices (after loading a persisted store).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed.wrapping_add(self.seq));
    }

    /// A new id, unique in this store.
    pub(super) fn next_id(&mut self) -> String {
        self.seq += 1;
        self.seq.to_string()
    }

    /// The absolute URI of a path.
    pub fn abs(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The path of an href (absolute under the base, `/path` or relative), trimmed of whitespace.
    pub fn path_of(&self, href: &str) -> String {
        let h = href.trim();
        let p = h.strip_prefix(self.base.as_str()).unwrap_or(h);
        let p = p.strip_prefix(self.base.trim_end_matches('/')).unwrap_or(p);
        p.trim_start_matches('/').trim_end_matches('/').to_string()
    }

    /// Makes every relative href in a catalog document absolute.
    pub(super) fn absolutize(&self, v: Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, val) in map {
                    let val = if k == "href" {
                        match val {
                            Value::String(s) if !s.contains("://") && !s.starts_with('#') => {
                                Value::String(self.abs(s.trim_start_matches('/')))
                            }
                            other => other,
                        }
                    } else {
                        self.absolutize(val)
                    };
                    out.insert(k, val);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.absolutize(x)).collect()),
            other => other,
        }
    }

    /// Stores a new resource at `path`, a member of `coll`.
    pub(super) fn insert(&mut self, path: &str, type_name: &str, coll: &str, doc: Map<String, Value>) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(c) = self.colls.get_mut(coll) {
            c.members.insert(seq, path.to_string());
        }
        self.resources.insert(
            path.to_string(),
            Stored {
                type_name: type_name.to_string(),
                coll: coll.to_string(),
                seq,
                doc,
                version: 1,
                hidden: Map::new(),
                also: Vec::new(),
                subs: Vec::new(),
            },
        );
    }

    /// Creates the sub-collection `name` of `owner` (removed with it); returns its path.
    pub(super) fn add_sub_collection(&mut self, owner: &str, name: &str, item_type: &str) -> String {
        let path = format!("{owner}/{name}");
        if let Some(st) = self.resources.get_mut(owner)
            && !st.subs.contains(&path)
        {
            st.subs.push(path.clone());
        }
        self.colls.insert(
            path.clone(),
            Coll { item_type: item_type.to_string(), owner: Some(owner.to_string()), members: BTreeMap::new() },
        );
        path
    }

    /// Removes a resource, its sub-collections and their members.
    pub(super) fn remove(&mut self, path: &str) {
        let Some(st) = self.resources.remove(path) else {
            return;
        };
        if let Some(c) = self.colls.get_mut(&st.coll) {
            c.members.remove(&st.seq);
        }
        for other in &st.also {
            if let Some(c) = self.colls.get_mut(other) {
                c.members.remove(&st.seq);
            }
        }
        // Only the lenient profile needs to remember deleted paths (to answer 500 to a second DELETE); samples
        // and events come and go too often to be remembered.
        if self.profile == Profile::Lenient1x && !matches!(st.type_name.as_str(), "Sample" | "Event" | "Job") {
            self.deleted.insert(path.to_string());
        }
        // Entries of other collections that list it (a volume's images, a network's ports…).
        if let Some(Value::Array(entries)) = st.hidden.get("entries") {
            for e in entries.iter().filter_map(Value::as_str) {
                self.remove(e);
            }
        }
        for sub in st.subs {
            if let Some(c) = self.colls.remove(&sub) {
                for member in c.members.values() {
                    self.remove(member);
                }
            }
        }
    }

    /// What a path names.
    pub fn target(&self, path: &str) -> Target {
        if path.is_empty() {
            return Target::Cep;
        }
        if let Some(st) = self.resources.get(path) {
            return Target::Resource(st.type_name.clone());
        }
        if let Some(c) = self.colls.get(path) {
            return Target::Collection(c.item_type.clone());
        }
        // The lenient profile's attach href.
        if let Some(owner) = path.strip_suffix("/volumeAttachments")
            && self.colls.contains_key(&format!("{owner}/volumes"))
        {
            return Target::Collection("MachineVolume".into());
        }
        Target::Missing
    }

    /// Whether the path was deleted before (the lenient profile answers 500 to a second DELETE).
    pub fn was_deleted(&self, path: &str) -> bool {
        self.deleted.contains(path)
    }

    /// The name of the resource at a path.
    pub fn name_of(&self, path: &str) -> Option<String> {
        self.resources.get(path)?.doc.get("name")?.as_str().map(str::to_string)
    }

    /// The current ETag of a resource.
    pub fn etag(&self, path: &str) -> Option<String> {
        if path.is_empty() {
            return Some(format!("\"{}\"", self.cep_version));
        }
        self.resources.get(path).map(|s| format!("\"{}\"", s.version))
    }

    /// The names of the Credential attributes the catalog declares.
    pub(super) fn credential_attr_names(&self) -> Vec<String> {
        self.credential_attrs.iter().map(|a| a.name.clone()).collect()
    }

    /// Adds `{key: {href: target}}` to the collection `coll` and remembers the entry on `target`, so that the
    /// entry goes when the target does (see [`Store::remove`]).
    pub(super) fn add_entry(&mut self, coll: &str, item_type: &str, key: &str, target: &str) -> String {
        let id = self.next_id();
        let entry = format!("{coll}/{id}");
        let mut doc = Map::new();
        doc.insert(key.into(), json!({"href": self.abs(target)}));
        self.insert(&entry, item_type, coll, doc);
        if let Some(st) = self.resources.get_mut(target) {
            let list = st.hidden.entry("entries").or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                a.push(json!(entry));
            }
        }
        entry
    }
}

/// Trims whitespace around every href (the Primer writes `" http://…"`).
pub fn trim_hrefs(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("href", Value::String(s)) => (k, Value::String(s.trim().to_string())),
                    (_, v) => (k, trim_hrefs(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(trim_hrefs).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::Pending;

    /// A state file written before a Job could hold more than one resource still loads, with the same meaning.
    #[test]
    fn a_pending_transition_of_an_older_state_file_reads() {
        let read = |revert: &str| {
            let doc = format!(
                r#"{{"job": "jobs/7", "steps": [], "total": 0, "revert": {revert}, "fail": false, "hang": true}}"#
            );
            serde_json::from_str::<Pending>(&doc).map(|p| p.revert).map_err(|e| e.to_string())
        };
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(read(r#"["volumeImages/9", "ERROR"]"#), Ok(vec![pair("volumeImages/9", "ERROR")]));
        assert_eq!(read("null"), Ok(vec![]));
        assert_eq!(
            read(r#"[["volumeImages/9", "ERROR"], ["volumes/3", "AVAILABLE"]]"#),
            Ok(vec![pair("volumeImages/9", "ERROR"), pair("volumes/3", "AVAILABLE")])
        );
        assert!(read(r#""ERROR""#).is_err(), "anything else is refused");
    }
}
