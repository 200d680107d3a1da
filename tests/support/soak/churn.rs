//! The soak's user: a seeded churn of what platform teams do to the six managed kinds over two namespaces —
//! creates, spec changes (power state, description, volume attachments), one-shot actions, imports of machines
//! made on the provider by hand, images of machines and volumes, and deletes — through the API server, as
//! kubectl or a GitOps tool would (server-side apply of the whole object).
//!
//! The model holds what the soak last asked for; the checker reads the objects' own specs, so a write whose
//! outcome is unknown (the API server restarted under it) is simply made again before the final check.

use std::collections::{BTreeMap, BTreeSet};

use cimi_operator::api::{CimiMachine, CimiMachineImage, CimiNetwork, CimiSystem, CimiVolume, CimiVolumeImage};
use cimi_operator::cimi::CimiClient;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use rand::Rng as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// The namespaces the soak's objects live in (two tenants of one provider).
pub const NAMESPACES: [&str; 2] = ["soak-a", "soak-b"];
/// The CimiProvider of the soak.
pub const PROVIDER: &str = "soak";
/// The field manager of the soak's writes.
const MANAGER: &str = "soak";

/// The managed kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Network,
    Volume,
    Machine,
    System,
    MachineImage,
    VolumeImage,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::Network, Kind::Volume, Kind::Machine, Kind::System, Kind::MachineImage, Kind::VolumeImage];

    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Network => ApiResource::erase::<CimiNetwork>(&()),
            Kind::Volume => ApiResource::erase::<CimiVolume>(&()),
            Kind::Machine => ApiResource::erase::<CimiMachine>(&()),
            Kind::System => ApiResource::erase::<CimiSystem>(&()),
            Kind::MachineImage => ApiResource::erase::<CimiMachineImage>(&()),
            Kind::VolumeImage => ApiResource::erase::<CimiVolumeImage>(&()),
        }
    }

    /// The provider collection (CEP attribute) of the kind's resources.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Volume => "volumes",
            Kind::Machine => "machines",
            Kind::System => "systems",
            Kind::MachineImage => "machineImages",
            Kind::VolumeImage => "volumeImages",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Network => "net",
            Kind::Volume => "vol",
            Kind::Machine => "vm",
            Kind::System => "sys",
            Kind::MachineImage => "mimg",
            Kind::VolumeImage => "vimg",
        }
    }
}

/// An object of the soak: kind, namespace, name.
pub type Key = (Kind, String, String);

/// What the soak last asked of one object.
#[derive(Clone, Debug)]
pub struct Desired {
    pub spec: Value,
    pub annotations: BTreeMap<String, String>,
    /// For an import: the href of the machine made by hand on the provider.
    pub imported: Option<String>,
}

impl Desired {
    fn refs(&self, field: &str, inner: &str) -> Vec<String> {
        self.spec[field]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v[inner]["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// The volumes a machine's spec attaches.
    pub fn volumes(&self) -> Vec<String> {
        self.refs("volumes", "volumeRef")
    }

    /// The networks a machine's spec connects.
    fn networks(&self) -> Vec<String> {
        self.refs("networkInterfaces", "networkRef")
    }

    /// The object an image is taken from.
    fn source(&self) -> Option<String> {
        let s = &self.spec["source"];
        s["machineRef"]["name"].as_str().or(s["volumeRef"]["name"].as_str()).map(str::to_string)
    }
}

/// A machine made on the provider by hand, for an import.
#[derive(Clone, Debug)]
pub struct HandMade {
    pub href: String,
    pub name: String,
    /// The CimiMachine that imports it, while it exists.
    pub imported_by: Option<Key>,
}

/// The operations made, by name.
pub type Counts = BTreeMap<&'static str, u64>;

/// The churn and its model.
pub struct Churn {
    client: kube::Client,
    rng: StdRng,
    target: usize,
    next: u64,
    timeouts: Value,
    pub live: BTreeMap<Key, Desired>,
    /// Objects the soak deleted: each must be gone from the API server at the end.
    pub gone: BTreeSet<Key>,
    /// Objects whose last write has an unknown outcome: written again before the final check.
    dirty: BTreeSet<Key>,
    pub hand_made: Vec<HandMade>,
    pub ops: Counts,
    pub api_errors: u64,
}

fn time_str(seconds: u64) -> String {
    format!("{seconds}s")
}

impl Churn {
    /// A churn keeping about `target` objects, seeded with `seed`; operations time out after `timeout_seconds`
    /// (`spec.timeouts` of every object).
    pub fn new(client: kube::Client, seed: u64, target: usize, timeout_seconds: u64) -> Self {
        Churn {
            client,
            rng: StdRng::seed_from_u64(seed ^ 0xc4u64),
            target,
            next: 0,
            timeouts: json!({"create": time_str(timeout_seconds), "update": time_str(timeout_seconds),
                             "delete": time_str(timeout_seconds * 6)}),
            live: BTreeMap::new(),
            gone: BTreeSet::new(),
            dirty: BTreeSet::new(),
            hand_made: Vec::new(),
            ops: Counts::new(),
            api_errors: 0,
        }
    }

    fn api(&self, kind: Kind, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, &kind.api_resource())
    }

    fn count(&mut self, op: &'static str) {
        *self.ops.entry(op).or_default() += 1;
    }

    fn fresh_name(&mut self, kind: Kind) -> String {
        self.next += 1;
        format!("{}-{}", kind.prefix(), self.next)
    }

    fn description(&mut self) -> String {
        format!("soak description {}", self.rng.random_range(0..1_000_000u32))
    }

    /// Applies `desired` to the object `key` (server-side apply of the whole object). On an error whose outcome
    /// is unknown, the object is marked to be written again.
    async fn apply(&mut self, key: &Key, desired: &Desired) -> bool {
        let (kind, ns, name) = key;
        let ar = kind.api_resource();
        let body = json!({
            "apiVersion": ar.api_version, "kind": ar.kind,
            "metadata": {"name": name, "namespace": ns, "annotations": desired.annotations},
            "spec": desired.spec,
        });
        match self.api(*kind, ns).patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await {
            Ok(_) => {
                self.dirty.remove(key);
                true
            }
            Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
                panic!("the API server refused a valid spec of {key:?}: {}", status.message)
            }
            Err(_) => {
                self.api_errors += 1;
                self.dirty.insert(key.clone());
                false
            }
        }
    }

    async fn create(&mut self, kind: Kind, ns: &str, desired: Desired) -> Option<Key> {
        let key = (kind, ns.to_string(), self.fresh_name(kind));
        self.live.insert(key.clone(), desired.clone());
        self.apply(&key, &desired).await;
        Some(key)
    }

    fn pick_ns(&mut self) -> String {
        NAMESPACES[self.rng.random_range(0..NAMESPACES.len())].to_string()
    }

    fn names_of(&self, kind: Kind, ns: &str) -> Vec<String> {
        self.live.keys().filter(|(k, n, _)| *k == kind && n == ns).map(|(_, _, name)| name.clone()).collect()
    }

    /// Volumes of `ns` no machine of the model attaches.
    fn free_volumes(&self, ns: &str) -> Vec<String> {
        let taken: BTreeSet<String> = self
            .live
            .iter()
            .filter(|((k, n, _), _)| *k == Kind::Machine && n == ns)
            .flat_map(|(_, d)| d.volumes())
            .collect();
        self.names_of(Kind::Volume, ns).into_iter().filter(|v| !taken.contains(v)).collect()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.random_range(0..items.len())].clone())
    }

    fn power(&mut self) -> &'static str {
        if self.rng.random_bool(0.7) { "Started" } else { "Stopped" }
    }

    fn base_spec(&mut self) -> serde_json::Map<String, Value> {
        let mut spec = serde_json::Map::new();
        spec.insert("providerRef".into(), json!({"name": PROVIDER}));
        spec.insert("description".into(), json!(self.description()));
        spec.insert("timeouts".into(), self.timeouts.clone());
        spec
    }

    /// Creates one object of a kind drawn at random. `quiet`: no fault is active (a machine made by hand for an
    /// import is made only then: the soak is a user, not the operator under test).
    pub async fn create_one(&mut self, cimi: &CimiClient, quiet: bool) {
        let ns = self.pick_ns();
        let roll = self.rng.random_range(0..100);
        let mut spec = self.base_spec();
        let kind = match roll {
            0..10 => {
                spec.insert("networkConfig".into(), json!({"name": "private"}));
                Kind::Network
            }
            10..30 => {
                spec.insert("capacity".into(), json!("1Gi"));
                spec.insert("format".into(), json!("ext4"));
                Kind::Volume
            }
            30..37 => {
                spec.insert("systemTemplate".into(), json!({"name": "web-tier"}));
                spec.insert("powerState".into(), json!(self.power()));
                Kind::System
            }
            37..42 => {
                let Some(source) = self.pick(&self.ready_candidates(Kind::Machine, &ns)) else { return };
                spec.insert("source".into(), json!({"machineRef": {"name": source}}));
                Kind::MachineImage
            }
            42..47 => {
                let Some(source) = self.pick(&self.ready_candidates(Kind::Volume, &ns)) else { return };
                spec.insert("source".into(), json!({"volumeRef": {"name": source}}));
                Kind::VolumeImage
            }
            47..54 => {
                if quiet {
                    self.import_one(cimi, &ns).await;
                }
                return;
            }
            _ => {
                spec.insert(
                    "template".into(),
                    json!({"machineConfig": {"name": "small"}, "machineImage": {"name": "Linux SUSE"}}),
                );
                spec.insert("powerState".into(), json!(self.power()));
                if let Some(net) = self.pick(&self.names_of(Kind::Network, &ns))
                    && self.rng.random_bool(0.5)
                {
                    spec.insert("networkInterfaces".into(), json!([{"networkRef": {"name": net}}]));
                }
                if let Some(vol) = self.pick(&self.free_volumes(&ns))
                    && self.rng.random_bool(0.5)
                {
                    spec.insert("volumes".into(), json!([{"volumeRef": {"name": vol}}]));
                }
                Kind::Machine
            }
        };
        self.count(match kind {
            Kind::Network => "create network",
            Kind::Volume => "create volume",
            Kind::Machine => "create machine",
            Kind::System => "create system",
            Kind::MachineImage => "create machine image",
            Kind::VolumeImage => "create volume image",
        });
        let desired = Desired { spec: Value::Object(spec), annotations: BTreeMap::new(), imported: None };
        self.create(kind, &ns, desired).await;
    }

    /// Objects of a kind that an image may be taken from (managed ones: an imported machine is the provider's).
    fn ready_candidates(&self, kind: Kind, ns: &str) -> Vec<String> {
        self.live
            .iter()
            .filter(|((k, n, _), d)| *k == kind && n == ns && d.imported.is_none())
            .map(|((_, _, name), _)| name.clone())
            .collect()
    }

    /// Makes a machine on the provider by hand and a CimiMachine that imports it (ObserveOnly, Orphan: the right
    /// a provider grants every namespace by default).
    async fn import_one(&mut self, cimi: &CimiClient, ns: &str) {
        self.next += 1;
        let name = format!("hand-{}", self.next);
        let Some(href) = hand_machine(cimi, &name).await else {
            self.count("hand-made machine refused (a fault)");
            return;
        };
        let desired = Desired {
            spec: json!({"providerRef": {"name": PROVIDER}, "import": {"href": href},
                         "managementPolicy": "ObserveOnly", "deletionPolicy": "Orphan"}),
            annotations: BTreeMap::new(),
            imported: Some(href.clone()),
        };
        self.count("import machine");
        let key = self.create(Kind::Machine, ns, desired).await;
        self.hand_made.push(HandMade { href, name, imported_by: key });
    }

    /// Changes one object's spec, or asks a machine for a one-shot action.
    pub async fn change_one(&mut self) {
        let keys: Vec<Key> = self.live.keys().cloned().collect();
        let Some(key) = self.pick(&keys) else { return };
        let mut desired = self.live[&key].clone();
        if desired.imported.is_some() {
            return;
        }
        let roll = self.rng.random_range(0..100);
        let op = match key.0 {
            Kind::Machine if roll < 30 => {
                toggle_power(&mut desired.spec);
                "power state"
            }
            Kind::System if roll < 50 => {
                toggle_power(&mut desired.spec);
                "power state"
            }
            Kind::Machine if roll < 55 => {
                let mut volumes = desired.volumes();
                if volumes.is_empty() || self.rng.random_bool(0.4) {
                    let Some(vol) = self.pick(&self.free_volumes(&key.1)) else { return };
                    volumes.push(vol);
                } else {
                    volumes.remove(self.rng.random_range(0..volumes.len()));
                }
                desired.spec["volumes"] =
                    Value::Array(volumes.into_iter().map(|v| json!({"volumeRef": {"name": v}})).collect());
                "attachments"
            }
            Kind::Machine if roll < 70 => {
                if desired.spec["powerState"].as_str() != Some("Started") {
                    return;
                }
                self.next += 1;
                desired.annotations.insert("cimi.dev/action".into(), format!("restart@{}", self.next));
                "one-shot action (restart)"
            }
            _ => {
                desired.spec["description"] = json!(self.description());
                "description"
            }
        };
        self.count(op);
        self.live.insert(key.clone(), desired.clone());
        self.apply(&key, &desired).await;
    }

    /// Deletes one object that nothing else of the model refers to.
    pub async fn delete_one(&mut self) {
        let used: BTreeSet<(Kind, String, String)> = self
            .live
            .iter()
            .flat_map(|((k, ns, _), d)| {
                let mut refs: Vec<Key> = Vec::new();
                if *k == Kind::Machine {
                    refs.extend(d.volumes().into_iter().map(|v| (Kind::Volume, ns.clone(), v)));
                    refs.extend(d.networks().into_iter().map(|n| (Kind::Network, ns.clone(), n)));
                }
                if let Some(source) = d.source() {
                    let from = if *k == Kind::MachineImage { Kind::Machine } else { Kind::Volume };
                    refs.push((from, ns.clone(), source));
                }
                refs
            })
            .collect();
        let candidates: Vec<Key> = self.live.keys().filter(|k| !used.contains(*k)).cloned().collect();
        let Some(key) = self.pick(&candidates) else { return };
        if self.delete(&key).await {
            self.count(match key.0 {
                Kind::Machine if self.live.get(&key).is_some_and(|d| d.imported.is_some()) => "delete import",
                Kind::Machine => "delete machine",
                Kind::Volume => "delete volume",
                Kind::Network => "delete network",
                Kind::System => "delete system",
                Kind::MachineImage => "delete machine image",
                Kind::VolumeImage => "delete volume image",
            });
            self.live.remove(&key);
            self.dirty.remove(&key);
            self.gone.insert(key.clone());
            for hand in self.hand_made.iter_mut().filter(|h| h.imported_by.as_ref() == Some(&key)) {
                hand.imported_by = None;
            }
        }
    }

    /// Deletes `key`; true once the API server has it deleted or deleting.
    async fn delete(&mut self, key: &Key) -> bool {
        let api = self.api(key.0, &key.1);
        match api.delete(&key.2, &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 404 => true,
            Err(_) => {
                self.api_errors += 1;
                // The outcome is unknown: look.
                matches!(api.get_opt(&key.2).await, Ok(None))
                    || matches!(api.get_opt(&key.2).await, Ok(Some(o)) if o.metadata.deletion_timestamp.is_some())
            }
        }
    }

    /// One step of the churn: a create while below the target (and now and then above it), else a change, an
    /// action or a delete.
    pub async fn step(&mut self, cimi: &CimiClient, quiet: bool) {
        let population = self.live.len();
        let roll = self.rng.random_range(0..100);
        let create_below = if population < self.target { 60 } else { 15 };
        let delete_above = if population >= self.target { 35 } else { 20 };
        if roll < create_below {
            self.create_one(cimi, quiet).await;
        } else if roll < create_below + delete_above {
            self.delete_one().await;
        } else {
            self.change_one().await;
        }
    }

    /// Fills the model up to the target (creates only).
    pub async fn fill(&mut self, cimi: &CimiClient) {
        let mut attempts = 0;
        while self.live.len() < self.target && attempts < self.target * 4 {
            attempts += 1;
            self.create_one(cimi, true).await;
        }
    }

    /// Writes again every object whose last write had an unknown outcome; true when none is left.
    pub async fn settle(&mut self) -> bool {
        for key in self.dirty.clone() {
            if let Some(desired) = self.live.get(&key).cloned() {
                self.apply(&key, &desired).await;
            } else {
                self.dirty.remove(&key);
            }
        }
        self.dirty.is_empty()
    }

    /// Deletes, on the provider, the hand-made machines no object imports any more (as their owner would);
    /// the deleted ones are forgotten.
    pub async fn remove_released(&mut self, cimi: &CimiClient, api_gone: &BTreeSet<Key>) {
        let mut kept = Vec::new();
        for hand in std::mem::take(&mut self.hand_made) {
            let released = match &hand.imported_by {
                None => true,
                Some(key) => !self.live.contains_key(key) && api_gone.contains(key),
            };
            if released && delete_hand_machine(cimi, &hand.href).await {
                self.count("hand-made machine removed");
                continue;
            }
            kept.push(hand);
        }
        self.hand_made = kept;
    }
}

fn toggle_power(spec: &mut Value) {
    let next = if spec["powerState"].as_str() == Some("Stopped") { "Started" } else { "Stopped" };
    spec["powerState"] = json!(next);
}

/// Creates a started machine named `name` on the provider, as its owner would by hand; its href.
async fn hand_machine(cimi: &CimiClient, name: &str) -> Option<String> {
    let configs = cimi.collection_url("machineConfigs").await.ok()?;
    let images = cimi.collection_url("machineImages").await.ok()?;
    let config = cimi.list_page_value(&configs, &Default::default(), "").await.ok()?["machineConfigurations"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "small")?["id"]
        .clone();
    let image = cimi.list_page_value(&images, &Default::default(), "").await.ok()?["machineImages"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "Linux SUSE")?["id"]
        .clone();
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": name,
        "machineTemplate": {"machineConfig": {"href": config}, "machineImage": {"href": image},
                            "initialState": "STARTED"}});
    let at = cimi.collection_url("machines").await.ok()?;
    let accepted = cimi.create("machines", &body).await.ok()?;
    cimi.created_href(&accepted, &at).await.ok().flatten().map(|u| u.to_string())
}

/// Deletes a hand-made machine; true once it is gone.
async fn delete_hand_machine(cimi: &CimiClient, href: &str) -> bool {
    let Ok(url) = cimi.resolve(href).await else { return false };
    match cimi.get_value(&url).await {
        Ok(current) => cimi.delete(&current).await.is_ok(),
        Err(cimi_operator::cimi::CimiError::NotFound { .. }) => true,
        Err(_) => false,
    }
}
