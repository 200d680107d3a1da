//! Watches scoped to the operator's [`Config`]: every namespace it watches (one watch per namespace,
//! or one for all), its label selector on every watch, readiness that turns true once each watch has
//! listed its objects, and objects the operator cannot decode reported instead of stopping the watch.
//!
//! - [`Watches::reflect`] feeds a controller's own kind into one store shared by all namespaces and
//!   yields the objects to reconcile. Each namespace's relist replaces only that namespace's objects
//!   (objects deleted while its watch was down are removed); the store reports ready once every
//!   namespace has listed once, so a controller never acts on a partial view.
//! - [`Watches::related`] and [`Watches::secret_names`] are trigger-only watches (no store) for the
//!   objects that make a controller look again, such as the Secrets a CimiMachine references.
//!
//! Every object is read through [`DeserializeGuard`]: an object the operator cannot decode (a value
//! the schema admits but the Rust type rejects) is logged and counted in
//! `cimi_watch_errors_total{kind, reason="decode"}` and treated as absent; the other objects keep
//! flowing. A failed list or watch call is counted with `reason="watch"` and retried with backoff.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::events::EventRecorder;
use futures::stream::{BoxStream, SelectAll};
use futures::{Stream, StreamExt, stream};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Secret;
use kube::core::error_boundary::InvalidObject;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::config::Config;
use super::health::Readiness;
use super::metrics::Metrics;
use super::object_metrics::{ObjectGauges, Snapshot};
use super::shard::Shard;
use crate::api::common::ManagedStatus;

/// A namespaced kind the operator can watch: decodable, shareable between tasks.
pub trait Watched:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// What every watch of one operator instance shares. Cheap to clone.
#[derive(Clone)]
pub struct Watches {
    /// The Kubernetes client.
    pub client: Client,
    /// Namespaces and label selector.
    pub config: Config,
    /// Where each watch registers and reports its first complete list.
    pub readiness: Readiness,
    /// Where watch errors, resource counts and Job durations go.
    pub metrics: Metrics,
    /// Publishes a Warning Event on an object a controller cannot decode (once per resourceVersion).
    pub recorder: Option<EventRecorder>,
}

/// Reads the provider name and the shared status (if any yet) of a managed object, for the
/// `cimi_resources` gauge (an object without a state counts as `UNKNOWN`) and `cimi_job_duration_seconds`.
/// Only the managed kinds have one, and they are the kinds split between shards: a store with `status_of` wakes
/// and counts in its gauges only the objects of this instance's shard (it still holds every object).
pub type StatusOf<K> = fn(&K) -> (String, Option<&ManagedStatus>);

/// What to do when an object leaves a store (deleted, or gone at a relist): for a kind whose controller keeps
/// state of its own per object (the provider connections), since no reconcile runs for an object that is gone.
pub type OnDelete<K> = Arc<dyn Fn(&K) + Send + Sync>;

/// The readiness component name of a controller's own watch: `watch/<plural>/<namespace or *>`.
pub fn component_name<K: Resource<DynamicType = ()>>(namespace: Option<&str>) -> String {
    format!("watch/{}/{}", K::plural(&()), namespace.unwrap_or("*"))
}

/// The readiness component name of a related watch of the controller of `owner`:
/// `watch/<owner>/<plural>/<namespace or *>`.
pub fn related_component_name<K: Resource<DynamicType = ()>>(owner: &str, namespace: Option<&str>) -> String {
    format!("watch/{owner}/{}/{}", K::plural(&()), namespace.unwrap_or("*"))
}

/// One event of one scope's watch.
struct Scoped<T> {
    scope: usize,
    event: Result<Event<T>, watcher::Error>,
}

type Scopes<T> = SelectAll<BoxStream<'static, Scoped<T>>>;

impl Watches {
    /// The watch scopes: each configured namespace, or `None` for all.
    fn namespaces(&self) -> Vec<Option<String>> {
        if self.config.namespaces.is_empty() {
            vec![None]
        } else {
            self.config.namespaces.iter().cloned().map(Some).collect()
        }
    }

    /// One guarded watch of `K` per scope (a namespace, or all), merged.
    fn guarded_events<K>(&self, scopes: &[Option<String>]) -> Scopes<DeserializeGuard<K>>
    where
        K: Watched,
    {
        let (client, wc) = (self.client.clone(), self.config.watcher_config());
        Self::open(scopes, |namespace| {
            let api: Api<DeserializeGuard<K>> = match namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            watcher::watcher(api, wc.clone()).default_backoff().boxed()
        })
    }

    fn open<T>(
        scopes: &[Option<String>],
        open: impl Fn(Option<&str>) -> BoxStream<'static, Result<Event<T>, watcher::Error>>,
    ) -> Scopes<T>
    where
        T: Send + 'static,
    {
        stream::select_all(
            scopes
                .iter()
                .enumerate()
                .map(|(scope, namespace)| open(namespace.as_deref()).map(move |event| Scoped { scope, event }).boxed()),
        )
    }

    /// A controller's own kind in every watched namespace: the store (ready once every namespace has
    /// listed once), the stream of objects to reconcile, and the handle that releases the store at
    /// shutdown. With `status_of`, the store also feeds `cimi_resources` and `cimi_job_duration_seconds`.
    pub fn reflect<K>(
        &self,
        status_of: Option<StatusOf<K>>,
        on_delete: Option<OnDelete<K>>,
    ) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static, StoreRelease<K>)
    where
        K: Watched,
    {
        let scopes = self.namespaces();
        let events = self.guarded_events::<K>(&scopes);
        self.reflect_scopes(scopes, events, status_of, on_delete)
    }

    /// A cluster-scoped kind (CimiProvider) with the label selector, as [`Watches::reflect`].
    pub fn reflect_cluster<K>(
        &self,
        on_delete: Option<OnDelete<K>>,
    ) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static, StoreRelease<K>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let api: Api<DeserializeGuard<K>> = Api::all(self.client.clone());
        let wc = self.config.watcher_config();
        let scopes = vec![None];
        let events = Self::open(&scopes, move |_| watcher::watcher(api.clone(), wc.clone()).default_backoff().boxed());
        self.reflect_scopes(scopes, events, None, on_delete)
    }

    fn reflect_scopes<K>(
        &self,
        scopes: Vec<Option<String>>,
        events: Scopes<DeserializeGuard<K>>,
        status_of: Option<StatusOf<K>>,
        on_delete: Option<OnDelete<K>>,
    ) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send + 'static, StoreRelease<K>)
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let writer = Writer::<K>::new(());
        let reader = writer.as_reader();
        let release = StoreRelease {
            writer: Arc::new(Mutex::new(writer)),
            ready: Arc::new(AtomicBool::new(false)),
            listed: Arc::new(AtomicBool::new(false)),
        };
        let kind = K::kind(&()).to_string();
        let scopes = scopes
            .into_iter()
            .map(|namespace| {
                let component = component_name::<K>(namespace.as_deref());
                self.readiness.register(component.clone());
                ScopeState { namespace, component, synced: false, relist: None }
            })
            .collect();
        let gauges = status_of.map(|_| ObjectGauges::new(&kind, self.metrics.clone()));
        let shard = status_of.and(Some(self.config.shard)).filter(Shard::is_sharded);
        let state = Reflection {
            kind,
            shard,
            release: release.clone(),
            reader: reader.clone(),
            scopes,
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
            gauges,
            status_of,
            on_delete,
            recorder: self.recorder.clone(),
            reported: HashMap::new(),
        };
        let triggers = stream::unfold((events, state), |(mut events, mut state)| async move {
            loop {
                let scoped = events.next().await?;
                let triggers = state.handle(scoped);
                if !triggers.is_empty() {
                    return Some((stream::iter(triggers.into_iter().map(Ok)), (events, state)));
                }
            }
        })
        .flatten();
        (reader, triggers, release)
    }

    /// A trigger-only watch of a related namespaced kind in every watched namespace (objects applied,
    /// listed or deleted), registered with readiness under the controller of `owner` (a plural).
    pub fn related<K>(&self, owner: &str) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Watched,
    {
        let scopes = self.namespaces();
        let events = self.guarded_events::<K>(&scopes);
        self.triggers(owner, scopes, events, |guard: DeserializeGuard<K>| guard, |_: Change<'_, K>| true)
    }

    /// [`Watches::related`] for a controller that looks only at `key` of each related object: an applied
    /// object passes when its key differs from the one it had at its previous event (or it is new), a deleted
    /// one always. A trigger that depends on a few fields (which provider an object names) is then not woken
    /// by every status write of every object: at 10,000 objects that is the difference between a pass per
    /// write and a pass per change that matters.
    pub fn related_changes<K, R>(
        &self,
        owner: &str,
        key: fn(&K) -> R,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Watched,
        R: PartialEq + Send + 'static,
    {
        let scopes = self.namespaces();
        let events = self.guarded_events::<K>(&scopes);
        let mut keys = KeyMemory::<R>::new(scopes.len());
        self.triggers(
            owner,
            scopes,
            events,
            |guard: DeserializeGuard<K>| guard,
            move |change: Change<'_, K>| keys.changed(change, key),
        )
    }

    /// A trigger-only watch of the names of the Secrets (metadata only: no Secret data reaches the
    /// operator) with the label selector, in `namespace` or in every watched namespace.
    pub fn secret_names(
        &self,
        owner: &str,
        namespace: Option<&str>,
    ) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
        let scopes = match namespace {
            Some(ns) => vec![Some(ns.to_string())],
            None => self.namespaces(),
        };
        let (client, wc) = (self.client.clone(), self.config.watcher_config());
        let events = Self::open(&scopes, |namespace| {
            let api: Api<PartialObjectMeta<Secret>> = match namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            watcher::watcher(api, wc.clone()).default_backoff().boxed()
        });
        self.triggers(owner, scopes, events, |meta| DeserializeGuard(Ok(meta)), |_: Change<'_, _>| true)
    }

    fn triggers<T, K>(
        &self,
        owner: &str,
        scopes: Vec<Option<String>>,
        events: Scopes<T>,
        decode: fn(T) -> DeserializeGuard<K>,
        mut pass: impl FnMut(Change<'_, K>) -> bool + Send + 'static,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        T: Send + 'static,
        K: Resource<DynamicType = ()> + Send + 'static,
    {
        let components: Vec<String> = scopes
            .iter()
            .map(|namespace| {
                let component = related_component_name::<K>(owner, namespace.as_deref());
                self.readiness.register(component.clone());
                component
            })
            .collect();
        let (readiness, metrics, kind) = (self.readiness.clone(), self.metrics.clone(), K::kind(&()).to_string());
        events.filter_map(move |Scoped { scope, event }| {
            let (object, deleted) = match event {
                Ok(Event::Apply(object) | Event::InitApply(object)) => (object, false),
                Ok(Event::Delete(object)) => (object, true),
                Ok(Event::InitDone) => {
                    pass(Change::Listed(scope));
                    if let Some(component) = components.get(scope) {
                        readiness.mark_ready(component);
                    }
                    return futures::future::ready(None);
                }
                Ok(Event::Init) => {
                    pass(Change::Relisting(scope));
                    return futures::future::ready(None);
                }
                Err(error) => {
                    report_watch_error(&metrics, &kind, &error);
                    return futures::future::ready(None);
                }
            };
            let out = match decode(object).0 {
                Ok(object) => {
                    let change =
                        if deleted { Change::Deleted(scope, &object) } else { Change::Applied(scope, &object) };
                    pass(change).then_some(Ok(object))
                }
                Err(invalid) => {
                    report_invalid(&metrics, &kind, &invalid);
                    None
                }
            };
            futures::future::ready(out)
        })
    }
}

/// What one event of a trigger-only watch says, for the filter that decides whether it triggers.
pub enum Change<'a, K> {
    /// An object of the scope (by index) was applied, or listed by a relist.
    Applied(usize, &'a K),
    /// An object of the scope was deleted.
    Deleted(usize, &'a K),
    /// The scope's watch starts a relist: what it lists next is the whole scope.
    Relisting(usize),
    /// The scope's relist is complete.
    Listed(usize),
}

/// The key each object of each scope had at its last event, for [`Watches::related_changes`]. A relist
/// forgets the objects it did not list (deleted while the watch was down), so the memory holds only
/// objects that exist.
struct KeyMemory<R> {
    scopes: Vec<HashMap<String, R>>,
    /// Per scope during a relist: the keys from before it, not yet listed again.
    before: Vec<Option<HashMap<String, R>>>,
}

impl<R: PartialEq> KeyMemory<R> {
    fn new(scopes: usize) -> Self {
        KeyMemory { scopes: (0..scopes).map(|_| HashMap::new()).collect(), before: (0..scopes).map(|_| None).collect() }
    }

    /// Whether the change triggers; remembers the object's key.
    fn changed<K: Resource>(&mut self, change: Change<'_, K>, key: fn(&K) -> R) -> bool {
        let id = |object: &K| object.meta().uid.clone().unwrap_or_else(|| object.name_any());
        match change {
            Change::Applied(scope, object) => {
                let (id, now) = (id(object), key(object));
                let Some(keys) = self.scopes.get_mut(scope) else { return true };
                let previous = match self.before.get_mut(scope).and_then(Option::as_mut) {
                    Some(before) => before.remove(&id).or_else(|| keys.remove(&id)),
                    None => keys.remove(&id),
                };
                let changed = previous.as_ref() != Some(&now);
                keys.insert(id, now);
                changed
            }
            Change::Deleted(scope, object) => {
                if let Some(keys) = self.scopes.get_mut(scope) {
                    keys.remove(&id(object));
                }
                true
            }
            Change::Relisting(scope) => {
                if let (Some(keys), Some(before)) = (self.scopes.get_mut(scope), self.before.get_mut(scope)) {
                    *before = Some(std::mem::take(keys));
                }
                false
            }
            Change::Listed(scope) => {
                if let Some(before) = self.before.get_mut(scope) {
                    *before = None;
                }
                false
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn report_invalid(metrics: &Metrics, kind: &str, invalid: &InvalidObject) {
    let namespace = invalid.metadata.namespace.as_deref().unwrap_or("");
    let name = invalid.metadata.name.as_deref().unwrap_or("");
    tracing::warn!(
        kind,
        namespace,
        name,
        error = %invalid.error,
        "cannot decode an object; it is skipped until it is fixed (the other objects are not affected)"
    );
    metrics.watch_error(kind, "decode");
}

fn report_watch_error(metrics: &Metrics, kind: &str, error: &watcher::Error) {
    tracing::warn!(kind, %error, "watch failed; retrying with backoff");
    metrics.watch_error(kind, "watch");
}

/// Releases a store that never became ready, so a controller waiting on it can stop: kube's
/// controller holds every reconcile until its store is ready, and would otherwise wait forever at
/// shutdown when the API server never answered the first list.
pub struct StoreRelease<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: Arc<Mutex<Writer<K>>>,
    ready: Arc<AtomicBool>,
    listed: Arc<AtomicBool>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for StoreRelease<K> {
    fn clone(&self) -> Self {
        Self { writer: self.writer.clone(), ready: self.ready.clone(), listed: self.listed.clone() }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> StoreRelease<K> {
    fn apply(&self, event: &Event<K>) {
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).apply_watcher_event(event);
    }

    /// Marks the store ready with what it holds (called once every scope has listed).
    fn mark_ready(&self, objects: Vec<Arc<K>>) {
        if self.ready.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        writer.apply_watcher_event(&Event::Init);
        for object in objects {
            writer.apply_watcher_event(&Event::InitApply((*object).clone()));
        }
        writer.apply_watcher_event(&Event::InitDone);
    }

    /// Turns true once every scope has listed (never when the store was only released): whether what the
    /// store holds can stand for the API's answer.
    pub fn listed(&self) -> Arc<AtomicBool> {
        self.listed.clone()
    }

    /// Releases the store (empty) if it is not ready yet; nothing happens once it is.
    pub fn release(&self) {
        self.mark_ready(Vec::new());
    }

    /// A future for `Controller::graceful_shutdown_on`: resolves when `shutdown` is cancelled, after
    /// releasing the store.
    pub async fn on_shutdown(self, shutdown: CancellationToken) {
        shutdown.cancelled_owned().await;
        self.release();
    }
}

struct ScopeState<K> {
    namespace: Option<String>,
    component: String,
    synced: bool,
    /// The objects of a relist in progress.
    relist: Option<Vec<K>>,
}

struct Reflection<K: Resource<DynamicType = ()> + Clone + 'static> {
    kind: String,
    /// The shard whose objects wake a pass and count in the gauges; `None`: every object.
    shard: Option<Shard>,
    release: StoreRelease<K>,
    reader: Store<K>,
    scopes: Vec<ScopeState<K>>,
    readiness: Readiness,
    metrics: Metrics,
    status_of: Option<StatusOf<K>>,
    /// The object gauges (`cimi_objects`, `cimi_resources`...) of a controller's own kind.
    gauges: Option<ObjectGauges>,
    /// Called for each object that leaves the store.
    on_delete: Option<OnDelete<K>>,
    recorder: Option<EventRecorder>,
    /// The resourceVersion of each undecodable object an Event was published for.
    reported: HashMap<(Option<String>, Option<String>), Option<String>>,
}

impl<K> Reflection<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// Applies one scope's event to the store; returns the objects to reconcile.
    fn handle(&mut self, scoped: Scoped<DeserializeGuard<K>>) -> Vec<K> {
        let Scoped { scope, event } = scoped;
        match event {
            Err(error) => {
                report_watch_error(&self.metrics, &self.kind, &error);
                Vec::new()
            }
            Ok(Event::Init) => {
                if let Some(s) = self.scopes.get_mut(scope) {
                    s.relist = Some(Vec::new());
                }
                Vec::new()
            }
            Ok(Event::InitApply(DeserializeGuard(object))) => {
                match object.map(slim) {
                    Ok(object) => {
                        if let Some(s) = self.scopes.get_mut(scope) {
                            s.relist.get_or_insert_with(Vec::new).push(object);
                        }
                    }
                    Err(invalid) => self.invalid(&invalid),
                }
                Vec::new()
            }
            Ok(Event::InitDone) => self.relisted(scope),
            Ok(Event::Apply(DeserializeGuard(Ok(object)))) => {
                let object = slim(object);
                if self.apply(&object) && self.owns(&object) { vec![object] } else { Vec::new() }
            }
            Ok(Event::Apply(DeserializeGuard(Err(invalid)))) => {
                self.invalid(&invalid);
                // What the store holds is no longer what the cluster holds: treat it as absent.
                self.forget(invalid.metadata.namespace.as_deref(), invalid.metadata.name.as_deref());
                Vec::new()
            }
            Ok(Event::Delete(guard)) => {
                let meta = guard.meta();
                self.forget(meta.namespace.clone().as_deref(), meta.name.clone().as_deref());
                Vec::new()
            }
        }
    }

    /// Reports an undecodable object: log, counter, and a Warning Event on it once per resourceVersion
    /// (so `kubectl describe` shows why the operator ignores it).
    fn invalid(&mut self, invalid: &InvalidObject) {
        report_invalid(&self.metrics, &self.kind, invalid);
        let meta = &invalid.metadata;
        if self.shard.is_some_and(|shard| !shard.owns(meta)) {
            // The shard that owns it says so, once.
            return;
        }
        let key = (meta.namespace.clone(), meta.name.clone());
        if self.reported.get(&key) == Some(&meta.resource_version) {
            return;
        }
        self.reported.insert(key, meta.resource_version.clone());
        let Some(recorder) = self.recorder.clone() else { return };
        let reference = ObjectReference {
            api_version: Some(K::api_version(&()).to_string()),
            kind: Some(K::kind(&()).to_string()),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..ObjectReference::default()
        };
        let event = crate::runtime::events::Event {
            warning: true,
            reason: "DecodeFailed".into(),
            action: "Watch".into(),
            note: format!(
                "the operator cannot read this object and ignores it until it is fixed: {}",
                truncate(&invalid.error, 512)
            ),
        };
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::debug!(%error, "cannot publish the DecodeFailed Event");
            }
        });
    }

    /// A scope's relist is complete: its objects replace the ones the store held for it.
    fn relisted(&mut self, scope: usize) -> Vec<K> {
        let Some(s) = self.scopes.get_mut(scope) else { return Vec::new() };
        let listed = s.relist.take().unwrap_or_default();
        s.synced = true;
        self.readiness.mark_ready(&s.component);
        let namespace = s.namespace.clone();
        let keys: HashSet<(Option<String>, String)> = listed.iter().map(|o| (o.namespace(), o.name_any())).collect();
        for stale in self.reader.state() {
            let in_scope = namespace.is_none() || stale.namespace() == namespace;
            if in_scope && !keys.contains(&(stale.namespace(), stale.name_any())) {
                self.delete(&stale);
            }
        }
        for object in &listed {
            self.apply(object);
        }
        if self.scopes.iter().all(|s| s.synced) {
            self.release.mark_ready(self.reader.state());
            self.release.listed.store(true, Ordering::SeqCst);
        }
        listed.into_iter().filter(|o| self.owns(o)).collect()
    }

    /// Whether `object` belongs to this instance's shard (always, unsharded or for a kind every shard handles).
    fn owns(&self, object: &K) -> bool {
        self.shard.is_none_or(|shard| shard.owns(object.meta()))
    }

    fn forget(&mut self, namespace: Option<&str>, name: Option<&str>) {
        let Some(name) = name else { return };
        let mut key = ObjectRef::<K>::new(name);
        if let Some(ns) = namespace {
            key = key.within(ns);
        }
        if let Some(stored) = self.reader.get(&key) {
            self.delete(&stored);
        }
    }

    /// Stores `object`; returns whether the change calls for a pass ([`wakes`]).
    fn apply(&mut self, object: &K) -> bool {
        let old = self.reader.get(&ObjectRef::from_obj(object));
        let wakes = old.as_deref().is_none_or(|old| wakes(old, object));
        if let Some(status_of) = self.status_of {
            // Another shard's object is not counted here (it moves in or out with its `cimi.dev/shard` label).
            let snapshot = |o: &K| {
                let (provider, status) = status_of(o);
                self.owns(o).then(|| Snapshot::of(o.meta(), provider, status))
            };
            let (before, after) = (old.as_deref().and_then(snapshot), snapshot(object));
            let key = object_key(object);
            if let Some(gauges) = self.gauges.as_mut() {
                gauges.update(&key, before.as_ref(), after.as_ref());
            }
        }
        self.release.apply(&Event::Apply(object.clone()));
        wakes
    }

    fn delete(&mut self, object: &K) {
        if let Some(on_delete) = &self.on_delete {
            on_delete(object);
        }
        if let Some(status_of) = self.status_of
            && self.owns(object)
        {
            let (provider, status) = status_of(object);
            let old = Snapshot::of(object.meta(), provider, status);
            if let Some(gauges) = self.gauges.as_mut() {
                gauges.update(&object_key(object), Some(&old), None);
            }
        }
        self.release.apply(&Event::Delete(object.clone()));
    }
}

/// The annotation in which `kubectl apply` keeps a copy of the whole manifest it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether a change from `old` to `new` of a controller's own object calls for a pass: its identity, its
/// generation (the spec, and the start of a deletion), its labels, annotations (pause, one-shot actions) or
/// deletion changed. A change of status alone does not, nor one of finalizers alone: the operator writes both
/// itself, and the pass that wrote them has already said when to look again (a status write woke the object
/// again 30 ms later while its create Job still ran: a provider read, a status write, and a queue slot for
/// every object). Status written by someone else is read at the object's next pass.
fn wakes<K: Resource>(old: &K, new: &K) -> bool {
    let (old, new) = (old.meta(), new.meta());
    old.uid != new.uid
        || old.generation != new.generation
        || old.labels != new.labels
        || old.annotations != new.annotations
        || old.deletion_timestamp != new.deletion_timestamp
}

/// What a store keeps of an object: everything the controllers read, without the field managers' bookkeeping
/// (`metadata.managedFields`) and kubectl's copy of the last applied manifest, which no controller reads and which
/// together often outweigh the rest of the object (the status writes of the operator alone add a managedFields
/// entry listing every status field).
fn slim<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    object
}

/// `namespace/name` of an object.
fn object_key<K: Resource>(object: &K) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CimiMachine, CimiProvider, CimiVolume};

    #[test]
    fn components_name_the_watch() {
        assert_eq!(component_name::<CimiMachine>(Some("team-a")), "watch/cimimachines/team-a");
        assert_eq!(component_name::<CimiProvider>(None), "watch/cimiproviders/*");
        assert_eq!(related_component_name::<Secret>("cimimachines", Some("a")), "watch/cimimachines/secrets/a");
    }

    fn volume(ns: &str, name: &str, state: Option<&str>) -> DeserializeGuard<CimiVolume> {
        let mut doc = serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiVolume",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"providerRef": {"name": "lab"}}
        });
        if let Some(state) = state {
            doc["status"] = serde_json::json!({"state": state});
        }
        serde_json::from_value(doc).expect("a guarded volume")
    }

    fn undecodable(ns: &str, name: &str) -> DeserializeGuard<CimiVolume> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiVolume",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"providerRef": {"name": "lab"}},
            "status": {"job": {"href": "j", "progress": 4_294_967_296_i64}}
        }))
        .expect("a guarded volume")
    }

    fn reflection(namespaces: &[&str]) -> (Reflection<CimiVolume>, Readiness, Metrics) {
        let (readiness, metrics) = (Readiness::new(), Metrics::new());
        let writer = Writer::<CimiVolume>::new(());
        let reader = writer.as_reader();
        let release = StoreRelease {
            writer: Arc::new(Mutex::new(writer)),
            ready: Arc::new(AtomicBool::new(false)),
            listed: Arc::new(AtomicBool::new(false)),
        };
        let scopes = namespaces
            .iter()
            .map(|ns| {
                let component = component_name::<CimiVolume>(Some(ns));
                readiness.register(component.clone());
                ScopeState { namespace: Some(ns.to_string()), component, synced: false, relist: None }
            })
            .collect();
        let status_of: StatusOf<CimiVolume> = |v| ("lab".to_string(), v.status.as_ref().map(|s| &s.common));
        let state = Reflection {
            kind: "CimiVolume".into(),
            shard: None,
            release,
            reader,
            scopes,
            readiness: readiness.clone(),
            metrics: metrics.clone(),
            status_of: Some(status_of),
            gauges: Some(ObjectGauges::new("CimiVolume", metrics.clone())),
            on_delete: None,
            recorder: None,
            reported: HashMap::new(),
        };
        (state, readiness, metrics)
    }

    fn relist(r: &mut Reflection<CimiVolume>, scope: usize, objects: Vec<DeserializeGuard<CimiVolume>>) -> usize {
        r.handle(Scoped { scope, event: Ok(Event::Init) });
        for object in objects {
            r.handle(Scoped { scope, event: Ok(Event::InitApply(object)) });
        }
        r.handle(Scoped { scope, event: Ok(Event::InitDone) }).len()
    }

    fn names(r: &Reflection<CimiVolume>) -> Vec<String> {
        let mut names: Vec<String> = r.reader.state().iter().map(|o| o.name_any()).collect();
        names.sort();
        names
    }

    #[test]
    fn the_store_is_ready_once_every_namespace_listed_and_a_relist_replaces_only_its_namespace() {
        let (mut r, readiness, metrics) = reflection(&["a", "b"]);
        assert_eq!(relist(&mut r, 0, vec![volume("a", "a1", Some("AVAILABLE")), volume("a", "a2", None)]), 2);
        assert!(!r.release.ready.load(Ordering::SeqCst), "not ready while namespace b has not listed");
        assert_eq!(readiness.pending(), ["watch/cimivolumes/b"]);
        assert_eq!(relist(&mut r, 1, vec![volume("b", "b1", Some("AVAILABLE"))]), 1);
        assert!(r.release.ready.load(Ordering::SeqCst));
        assert!(readiness.is_ready());
        assert_eq!(names(&r), ["a1", "a2", "b1"]);

        // Namespace a relists without a2 (deleted while its watch was down): only a2 goes.
        relist(&mut r, 0, vec![volume("a", "a1", Some("AVAILABLE"))]);
        assert_eq!(names(&r), ["a1", "b1"]);
        let text = metrics.encode();
        assert!(text.contains("cimi_resources{kind=\"CimiVolume\",provider=\"lab\",state=\"AVAILABLE\"} 2"), "{text}");
        assert!(!text.contains("state=\"UNKNOWN\""), "a2 is gone, and its series with it: {text}");
        drop(r);
        assert!(!metrics.encode().contains("cimi_resources{"), "a stopped controller reports nothing");
    }

    #[test]
    fn a_sharded_store_holds_every_object_but_wakes_and_counts_only_its_shards() {
        let (mut r, _, metrics) = reflection(&["a"]);
        let shard = Shard::new(1, 2).expect("shard");
        r.shard = Some(shard);
        let listed: Vec<DeserializeGuard<CimiVolume>> =
            (0..40).map(|n| volume("a", &format!("v{n}"), Some("AVAILABLE"))).collect();
        let own = (0..40).filter(|n| Shard::owner_of(2, "a", &format!("v{n}"), None) == 1).count();
        assert!(own > 0 && own < 40, "both shards own some of 40: {own}");
        assert_eq!(relist(&mut r, 0, listed), own, "the first list wakes only this shard's objects");
        assert_eq!(names(&r).len(), 40, "the store holds them all (a machine's volume may be another shard's)");
        let text = metrics.encode();
        assert!(text.contains(&format!("state=\"AVAILABLE\"}} {own}")), "only its own are counted: {text}");

        // A spec change wakes the object only in its own shard; a pin moves it in or out.
        let theirs = (0..40).map(|n| format!("v{n}")).find(|n| Shard::owner_of(2, "a", n, None) == 0).expect("one");
        let changed = |pin: Option<&str>| {
            let mut doc =
                serde_json::to_value(volume("a", &theirs, Some("AVAILABLE")).0.expect("decoded")).expect("json");
            doc["metadata"]["generation"] = serde_json::json!(2);
            if let Some(pin) = pin {
                doc["metadata"]["labels"] = serde_json::json!({crate::runtime::shard::LABEL_SHARD: pin});
            }
            serde_json::from_value::<DeserializeGuard<CimiVolume>>(doc).expect("a guarded volume")
        };
        assert!(r.handle(Scoped { scope: 0, event: Ok(Event::Apply(changed(None))) }).is_empty(), "shard 0's");
        assert_eq!(r.handle(Scoped { scope: 0, event: Ok(Event::Apply(changed(Some("1")))) }).len(), 1, "pinned here");
        let text = metrics.encode();
        assert!(text.contains(&format!("state=\"AVAILABLE\"}} {}", own + 1)), "counted once it is ours: {text}");
    }

    #[test]
    fn the_store_keeps_objects_without_managed_fields_or_the_last_applied_manifest() {
        let (mut r, _, _) = reflection(&["a"]);
        let mut doc = serde_json::to_value(volume("a", "v", Some("AVAILABLE")).0.expect("decoded")).expect("json");
        doc["metadata"]["managedFields"] = serde_json::json!([{"manager": "kubectl", "operation": "Apply",
            "apiVersion": "cimi.dev/v1alpha1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]);
        doc["metadata"]["annotations"] = serde_json::json!({LAST_APPLIED: "{\"big\": \"manifest\"}",
            "cimi.dev/paused": "true"});
        let object: DeserializeGuard<CimiVolume> = serde_json::from_value(doc).expect("a guarded volume");
        assert!(object.0.as_ref().expect("decoded").metadata.managed_fields.is_some());
        relist(&mut r, 0, vec![object.clone()]);
        r.handle(Scoped { scope: 0, event: Ok(Event::Apply(object)) });
        let stored = r.reader.state();
        let meta = &stored[0].metadata;
        assert!(meta.managed_fields.is_none(), "{meta:?}");
        let annotations = meta.annotations.clone().unwrap_or_default();
        assert!(!annotations.contains_key(LAST_APPLIED), "{annotations:?}");
        assert_eq!(annotations.get("cimi.dev/paused").map(String::as_str), Some("true"), "the operator's own stay");
    }

    #[test]
    fn a_change_of_status_or_finalizers_alone_does_not_wake_the_object_and_any_other_change_does() {
        let (mut r, _, _) = reflection(&["a"]);
        let apply = |r: &mut Reflection<CimiVolume>, edit: &dyn Fn(&mut serde_json::Value)| {
            let mut doc = serde_json::to_value(volume("a", "v", Some("CREATING")).0.expect("decoded")).expect("json");
            doc["metadata"]["uid"] = serde_json::json!("u1");
            doc["metadata"]["generation"] = serde_json::json!(1);
            edit(&mut doc);
            let object: DeserializeGuard<CimiVolume> = serde_json::from_value(doc).expect("a guarded volume");
            r.handle(Scoped { scope: 0, event: Ok(Event::Apply(object)) }).len()
        };
        relist(&mut r, 0, vec![]);
        assert_eq!(apply(&mut r, &|_| {}), 1, "a new object wakes");
        assert_eq!(apply(&mut r, &|_| {}), 0, "nothing changed");
        assert_eq!(apply(&mut r, &|d| d["status"]["state"] = "AVAILABLE".into()), 0, "status alone");
        let finalizer = |d: &mut serde_json::Value| d["metadata"]["finalizers"] = serde_json::json!(["cimi.dev/x"]);
        assert_eq!(apply(&mut r, &finalizer), 0, "finalizers alone");
        assert_eq!(apply(&mut r, &|d| d["metadata"]["generation"] = 2.into()), 1, "the spec");
        assert_eq!(apply(&mut r, &|d| d["metadata"]["generation"] = 2.into()), 0);
        let paused = |d: &mut serde_json::Value| {
            d["metadata"]["generation"] = 2.into();
            d["metadata"]["annotations"] = serde_json::json!({"cimi.dev/paused": "true"});
        };
        assert_eq!(apply(&mut r, &paused), 1, "an annotation");
        let labelled = |d: &mut serde_json::Value| {
            paused(d);
            d["metadata"]["labels"] = serde_json::json!({"team": "a"});
        };
        assert_eq!(apply(&mut r, &labelled), 1, "a label");
        let deleting = |d: &mut serde_json::Value| {
            labelled(d);
            d["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z".into();
        };
        assert_eq!(apply(&mut r, &deleting), 1, "a deletion");
        let recreated = |d: &mut serde_json::Value| {
            deleting(d);
            d["metadata"]["uid"] = "u2".into();
        };
        assert_eq!(apply(&mut r, &recreated), 1, "another object of that name");
    }

    #[test]
    fn undecodable_objects_are_counted_and_absent_and_the_others_flow() {
        let (mut r, _, metrics) = reflection(&["a"]);
        assert_eq!(relist(&mut r, 0, vec![volume("a", "good", None), undecodable("a", "bad")]), 1);
        assert_eq!(names(&r), ["good"]);
        // A known object turns undecodable: it leaves the store (its old spec is no longer the truth).
        let triggers = r.handle(Scoped { scope: 0, event: Ok(Event::Apply(undecodable("a", "good"))) });
        assert!(triggers.is_empty());
        assert!(names(&r).is_empty());
        let triggers = r.handle(Scoped { scope: 0, event: Ok(Event::Apply(volume("a", "next", None))) });
        assert_eq!(triggers.len(), 1, "the watch goes on");
        r.handle(Scoped { scope: 0, event: Ok(Event::Delete(undecodable("a", "next"))) });
        assert!(names(&r).is_empty(), "a deletion is applied even when the object cannot be decoded");
        assert!(metrics.encode().contains("cimi_watch_errors_total{kind=\"CimiVolume\",reason=\"decode\"} 2"));
    }

    #[test]
    fn a_job_seen_to_finish_is_timed_once() {
        let (mut r, _, metrics) = reflection(&["a"]);
        let with_job = |state: &str| -> DeserializeGuard<CimiVolume> {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiVolume",
                "metadata": {"name": "v", "namespace": "a"},
                "spec": {"providerRef": {"name": "lab"}},
                "status": {"job": {"href": "j/1", "action": "add", "state": state, "startedAt": "2026-01-01T00:00:00Z"}}
            }))
            .expect("volume")
        };
        relist(&mut r, 0, vec![with_job("RUNNING")]);
        r.handle(Scoped { scope: 0, event: Ok(Event::Apply(with_job("SUCCESS"))) });
        r.handle(Scoped { scope: 0, event: Ok(Event::Apply(with_job("SUCCESS"))) });
        let text = metrics.encode();
        assert!(
            text.contains("cimi_job_duration_seconds_count{kind=\"CimiVolume\",provider=\"lab\",action=\"add\",state=\"SUCCESS\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn every_namespace_registers_a_watch() {
        crate::runtime::telemetry::install_crypto_provider();
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().expect("url"))).expect("client");
        let config = Config { namespaces: vec!["a".into(), "b".into()], ..Config::default() };
        let watches = Watches { client, config, readiness: Readiness::new(), metrics: Metrics::new(), recorder: None };
        let _machines = watches.reflect::<CimiMachine>(None, None);
        let _providers = watches.reflect_cluster::<CimiProvider>(None);
        let _secrets = watches.secret_names("cimimachines", None);
        assert_eq!(
            watches.readiness.pending(),
            [
                "watch/cimimachines/a",
                "watch/cimimachines/b",
                "watch/cimimachines/secrets/a",
                "watch/cimimachines/secrets/b",
                "watch/cimiproviders/*"
            ]
        );
    }

    #[test]
    fn a_related_change_triggers_only_when_its_key_changes_and_a_relist_forgets_what_is_gone() {
        let decoded = |ns: &str, name: &str, state: Option<&str>| {
            let mut v = volume(ns, name, state).0.expect("decodes");
            v.metadata.uid = Some(format!("uid-{name}"));
            v
        };
        let state_of: fn(&CimiVolume) -> Option<String> = |v| v.status.as_ref().and_then(|s| s.common.state.clone());
        let mut keys = KeyMemory::new(2);
        let a = decoded("team-a", "a", None);
        assert!(keys.changed(Change::Applied(0, &a), state_of), "a new object triggers");
        assert!(!keys.changed(Change::Applied(0, &a), state_of), "the same key again does not");
        let a_on = decoded("team-a", "a", Some("ONLINE"));
        assert!(keys.changed(Change::Applied(0, &a_on), state_of), "a changed key triggers");
        assert!(keys.changed(Change::Applied(1, &a_on), state_of), "scopes are remembered apart");
        assert!(keys.changed(Change::Deleted(0, &a_on), state_of), "a deletion always triggers");
        assert!(keys.changed(Change::Applied(0, &a_on), state_of), "and the object is new again after it");

        // A relist of scope 0 lists `b` only: `a` (deleted while the watch was down) is forgotten, and an
        // object listed again unchanged does not trigger.
        let b = decoded("team-a", "b", None);
        assert!(keys.changed(Change::Applied(0, &b), state_of));
        assert!(!keys.changed(Change::Relisting(0), state_of));
        assert!(!keys.changed(Change::Applied(0, &b), state_of), "listed again, unchanged");
        assert!(!keys.changed(Change::Listed(0), state_of));
        assert_eq!(keys.scopes[0].len(), 1, "only b is remembered in scope 0");
        assert!(keys.scopes[0].contains_key("uid-b"));
        assert!(keys.changed(Change::Applied(0, &a_on), state_of), "a comes back as new");
    }
}
