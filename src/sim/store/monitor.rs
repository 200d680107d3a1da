//! Monitoring: an EventLog per machine, volume, network and system, with an Event for every state and model
//! change; and Meters on machines (cpu, memory, disk, bandwidth) whose Samples appear as time passes.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::data::{Store, now, stamp};
use crate::cimi::model::NS;
use crate::sim::config::Timing;

/// How many events an EventLog keeps.
const MAX_EVENTS: usize = 1000;
/// How many samples a Meter keeps.
const MAX_SAMPLES: usize = 100;
/// The meters of a machine: aspect and units.
const MACHINE_METERS: &[(&str, &str)] = &[("cpu", "percent"), ("memory", "KiB"), ("disk", "kB"), ("bandwidth", "kbps")];

impl Store {
    /// Creates the EventLog (and, for machines, the Meters) of a new resource, and logs its creation.
    pub(super) fn monitor_new(&mut self, path: &str) {
        if !self.profile.jobs() {
            return;
        }
        let Some(type_name) = self.resources.get(path).map(|s| s.type_name.clone()) else {
            return;
        };
        let at = now();
        let id = self.next_id();
        let log = format!("eventLogs/{id}");
        let doc = json!({"name": format!("events of {path}"), "created": stamp(at), "updated": stamp(at),
            "targetResource": {"href": self.abs(path)}, "persistence": "daily",
            "events": {"href": self.abs(&format!("{log}/events"))},
            "summary": {"low": 0, "medium": 0, "high": 0, "critical": 0}});
        if let Value::Object(doc) = doc {
            self.insert(&log, "EventLog", "eventLogs", doc);
        }
        self.add_sub_collection(&log, "events", "Event");
        let log_href = json!({"href": self.abs(&log)});
        if let Some(st) = self.resources.get_mut(path) {
            st.doc.insert("eventLog".into(), log_href);
            st.hidden.insert("eventLog".into(), json!(log));
        }
        if type_name == "Machine" {
            let meters = self.add_sub_collection(path, "meters", "Meter");
            let interval = if self.timing == Timing::Realistic { 10 } else { 1 };
            for (aspect, units) in MACHINE_METERS {
                let id = self.next_id();
                let meter = format!("{meters}/{id}");
                let doc = json!({"name": format!("{aspect} of {path}"), "created": stamp(at), "updated": stamp(at),
                    "targetResource": {"href": self.abs(path)}, "aspect": format!("{NS}/aspect/{aspect}"),
                    "units": units, "sampleInterval": interval, "timeScope": "Point", "isContinuous": true,
                    "samples": {"href": self.abs(&format!("{meter}/samples"))}});
                if let Value::Object(doc) = doc {
                    self.insert(&meter, "Meter", &meters, doc);
                }
                self.add_sub_collection(&meter, "samples", "Sample");
                if let Some(st) = self.resources.get_mut(&meter) {
                    st.hidden.insert("lastSample".into(), json!(at.to_rfc3339()));
                    st.also.push("meters".into());
                    let seq = st.seq;
                    if let Some(c) = self.colls.get_mut("meters") {
                        c.members.insert(seq, meter.clone());
                    }
                }
            }
            let href = json!({"href": self.abs(&meters)});
            if let Some(st) = self.resources.get_mut(path) {
                st.doc.insert("meters".into(), href);
            }
        }
        self.model_event(path, "create");
    }

    fn add_event(&mut self, path: &str, type_: &str, content: Value, severity: &str) {
        let Some(log) = self.resources.get(path).and_then(|s| s.hidden_str("eventLog")).map(str::to_string) else {
            return;
        };
        let events = format!("{log}/events");
        if !self.colls.contains_key(&events) {
            return;
        }
        let at = now();
        let id = self.next_id();
        let event = json!({"timestamp": stamp(at), "type": format!("{NS}/event/{type_}"), "content": content,
            "outcome": "Status", "severity": severity});
        if let Value::Object(event) = event {
            self.insert(&format!("{events}/{id}"), "Event", &events, event);
        }
        let oldest = self
            .colls
            .get(&events)
            .filter(|c| c.members.len() > MAX_EVENTS)
            .and_then(|c| c.members.values().next().cloned());
        if let Some(oldest) = oldest {
            self.remove(&oldest);
        }
        // The log changes with each event: its summary counts it and `updated` says when, so a client can find
        // the logs with news in one filtered read of the eventLogs collection.
        if let Some(st) = self.resources.get_mut(&log) {
            if let Some(summary) = st.doc.get_mut("summary").and_then(Value::as_object_mut) {
                let n = summary.get(severity).and_then(Value::as_i64).unwrap_or(0);
                summary.insert(severity.into(), json!(n + 1));
            }
            st.doc.insert("updated".into(), stamp(at));
            st.version += 1;
        }
    }

    fn content(&self, path: &str) -> Map<String, Value> {
        let mut c = Map::new();
        if let Some(st) = self.resources.get(path) {
            if let Some(name) = st.doc.get("name") {
                c.insert("resName".into(), name.clone());
            }
            c.insert("resource".into(), json!({"href": self.abs(path)}));
            c.insert("resType".into(), json!(format!("{NS}/{}", st.type_name)));
        }
        c
    }

    /// Logs a state change.
    pub(super) fn state_event(&mut self, path: &str, previous: &str, state: &str) {
        if previous == state {
            return;
        }
        let mut c = self.content(path);
        c.insert("state".into(), json!(state));
        c.insert("previous".into(), json!(previous));
        let severity = if state == "ERROR" { "high" } else { "low" };
        self.add_event(path, "state", Value::Object(c), severity);
    }

    /// Logs a model change (`create`, `update`, `delete`).
    pub(super) fn model_event(&mut self, path: &str, change: &str) {
        let mut c = self.content(path);
        c.insert("change".into(), json!(change));
        self.add_event(path, "model", Value::Object(c), "low");
    }

    /// Brings the Meter a request path points into (`…/meters/{id}`, its `samples` or one sample) up to date.
    ///
    /// Samples are made lazily, when someone looks or when the machine's state is about to change (so each
    /// sample reflects the state at its time): the cost of time passing no longer grows with the number of meters.
    pub fn sample_for_request(&mut self, path: &str, at: DateTime<Utc>) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let Some(i) = segments.iter().position(|s| *s == "meters") else {
            return;
        };
        if i + 1 >= segments.len() {
            return;
        }
        let meter = segments[..=i + 1].join("/");
        if self.resources.get(&meter).is_some_and(|st| st.type_name == "Meter") {
            self.sample_meter(&meter, at, None);
        }
    }

    /// Brings the meters of a meter collection (the CloudEntryPoint's `meters`, or a resource's) up to date, for
    /// a read that inlines their samples (`$expand=samples`): those of the page `($first, $last)` when given
    /// (sampling a 40,000-meter collection for each page of 100 made each page cost seconds), else every one, at
    /// most once a second per collection.
    pub fn sample_collection(&mut self, path: &str, at: DateTime<Utc>, page: Option<(Option<u64>, Option<u64>)>) {
        let path = path.trim_matches('/');
        let Some(c) = self.colls.get(path).filter(|c| c.item_type == "Meter") else {
            return;
        };
        if let Some((first, last)) = page {
            // The members served, in the order served (a listing skips a member whose resource is gone).
            let live = |m: &&String| self.resources.contains_key(m);
            let range = crate::sim::query::page_range(first, last, c.members.values().filter(live).count());
            let meters: Vec<String> =
                c.members.values().filter(live).skip(range.start).take(range.len()).cloned().collect();
            for meter in meters {
                self.sample_meter(&meter, at, None);
            }
            return;
        }
        if self.bulk_sampled.get(path).is_some_and(|t| at - *t < Duration::seconds(1)) {
            return;
        }
        let meters: Vec<String> = c.members.values().cloned().collect();
        for meter in meters {
            self.sample_meter(&meter, at, None);
        }
        if self.bulk_sampled.len() > 10_000 {
            // Collections of machines long gone: forget them all (the cost is one more sampling pass).
            self.bulk_sampled.clear();
        }
        self.bulk_sampled.insert(path.to_string(), at);
    }

    /// Samples every meter of a machine up to `at` as if it were (or were not) running: called before a state
    /// change.
    pub(super) fn sample_machine(&mut self, machine: &str, at: DateTime<Utc>, running: bool) {
        let Some(meters) = self.colls.get(&format!("{machine}/meters")) else {
            return;
        };
        let meters: Vec<String> = meters.members.values().cloned().collect();
        for meter in meters {
            self.sample_meter(&meter, at, Some(running));
        }
    }

    /// Adds the samples of one meter that are due by `at` (at most [`MAX_SAMPLES`], the newest ones).
    fn sample_meter(&mut self, meter: &str, at: DateTime<Utc>, running: Option<bool>) {
        let Some(st) = self.resources.get(meter) else {
            return;
        };
        let interval = st.doc.get("sampleInterval").and_then(Value::as_i64).unwrap_or(1).max(1);
        let aspect =
            st.doc.get("aspect").and_then(Value::as_str).unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
        let target =
            st.doc.get("targetResource").and_then(|t| t.get("href")).and_then(Value::as_str).map(|h| self.path_of(h));
        let mut last = st
            .hidden_str("lastSample")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or(at);
        let step = Duration::seconds(interval);
        if last + step > at {
            return;
        }
        // Older samples than the newest MAX_SAMPLES would be pruned at once: skip them.
        let due = ((at - last).num_seconds() / interval).max(0);
        let keep = MAX_SAMPLES as i64;
        if due > keep {
            last += Duration::seconds((due - keep) * interval);
        }
        let (running, memory, disk) = match target.as_deref().and_then(|t| self.resources.get(t)) {
            Some(m) => (
                running.unwrap_or(m.state() == "STARTED"),
                m.doc.get("memory").and_then(Value::as_i64).unwrap_or(0),
                self.disk_total(target.as_deref().unwrap_or("")),
            ),
            None => (false, 0, 0),
        };
        let samples = format!("{meter}/samples");
        let mut made = 0;
        while last + step <= at && made < MAX_SAMPLES {
            last += step;
            made += 1;
            let value = match (aspect.as_str(), running) {
                (_, false) if aspect != "disk" => "0".to_string(),
                ("cpu", _) => format!("{:.1}", self.rng.random_range(2.0..95.0)),
                ("memory", _) => (memory * self.rng.random_range(20..90) / 100).to_string(),
                ("disk", _) => (disk * self.rng.random_range(5..60) / 100).to_string(),
                _ => self.rng.random_range(0..100_000).to_string(),
            };
            let id = self.next_id();
            let sample = json!({"timestamp": stamp(last), "value": value});
            if let Value::Object(sample) = sample {
                self.insert(&format!("{samples}/{id}"), "Sample", &samples, sample);
            }
        }
        let excess: Vec<String> = self
            .colls
            .get(&samples)
            .map(|c| c.members.values().take(c.members.len().saturating_sub(MAX_SAMPLES)).cloned().collect())
            .unwrap_or_default();
        for old in excess {
            self.remove(&old);
        }
        if let Some(st) = self.resources.get_mut(meter) {
            st.hidden.insert("lastSample".into(), json!(last.to_rfc3339()));
        }
    }

    fn disk_total(&self, machine: &str) -> i64 {
        self.colls
            .get(&format!("{machine}/disks"))
            .map(|c| {
                c.members
                    .values()
                    .filter_map(|d| self.resources.get(d))
                    .filter_map(|d| d.doc.get("capacity").and_then(Value::as_i64))
                    .sum()
            })
            .unwrap_or(0)
    }
}
