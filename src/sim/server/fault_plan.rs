//! Applying the fault rules to one request: which rules match and fire (their rate and remaining `times`),
//! and what they add up to: latency, an injected answer, a Job that fails or hangs, a truncated listing, a
//! dropped connection.

use chrono::Utc;
use rand::Rng;

use super::app::FaultState;
use crate::sim::faults::{FaultKind, RequestFacts};
use crate::sim::store::JobFault;

/// What the faults decided for one request.
#[derive(Default)]
pub struct FaultPlan {
    /// Milliseconds to wait before answering.
    pub latency: u64,
    /// An injected answer: status, message and `Retry-After` seconds.
    pub respond: Option<(u16, String, Option<u64>)>,
    /// How the operation's Job ends.
    pub job: JobFault,
    /// Serve at most this many entries of a listing.
    pub truncate: Option<usize>,
    /// Drop the connection once the operation is committed (commit-then-drop).
    pub drop: bool,
    /// Operations the resource does not offer (left out of its representation, refused when invoked).
    pub withhold: Vec<String>,
}

/// Fires the rules that match `facts` (each within its rate and remaining `times`) and sums up what they do.
pub fn plan_faults(state: &mut FaultState, facts: &RequestFacts<'_>) -> FaultPlan {
    let mut plan = FaultPlan::default();
    let now = Utc::now();
    let FaultState { set, rng } = state;
    for rule in &mut set.rules {
        if !rule.matches(facts) || rule.times == Some(0) {
            continue;
        }
        if let Some(rate) = rule.rate
            && rng.random::<f64>() >= rate
        {
            continue;
        }
        let fired = match &rule.kind {
            FaultKind::Latency { ms } => {
                plan.latency += ms;
                true
            }
            FaultKind::Error { status } => {
                plan.respond.get_or_insert((*status, format!("injected error {status}"), None));
                true
            }
            FaultKind::Throttle { retry_after } => {
                plan.respond.get_or_insert((429, "too many requests (injected)".into(), Some(*retry_after)));
                true
            }
            FaultKind::Unavailable { seconds } => {
                let start = *rule.window_start.get_or_insert(now);
                let end = start + chrono::Duration::seconds(*seconds as i64);
                if now < end {
                    let left = (end - now).num_milliseconds().max(0) as u64;
                    let retry = left.div_ceil(1000).max(1);
                    plan.respond.get_or_insert((503, "service unavailable (injected)".into(), Some(retry)));
                    true
                } else {
                    false
                }
            }
            FaultKind::JobFails => {
                plan.job.fails = true;
                true
            }
            FaultKind::JobHangs => {
                plan.job.hangs = true;
                true
            }
            FaultKind::Truncate { max } => {
                plan.truncate = Some(*max);
                true
            }
            FaultKind::CommitThenDrop => {
                plan.drop = true;
                true
            }
            FaultKind::Withhold { operations } => {
                plan.withhold.extend(operations.iter().cloned());
                true
            }
        };
        if fired && let Some(t) = rule.times.as_mut() {
            *t = t.saturating_sub(1);
        }
    }
    plan
}
