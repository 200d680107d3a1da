//! The state the observer's parts share: per provider and collection the poll task's cache, the monitoring
//! state of each resource (meters, events), the meter gauges, and the provider cadences.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::{CancellationToken, DropGuard};
use url::Url;

use crate::api::common::{EventCursor, MeterStatus};
use crate::api::provider::Observation;
use crate::controller::registry::ProviderRegistry;
use crate::runtime::metrics::{MeterLabels, Metrics};

/// The reason of the Kubernetes Events that mirror provider events.
pub const PROVIDER_EVENT_REASON: &str = "ProviderEvent";

/// The most provider events mirrored in one pass (the rest follow in the next passes).
pub(super) const MAX_EVENTS_PER_PASS: usize = 100;

/// How long a reconcile waits for the first listing of its collection before it GETs instead.
pub(super) const FIRST_POLL_WAIT: Duration = Duration::from_secs(10);

/// The attributes whose change in a listing triggers a reconcile.
pub(super) const WATCHED_ATTRIBUTES: &[&str] = &[
    "state",
    "name",
    "description",
    "properties",
    "updated",
    "cpu",
    "memory",
    "capacity",
    "bootable",
    "networkType",
    "mtu",
];

/// A Kubernetes object, by namespace and name.
pub(super) type Owner = (String, String);

/// The provider observation shared by every controller of one operator instance.
pub struct Observer {
    pub(super) inner: Arc<Inner>,
    pub(super) _stop: DropGuard,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub(super) providers: ProviderRegistry,
    pub(super) client: kube::Client,
    /// Publishes the mirrored provider events.
    pub(super) recorder: crate::runtime::events::EventRecorder,
    pub(super) page_size: u64,
    pub(super) cluster: String,
    pub(super) timings: Mutex<HashMap<String, (Timing, Instant)>>,
    pub(super) gauges_max: usize,
    pub(super) metrics: Metrics,
    pub(super) stop: CancellationToken,
    pub(super) pollers: Mutex<HashMap<(String, &'static str), Arc<Poller>>>,
    pub(super) triggers: Mutex<HashMap<&'static str, mpsc::UnboundedSender<Owner>>>,
    pub(super) receivers: Mutex<HashMap<&'static str, mpsc::UnboundedReceiver<Owner>>>,
    pub(super) monitors: Mutex<HashMap<String, Monitor>>,
    pub(super) gauges: Mutex<GaugeSet>,
    /// Per provider, the batched monitoring ([`super::batch`]).
    pub(super) batches: Mutex<HashMap<String, Arc<Batch>>>,
}

/// A provider's cadences: `pollInterval`, `meterInterval`, `eventInterval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// State (collection reads).
    pub poll: Duration,
    /// Meters.
    pub meters: Duration,
    /// EventLogs.
    pub events: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self { poll: Duration::from_secs(30), meters: Duration::from_secs(300), events: Duration::from_secs(60) }
    }
}

/// How long a provider's cadences are remembered before they are read again.
pub(super) const TIMING_TTL: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct GaugeSet {
    pub(super) live: HashSet<MeterLabels>,
    pub(super) warned: bool,
}

/// One provider collection's cache and its poll task.
pub(super) struct Poller {
    pub(super) state: Mutex<PollState>,
    pub(super) first: watch::Sender<bool>,
}

#[derive(Default)]
pub(super) struct PollState {
    pub(super) entries: HashMap<String, Cached>,
    pub(super) owners: HashMap<String, Owner>,
    pub(super) unfiltered: bool,
    /// Imported resources (without our tags, so not in the tag-filtered listing) that objects observe.
    pub(super) imported: HashSet<String>,
}

/// A provider resource as last listed or read, kept as its JSON text (a parsed `Value` tree costs several times
/// the text's size in small allocations, held for every resource between polls), with the digest of the
/// attributes whose change wakes its object and the UID tag it carries.
pub(super) struct Cached {
    text: Box<str>,
    digest: Box<str>,
    uid: Option<Box<str>>,
    pub(super) at: Instant,
    pub(super) listed: bool,
}

impl Cached {
    pub(super) fn new(value: &Value, listed: bool) -> Self {
        let mut cached = Cached { text: "".into(), digest: "".into(), uid: None, at: Instant::now(), listed };
        cached.set(value);
        cached
    }

    /// Replaces what is kept by `value`, read now.
    pub(super) fn set(&mut self, value: &Value) {
        self.text = value.to_string().into_boxed_str();
        self.digest = digest_text(value).into_boxed_str();
        self.uid = crate::controller::resource::reads::uid_tag(value).map(Into::into);
        self.at = Instant::now();
    }

    /// The resource as kept.
    pub(super) fn value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Whether `other` differs from what is kept in an attribute its object watches.
    pub(super) fn changed_from(&self, other: &Cached) -> bool {
        self.digest != other.digest
    }

    /// Whether the resource carries our UID tag `uid`.
    pub(super) fn carries_uid(&self, uid: &str) -> bool {
        self.uid.as_deref() == Some(uid)
    }
}

/// The attributes of a resource whose change matters to its object.
pub(super) fn digest(v: &Value) -> Vec<Option<&Value>> {
    WATCHED_ATTRIBUTES.iter().map(|a| v.get(*a)).collect()
}

/// [`digest`] as text.
fn digest_text(value: &Value) -> String {
    serde_json::to_string(&digest(value)).unwrap_or_default()
}

/// What the observer keeps per provider resource between reconciles (in memory only).
#[derive(Default)]
pub(super) struct Monitor {
    pub(super) meters_read: Option<Instant>,
    pub(super) meters: Option<Vec<MeterRef>>,
    /// When the events were last due and looked at (read, or skipped because a batched read saw no change).
    pub(super) events_read: Option<Instant>,
    /// When the events were last read from the log itself, completely, and the log's signature in the batched
    /// read known then.
    pub(super) events_direct: Option<Instant>,
    pub(super) events_seen: Option<String>,
    pub(super) events_href: Option<Url>,
    pub(super) cursor: Option<EventCursor>,
    pub(super) sub: Option<SubReading>,
}

#[derive(Clone)]
pub(super) struct MeterRef {
    pub(super) aspect: String,
    pub(super) units: Option<String>,
    pub(super) samples: Url,
}

/// The last reading of a machine's sub-collections, with the machine's `updated` at the time.
#[derive(Clone, Debug)]
pub struct SubReading {
    /// The machine's `updated` when read.
    pub updated: Option<String>,
    /// When read.
    pub at: Instant,
    /// What was read, as its JSON text (kept for every machine between reads: a parsed tree costs several
    /// times as much).
    text: Box<str>,
    /// Whether it came from a batched read of every machine (kept a little longer than a reading of its own).
    pub batched: bool,
}

impl SubReading {
    /// A reading of `value`, made at `at`.
    pub(super) fn new(updated: Option<String>, at: Instant, value: &Value, batched: bool) -> Self {
        SubReading { updated, at, text: value.to_string().into_boxed_str(), batched }
    }

    /// What was read.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Whether `value` differs from what was read.
    pub(super) fn differs(&self, value: &Value) -> bool {
        *self.text != *value.to_string()
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn lock_state(p: &Poller) -> MutexGuard<'_, PollState> {
    lock(&p.state)
}

pub(super) fn short(uri: &str) -> String {
    uri.rsplit('/').next().unwrap_or(uri).to_string()
}

pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn parse_time(s: &str) -> Option<Time> {
    s.parse::<k8s_openapi::jiff::Timestamp>().ok().map(Time)
}

/// The monitoring key of a system member (apart from the member's own, which an exposed object uses).
pub(super) fn member_key(system_href: &str, member_href: &str) -> String {
    format!("system {system_href} member {member_href}")
}

/// One provider's batched monitoring.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) state: Mutex<BatchState>,
}

#[derive(Default)]
pub(super) struct BatchState {
    pub(super) observation: Observation,
    /// The meters of our resources by href, from the last complete batched read, and when it ended.
    pub(super) meters: Option<(HashMap<String, Vec<MeterStatus>>, Instant)>,
    /// The signature (`updated` and `summary`) of our resources' event logs, by resource href.
    pub(super) logs: HashMap<String, String>,
    /// When the last complete batched read of the event logs started.
    pub(super) logs_read: Option<Instant>,
    /// What the next read asks for: the logs updated since this (the newest `updated` known before the last read).
    pub(super) logs_since: Option<DateTime<FixedOffset>>,
    /// The newest `updated` of an event log seen.
    pub(super) logs_newest: Option<DateTime<FixedOffset>>,
    /// Whether the provider refused `$filter` on `updated` (then the whole collection is read, while cheap).
    pub(super) logs_unfiltered: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cached_resource_wakes_on_state_and_attributes_only_and_reads_back_whole() {
        let tagged = json!({"state": "STARTED", "name": "m", "operations": [1],
            "properties": {crate::names::TAG_UID: "u-1"}});
        let mut cached = Cached::new(&tagged, true);
        assert_eq!(cached.value(), tagged, "the kept text reads back as the same resource");
        assert!(cached.carries_uid("u-1"));
        assert!(!cached.carries_uid("u-2"));
        let other_operations = json!({"state": "STARTED", "name": "m", "operations": [2],
            "properties": {crate::names::TAG_UID: "u-1"}});
        assert!(!cached.changed_from(&Cached::new(&other_operations, true)), "operations are not watched");
        let stopped = json!({"state": "STOPPED", "name": "m"});
        assert!(cached.changed_from(&Cached::new(&stopped, true)));
        cached.set(&stopped);
        assert!(!cached.changed_from(&Cached::new(&stopped, false)));
        assert!(!cached.carries_uid("u-1"), "a resource read without the tag no longer carries it");
    }
}
