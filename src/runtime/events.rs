//! Publishes Kubernetes Events (`events.k8s.io/v1`) with a bounded series cache.
//!
//! An Event that repeats (same object, type, reason, action and note) within [`SERIES_WINDOW`] is not created
//! again: the first one gains a `series` (count and last time), as the Kubernetes event conventions ask. What
//! the recorder keeps for that is bounded by [`MAX_SERIES`] entries of a few dozen bytes each, and expired
//! entries are dropped at most every [`SWEEP_EVERY`], so publishing costs the same at 10 objects and at
//! 10,000 (kube-runtime's recorder keeps every Event it published, whole, and scans all of them on each
//! publish; it also folds Events that differ only in their note into the first one, losing the later notes).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long a published Event can still be continued as a series.
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// The most series the recorder remembers; past it the oldest are forgotten (a repeat then makes a new Event).
pub const MAX_SERIES: usize = 4096;
/// How often, at most, expired series are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// An Event's name is the object's name, a dot and 16 hex digits; names stop at 253 characters.
const MAX_NAME_PREFIX: usize = 253 - 17;
/// The most Events [`EventRecorder::publish_detached`] has on their way at once; past it a publisher waits.
pub const MAX_IN_FLIGHT: usize = 64;

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// A Warning (else Normal).
    pub warning: bool,
    /// Why (PascalCase, at most 128 characters).
    pub reason: String,
    /// What was done (PascalCase, at most 128 characters).
    pub action: String,
    /// What happened, for people (at most 1 kB).
    pub note: String,
}

/// Publishes Events as one reporting controller. Cheap to clone: clones share the series cache.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    series: Arc<Mutex<SeriesCache>>,
    /// Slots for the Events published in the background.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder").field("controller", &self.controller).field("instance", &self.instance).finish()
    }
}

/// An Event already published, which a repeat continues.
struct Series {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

/// The series by the hash of what makes two Events the same (a 64-bit hash: a collision among a few thousand
/// live series is about one in 10^12, and would only continue the wrong Event's count).
struct SeriesCache {
    by_key: HashMap<u64, Series>,
    swept: Instant,
}

impl SeriesCache {
    /// Drops the series past their window (at most every [`SWEEP_EVERY`]), and the oldest quarter when full.
    fn make_room(&mut self, now: Instant) {
        if now.duration_since(self.swept) >= SWEEP_EVERY || self.by_key.len() >= MAX_SERIES {
            self.by_key.retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
            self.swept = now;
        }
        if self.by_key.len() >= MAX_SERIES {
            let mut ages: Vec<(Instant, u64)> = self.by_key.iter().map(|(k, s)| (s.last, *k)).collect();
            ages.sort_unstable();
            for (_, key) in ages.into_iter().take(MAX_SERIES / 4) {
                self.by_key.remove(&key);
            }
        }
    }
}

impl EventRecorder {
    /// A recorder reporting as `controller` from `instance`.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        let series = SeriesCache { by_key: HashMap::new(), swept: Instant::now() };
        EventRecorder {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            series: Arc::new(Mutex::new(series)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Publishes `event` on `regarding` as [`EventRecorder::publish`] does, in the background (as client-go's
    /// recorder does): a reconcile holding one of its controller's workers does not wait for the API server to
    /// take its Event. At most [`MAX_IN_FLIGHT`] are on their way; past that this waits for one to land, so the
    /// API server's pace bounds them, not memory. A failure is logged (an Event is a notice; the object's
    /// conditions carry the same news).
    pub async fn publish_detached(&self, event: Event, regarding: ObjectReference) {
        let Ok(slot) = self.in_flight.clone().acquire_owned().await else { return };
        let recorder = self.clone();
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &regarding).await {
                tracing::warn!(%error, reason = %event.reason, "cannot publish an Event");
            }
            drop(slot);
        });
    }

    /// How many series the recorder remembers now.
    pub fn remembered(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        self.series.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes `event` on `regarding`: a new Event, or the next of its series when the same one was published
    /// within [`SERIES_WINDOW`].
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let key = series_key(event, regarding);
        let now = Instant::now();
        let repeat = {
            let mut cache = self.lock();
            cache.make_room(now);
            cache
                .by_key
                .get(&key)
                .filter(|s| now.duration_since(s.last) < SERIES_WINDOW)
                .map(|s| (s.namespace.clone(), s.name.clone(), s.count + 1))
        };
        if let Some((namespace, name, count)) = repeat {
            let patch = serde_json::json!({
                "series": {"count": count, "lastObservedTime": MicroTime(Timestamp::now())},
            });
            let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    if let Some(s) = self.lock().by_key.get_mut(&key) {
                        s.count = count;
                        s.last = Instant::now();
                    }
                    return Ok(());
                }
                // The Event is gone (the API server's TTL, or deleted): start a new one.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let created = self.create(event, regarding).await?;
        self.lock().by_key.insert(key, created);
        Ok(())
    }

    /// Publishes `event` on `regarding` as an Event of its own, never continued as a series, at most once
    /// for each `key` (for Events that are each unique, such as mirrored provider events, keyed by the
    /// provider event's id). The Event's name is derived from the object's UID and `key`, so a second publish
    /// (by this process, or by the next one after a crash lost what was mirrored) is refused by the API server
    /// and costs one request, whatever the number of Events in the namespace. Returns whether it was created.
    pub async fn publish_once(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        key: &str,
    ) -> Result<bool, kube::Error> {
        let uid = regarding.uid.as_deref().unwrap_or_default();
        let suffix = stable_hash(&[uid.as_bytes(), b"\0", key.as_bytes()]);
        match self.create_named(event, regarding, suffix).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, event: &Event, regarding: &ObjectReference) -> Result<Series, kube::Error> {
        self.create_named(event, regarding, Timestamp::now().as_nanosecond() as u64).await
    }

    /// Creates the Event named after the object and `suffix` (16 hex digits).
    async fn create_named(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        suffix: u64,
    ) -> Result<Series, kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_string());
        let now = Timestamp::now();
        let prefix: String =
            regarding.name.as_deref().unwrap_or(&self.controller).chars().take(MAX_NAME_PREFIX).collect();
        let name = format!("{prefix}.{suffix:016x}");
        let kube_event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: Some(event.note.clone()),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..KubeEvent::default()
        };
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &kube_event).await?;
        Ok(Series { namespace, name, count: 1, last: Instant::now() })
    }
}

/// FNV-1a over `parts`: the same on every build and platform (the standard library's hasher may change between
/// Rust releases, and an Event name must not).
fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// What makes two Events the same: the object (by UID when known), type, reason, action and note.
fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    (&regarding.api_version, &regarding.kind, &regarding.namespace, &regarding.name, &regarding.uid).hash(&mut hasher);
    (event.warning, &event.reason, &event.action, &event.note).hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("CimiMachine".into()),
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..ObjectReference::default()
        }
    }

    fn event(note: &str) -> Event {
        Event { warning: false, reason: "Ready".into(), action: "Reconcile".into(), note: note.into() }
    }

    #[test]
    fn the_stable_hash_is_fnv_1a() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(stable_hash(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(&[b"foo"]), 0xdcb2_7518_fed9_d577);
        assert_eq!(stable_hash(&[b"fo", b"o"]), stable_hash(&[b"foo"]));
    }

    #[test]
    fn a_series_is_the_same_object_reason_action_and_note() {
        let same = series_key(&event("a"), &reference("m"));
        assert_eq!(same, series_key(&event("a"), &reference("m")));
        assert_ne!(same, series_key(&event("b"), &reference("m")), "a different note is an Event of its own");
        assert_ne!(same, series_key(&event("a"), &reference("n")));
        let warning = Event { warning: true, ..event("a") };
        assert_ne!(same, series_key(&warning, &reference("m")));
    }

    fn series(last: Instant) -> Series {
        Series { namespace: "ns".into(), name: "e".into(), count: 1, last }
    }

    #[test]
    fn the_cache_forgets_expired_series_and_never_grows_past_its_bound() {
        let start = Instant::now();
        let mut cache = SeriesCache { by_key: HashMap::new(), swept: start };
        for key in 0..MAX_SERIES as u64 {
            cache.make_room(start);
            cache.by_key.insert(key, series(start + Duration::from_millis(key)));
        }
        assert_eq!(cache.by_key.len(), MAX_SERIES);
        cache.make_room(start);
        assert_eq!(cache.by_key.len(), MAX_SERIES - MAX_SERIES / 4, "the oldest quarter is forgotten when full");
        assert!(!cache.by_key.contains_key(&0) && cache.by_key.contains_key(&(MAX_SERIES as u64 - 1)));
        let later = start + SERIES_WINDOW + Duration::from_secs(MAX_SERIES as u64);
        cache.by_key.insert(u64::MAX, series(later));
        cache.make_room(later);
        assert_eq!(cache.by_key.len(), 1, "series past their window are swept");
    }
}
