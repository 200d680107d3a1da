//! The simulated provider's state: every resource as a JSON document in its collection, the pending state
//! transitions with their Jobs, and the operations of the protocol (read, create, edit, delete, actions).
//! Time advances lazily: every request first applies the transitions that are due.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::catalog::Catalog;
use super::config::{JobRetention, Profile, Timing};
use super::lifecycle::{self, ActionRefusal};
use super::query::{self, Filter, OrderKey};
pub use crate::sim::error::SimError;
use crate::sim::error::{bad, conflict, not_found};
mod monitor;
mod network;
pub mod persist;
mod system;

use crate::cimi::model::{self as m, MetadataAttribute, NS, Resource, action_name, action_uri, type_uri};

/// A hash map with a fast (non-cryptographic) hasher: paths are not attacker-chosen in a simulator.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with the same hasher.
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A map from paths to values that, when tracking is on, remembers which paths were written since the last
/// [`Tracked::take_dirty`]: the journal of a persisted simulator writes only those (see [`persist`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tracked<V> {
    map: FastMap<String, V>,
    #[serde(skip)]
    dirty: Option<FastSet<String>>,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Tracked { map: FastMap::default(), dirty: None }
    }
}

impl<V> Tracked<V> {
    fn mark(&mut self, key: &str) {
        if let Some(d) = &mut self.dirty
            && !d.contains(key)
        {
            d.insert(key.to_string());
        }
    }
    fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }
    fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }
    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        if self.map.contains_key(key) {
            self.mark(key);
        }
        self.map.get_mut(key)
    }
    fn insert(&mut self, key: String, value: V) {
        self.mark(&key);
        self.map.insert(key, value);
    }
    fn remove(&mut self, key: &str) -> Option<V> {
        let out = self.map.remove(key);
        if out.is_some() {
            self.mark(key);
        }
        out
    }
    fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        if let Some(d) = &mut self.dirty {
            d.extend(self.map.keys().cloned());
        }
        self.map.values_mut()
    }
    fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.map.iter()
    }
    /// Starts (or stops) remembering written paths.
    fn track(&mut self, on: bool) {
        self.dirty = on.then(FastSet::default);
    }
    /// The paths written since the last call (empty when tracking is off).
    fn take_dirty(&mut self) -> Vec<String> {
        match &mut self.dirty {
            Some(d) => d.drain().collect(),
            None => Vec::new(),
        }
    }
}

/// The top-level collections: CloudEntryPoint attribute (also the path) and item type.
pub const COLLECTIONS: &[(&str, &str)] = &[
    ("resourceMetadata", "ResourceMetadata"),
    ("systems", "System"),
    ("systemTemplates", "SystemTemplate"),
    ("machines", "Machine"),
    ("machineTemplates", "MachineTemplate"),
    ("machineConfigs", "MachineConfiguration"),
    ("machineImages", "MachineImage"),
    ("credentials", "Credential"),
    ("credentialTemplates", "CredentialTemplate"),
    ("volumes", "Volume"),
    ("volumeTemplates", "VolumeTemplate"),
    ("volumeConfigs", "VolumeConfiguration"),
    ("volumeImages", "VolumeImage"),
    ("networks", "Network"),
    ("networkTemplates", "NetworkTemplate"),
    ("networkConfigs", "NetworkConfiguration"),
    ("networkPorts", "NetworkPort"),
    ("networkPortTemplates", "NetworkPortTemplate"),
    ("networkPortConfigs", "NetworkPortConfiguration"),
    ("addresses", "Address"),
    ("addressTemplates", "AddressTemplate"),
    ("forwardingGroups", "ForwardingGroup"),
    ("forwardingGroupTemplates", "ForwardingGroupTemplate"),
    ("jobs", "Job"),
    ("meters", "Meter"),
    ("meterTemplates", "MeterTemplate"),
    ("meterConfigs", "MeterConfiguration"),
    ("eventLogs", "EventLog"),
    ("eventLogTemplates", "EventLogTemplate"),
];

/// Collections absent from the CloudEntryPoint when Jobs are off.
const JOB_ONLY: &[&str] = &["jobs", "meters", "meterTemplates", "meterConfigs", "eventLogs", "eventLogTemplates"];

/// Types created by POSTing the resource itself.
const BY_VALUE: &[&str] = &[
    "MachineTemplate",
    "MachineConfiguration",
    "MachineImage",
    "CredentialTemplate",
    "VolumeTemplate",
    "VolumeConfiguration",
    "VolumeImage",
    "NetworkTemplate",
    "NetworkConfiguration",
    "NetworkPortTemplate",
    "NetworkPortConfiguration",
    "AddressTemplate",
    "ForwardingGroupTemplate",
    "SystemTemplate",
    "MeterTemplate",
    "MeterConfiguration",
    "EventLogTemplate",
];

/// Types created from a template with `<Type>Create`.
const BY_TEMPLATE: &[&str] =
    &["Machine", "Credential", "Volume", "Network", "NetworkPort", "Address", "ForwardingGroup", "System"];

/// Attributes a consumer never writes.
const READ_ONLY: &[&str] = &["resourceURI", "id", "created", "updated", "operations", "state"];

/// Attribute names whose value is never returned (write-only).
const WRITE_ONLY: &[&str] = &["password"];

/// The MAC prefix of simulated interfaces (locally administered).
const MAC_PREFIX: &str = "02:c1:41";

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
    fn state(&self) -> &str {
        self.doc.get("state").and_then(Value::as_str).unwrap_or("")
    }
    fn hidden_str(&self, key: &str) -> Option<&str> {
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

/// One step of a pending transition.
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
    /// The resource and the state it goes to if the Job fails or is stopped (`None`: it stays as is).
    pub revert: Option<(String, String)>,
    /// Fail at the last step.
    pub fail: bool,
    /// Never advance (until stopped).
    pub hang: bool,
}

/// Fault flags that shape an operation's Job.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFault {
    /// The Job fails.
    pub fails: bool,
    /// The Job never finishes.
    pub hangs: bool,
}

/// What an operation answers.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// HTTP status (200, 201, 202, 204).
    pub status: u16,
    /// The body, if any.
    pub body: Option<Value>,
    /// The `Location` header.
    pub location: Option<String>,
    /// The `CIMI-Job-URI` header.
    pub job: Option<String>,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// Whether state changed.
    pub write: bool,
    /// The body already serialized as JSON (the fast path of a plain GET), instead of `body`.
    pub raw: Option<Vec<u8>>,
}

/// The query parameters of a read.
#[derive(Debug, Clone, Default)]
pub struct ReadQuery {
    /// `$filter`s (ANDed).
    pub filters: Vec<Filter>,
    /// `$select` names.
    pub select: Vec<String>,
    /// `$expand` names (`Some(empty)` = all).
    pub expand: Option<Vec<String>>,
    /// `$first`.
    pub first: Option<u64>,
    /// `$last`.
    pub last: Option<u64>,
    /// `$orderby`.
    pub orderby: Vec<OrderKey>,
    /// Serve at most this many entries (fault).
    pub truncate: Option<usize>,
    /// Ignore paging (lenient profile).
    pub ignore_paging: bool,
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The CloudEntryPoint.
    Cep,
    /// A resource of this type.
    Resource(String),
    /// A collection of this item type.
    Collection(String),
    /// Nothing.
    Missing,
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
    rng: StdRng,
    seq: u64,
    resources: Tracked<Stored>,
    colls: Tracked<Coll>,
    pending: Vec<Pending>,
    deleted: HashSet<String>,
    credential_attrs: Vec<MetadataAttribute>,
    cep: Map<String, Value>,
    cep_version: u64,
    /// Parent Jobs waiting for their nested Jobs, with their system.
    #[serde(default)]
    parents: Vec<(String, String)>,
    /// When finished Jobs were last pruned.
    #[serde(skip)]
    last_prune: Option<DateTime<Utc>>,
    /// Which finished Jobs are kept (configuration, not state).
    #[serde(skip)]
    retention: JobRetention,
}

fn default_rng() -> StdRng {
    StdRng::seed_from_u64(0)
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn stamp(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn href(v: &Value) -> Option<&str> {
    v.get("href").and_then(Value::as_str).map(str::trim)
}

fn parse_typed<T: DeserializeOwned + Resource>(v: &Value, allowed_extra: &[String]) -> Result<T, SimError> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| bad(format!("invalid {}: {e}", T::TYPE_NAME)))?;
    let unknown: Vec<&String> = t.extra().keys().filter(|k| !allowed_extra.contains(k)).collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(bad(format!("unknown attribute(s) for {}: {}", T::TYPE_NAME, names.join(", "))));
    }
    Ok(t)
}

/// Checks a document against the model of `type_name`: types of known attributes, and no unknown attribute
/// (except the allowed extension attributes).
pub fn validate(type_name: &str, v: &Value, allowed_extra: &[String]) -> Result<(), SimError> {
    macro_rules! check {
        ($($t:ident),*) => {
            match type_name {
                $(stringify!($t) => parse_typed::<m::$t>(v, allowed_extra).map(|_| ()),)*
                other => Err(bad(format!("{other} cannot be written"))),
            }
        };
    }
    check!(
        CloudEntryPoint,
        Machine,
        MachineTemplate,
        MachineConfiguration,
        MachineImage,
        MachineCreate,
        Credential,
        CredentialTemplate,
        CredentialCreate,
        MachineVolume,
        Volume,
        VolumeTemplate,
        VolumeConfiguration,
        VolumeImage,
        VolumeCreate,
        Network,
        NetworkTemplate,
        NetworkConfiguration,
        NetworkCreate,
        NetworkPort,
        NetworkPortTemplate,
        NetworkPortConfiguration,
        Address,
        AddressTemplate,
        AddressCreate,
        ForwardingGroup,
        ForwardingGroupTemplate,
        System,
        SystemTemplate,
        Job,
        Meter,
        MeterTemplate,
        MeterConfiguration,
        EventLog,
        EventLogTemplate,
        Action,
        SystemCreate,
        NetworkPortCreate,
        ForwardingGroupCreate,
        MeterCreate,
        EventLogCreate
    )
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
        };
        for (path, item) in COLLECTIONS {
            store
                .colls
                .insert(path.to_string(), Coll { item_type: item.to_string(), owner: None, members: BTreeMap::new() });
        }
        store.cep.insert("name".into(), json!("cimi-sim"));
        store.cep.insert("description".into(), json!("a simulated CIMI provider"));
        store.load_metadata();
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

    fn load_metadata(&mut self) {
        let cred = json!({
            "name": "Credential", "typeURI": type_uri("Credential"),
            "attributes": self.credential_attrs,
            "capabilities": [{"name": "CredentialTemplateByValue",
                "uri": m::capability_uri("Credential", "CredentialTemplateByValue")}]
        });
        let machine = json!({
            "name": "Machine", "typeURI": type_uri("Machine"),
            "capabilities": [
                {"name": "InitialStates", "uri": m::capability_uri("Machine", "InitialStates"),
                 "value": lifecycle::MACHINE_INITIAL_STATES.join(",")},
                {"name": "MachineConfigByValue", "uri": m::capability_uri("Machine", "MachineConfigByValue")},
                {"name": "MachineImageByValue", "uri": m::capability_uri("Machine", "MachineImageByValue")},
                {"name": "MachineCredentialByValue", "uri": m::capability_uri("Machine", "MachineCredentialByValue")},
                {"name": "MachineTemplateByValue", "uri": m::capability_uri("Machine", "MachineTemplateByValue")},
                {"name": "MachineStopForce", "uri": m::capability_uri("Machine", "MachineStopForce")},
                {"name": "MachineStopForceDefault", "uri": m::capability_uri("Machine", "MachineStopForceDefault"),
                 "value": "false"}
            ]
        });
        let volume = json!({
            "name": "Volume", "typeURI": type_uri("Volume"),
            "capabilities": [
                {"name": "VolumeConfigByValue", "uri": m::capability_uri("Volume", "VolumeConfigByValue")},
                {"name": "VolumeTemplateByValue", "uri": m::capability_uri("Volume", "VolumeTemplateByValue")},
                {"name": "SharedVolumeSupport", "uri": m::capability_uri("Volume", "SharedVolumeSupport"),
                 "value": "false"},
                {"name": "VolumeSnapshot", "uri": m::capability_uri("Volume", "VolumeSnapshot")}
            ]
        });
        let params = [
            "FilterParameter",
            "FirstParameter",
            "LastParameter",
            "SelectParameter",
            "ExpandParameter",
            "FormatParameter",
            "OrderByParameter",
            "QueryPathNotation",
        ];
        let caps: Vec<Value> =
            params.iter().map(|p| json!({"name": p, "uri": m::capability_uri("CloudEntryPoint", p)})).collect();
        let cep = json!({"name": "CloudEntryPoint", "typeURI": type_uri("CloudEntryPoint"), "capabilities": caps});
        let mut jobs = json!({"name": "Job", "typeURI": type_uri("Job"),
            "capabilities": [{"name": "JobRetention", "uri": m::capability_uri("Job", "JobRetention"),
                "value": "60"}]});
        if !self.profile.jobs()
            && let Some(o) = jobs.as_object_mut()
        {
            o.remove("capabilities");
        }
        for (id, doc) in
            [("Credential", cred), ("Machine", machine), ("Volume", volume), ("CloudEntryPoint", cep), ("Job", jobs)]
        {
            if let Value::Object(doc) = doc {
                self.insert(&format!("resourceMetadata/{id}"), "ResourceMetadata", "resourceMetadata", doc);
            }
        }
    }

    fn next_id(&mut self) -> String {
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
    fn absolutize(&self, v: Value) -> Value {
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

    fn insert(&mut self, path: &str, type_name: &str, coll: &str, doc: Map<String, Value>) {
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

    fn add_sub_collection(&mut self, owner: &str, name: &str, item_type: &str) -> String {
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
    fn remove(&mut self, path: &str) {
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

    // ----- time -----

    fn step_duration(&mut self) -> Duration {
        let (lo, hi) = self.step_millis.unwrap_or_else(|| self.timing.step_millis());
        let ms = if hi > lo { self.rng.random_range(lo..=hi) } else { lo };
        Duration::milliseconds(ms as i64)
    }

    /// Sets which finished Jobs are kept (and advertises the age, in minutes rounded up, as `JobRetention`).
    pub fn set_job_retention(&mut self, retention: JobRetention) {
        self.retention = retention;
        let minutes = retention.age.as_secs().div_ceil(60).to_string();
        if let Some(caps) = self
            .resources
            .get_mut("resourceMetadata/Job")
            .and_then(|st| st.doc.get_mut("capabilities"))
            .and_then(Value::as_array_mut)
        {
            for c in caps.iter_mut().filter(|c| c["name"] == "JobRetention") {
                c["value"] = json!(minutes);
            }
        }
    }

    /// Removes finished Jobs older than the retention age, and the oldest finished ones beyond the maximum
    /// count (at most once a second; the scan starts at the oldest Job and is bounded).
    fn prune_jobs(&mut self, at: DateTime<Utc>) {
        if self.last_prune.is_some_and(|t| at - t < Duration::seconds(1)) {
            return;
        }
        self.last_prune = Some(at);
        let Some(jobs) = self.colls.get("jobs") else {
            return;
        };
        let excess = jobs.members.len().saturating_sub(self.retention.max_jobs);
        let cutoff = at - Duration::milliseconds(self.retention.age.as_millis().min(i64::MAX as u128) as i64);
        let mut victims = Vec::new();
        for path in jobs.members.values().take(excess + 256) {
            let Some(st) = self.resources.get(path) else {
                continue;
            };
            if !matches!(st.state(), "SUCCESS" | "FAILED" | "STOPPED") {
                continue;
            }
            let expired = st
                .doc
                .get("timeOfStatusChange")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t < cutoff);
            if victims.len() < excess || expired {
                victims.push(path.clone());
            }
        }
        for v in victims {
            self.remove(&v);
        }
    }

    /// Applies every transition that is due.
    pub fn advance(&mut self, at: DateTime<Utc>) {
        self.prune_jobs(at);
        let mut pending = std::mem::take(&mut self.pending);
        let mut keep = Vec::new();
        for mut p in pending.drain(..) {
            if p.hang {
                keep.push(p);
                continue;
            }
            while let Some((due, _)) = p.steps.first() {
                if *due > at {
                    break;
                }
                if p.steps.len() == 1 && p.fail {
                    break;
                }
                let (_, step) = p.steps.remove(0);
                self.apply_step(&step, at);
            }
            if p.steps.len() == 1 && p.fail && p.steps[0].0 <= at {
                self.fail_pending(&p, at, "the provider failed the operation (injected fault)");
                continue;
            }
            if p.steps.is_empty() {
                if let Some(job) = &p.job {
                    self.set_job_state(job, "SUCCESS", 100, 0, "completed", at);
                }
            } else {
                let done = p.total - p.steps.len();
                let progress = (done * 100 / p.total.max(1)) as i64;
                if let Some(job) = p.job.clone() {
                    self.set_job_state(&job, "RUNNING", progress, 0, "running", at);
                }
                keep.push(p);
            }
        }
        keep.append(&mut self.pending);
        self.pending = keep;
        if !self.parents.is_empty() {
            self.check_parents(at);
        }
    }

    fn apply_step(&mut self, step: &Step, at: DateTime<Utc>) {
        match step {
            Step::State(path, state) => self.set_state(path, state),
            Step::Remove(path) => self.remove_resource(path, at),
        }
    }

    fn set_state(&mut self, path: &str, state: &str) {
        // The samples due so far belong to the state being left.
        if let Some(st) = self.resources.get(path)
            && st.type_name == "Machine"
            && st.state() != state
        {
            let running = st.state() == "STARTED";
            self.sample_machine(path, now(), running);
        }
        let mut previous = None;
        if let Some(st) = self.resources.get_mut(path) {
            previous = Some(st.state().to_string());
            st.doc.insert("state".into(), Value::String(state.to_string()));
            st.version += 1;
        }
        if let Some(previous) = previous {
            self.state_event(path, &previous, state);
        }
    }

    fn fail_pending(&mut self, p: &Pending, at: DateTime<Utc>, message: &str) {
        if let Some((path, state)) = &p.revert {
            self.set_state(path, state);
        }
        if let Some(job) = &p.job {
            self.set_job_state(job, "FAILED", 100, 1, message, at);
        }
    }

    fn set_job_state(&mut self, job: &str, state: &str, progress: i64, code: i64, message: &str, at: DateTime<Utc>) {
        if let Some(st) = self.resources.get_mut(job) {
            let changed = st.state() != state;
            st.doc.insert("state".into(), json!(state));
            st.doc.insert("progress".into(), json!(progress));
            st.doc.insert("returnCode".into(), json!(code));
            st.doc.insert("statusMessage".into(), json!(message));
            if changed {
                st.doc.insert("timeOfStatusChange".into(), stamp(at));
            }
            st.version += 1;
        }
    }

    /// Creates a Job (when Jobs are on) and schedules the steps; with instant timing (and no hang) everything
    /// is applied before returning. Returns the Job path.
    fn run_job(
        &mut self,
        action: &str,
        target: &str,
        affected: Vec<String>,
        walk: Vec<Step>,
        revert: Option<(String, String)>,
        fault: JobFault,
    ) -> Option<String> {
        let at = now();
        let job = if self.profile.jobs() {
            let id = self.next_id();
            let path = format!("jobs/{id}");
            let mut affected_refs: Vec<Value> = vec![json!({"href": target})];
            for a in &affected {
                if a != target {
                    affected_refs.push(json!({"href": a}));
                }
            }
            let doc = json!({
                "name": format!("{action} {}", self.path_of(target)),
                "created": stamp(at), "updated": stamp(at),
                "state": "RUNNING", "progress": 0, "returnCode": 0, "action": action,
                "targetResource": {"href": target}, "affectedResources": affected_refs,
                "statusMessage": "running", "timeOfStatusChange": stamp(at)
            });
            if let Value::Object(doc) = doc {
                self.insert(&path, "Job", "jobs", doc);
            }
            Some(path)
        } else {
            None
        };
        let total = walk.len();
        let mut due = at;
        let mut steps = Vec::new();
        for step in walk {
            due += self.step_duration();
            steps.push((due, step));
        }
        let p = Pending { job: job.clone(), steps, total, revert, fail: fault.fails, hang: fault.hangs };
        if self.timing == Timing::Instant && !p.hang {
            let n = p.steps.len();
            for (i, (_, step)) in p.steps.iter().enumerate() {
                if p.fail && i + 1 == n {
                    break;
                }
                self.apply_step(step, at);
            }
            if p.fail {
                self.fail_pending(&p, at, "the provider failed the operation (injected fault)");
            } else if let Some(job) = &job {
                self.set_job_state(job, "SUCCESS", 100, 0, "completed", at);
            }
        } else if p.steps.is_empty() && !p.hang && !p.fail {
            if let Some(job) = &job {
                self.set_job_state(job, "SUCCESS", 100, 0, "completed", at);
            }
        } else {
            self.pending.push(p);
        }
        job
    }

    /// Whether the Job at a path has finished.
    fn job_done(&self, job: &Option<String>) -> bool {
        job.as_ref()
            .and_then(|j| self.resources.get(j))
            .is_some_and(|st| matches!(st.state(), "SUCCESS" | "FAILED" | "STOPPED"))
    }

    /// Whether a resource has a transition in progress.
    fn busy(&self, path: &str) -> bool {
        self.pending.iter().any(|p| {
            p.steps.iter().any(|(_, s)| match s {
                Step::State(x, _) | Step::Remove(x) => x == path,
            })
        })
    }

    // ----- rendering -----

    /// The operations allowed now on a resource.
    fn operations(&self, path: &str, st: &Stored) -> Vec<Value> {
        let id = self.abs(path);
        let mut ops = Vec::new();
        let op = |rel: &str, href: &str| json!({"rel": rel, "href": href});
        let state = st.state();
        let lenient = self.profile == Profile::Lenient1x;
        let delete_ops = |ops: &mut Vec<Value>| {
            ops.push(op("delete", &id));
            if lenient {
                ops.push(op(&action_uri("delete"), &id));
            }
        };
        match st.type_name.as_str() {
            "Machine" => {
                if lifecycle::MACHINE_STABLE.contains(&state) {
                    ops.push(op("edit", &id));
                    delete_ops(&mut ops);
                }
                for a in lifecycle::machine_actions(state) {
                    if a == "capture" {
                        ops.push(op(&action_uri(a), &self.abs("machineImages")));
                    } else {
                        ops.push(op(&action_uri(a), &id));
                    }
                }
                if state == "STOPPING" {
                    ops.push(op(&action_uri("stop"), &id));
                }
            }
            "Network" | "NetworkPort" => {
                if matches!(state, "STARTED" | "STOPPED" | "ERROR") {
                    ops.push(op("edit", &id));
                    delete_ops(&mut ops);
                }
                for a in lifecycle::network_actions(state) {
                    ops.push(op(&action_uri(a), &id));
                }
            }
            "System" => {
                if !matches!(state, "CREATING" | "DELETING") {
                    ops.push(op("edit", &id));
                    delete_ops(&mut ops);
                }
                for a in self.system_actions(path) {
                    ops.push(op(&action_uri(a), &id));
                }
            }
            "Volume" => {
                if matches!(state, "AVAILABLE" | "ERROR") {
                    ops.push(op("edit", &id));
                    delete_ops(&mut ops);
                }
            }
            "Job" => {
                ops.push(op("edit", &id));
                delete_ops(&mut ops);
                if lifecycle::job_stoppable(state) {
                    ops.push(op(&action_uri("stop"), &id));
                }
            }
            "MachineNetworkInterface" => delete_ops(&mut ops),
            "ResourceMetadata"
            | "Disk"
            | "MachineNetworkInterfaceAddress"
            | "Meter"
            | "Sample"
            | "Event"
            | "EventLog" => {}
            "MachineVolume" => delete_ops(&mut ops),
            _ => {
                ops.push(op("edit", &id));
                delete_ops(&mut ops);
            }
        }
        ops
    }

    /// A resource as served.
    pub fn render(&self, path: &str, st: &Stored) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("resourceURI".into(), Value::String(type_uri(&st.type_name)));
        out.insert("id".into(), Value::String(self.abs(path)));
        for (k, v) in &st.doc {
            out.insert(k.clone(), v.clone());
        }
        if st.type_name == "System" {
            out.insert("state".into(), Value::String(self.system_state(path, st.state())));
        }
        let ops = self.operations(path, st);
        if !ops.is_empty() {
            out.insert("operations".into(), Value::Array(ops));
        }
        out
    }

    fn render_cep(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("resourceURI".into(), Value::String(type_uri("CloudEntryPoint")));
        out.insert("id".into(), Value::String(self.base.clone()));
        out.insert("baseURI".into(), Value::String(self.base.clone()));
        for (k, v) in &self.cep {
            out.insert(k.clone(), v.clone());
        }
        for (name, _) in COLLECTIONS {
            if !self.profile.jobs() && JOB_ONLY.contains(name) {
                continue;
            }
            out.insert(name.to_string(), json!({"href": self.abs(name)}));
        }
        out.insert("operations".into(), json!([{"rel": "edit", "href": self.base}]));
        out
    }

    fn collection_add_href(&self, path: &str, item_type: &str) -> Option<String> {
        let addable = match item_type {
            "MachineVolume" | "MachineNetworkInterface" => true,
            t => BY_VALUE.contains(&t) || BY_TEMPLATE.contains(&t),
        };
        if !addable {
            return None;
        }
        if item_type == "MachineVolume" && self.profile == Profile::Lenient1x {
            let owner = path.strip_suffix("/volumes").unwrap_or(path);
            return Some(self.abs(&format!("{owner}/volumeAttachments")));
        }
        Some(self.abs(path))
    }

    /// A collection as served, with the query applied.
    pub fn render_collection(&self, path: &str, q: &ReadQuery) -> Map<String, Value> {
        let Some(coll) = self.colls.get(path) else {
            return Map::new();
        };
        let rendered_attrs = ["id", "resourceURI", "operations"];
        let render_first = !q.orderby.is_empty()
            || coll.item_type == "System"
            || q.filters.iter().any(|f| rendered_attrs.iter().any(|a| f.mentions(a)));
        let (count, mut entries) = if render_first {
            let mut entries: Vec<Map<String, Value>> = coll
                .members
                .values()
                .filter_map(|p| self.resources.get(p).map(|st| self.render(p, st)))
                .filter(|doc| q.filters.iter().all(|f| f.matches(doc)))
                .collect();
            let count = entries.len();
            query::sort(&mut entries, &q.orderby);
            let range = if q.ignore_paging { 0..count } else { query::page_range(q.first, q.last, count) };
            (count, entries.drain(range).collect::<Vec<_>>())
        } else {
            // Filter on the stored attributes and render only the page served.
            let matching: Vec<(&String, &Stored)> = coll
                .members
                .values()
                .filter_map(|p| self.resources.get(p).map(|st| (p, st)))
                .filter(|(_, st)| q.filters.iter().all(|f| f.matches(&st.doc)))
                .collect();
            let count = matching.len();
            let range = if q.ignore_paging { 0..count } else { query::page_range(q.first, q.last, count) };
            let page = matching[range].iter().map(|(p, st)| self.render(p, st)).collect::<Vec<_>>();
            (count, page)
        };
        if let Some(max) = q.truncate {
            entries.truncate(max);
        }
        let key = m::xml_codec::entries_key(&coll.item_type);
        let coll_attrs = ["id", "count", "operations", key.as_str()];
        let selecting = !q.select.is_empty() && !q.select.iter().any(|s| s == "*");
        // Names that are not collection attributes apply to each entry, as do paths through the entries
        // (`machines/name`: path notation).
        let entry_names: Vec<String> = q
            .select
            .iter()
            .filter(|n| !coll_attrs.contains(&n.as_str()))
            .map(|n| n.strip_prefix(&format!("{key}/")).map_or_else(|| n.clone(), str::to_string))
            .collect();
        for e in &mut entries {
            if let Some(expand) = &q.expand {
                self.expand(e, expand);
            }
            if selecting && !entry_names.is_empty() {
                query::select(e, &entry_names);
            }
        }
        let mut out = Map::new();
        out.insert("resourceURI".into(), Value::String(type_uri(&format!("{}Collection", coll.item_type))));
        out.insert("id".into(), Value::String(self.abs(path)));
        out.insert("count".into(), json!(count));
        if !entries.is_empty() {
            out.insert(key.clone(), Value::Array(entries.into_iter().map(Value::Object).collect()));
        }
        if let Some(add) = self.collection_add_href(path, &coll.item_type) {
            out.insert("operations".into(), json!([{"rel": "add", "href": add}]));
        }
        if selecting {
            let keep: Vec<String> = q
                .select
                .iter()
                .filter(|n| coll_attrs.contains(&n.as_str()))
                .cloned()
                .chain((!entry_names.is_empty()).then(|| key.clone()))
                .collect();
            query::select(&mut out, &keep);
        }
        out
    }

    /// Inlines referenced resources and collections (`$expand`; empty or `*` = all).
    fn expand(&self, doc: &mut Map<String, Value>, names: &[String]) {
        let all = names.is_empty() || names.iter().any(|n| n == "*");
        let keys: Vec<String> = doc.keys().cloned().collect();
        for key in keys {
            if key == "operations" || (!all && !names.contains(&key)) {
                continue;
            }
            let Some(h) = doc.get(&key).and_then(href).map(str::to_string) else {
                continue;
            };
            let path = self.path_of(&h);
            let inline = match self.target(&path) {
                Target::Resource(_) => self.resources.get(&path).map(|st| self.render(&path, st)),
                Target::Collection(_) => Some(self.render_collection(&path, &ReadQuery::default())),
                _ => None,
            };
            if let Some(mut inline) = inline {
                inline.remove("id");
                inline.remove("resourceURI");
                inline.insert("href".into(), Value::String(h));
                doc.insert(key, Value::Object(inline));
            }
        }
    }

    /// GET of one resource in JSON without `$select` or `$expand`, serialized straight from the stored document
    /// (no intermediate map: the common request costs a third of the allocations). `None` when the fast path
    /// does not apply (no such resource, or a System, whose state is computed).
    pub fn read_json(&self, path: &str) -> Option<Outcome> {
        let st = self.resources.get(path).filter(|st| st.type_name != "System")?;
        let ops = self.operations(path, st);
        let view = JsonView { type_uri: type_uri(&st.type_name), id: self.abs(path), doc: &st.doc, ops: &ops };
        let raw = serde_json::to_vec(&view).ok()?;
        Some(Outcome { status: 200, etag: Some(format!("\"{}\"", st.version)), raw: Some(raw), ..Default::default() })
    }

    /// GET of any path.
    pub fn read(&self, path: &str, q: &ReadQuery) -> Result<Outcome, SimError> {
        let mut doc = match self.target(path) {
            Target::Cep => self.render_cep(),
            Target::Resource(_) => {
                let st = self.resources.get(path).ok_or_else(|| not_found(path))?;
                let mut d = self.render(path, st);
                if let Some(expand) = &q.expand {
                    self.expand(&mut d, expand);
                }
                d
            }
            Target::Collection(_) => {
                let real = if path.ends_with("/volumeAttachments") {
                    path.replace("/volumeAttachments", "/volumes")
                } else {
                    path.to_string()
                };
                return Ok(Outcome {
                    status: 200,
                    body: Some(Value::Object(self.render_collection(&real, q))),
                    ..Default::default()
                });
            }
            Target::Missing => return Err(not_found(path)),
        };
        query::select(&mut doc, &q.select);
        Ok(Outcome { status: 200, body: Some(Value::Object(doc)), etag: self.etag(path), ..Default::default() })
    }

    // ----- writes -----

    /// Resolves `{href, overrides…}` or a value into the attributes of a stored `expected_type` resource.
    fn resolve(&self, v: &Value, expected_type: &str) -> Result<Map<String, Value>, SimError> {
        let obj = v.as_object().ok_or_else(|| bad(format!("{expected_type} must be an object")))?;
        let Some(h) = obj.get("href").and_then(Value::as_str) else {
            return Ok(obj.clone());
        };
        let path = self.path_of(h);
        let st =
            self.resources.get(&path).ok_or_else(|| bad(format!("{expected_type} {} does not exist", h.trim())))?;
        if st.type_name != expected_type {
            return Err(bad(format!("{} is a {}, not a {expected_type}", h.trim(), st.type_name)));
        }
        let mut base = st.doc.clone();
        for (k, v) in &st.hidden {
            if WRITE_ONLY.contains(&k.as_str()) {
                base.insert(k.clone(), v.clone());
            }
        }
        for (k, val) in obj {
            if k == "href" {
                continue;
            }
            if val.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), val.clone());
            }
        }
        for k in ["created", "updated", "state", "name", "description", "properties"] {
            if !obj.contains_key(k) {
                base.remove(k);
            }
        }
        Ok(base)
    }

    fn credential_attr_names(&self) -> Vec<String> {
        self.credential_attrs.iter().map(|a| a.name.clone()).collect()
    }

    fn common_from(body: &Map<String, Value>, at: DateTime<Utc>) -> Map<String, Value> {
        let mut doc = Map::new();
        for k in ["name", "description", "properties"] {
            if let Some(v) = body.get(k).filter(|v| !m::is_empty_value(v)) {
                doc.insert(k.into(), v.clone());
            }
        }
        doc.insert("created".into(), stamp(at));
        doc.insert("updated".into(), stamp(at));
        doc
    }

    fn check_resource_uri(body: &Map<String, Value>, expected: &str) -> Result<(), SimError> {
        match body.get("resourceURI").and_then(Value::as_str) {
            Some(uri) if uri != type_uri(expected) => {
                Err(bad(format!("resourceURI {uri} is not {}", type_uri(expected))))
            }
            _ => Ok(()),
        }
    }

    /// POST to a collection.
    pub fn create(&mut self, coll_path: &str, body: &Value, fault: JobFault) -> Result<Outcome, SimError> {
        let coll_path = if let Some(owner) = coll_path.strip_suffix("/volumeAttachments") {
            format!("{owner}/volumes")
        } else {
            coll_path.to_string()
        };
        let item = self.colls.get(&coll_path).map(|c| c.item_type.clone()).ok_or_else(|| not_found(&coll_path))?;
        let obj = body.as_object().ok_or_else(|| bad("the body must be an object"))?;
        match item.as_str() {
            "Machine" => self.create_machine(obj, fault),
            "Credential" => self.create_credential(obj),
            "Volume" => self.create_volume(obj, fault),
            "Network" => self.create_network(obj, fault),
            "NetworkPort" => self.create_network_port(obj, fault),
            "ForwardingGroup" => self.create_forwarding_group(obj),
            "Address" => self.create_address(obj),
            "System" => self.create_system(obj, fault),
            "MachineVolume" => self.attach_volume(&coll_path, obj),
            "MachineNetworkInterface" => self.add_interface(&coll_path, obj),
            "MachineImage"
                if obj.get("imageLocation").and_then(|l| l.as_str().or_else(|| href(l))).is_some_and(
                    |l| matches!(self.target(&self.path_of(l)), Target::Resource(t) if t == "Machine"),
                ) =>
            {
                self.capture(obj, fault)
            }
            "VolumeImage"
                if obj
                    .get("imageLocation")
                    .and_then(|l| l.as_str().or_else(|| href(l)))
                    .is_some_and(|l| matches!(self.target(&self.path_of(l)), Target::Resource(t) if t == "Volume")) =>
            {
                self.snapshot_volume(obj, fault)
            }
            t if BY_VALUE.contains(&t) => self.create_by_value(&coll_path, t, obj),
            t => Err(SimError::new(405, format!("{t} resources cannot be created here"))),
        }
    }

    fn created(&self, path: &str, job: Option<String>) -> Outcome {
        let job_uri = job.as_ref().map(|j| self.abs(j));
        let done = job.is_none() && self.timing == Timing::Instant || self.job_done(&job);
        let st = self.resources.get(path);
        let busy = self.busy(path);
        if done || (job.is_none() && !busy) {
            Outcome {
                status: 201,
                body: st.map(|st| Value::Object(self.render(path, st))),
                location: Some(self.abs(path)),
                job: job_uri,
                etag: self.etag(path),
                write: true,
                raw: None,
            }
        } else {
            let body = job.as_ref().and_then(|j| self.resources.get(j).map(|st| Value::Object(self.render(j, st))));
            Outcome {
                status: 202,
                body,
                location: Some(self.abs(path)),
                job: job_uri,
                etag: None,
                write: true,
                raw: None,
            }
        }
    }

    fn create_by_value(&mut self, coll: &str, type_name: &str, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        Self::check_resource_uri(obj, type_name)?;
        validate(type_name, &Value::Object(obj.clone()), &[])?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        for (k, v) in obj {
            if !READ_ONLY.contains(&k.as_str()) && !doc.contains_key(k) && !v.is_null() {
                doc.insert(k.clone(), trim_hrefs(v.clone()));
            }
        }
        if matches!(type_name, "MachineImage" | "VolumeImage") {
            doc.insert("state".into(), json!("AVAILABLE"));
        }
        if type_name == "MachineImage" && !doc.contains_key("type") {
            doc.insert("type".into(), json!("IMAGE"));
        }
        let id = self.next_id();
        let path = format!("{coll}/{id}");
        self.insert(&path, type_name, coll, doc);
        let job = self.run_job("add", &self.abs(coll), vec![self.abs(&path)], vec![], None, JobFault::default());
        Ok(self.created(&path, job))
    }

    fn template_of(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        template_type: &str,
        create_type: &str,
    ) -> Result<Map<String, Value>, SimError> {
        Self::check_resource_uri(obj, create_type)?;
        validate(create_type, &Value::Object(obj.clone()), &[])?;
        let t = obj.get(key).ok_or_else(|| bad(format!("{create_type} needs {key}")))?;
        let tmpl = self.resolve(t, template_type)?;
        let extra = if template_type == "CredentialTemplate" { self.credential_attr_names() } else { vec![] };
        validate(template_type, &Value::Object(tmpl.clone()), &extra)?;
        Ok(tmpl)
    }

    fn create_credential(&mut self, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "credentialTemplate", "CredentialTemplate", "CredentialCreate")?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        let mut hidden = Map::new();
        for attr in &self.credential_attrs {
            match tmpl.get(&attr.name) {
                Some(v) if !v.is_null() => {
                    if WRITE_ONLY.contains(&attr.name.as_str()) {
                        hidden.insert(attr.name.clone(), v.clone());
                    } else {
                        doc.insert(attr.name.clone(), v.clone());
                    }
                }
                _ if attr.required == Some(true) => {
                    return Err(bad(format!("the Credential attribute {} is required", attr.name)));
                }
                _ => {}
            }
        }
        let id = self.next_id();
        let path = format!("credentials/{id}");
        self.insert(&path, "Credential", "credentials", doc);
        if let Some(st) = self.resources.get_mut(&path) {
            st.hidden = hidden;
        }
        let job =
            self.run_job("add", &self.abs("credentials"), vec![self.abs(&path)], vec![], None, JobFault::default());
        Ok(self.created(&path, job))
    }

    fn create_machine(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "machineTemplate", "MachineTemplate", "MachineCreate")?;
        let config = tmpl
            .get("machineConfig")
            .ok_or_else(|| bad("the machine template needs a machineConfig"))
            .and_then(|c| self.resolve(c, "MachineConfiguration"))?;
        validate("MachineConfiguration", &Value::Object(config.clone()), &[])?;
        let image = tmpl.get("machineImage").ok_or_else(|| bad("the machine template needs a machineImage"))?;
        let image = self.resolve(image, "MachineImage")?;
        validate("MachineImage", &Value::Object(image.clone()), &[])?;
        if let Some(cred) = tmpl.get("credential") {
            let cred = self.resolve(cred, "Credential")?;
            validate("Credential", &Value::Object(cred), &self.credential_attr_names())?;
        }
        let initial = tmpl.get("initialState").and_then(Value::as_str).unwrap_or("STOPPED").to_string();
        let walk = lifecycle::machine_create_walk(&initial)
            .ok_or_else(|| bad(format!("{initial} is not a state a machine can be created into")))?;
        // Volumes and networks must be usable before anything is created.
        let mut attach = Vec::new();
        for v in tmpl.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            let h = href(v).ok_or_else(|| bad("a template volume needs an href"))?;
            let vp = self.path_of(h);
            self.check_attachable(&vp)?;
            attach.push((vp, v.get("initialLocation").cloned()));
        }
        let mut nets = Vec::new();
        for nic in tmpl.get("networkInterfaces").and_then(Value::as_array).into_iter().flatten() {
            let h = nic.get("network").and_then(href).ok_or_else(|| bad("a network interface needs a network"))?;
            let np = self.path_of(h);
            match self.resources.get(&np) {
                Some(st) if st.type_name == "Network" => {}
                _ => return Err(bad(format!("network {h} does not exist"))),
            }
            nets.push((np, nic.clone()));
        }
        let at = now();
        let id = self.next_id();
        let path = format!("machines/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        for k in ["cpu", "memory", "cpuArch", "cpuSpeed"] {
            if let Some(v) = config.get(k) {
                doc.insert(k.into(), v.clone());
            }
        }
        for sub in ["disks", "volumes", "networkInterfaces"] {
            doc.insert(sub.into(), json!({"href": self.abs(&format!("{path}/{sub}"))}));
        }
        self.insert(&path, "Machine", "machines", doc);
        if let (Some(st), Some(ud)) = (self.resources.get_mut(&path), tmpl.get("userData")) {
            st.hidden.insert("userData".into(), ud.clone());
        }
        let disks = self.add_sub_collection(&path, "disks", "Disk");
        self.add_sub_collection(&path, "volumes", "MachineVolume");
        let nics = self.add_sub_collection(&path, "networkInterfaces", "MachineNetworkInterface");
        for (i, d) in config.get("disks").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let mut disk = Map::new();
            for k in ["capacity", "format"] {
                if let Some(v) = d.get(k) {
                    disk.insert(k.into(), v.clone());
                }
            }
            let loc = d
                .get("initialLocation")
                .cloned()
                .unwrap_or_else(|| json!(format!("/dev/vd{}", (b'a' + (i as u8 % 26)) as char)));
            disk.insert("initialLocation".into(), loc);
            let dp = format!("{disks}/{}", i + 1);
            self.insert(&dp, "Disk", &disks, disk);
        }
        let mut affected = vec![self.abs(&path)];
        for (vp, loc) in attach {
            let mv = self.do_attach(&path, &vp, loc);
            affected.push(self.abs(&mv));
        }
        for (i, (np, nic)) in nets.into_iter().enumerate() {
            let nicp = self.add_nic(&path, &nics, i + 1, &np, &nic);
            affected.push(self.abs(&nicp));
        }
        self.monitor_new(&path);
        let steps: Vec<Step> = walk.iter().map(|s| Step::State(path.clone(), s.to_string())).collect();
        let revert = Some((path.clone(), "ERROR".to_string()));
        let job = self.run_job("add", &self.abs("machines"), affected, steps, revert, fault);
        Ok(self.created(&path, job))
    }

    fn add_nic(&mut self, machine: &str, nics: &str, n: usize, net: &str, tmpl: &Value) -> String {
        let (subnet, host, mtu) = {
            let st = self.resources.get_mut(net);
            let (subnet, host, mtu) = match st {
                Some(st) => {
                    let subnet = st.hidden.get("subnet").and_then(Value::as_u64).unwrap_or(0);
                    let host = st.hidden.get("nextHost").and_then(Value::as_u64).unwrap_or(2);
                    st.hidden.insert("nextHost".into(), json!(host + 1));
                    let users = st.hidden.get("users").and_then(Value::as_u64).unwrap_or(0);
                    st.hidden.insert("users".into(), json!(users + 1));
                    (subnet, host, st.doc.get("mtu").cloned())
                }
                None => (0, 2, None),
            };
            (subnet, host, mtu)
        };
        let ip = format!("10.{}.{}.{}", 10 + subnet / 256, subnet % 256, host % 254);
        let gateway = format!("10.{}.{}.1", 10 + subnet / 256, subnet % 256);
        let at = now();
        let aid = self.next_id();
        let addr_path = format!("addresses/{aid}");
        let addr = json!({
            "name": ip, "created": stamp(at), "updated": stamp(at), "ip": ip, "allocation": "dynamic",
            "protocol": "IPv4", "mask": "255.255.255.0", "defaultGateway": gateway,
            "network": {"href": self.abs(net)}, "resource": {"href": self.abs(machine)}
        });
        if let Value::Object(addr) = addr {
            self.insert(&addr_path, "Address", "addresses", addr);
        }
        let mac_n: u32 = self.rng.random_range(0..0x00ff_ffff);
        let mac = format!("{MAC_PREFIX}:{:02x}:{:02x}:{:02x}", (mac_n >> 16) & 0xff, (mac_n >> 8) & 0xff, mac_n & 0xff);
        let nic_path = format!("{nics}/{n}");
        let mut nic = Map::new();
        nic.insert("network".into(), json!({"href": self.abs(net)}));
        nic.insert("state".into(), tmpl.get("state").cloned().unwrap_or_else(|| json!("ACTIVE")));
        nic.insert("macAddress".into(), json!(mac));
        if let Some(mtu) = tmpl.get("mtu").cloned().or(mtu) {
            nic.insert("mtu".into(), mtu);
        }
        nic.insert("addresses".into(), json!({"href": self.abs(&format!("{nic_path}/addresses"))}));
        self.insert(&nic_path, "MachineNetworkInterface", nics, nic);
        let addrs = self.add_sub_collection(&nic_path, "addresses", "MachineNetworkInterfaceAddress");
        let entry = json!({"address": {"href": self.abs(&addr_path)}});
        if let Value::Object(entry) = entry {
            self.insert(&format!("{addrs}/1"), "MachineNetworkInterfaceAddress", &addrs, entry);
        }
        if let Some(st) = self.resources.get_mut(&nic_path) {
            st.hidden.insert("address".into(), json!(addr_path));
            st.hidden.insert("network".into(), json!(net));
        }
        nic_path
    }

    /// POST of a MachineNetworkInterface to a machine's `networkInterfaces`: a new interface, with an
    /// address, on an existing network.
    fn add_interface(&mut self, coll: &str, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        Self::check_resource_uri(obj, "MachineNetworkInterface")?;
        let machine = coll.strip_suffix("/networkInterfaces").unwrap_or(coll).to_string();
        let state = self.resources.get(&machine).map(|s| s.state().to_string()).unwrap_or_default();
        if matches!(state.as_str(), "CREATING" | "DELETING") {
            return Err(conflict(format!("the machine is {state}")));
        }
        let h = obj.get("network").and_then(href).ok_or_else(|| bad("a network interface needs network.href"))?;
        let np = self.path_of(h);
        match self.resources.get(&np) {
            Some(st) if st.type_name == "Network" => {}
            _ => return Err(bad(format!("network {h} does not exist"))),
        }
        let n: usize = self.next_id().parse().unwrap_or_default();
        let path = self.add_nic(&machine, coll, n, &np, &Value::Object(obj.clone()));
        let job = self.run_job(
            "add",
            &self.abs(coll),
            vec![self.abs(&path), self.abs(&np)],
            vec![],
            None,
            JobFault::default(),
        );
        Ok(self.created(&path, job))
    }

    /// Frees what an interface holds: its address, and its place among the network's users.
    fn release_interface(&mut self, nic: &str) {
        let (addr, net) = match self.resources.get(nic) {
            Some(s) => (s.hidden_str("address").map(str::to_string), s.hidden_str("network").map(str::to_string)),
            None => (None, None),
        };
        if let Some(a) = addr {
            self.remove(&a);
        }
        if let Some(n) = net.and_then(|n| self.resources.get_mut(&n)) {
            let users = n.hidden.get("users").and_then(Value::as_u64).unwrap_or(1);
            n.hidden.insert("users".into(), json!(users.saturating_sub(1)));
        }
    }

    fn check_attachable(&self, volume: &str) -> Result<(), SimError> {
        let st = self
            .resources
            .get(volume)
            .filter(|s| s.type_name == "Volume")
            .ok_or_else(|| bad(format!("volume /{volume} does not exist")))?;
        if st.state() != "AVAILABLE" {
            return Err(conflict(format!("volume /{volume} is {}, not AVAILABLE", st.state())));
        }
        if st.hidden_str("attachedTo").is_some() {
            return Err(conflict(format!("volume /{volume} is already attached (volumes are not shared)")));
        }
        Ok(())
    }

    fn do_attach(&mut self, machine: &str, volume: &str, loc: Option<Value>) -> String {
        let coll = format!("{machine}/volumes");
        let id = self.next_id();
        let path = format!("{coll}/{id}");
        let mut doc = Map::new();
        if let Some(loc) = loc.filter(|l| !l.is_null()) {
            doc.insert("initialLocation".into(), loc);
        }
        doc.insert("volume".into(), json!({"href": self.abs(volume)}));
        self.insert(&path, "MachineVolume", &coll, doc);
        if let Some(st) = self.resources.get_mut(volume) {
            st.hidden.insert("attachedTo".into(), json!(path));
        }
        path
    }

    fn attach_volume(&mut self, coll: &str, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        Self::check_resource_uri(obj, "MachineVolume")?;
        validate("MachineVolume", &Value::Object(obj.clone()), &[])?;
        let machine = coll.strip_suffix("/volumes").unwrap_or(coll).to_string();
        let state = self.resources.get(&machine).map(|s| s.state().to_string()).unwrap_or_default();
        if matches!(state.as_str(), "CREATING" | "DELETING") {
            return Err(conflict(format!("the machine is {state}")));
        }
        let h = obj.get("volume").and_then(href).ok_or_else(|| bad("a MachineVolume needs volume.href"))?;
        let vp = self.path_of(h);
        self.check_attachable(&vp)?;
        let path = self.do_attach(&machine, &vp, obj.get("initialLocation").cloned());
        let job = self.run_job(
            "add",
            &self.abs(coll),
            vec![self.abs(&path), self.abs(&vp)],
            vec![],
            None,
            JobFault::default(),
        );
        Ok(self.created(&path, job))
    }

    fn create_volume(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "volumeTemplate", "VolumeTemplate", "VolumeCreate")?;
        let config = tmpl
            .get("volumeConfig")
            .ok_or_else(|| bad("the volume template needs a volumeConfig"))
            .and_then(|c| self.resolve(c, "VolumeConfiguration"))?;
        validate("VolumeConfiguration", &Value::Object(config.clone()), &[])?;
        let capacity = config.get("capacity").cloned().ok_or_else(|| bad("the volume config needs a capacity"))?;
        let bootable = match tmpl.get("volumeImage") {
            Some(img) => self.resolve(img, "VolumeImage")?.get("bootable").cloned().unwrap_or(json!(false)),
            None => json!(false),
        };
        let image = tmpl.get("volumeImage").and_then(href).map(|h| self.path_of(h));
        let at = now();
        let id = self.next_id();
        let path = format!("volumes/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        doc.insert("type".into(), config.get("type").cloned().unwrap_or_else(|| json!(format!("{NS}/mapped"))));
        doc.insert("capacity".into(), capacity);
        doc.insert("bootable".into(), bootable);
        doc.insert("images".into(), json!({"href": self.abs(&format!("{path}/images"))}));
        self.insert(&path, "Volume", "volumes", doc);
        let images = self.add_sub_collection(&path, "images", "VolumeVolumeImage");
        if let Some(image) = image {
            self.add_entry(&images, "VolumeVolumeImage", "volumeImage", &image);
        }
        self.monitor_new(&path);
        let steps = vec![Step::State(path.clone(), "AVAILABLE".into())];
        let job = self.run_job(
            "add",
            &self.abs("volumes"),
            vec![self.abs(&path)],
            steps,
            Some((path.clone(), "ERROR".into())),
            fault,
        );
        Ok(self.created(&path, job))
    }

    fn create_network(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "networkTemplate", "NetworkTemplate", "NetworkCreate")?;
        let config = match tmpl.get("networkConfig") {
            Some(c) => self.resolve(c, "NetworkConfiguration")?,
            None => Map::new(),
        };
        validate("NetworkConfiguration", &Value::Object(config.clone()), &[])?;
        let initial = tmpl.get("initialState").and_then(Value::as_str).unwrap_or("STARTED").to_string();
        let walk: Vec<&str> = match initial.as_str() {
            "STARTED" => vec!["STARTING", "STARTED"],
            "STOPPED" => vec!["STOPPED"],
            other => {
                return Err(bad(format!("{other} is not a state a network can be created into")));
            }
        };
        let at = now();
        let id = self.next_id();
        let path = format!("networks/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        for k in ["networkType", "mtu", "classOfService"] {
            if let Some(v) = config.get(k) {
                doc.insert(k.into(), v.clone());
            }
        }
        let group = match tmpl.get("forwardingGroup").and_then(href) {
            Some(h) => {
                let g = self.path_of(h);
                match self.resources.get(&g) {
                    Some(st) if st.type_name == "ForwardingGroup" => Some(g),
                    _ => return Err(bad(format!("forwarding group {h} does not exist"))),
                }
            }
            None => None,
        };
        doc.insert("networkPorts".into(), json!({"href": self.abs(&format!("{path}/networkPorts"))}));
        if let Some(g) = &group {
            doc.insert("forwardingGroup".into(), json!({"href": self.abs(g)}));
        }
        let subnet = self.colls.get("networks").map(|c| c.members.len()).unwrap_or(0) as u64 + self.seq % 7;
        self.insert(&path, "Network", "networks", doc);
        self.add_sub_collection(&path, "networkPorts", "NetworkNetworkPort");
        if let Some(g) = group {
            self.add_entry(&format!("{g}/networks"), "ForwardingGroupNetwork", "network", &path);
        }
        if let Some(st) = self.resources.get_mut(&path) {
            st.hidden.insert("subnet".into(), json!(subnet));
        }
        self.monitor_new(&path);
        let steps = walk.iter().map(|s| Step::State(path.clone(), s.to_string())).collect();
        let job = self.run_job(
            "add",
            &self.abs("networks"),
            vec![self.abs(&path)],
            steps,
            Some((path.clone(), "ERROR".into())),
            fault,
        );
        Ok(self.created(&path, job))
    }

    fn create_address(&mut self, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "addressTemplate", "AddressTemplate", "AddressCreate")?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        for (k, v) in tmpl {
            if !READ_ONLY.contains(&k.as_str()) && !matches!(k.as_str(), "name" | "description" | "properties") {
                doc.insert(k, trim_hrefs(v));
            }
        }
        let id = self.next_id();
        let path = format!("addresses/{id}");
        self.insert(&path, "Address", "addresses", doc);
        let job = self.run_job("add", &self.abs("addresses"), vec![self.abs(&path)], vec![], None, JobFault::default());
        Ok(self.created(&path, job))
    }

    fn capture(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        validate("MachineImage", &Value::Object(obj.clone()), &[])?;
        let loc = obj.get("imageLocation").and_then(|l| l.as_str().or_else(|| href(l))).unwrap_or_default();
        let machine = self.path_of(loc);
        let state = self.resources.get(&machine).map(|s| s.state().to_string()).unwrap_or_default();
        lifecycle::machine_walk(&state, "capture", false)
            .map_err(|_| conflict(format!("capture is not allowed while the machine is {state}")))?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        doc.insert("type".into(), obj.get("type").cloned().unwrap_or_else(|| json!("IMAGE")));
        doc.insert("imageLocation".into(), json!({"href": self.abs(&machine)}));
        let id = self.next_id();
        let path = format!("machineImages/{id}");
        self.insert(&path, "MachineImage", "machineImages", doc);
        let steps = vec![Step::State(path.clone(), "AVAILABLE".into())];
        let affected = vec![self.abs(&path)];
        let job = self.run_job(
            &action_uri("capture"),
            &self.abs(&machine),
            affected,
            steps,
            Some((path.clone(), "ERROR".into())),
            fault,
        );
        Ok(self.created(&path, job))
    }

    /// The attributes of a type a consumer may write with PUT.
    fn writable(&self, type_name: &str, allowed_in_body: &Map<String, Value>) -> Vec<String> {
        let mut names: Vec<String> = vec!["name".into(), "description".into(), "properties".into()];
        if type_name == "Credential" {
            names.extend(self.credential_attr_names());
        } else if BY_VALUE.contains(&type_name) {
            names.extend(allowed_in_body.keys().filter(|k| !READ_ONLY.contains(&k.as_str())).cloned());
        }
        names
    }

    /// PUT of a resource (full, or partial with `$select`).
    pub fn update(&mut self, path: &str, body: &Value, select: Option<&[String]>) -> Result<Outcome, SimError> {
        let obj = body.as_object().ok_or_else(|| bad("the body must be an object"))?;
        let at = now();
        if path.is_empty() {
            return self.update_cep(obj, select);
        }
        let (type_name, existing) = match self.resources.get(path) {
            Some(st) => (st.type_name.clone(), st.doc.clone()),
            None => return Err(not_found(path)),
        };
        Self::check_resource_uri(obj, &type_name)?;
        let extra = if type_name == "Credential" { self.credential_attr_names() } else { vec![] };
        validate(&type_name, body, &extra)?;
        if type_name == "Machine" {
            let state = existing.get("state").and_then(Value::as_str).unwrap_or("");
            if !lifecycle::MACHINE_STABLE.contains(&state) {
                return Err(conflict(format!("the machine cannot be edited while {state}")));
            }
        }
        let mut candidates = existing.clone();
        for (k, v) in obj {
            candidates.insert(k.clone(), v.clone());
        }
        let writable = self.writable(&type_name, &candidates);
        let names: Vec<String> = match select {
            Some(sel) if !sel.iter().any(|s| s == "*") => {
                for k in obj.keys() {
                    if k != "resourceURI" && k != "id" && !sel.contains(k) {
                        return Err(bad(format!("{k} is in the body but not in $select")));
                    }
                }
                sel.iter().filter(|s| writable.contains(s)).cloned().collect()
            }
            _ => writable.clone(),
        };
        let partial = select.is_some_and(|s| !s.iter().any(|x| x == "*"));
        let Some(st) = self.resources.get_mut(path) else {
            return Err(not_found(path));
        };
        for name in &names {
            let is_secret = WRITE_ONLY.contains(&name.as_str()) && type_name == "Credential";
            match obj.get(name).filter(|v| !v.is_null()) {
                Some(v) if is_secret => {
                    st.hidden.insert(name.clone(), v.clone());
                }
                Some(v) => {
                    st.doc.insert(name.clone(), trim_hrefs(v.clone()));
                }
                None if is_secret && !partial => {}
                None if is_secret => {
                    st.hidden.remove(name);
                }
                None => {
                    st.doc.remove(name);
                }
            }
        }
        st.doc.insert("updated".into(), stamp(at));
        st.version += 1;
        self.model_event(path, "update");
        let job = self.run_job("edit", &self.abs(path), vec![], vec![], None, JobFault::default());
        let mut out = self.read(path, &ReadQuery::default())?;
        if partial && let (Some(Value::Object(doc)), Some(sel)) = (&mut out.body, select) {
            query::select(doc, sel);
        }
        out.job = job.map(|j| self.abs(&j));
        out.write = true;
        Ok(out)
    }

    fn update_cep(&mut self, obj: &Map<String, Value>, select: Option<&[String]>) -> Result<Outcome, SimError> {
        validate("CloudEntryPoint", &Value::Object(obj.clone()), &[])?;
        let names: Vec<String> = match select {
            Some(sel) => {
                sel.iter().filter(|s| ["name", "description", "properties"].contains(&s.as_str())).cloned().collect()
            }
            None => vec!["name".into(), "description".into(), "properties".into()],
        };
        for n in names {
            match obj.get(&n).filter(|v| !v.is_null()) {
                Some(v) => {
                    self.cep.insert(n, v.clone());
                }
                None => {
                    self.cep.remove(&n);
                }
            }
        }
        self.cep_version += 1;
        let job = self.run_job("edit", &self.base.clone(), vec![], vec![], None, JobFault::default());
        let mut out = self.read("", &ReadQuery::default())?;
        out.job = job.map(|j| self.abs(&j));
        out.write = true;
        Ok(out)
    }

    /// DELETE of a resource.
    pub fn delete(&mut self, path: &str, fault: JobFault) -> Result<Outcome, SimError> {
        let st = self.resources.get(path).ok_or_else(|| not_found(path))?;
        let type_name = st.type_name.clone();
        let state = st.state().to_string();
        let target = self.abs(path);
        match type_name.as_str() {
            "ResourceMetadata" | "Disk" | "MachineNetworkInterfaceAddress" => {
                Err(SimError::new(405, format!("{type_name} entries cannot be deleted")))
            }
            "MachineNetworkInterface" => {
                self.release_interface(path);
                self.remove(path);
                let job = self.run_job("delete", &target, vec![], vec![], None, JobFault::default());
                Ok(self.accepted(job, 200))
            }
            "MachineVolume" => {
                let vol = st.doc.get("volume").and_then(href).map(|h| self.path_of(h));
                let coll = st.coll.clone();
                self.remove(path);
                if let Some(v) = vol.and_then(|v| self.resources.get_mut(&v)) {
                    v.hidden.remove("attachedTo");
                }
                let job = self.run_job("delete", &target, vec![], vec![], None, JobFault::default());
                Ok(Outcome {
                    status: 200,
                    body: if self.profile == Profile::Lenient1x {
                        Some(Value::Object(self.render_collection(&coll, &ReadQuery::default())))
                    } else {
                        None
                    },
                    job: job.map(|j| self.abs(&j)),
                    write: true,
                    ..Default::default()
                })
            }
            "System" => self.delete_system(path, fault),
            "Machine" | "Volume" | "Network" | "NetworkPort" => {
                let stable = match type_name.as_str() {
                    "Machine" => lifecycle::MACHINE_STABLE.contains(&state.as_str()),
                    "Volume" => matches!(state.as_str(), "AVAILABLE" | "ERROR"),
                    _ => matches!(state.as_str(), "STARTED" | "STOPPED" | "ERROR"),
                };
                if !stable {
                    return Err(conflict(format!("the {type_name} cannot be deleted while {state}")));
                }
                if type_name == "Volume" && st.hidden_str("attachedTo").is_some() {
                    return Err(conflict("the volume is attached to a machine; detach it first"));
                }
                if type_name == "Network" && st.hidden.get("users").and_then(Value::as_u64).unwrap_or(0) > 0 {
                    return Err(conflict("the network still has machine interfaces"));
                }
                if type_name == "Network"
                    && self.colls.get(&format!("{path}/networkPorts")).is_some_and(|c| !c.members.is_empty())
                {
                    return Err(conflict("the network still has ports; delete them first"));
                }
                self.set_state(path, "DELETING");
                let steps = vec![Step::Remove(path.to_string())];
                let job = self.run_job("delete", &target, vec![], steps, Some((path.to_string(), state)), fault);
                Ok(self.accepted(job, 200))
            }
            "Job" => {
                self.stop_job(path, now());
                self.remove(path);
                let job = self.run_job("delete", &target, vec![], vec![], None, JobFault::default());
                Ok(self.accepted(job, 200))
            }
            _ => {
                if type_name == "ForwardingGroup" {
                    self.leave_forwarding_group(path);
                }
                self.remove(path);
                let job = self.run_job("delete", &target, vec![], vec![], None, JobFault::default());
                Ok(self.accepted(job, 200))
            }
        }
    }

    /// The answer to an operation that may still be running: `done_status` when finished, else 202 + Job.
    fn accepted(&self, job: Option<String>, done_status: u16) -> Outcome {
        let job_uri = job.as_ref().map(|j| self.abs(j));
        let finished = match &job {
            Some(_) => self.job_done(&job),
            None => self.timing == Timing::Instant,
        };
        if finished {
            Outcome { status: done_status, job: job_uri, write: true, ..Default::default() }
        } else {
            let body = job.as_ref().and_then(|j| self.resources.get(j).map(|st| Value::Object(self.render(j, st))));
            Outcome { status: 202, body, job: job_uri, write: true, ..Default::default() }
        }
    }

    /// Removes a resource at the end of a delete, with everything that goes with it.
    fn remove_resource(&mut self, path: &str, _at: DateTime<Utc>) {
        let Some(st) = self.resources.get(path).cloned() else {
            return;
        };
        self.model_event(path, "delete");
        if st.type_name == "Machine" {
            // Detach volumes and free addresses.
            let vols: Vec<String> = self
                .colls
                .get(&format!("{path}/volumes"))
                .map(|c| c.members.values().cloned().collect())
                .unwrap_or_default();
            for mv in vols {
                let vol =
                    self.resources.get(&mv).and_then(|s| s.doc.get("volume")).and_then(href).map(|h| self.path_of(h));
                if let Some(v) = vol.and_then(|v| self.resources.get_mut(&v)) {
                    v.hidden.remove("attachedTo");
                }
            }
            let nics: Vec<String> = self
                .colls
                .get(&format!("{path}/networkInterfaces"))
                .map(|c| c.members.values().cloned().collect())
                .unwrap_or_default();
            for nic in nics {
                let (addr, net) = match self.resources.get(&nic) {
                    Some(s) => {
                        (s.hidden_str("address").map(str::to_string), s.hidden_str("network").map(str::to_string))
                    }
                    None => (None, None),
                };
                if let Some(a) = addr {
                    self.remove(&a);
                }
                if let Some(n) = net.and_then(|n| self.resources.get_mut(&n)) {
                    let users = n.hidden.get("users").and_then(Value::as_u64).unwrap_or(1);
                    n.hidden.insert("users".into(), json!(users.saturating_sub(1)));
                }
            }
        }
        self.remove(path);
    }

    fn stop_job(&mut self, job: &str, at: DateTime<Utc>) -> bool {
        let Some(idx) = self.pending.iter().position(|p| p.job.as_deref() == Some(job)) else {
            return false;
        };
        let p = self.pending.remove(idx);
        if let Some((path, state)) = &p.revert {
            let current = self.resources.get(path).map(|s| s.state().to_string()).unwrap_or_default();
            // A stopped create leaves the resource in ERROR; a stopped action returns it to where it was.
            if current != *state {
                self.set_state(path, state);
            }
        }
        self.set_job_state(job, "STOPPED", 100, 2, "stopped by the consumer", at);
        true
    }

    /// POST of an action to a resource.
    pub fn action(&mut self, path: &str, body: &Value, fault: JobFault) -> Result<Outcome, SimError> {
        let obj = body.as_object().ok_or_else(|| bad("the body must be an object"))?;
        Self::check_resource_uri(obj, "Action")?;
        let action: m::Action = parse_typed(body, &[])?;
        let uri = action.action.clone().ok_or_else(|| bad("an Action needs an action URI"))?;
        let name = action_name(uri.trim()).ok_or_else(|| bad(format!("{uri} is not a CIMI action")))?.to_string();
        let st = self.resources.get(path).ok_or_else(|| not_found(path))?;
        let type_name = st.type_name.clone();
        let state = st.state().to_string();
        let refuse = |r: ActionRefusal| match r {
            ActionRefusal::Unknown => bad(format!("{type_name} has no action {name}")),
            ActionRefusal::NotAllowedNow => conflict(format!("{name} is not allowed while the {type_name} is {state}")),
        };
        let target = self.abs(path);
        match type_name.as_str() {
            "Machine" => {
                let walk = lifecycle::machine_walk(&state, &name, action.force.unwrap_or(false)).map_err(refuse)?;
                if name == "capture" {
                    let mut img = Map::new();
                    img.insert("name".into(), json!(format!("capture of {}", self.name_of(path).unwrap_or_default())));
                    img.insert("imageLocation".into(), json!({"href": target}));
                    let out = self.capture(&img, fault)?;
                    return Ok(Outcome { status: if out.status == 201 { 204 } else { 202 }, body: out.body, ..out });
                }
                if state == "STOPPING" {
                    let jobs: Vec<String> = self
                        .pending
                        .iter()
                        .filter(|p| p.revert.as_ref().is_some_and(|(r, _)| r == path))
                        .filter_map(|p| p.job.clone())
                        .collect();
                    for j in jobs {
                        self.stop_job(&j, now());
                    }
                    self.pending.retain(|p| p.revert.as_ref().is_none_or(|(r, _)| r != path));
                }
                self.walk_action(path, &target, &name, &state, walk, fault)
            }
            "Network" | "NetworkPort" => {
                let walk = lifecycle::network_walk(&state, &name).map_err(refuse)?;
                self.walk_action(path, &target, &name, &state, walk, fault)
            }
            "System" => self.system_action(path, &name, fault),
            "Job" => {
                if name != "stop" {
                    return Err(refuse(ActionRefusal::Unknown));
                }
                if !lifecycle::job_stoppable(&state) {
                    return Err(refuse(ActionRefusal::NotAllowedNow));
                }
                if !self.stop_job(path, now()) {
                    self.set_job_state(path, "STOPPED", 100, 2, "stopped by the consumer", now());
                }
                Ok(Outcome { status: 204, job: Some(target), write: true, ..Default::default() })
            }
            _ => Err(refuse(ActionRefusal::Unknown)),
        }
    }

    fn walk_action(
        &mut self,
        path: &str,
        target: &str,
        name: &str,
        state: &str,
        walk: Vec<&'static str>,
        fault: JobFault,
    ) -> Result<Outcome, SimError> {
        let mut walk = walk.into_iter();
        // The first transient state shows at once; the rest follow the timing.
        let first = walk.next();
        if let Some(first) = first {
            self.set_state(path, first);
        }
        let steps: Vec<Step> = walk.map(|s| Step::State(path.to_string(), s.to_string())).collect();
        let job =
            self.run_job(&action_uri(name), target, vec![], steps, Some((path.to_string(), state.to_string())), fault);
        Ok(self.accepted(job, 204))
    }

    /// Creates `n` stopped machines quickly (benchmarks and tests).
    pub fn bulk_machines(&mut self, n: usize) {
        let at = now();
        for i in 0..n {
            let id = self.next_id();
            let path = format!("machines/{id}");
            let doc = json!({"name": format!("bulk{i}"), "created": stamp(at), "updated": stamp(at),
                "state": if i % 2 == 0 { "STARTED" } else { "STOPPED" }, "cpu": 1 + (i % 4), "memory": 4000000});
            if let Value::Object(doc) = doc {
                self.insert(&path, "Machine", "machines", doc);
            }
        }
    }
}

/// A stored resource as served, for serialization without copying it (see [`Store::read_json`]); the same
/// attributes as [`Store::render`].
struct JsonView<'a> {
    type_uri: String,
    id: String,
    doc: &'a Map<String, Value>,
    ops: &'a [Value],
}

impl Serialize for JsonView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("resourceURI", &self.type_uri)?;
        m.serialize_entry("id", &self.id)?;
        for (k, v) in self.doc {
            if !matches!(k.as_str(), "resourceURI" | "id" | "operations") {
                m.serialize_entry(k, v)?;
            }
        }
        if !self.ops.is_empty() {
            m.serialize_entry("operations", self.ops)?;
        }
        m.end()
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
