//! The Job engine: every operation that takes time becomes a [`Pending`] list of steps (state changes, a
//! removal) with due times drawn from the timing, and a Job (when the profile has Jobs) that follows them.
//! Time advances lazily: every request first applies the steps that are due ([`Store::advance`]). Also here:
//! stopping a Job, injected Job faults (fail at the last step, hang), and the retention of finished Jobs.
//! A system's parent Job, finished by its nested Jobs, is in [`systems`](super::systems).

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::data::{Pending, Step, Store, now, stamp};
use super::protocol::JobFault;
use crate::sim::config::{JobRetention, Timing};

impl Store {
    /// How long the next transition step takes (the timing's range, or the test override).
    pub(super) fn step_duration(&mut self) -> Duration {
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
    pub(super) fn prune_jobs(&mut self, at: DateTime<Utc>) {
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

    /// Applies one step of a transition.
    pub(super) fn apply_step(&mut self, step: &Step, at: DateTime<Utc>) {
        match step {
            Step::State(path, state) => self.set_state(path, state),
            Step::Remove(path) => self.remove_resource(path, at),
        }
    }

    /// Sets the state of a resource, with the event (and, for a machine, the meter samples) it implies.
    pub(super) fn set_state(&mut self, path: &str, state: &str) {
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

    /// Ends a transition as failed: the resource goes back (or to ERROR), the Job is FAILED.
    pub(super) fn fail_pending(&mut self, p: &Pending, at: DateTime<Utc>, message: &str) {
        for (path, state) in &p.revert {
            self.set_state(path, state);
        }
        if let Some(job) = &p.job {
            self.set_job_state(job, "FAILED", 100, 1, message, at);
        }
    }

    /// Sets the state, progress, return code and message of a Job.
    pub(super) fn set_job_state(
        &mut self,
        job: &str,
        state: &str,
        progress: i64,
        code: i64,
        message: &str,
        at: DateTime<Utc>,
    ) {
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
    pub(super) fn run_job(
        &mut self,
        action: &str,
        target: &str,
        affected: Vec<String>,
        walk: Vec<Step>,
        revert: Vec<(String, String)>,
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
    pub(super) fn job_done(&self, job: &Option<String>) -> bool {
        job.as_ref()
            .and_then(|j| self.resources.get(j))
            .is_some_and(|st| matches!(st.state(), "SUCCESS" | "FAILED" | "STOPPED"))
    }

    /// Whether a resource has a transition in progress.
    pub(super) fn busy(&self, path: &str) -> bool {
        self.pending.iter().any(|p| {
            p.steps.iter().any(|(_, s)| match s {
                Step::State(x, _) | Step::Remove(x) => x == path,
            })
        })
    }

    /// Stops a running Job (its resource reverts); false when it was not running.
    pub(super) fn stop_job(&mut self, job: &str, at: DateTime<Utc>) -> bool {
        let Some(idx) = self.pending.iter().position(|p| p.job.as_deref() == Some(job)) else {
            return false;
        };
        let p = self.pending.remove(idx);
        self.stop_pending(&p, at);
        true
    }

    /// Stops every running transition that holds this resource (what each holds reverts; its Job, if any, is
    /// STOPPED): a machine stopped while stopping, or an image deleted while it is being captured, which frees
    /// its source volume.
    pub(super) fn stop_transitions_of(&mut self, path: &str, at: DateTime<Utc>) {
        let (holding, rest): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.pending).into_iter().partition(|p| p.revert.iter().any(|(r, _)| r == path));
        self.pending = rest;
        for p in &holding {
            self.stop_pending(p, at);
        }
    }

    /// Reverts what a transition taken off the pending list holds, and marks its Job STOPPED.
    fn stop_pending(&mut self, p: &Pending, at: DateTime<Utc>) {
        for (path, state) in &p.revert {
            let current = self.resources.get(path).map(|s| s.state().to_string()).unwrap_or_default();
            // A stopped create leaves the resource in ERROR; a stopped action returns it to where it was.
            if current != *state {
                self.set_state(path, state);
            }
        }
        if let Some(job) = &p.job {
            self.set_job_state(job, "STOPPED", 100, 2, "stopped by the consumer", at);
        }
    }
}
