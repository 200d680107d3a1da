//! The gauges and counters fed by a controller's store: what each object is (its provider state, its standing
//! by conditions, whether its latest spec is still waiting), kept as counts that move by one on each change of
//! one object, plus the events seen between two versions of an object (a Job that finished, Ready reached for
//! a new spec). No label names an object: cardinality is bounded by kinds, providers, states and reasons.

use std::collections::HashMap;
use std::time::Instant;

use kube::api::ObjectMeta;

use super::metrics::{Metrics, ObjectLabels, ResourceLabels};
use crate::api::common::{JobStatus, ManagedStatus};
use crate::api::conditions::find;

/// What the gauges need of one version of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The provider key (`name`, or `namespace/name` for a CimiNamespacedProvider).
    pub provider: String,
    /// The provider state, UNKNOWN before the first observation.
    pub state: String,
    /// `Ready`, `Stalled`, `Reconciling`, or `Pending` before the operator wrote any condition.
    pub standing: &'static str,
    /// The reason of the condition that gives the standing (empty when Pending).
    pub reason: String,
    /// Whether the latest spec has not been acted on yet (generation newer than observedGeneration).
    pub pending: bool,
    /// Whether Ready is True for the latest spec.
    pub ready: bool,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// When the object was created, for the time to Ready of its first spec.
    pub created: Option<k8s_openapi::jiff::Timestamp>,
    /// The Job followed.
    pub job: Option<JobStatus>,
}

impl Snapshot {
    /// The snapshot of an object from its metadata, provider key and status.
    pub fn of(meta: &ObjectMeta, provider: String, status: Option<&ManagedStatus>) -> Snapshot {
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
        let is_true = |t: &str| find(conditions, t).filter(|c| c.status == "True");
        let (standing, reason) = if let Some(c) = is_true("Stalled") {
            ("Stalled", c.reason.clone())
        } else if let Some(c) = is_true("Ready") {
            ("Ready", c.reason.clone())
        } else if let Some(c) = find(conditions, "Ready") {
            ("Reconciling", c.reason.clone())
        } else {
            ("Pending", String::new())
        };
        let generation = meta.generation;
        let observed = status.and_then(|s| s.observed_generation);
        let pending = match (generation, observed) {
            (Some(g), Some(o)) => g > o,
            (Some(_), None) => true,
            _ => false,
        };
        Snapshot {
            provider,
            state: status.and_then(|s| s.state.clone()).unwrap_or_else(|| "UNKNOWN".to_string()),
            standing,
            reason,
            pending,
            ready: standing == "Ready" && !pending,
            generation,
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
            job: status.and_then(|s| s.job.clone()),
        }
    }
}

/// The counts of one kind's objects, as last published.
pub struct ObjectGauges {
    kind: String,
    metrics: Metrics,
    resources: HashMap<(String, String), i64>,
    objects: HashMap<(String, &'static str, String), i64>,
    pending: i64,
    /// When the operator first saw each object's latest spec (a generation after the first), by object key.
    spec_seen: HashMap<String, (i64, Instant)>,
}

impl ObjectGauges {
    /// The gauges of `kind`, published to `metrics`.
    pub fn new(kind: &str, metrics: Metrics) -> Self {
        ObjectGauges {
            kind: kind.to_string(),
            metrics,
            resources: HashMap::new(),
            objects: HashMap::new(),
            pending: 0,
            spec_seen: HashMap::new(),
        }
    }

    /// One object (`key`) changed from `old` to `new` (absent: not in the store).
    pub fn update(&mut self, key: &str, old: Option<&Snapshot>, new: Option<&Snapshot>) {
        if let Some(o) = old {
            self.count(o, -1);
        }
        if let Some(n) = new {
            self.count(n, 1);
        }
        self.metrics
            .queue_depth
            .get_or_create(&super::metrics::KindLabels { kind: self.kind.clone() })
            .set(self.pending);
        let (Some(old), Some(new)) = (old, new) else {
            if new.is_none() {
                self.spec_seen.remove(key);
            }
            return;
        };
        self.job_finished(old, new);
        self.time_to_ready(key, old, new);
    }

    fn count(&mut self, s: &Snapshot, delta: i64) {
        // A label set whose count falls to zero leaves the exposition, so series do not pile up with every
        // provider name or reason ever seen.
        let key = (s.provider.clone(), s.state.clone());
        let n = self.resources.entry(key.clone()).or_insert(0);
        *n += delta;
        let labels = ResourceLabels { kind: self.kind.clone(), provider: s.provider.clone(), state: s.state.clone() };
        if *n == 0 {
            self.resources.remove(&key);
            self.metrics.resources.remove(&labels);
        } else {
            self.metrics.resources.get_or_create(&labels).set(*n);
        }
        let key = (s.provider.clone(), s.standing, s.reason.clone());
        let n = self.objects.entry(key.clone()).or_insert(0);
        *n += delta;
        let labels = ObjectLabels {
            kind: self.kind.clone(),
            provider: s.provider.clone(),
            condition: s.standing.to_string(),
            reason: s.reason.clone(),
        };
        if *n == 0 {
            self.objects.remove(&key);
            self.metrics.objects.remove(&labels);
        } else {
            self.metrics.objects.get_or_create(&labels).set(*n);
        }
        if s.pending {
            self.pending += delta;
        }
    }

    /// A Job that `new` shows finished while `old` showed it running: its duration, and a failure.
    fn job_finished(&self, old: &Snapshot, new: &Snapshot) {
        let (Some(before), Some(after)) = (&old.job, &new.job) else { return };
        if before.href != after.href || before.job_state().is_terminal() || !after.job_state().is_terminal() {
            return;
        }
        let action = after.action.as_deref().unwrap_or("unknown");
        if let Some(started) = &after.started_at {
            let took = k8s_openapi::jiff::Timestamp::now().duration_since(started.0);
            let took = std::time::Duration::try_from(took).unwrap_or_default();
            self.metrics.observe_job(
                &self.kind,
                &new.provider,
                action,
                after.state.as_deref().unwrap_or("UNKNOWN"),
                took,
            );
        }
        if after.job_state().is_failure() {
            self.metrics.job_failed(&self.kind, &new.provider, action);
        }
    }

    /// Ready reached for a spec: the time since that spec was first seen (since creation for the first spec).
    fn time_to_ready(&mut self, key: &str, old: &Snapshot, new: &Snapshot) {
        if let Some(g) = new.generation
            && old.generation.is_some_and(|o| o < g)
        {
            self.spec_seen.insert(key.to_string(), (g, Instant::now()));
        }
        if !new.ready || old.ready {
            return;
        }
        // The first spec is timed from the creation, but only on its way out of creation: a return to Ready
        // after a blip is not a new spec.
        let creating = matches!(old.state.as_str(), "UNKNOWN" | "CREATING");
        let since = match (self.spec_seen.remove(key), new.generation) {
            (Some((g, at)), Some(now_gen)) if g == now_gen => Some(at.elapsed()),
            (_, Some(1)) if creating => new.created.and_then(|c| {
                std::time::Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(c)).ok()
            }),
            _ => None,
        };
        if let Some(took) = since {
            self.metrics.observe_time_to_ready(&self.kind, took);
        }
    }
}

impl Drop for ObjectGauges {
    /// A stopped controller (shutdown, or leadership lost) no longer reports its objects.
    fn drop(&mut self) {
        for (provider, state) in self.resources.keys() {
            let labels = ResourceLabels { kind: self.kind.clone(), provider: provider.clone(), state: state.clone() };
            self.metrics.resources.remove(&labels);
        }
        for (provider, condition, reason) in self.objects.keys() {
            let labels = ObjectLabels {
                kind: self.kind.clone(),
                provider: provider.clone(),
                condition: condition.to_string(),
                reason: reason.clone(),
            };
            self.metrics.objects.remove(&labels);
        }
        self.metrics.queue_depth.get_or_create(&super::metrics::KindLabels { kind: self.kind.clone() }).set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(state: &str, conditions: serde_json::Value, generation: i64, observed: i64) -> Snapshot {
        let status: ManagedStatus = serde_json::from_value(serde_json::json!({
            "state": state, "conditions": conditions, "observedGeneration": observed
        }))
        .expect("status");
        let meta = ObjectMeta {
            generation: Some(generation),
            creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(3),
            )),
            ..Default::default()
        };
        Snapshot::of(&meta, "lab".into(), Some(&status))
    }

    fn cond(t: &str, s: &str, reason: &str) -> serde_json::Value {
        serde_json::json!({"type": t, "status": s, "reason": reason, "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn objects_are_counted_by_standing_and_reason_and_ready_is_timed_once_per_spec() {
        let metrics = Metrics::new();
        let mut g = ObjectGauges::new("CimiMachine", metrics.clone());
        let creating = snap("CREATING", serde_json::json!([cond("Ready", "False", "Creating")]), 1, 1);
        let ready = snap("STARTED", serde_json::json!([cond("Ready", "True", "Available")]), 1, 1);
        let changed = snap("STARTED", serde_json::json!([cond("Ready", "True", "Available")]), 2, 1);
        let stalled = snap(
            "STARTED",
            serde_json::json!([
                cond("Ready", "False", "ProviderRejected"),
                cond("Stalled", "True", "ProviderRejected")
            ]),
            2,
            2,
        );
        g.update("m", None, Some(&creating));
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"cimi_objects{kind="CimiMachine",provider="lab",condition="Reconciling",reason="Creating"} 1"#
            ),
            "{text}"
        );
        g.update("m", Some(&creating), Some(&ready));
        g.update("m", Some(&ready), Some(&ready));
        let text = metrics.encode();
        assert!(!text.contains(r#"condition="Reconciling",reason="Creating""#), "a count at zero leaves: {text}");
        assert!(
            text.contains(r#"cimi_objects{kind="CimiMachine",provider="lab",condition="Ready",reason="Available"} 1"#)
        );
        assert!(text.contains(r#"cimi_time_to_ready_seconds_count{kind="CimiMachine"} 1"#), "timed once: {text}");
        assert!(text.contains(r#"cimi_resources{kind="CimiMachine",provider="lab",state="STARTED"} 1"#));
        g.update("m", Some(&ready), Some(&changed));
        assert!(metrics.encode().contains(r#"cimi_queue_depth{kind="CimiMachine"} 1"#), "a new spec waits");
        g.update("m", Some(&changed), Some(&stalled));
        let text = metrics.encode();
        assert!(text.contains(r#"cimi_queue_depth{kind="CimiMachine"} 0"#));
        assert!(text.contains(r#"condition="Stalled",reason="ProviderRejected"} 1"#), "{text}");
        assert!(text.contains(r#"cimi_time_to_ready_seconds_count{kind="CimiMachine"} 1"#), "not Ready: not timed");
        let again = snap("STARTED", serde_json::json!([cond("Ready", "True", "Available")]), 2, 2);
        g.update("m", Some(&stalled), Some(&again));
        assert!(metrics.encode().contains(r#"cimi_time_to_ready_seconds_count{kind="CimiMachine"} 2"#));
        g.update("m", Some(&again), None);
        drop(g);
        let text = metrics.encode();
        assert!(!text.contains(r#"cimi_objects{"#), "nothing left: {text}");
    }

    #[test]
    fn an_object_first_seen_ready_is_not_timed() {
        let metrics = Metrics::new();
        let mut g = ObjectGauges::new("CimiVolume", metrics.clone());
        let ready = snap("AVAILABLE", serde_json::json!([cond("Ready", "True", "Available")]), 1, 1);
        g.update("v", None, Some(&ready));
        assert!(!metrics.encode().contains("cimi_time_to_ready_seconds_count{kind=\"CimiVolume\"} 1"));
    }

    #[test]
    fn a_failed_job_is_timed_and_counted_as_a_failure() {
        let metrics = Metrics::new();
        let g = ObjectGauges::new("CimiVolume", metrics.clone());
        let with_job = |state: &str| {
            let mut s = snap("CREATING", serde_json::json!([]), 1, 1);
            s.job = Some(
                serde_json::from_value(serde_json::json!({"href": "j/1", "action": "add", "state": state,
                    "startedAt": "2026-01-01T00:00:00Z"}))
                .expect("job"),
            );
            s
        };
        g.job_finished(&with_job("RUNNING"), &with_job("FAILED"));
        g.job_finished(&with_job("FAILED"), &with_job("FAILED"));
        let text = metrics.encode();
        assert!(text.contains(r#"cimi_job_failures_total{kind="CimiVolume",provider="lab",action="add"} 1"#), "{text}");
        assert!(text.contains(
            r#"cimi_job_duration_seconds_count{kind="CimiVolume",provider="lab",action="add",state="FAILED"} 1"#
        ));
    }
}
