//! How a failed reconcile shows: a provider error becomes a condition reason, a kind (transient,
//! needs-a-human) and a requeue delay with jitter that honours `Retry-After`.

use std::time::Duration;

use rand::Rng as _;

use crate::api::conditions::{ConditionSet, READY, RECONCILING, STALLED, SYNCED, Status};
use crate::api::reasons::Reason;
use crate::cimi::CimiError;
use crate::controller::resource::attributes::{Drift, drift_message};

/// A problem a reconcile ran into.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The condition reason.
    pub reason: Reason,
    /// What the user reads (never a secret).
    pub message: String,
    /// True when a human must act (`Stalled=True`); false when a retry may succeed.
    pub stalled: bool,
    /// The provider's Retry-After, when it gave one.
    pub retry_after: Option<Duration>,
}

/// The condition of an object the operator leaves alone (`cimi.dev/paused: "true"`).
pub fn set_paused(conds: &mut ConditionSet, deleting: bool) {
    let message = if deleting {
        "the object is being deleted, but carries cimi.dev/paused: \"true\": the deletion waits, without any \
         provider call and with its finalizer, until the annotation is removed (or cimi.dev/force-orphan is set)"
    } else {
        "the object carries cimi.dev/paused: \"true\""
    };
    conds.set(SYNCED, Status::False, Reason::Paused, message);
}

/// Whether a pass must stop at the pause: the object carries `cimi.dev/paused: "true"`, and is not being
/// released by `cimi.dev/force-orphan` (which makes no provider call either). Pause comes before deletion.
pub fn held_by_pause<K: kube::Resource>(obj: &K) -> bool {
    use super::kubeops::flag;
    flag(obj, crate::names::ANNOTATION_PAUSED)
        && !(obj.meta().deletion_timestamp.is_some() && flag(obj, crate::names::ANNOTATION_FORCE_ORPHAN))
}

/// Marks the generation a pass works on; on first contact (no generation observed yet) the object is
/// Reconciling and not Ready, so kstatus never reads a new object as Current.
pub fn begin(conds: &mut ConditionSet, common: &mut crate::api::common::ManagedStatus, generation: Option<i64>) {
    if common.observed_generation.is_none() {
        conds.set(RECONCILING, Status::True, Reason::Creating, "the operator has seen the object");
        conds.set(READY, Status::False, Reason::Creating, "the operator has seen the object");
    }
    common.observed_generation = generation;
}

/// How soon to look again while something runs on the provider.
pub const ACTIVE_REQUEUE: Duration = Duration::from_millis(500);

/// Consecutive transient failures by object key (such as `machine/ns/name`), for the backoff.
#[derive(Debug, Default)]
pub struct Failures {
    counts: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl Failures {
    fn counts(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, u32>> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one more failure of `key`; how many in a row.
    pub fn failed(&self, key: &str) -> u32 {
        let mut counts = self.counts();
        let n = counts.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// How many failures of `key` in a row, without counting one more.
    pub fn count(&self, key: &str) -> u32 {
        self.counts().get(key).copied().unwrap_or(0)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        self.counts().remove(key);
    }
}

/// Where a pass that reached the provider stands.
#[derive(Debug)]
pub enum Progress {
    /// In the state the spec asks for.
    InSync,
    /// Working towards it: the Ready reason and a message.
    Working(Reason, String),
    /// ObserveOnly: mirrored; what differs from the spec, field by field (reported, never corrected).
    Observed(Vec<Drift>),
}

/// Sets the conditions of a pass from its outcome and returns when to look again, and whether the pass
/// reached the provider (for `lastSyncTime`). Successes and failures are counted under `key` for the backoff.
/// `noun` names the resource (`machine`) and `state` what Ready says of it (`STARTED`).
pub fn conclude(
    failures: &Failures,
    key: &str,
    conds: &mut ConditionSet,
    outcome: Result<(Progress, Duration), Problem>,
    noun: &str,
    state: &str,
) -> (Duration, bool) {
    let (progress, requeue) = match outcome {
        Ok(done) => done,
        Err(problem) => {
            let failures = failures.failed(key);
            problem.set_conditions(conds);
            return (problem.requeue_after(failures), false);
        }
    };
    failures.succeeded(key);
    match progress {
        Progress::InSync => {
            conds.set(READY, Status::True, Reason::Available, format!("the {noun} is {state}"));
            conds.set(SYNCED, Status::True, Reason::Available, format!("the provider {noun} matches the spec"));
            conds.set(RECONCILING, Status::False, Reason::Available, "");
            conds.set(STALLED, Status::False, Reason::Available, "");
        }
        Progress::Observed(drift) => {
            conds.set(READY, Status::True, Reason::Observed, format!("ObserveOnly: the provider {noun} is {state}"));
            if drift.is_empty() {
                conds.set(SYNCED, Status::True, Reason::Observed, format!("the provider {noun} matches the spec"));
            } else {
                conds.set(
                    SYNCED,
                    Status::False,
                    Reason::Drifted,
                    format!(
                        "the provider {noun} differs from the spec (ObserveOnly: not corrected): {}",
                        drift_message(&drift)
                    ),
                );
            }
            conds.set(RECONCILING, Status::False, Reason::Observed, "");
            conds.set(STALLED, Status::False, Reason::Observed, "");
        }
        Progress::Working(reason, message) => set_working(conds, reason, message),
    }
    (requeue, true)
}

/// The conditions of a pass that reached the provider and is still working towards the spec.
pub fn set_working(conds: &mut ConditionSet, reason: Reason, message: String) {
    conds.set(READY, Status::False, reason, message.clone());
    conds.set(SYNCED, Status::True, Reason::Available, "the provider answered");
    conds.set(RECONCILING, Status::True, reason, message);
    conds.set(STALLED, Status::False, reason, "");
}

impl Problem {
    /// The conditions of a pass that failed with this problem: Ready Unknown when the provider is
    /// unreachable (else False), Synced False, and Stalled or Reconciling as the problem is permanent or not.
    pub fn set_conditions(&self, conds: &mut ConditionSet) {
        let ready = if self.reason == Reason::ProviderUnreachable { Status::Unknown } else { Status::False };
        conds.set(READY, ready, self.reason, self.message.clone());
        conds.set(SYNCED, Status::False, self.reason, self.message.clone());
        if self.stalled {
            conds.set(STALLED, Status::True, self.reason, self.message.clone());
            conds.set(RECONCILING, Status::False, self.reason, "");
        } else {
            conds.set(STALLED, Status::False, self.reason, "");
            conds.set(RECONCILING, Status::True, self.reason, self.message.clone());
        }
    }

    /// A problem that needs a human.
    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), stalled: true, retry_after: None }
    }

    /// A problem that a retry may solve.
    pub fn transient(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into(), stalled: false, retry_after: None }
    }

    /// When to try again after `failures` transient failures in a row (1 = the first).
    pub fn requeue_after(&self, failures: u32) -> Duration {
        if self.stalled {
            // A human must act; look again slowly (or when the problem itself says when).
            return self.retry_after.unwrap_or(Duration::from_secs(300));
        }
        backoff(failures, self.retry_after)
    }
}

impl From<CimiError> for Problem {
    fn from(error: CimiError) -> Self {
        let message = error.to_string();
        let retry_after = error.retry_after();
        let (reason, stalled) = match &error {
            CimiError::Unavailable { .. } | CimiError::Timeout { .. } | CimiError::Cancelled { .. } => {
                (Reason::ProviderUnreachable, false)
            }
            CimiError::RateLimited { .. } => (Reason::RateLimited, false),
            CimiError::Unauthorized { .. } => (Reason::ProviderNotReady, false),
            CimiError::NotAllowedNow { .. } | CimiError::Conflict { .. } => (Reason::WaitingForJob, false),
            CimiError::Invalid { .. } => (Reason::ProviderRejected, true),
            CimiError::NotSupported { .. } => (Reason::UnsupportedByProvider, true),
            CimiError::JobFailed { .. } => (Reason::JobFailed, true),
            CimiError::NotFound { .. } => (Reason::ResourceGone, true),
            CimiError::Config(_) => (Reason::InvalidSpec, true),
            CimiError::Protocol { .. } => (Reason::ProviderRejected, false),
            CimiError::UntrustedHref { .. } => (Reason::UntrustedHref, true),
            CimiError::ReadLimit { .. } => (Reason::ReadLimitExceeded, true),
        };
        Self { reason, message, stalled, retry_after }
    }
}

impl From<kube::Error> for Problem {
    fn from(error: kube::Error) -> Self {
        Self::transient(Reason::ProviderNotReady, format!("Kubernetes API: {error}"))
    }
}

/// How long to wait before retrying an operation whose provider Job failed or timed out, after
/// `failures` such failures in a row: 5 s, doubling, at most 5 min.
pub fn retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (Duration::from_secs(5) * (1u32 << exp)).min(Duration::from_secs(300))
}

/// Exponential backoff from 1 s to 5 min with full jitter on the upper half; a provider's
/// Retry-After is a floor (itself capped at 5 min).
pub fn backoff(failures: u32, retry_after: Option<Duration>) -> Duration {
    let exp = failures.saturating_sub(1).min(9);
    let ceiling = Duration::from_secs(1u64 << exp).min(Duration::from_secs(300));
    let half = ceiling / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    let delay = half + Duration::from_millis(jitter);
    match retry_after {
        // A provider's Retry-After is honoured, up to the backoff's own ceiling.
        Some(floor) if floor > delay => floor.min(Duration::from_secs(300)),
        _ => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_for_the_user() {
        let p = Problem::from(CimiError::Unavailable {
            href: "h".into(),
            status: Some(503),
            message: "m".into(),
            retry_after: Some(Duration::from_secs(7)),
        });
        assert_eq!((p.reason, p.stalled), (Reason::ProviderUnreachable, false));
        assert!(p.requeue_after(1) >= Duration::from_secs(7), "Retry-After is honoured");
        let p = Problem::from(CimiError::Invalid { href: "h".into(), status: 400, message: "bad cpu".into() });
        assert_eq!((p.reason, p.stalled), (Reason::ProviderRejected, true));
        assert!(p.message.contains("bad cpu"));
        let p = Problem::from(CimiError::JobFailed {
            href: "j".into(),
            state: "FAILED".into(),
            return_code: Some(1),
            message: "no capacity".into(),
        });
        assert_eq!((p.reason, p.stalled), (Reason::JobFailed, true));
    }

    #[test]
    fn failed_operations_are_retried_later_and_later() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(60), Duration::from_secs(300));
        let p = Problem { retry_after: Some(Duration::from_secs(7)), ..Problem::stalled(Reason::Timeout, "t") };
        assert_eq!(p.requeue_after(1), Duration::from_secs(7), "a stalled problem may say when to look again");
        assert!(backoff(1, Some(Duration::from_secs(3600))) <= Duration::from_secs(300), "Retry-After is capped");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for failures in 1..40 {
            let d = backoff(failures, None);
            assert!(d <= Duration::from_secs(300), "{d:?}");
        }
        assert!(backoff(1, None) <= Duration::from_secs(1));
        assert!(backoff(8, None) >= Duration::from_secs(64));
    }
}
