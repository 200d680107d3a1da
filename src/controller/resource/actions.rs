//! One-shot actions (`cimi.dev/action: <action>@<nonce>`) on machines and systems: which request is new, the
//! plan's verdict from the operations the resource offers now, and how each outcome is recorded in
//! `status.lastAction` and as an Event. A nonce is handled once: a new nonce asks again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::common::{ActionPhase, LastAction, ManagedStatus};
use crate::api::managed::action_request;
use crate::api::reasons::Reason;
use crate::cimi::model::JobState;
use crate::cimi::{Accepted, CimiError};
use crate::controller::context::Context;
use crate::controller::kubeops::publish;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress};

use super::jobs::job_started;

/// The object's one-shot request as (action, nonce), when its nonce was not handled yet (an annotation that
/// does not parse is no request).
pub fn new_request<K: kube::Resource>(obj: &K, common: &ManagedStatus) -> Option<(String, String)> {
    let request = action_request(obj)?.ok()?;
    let handled = common.last_action.as_ref().is_some_and(|a| a.nonce == request.nonce);
    (!handled).then_some((request.action, request.nonce))
}

/// What the plan does with a new request.
#[derive(Clone, Debug, PartialEq)]
pub enum OneShot {
    /// Run it: the resource offers the action now.
    Run {
        /// The action (`restart`...).
        action: String,
        /// Its nonce.
        nonce: String,
    },
    /// Record it as Rejected without a request: the resource does not offer it in this state.
    Reject {
        /// The action.
        action: String,
        /// Its nonce.
        nonce: String,
        /// Why, with what is offered instead.
        message: String,
    },
}

/// The verdict on `request` from the operations the resource offers now; `noun` and `state` name the resource
/// in the message. Pure.
pub fn decide(request: &(String, String), operations: &[String], noun: &str, state: &str) -> OneShot {
    let (action, nonce) = request.clone();
    if operations.contains(&action) {
        return OneShot::Run { action, nonce };
    }
    let message = format!(
        "the provider does not offer {action} on this {noun} in state {state} (it offers: {})",
        operations.join(", ")
    );
    OneShot::Reject { action, nonce, message }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Records a request the provider accepted (with what it produced, if anything): Running while its Job runs,
/// else Succeeded; the Job is followed as the object's Job.
pub async fn started<K>(
    ctx: &Context,
    obj: &K,
    common: &mut ManagedStatus,
    (action, nonce): (String, String),
    accepted: &Accepted,
    result: Option<String>,
) -> Result<(Progress, Duration), Problem>
where
    K: kube::Resource<DynamicType = ()>,
{
    let job = job_started(accepted, &action);
    common.last_action = Some(LastAction {
        action: action.clone(),
        nonce,
        phase: if job.is_some() { ActionPhase::Running } else { ActionPhase::Succeeded },
        message: None,
        job: job.as_ref().map(|j| j.href.clone()),
        result,
        completed_at: if job.is_some() { None } else { Some(now()) },
    });
    if job.is_some() {
        common.job = job;
    }
    publish(&ctx.recorder, obj, false, "ActionStarted", "Action", format!("{action} requested on the provider")).await;
    Ok((Progress::Working(Reason::ChangingPowerState, format!("{action} requested")), ACTIVE_REQUEUE))
}

/// Records a request the provider refused for good as Failed (a new nonce asks again); an error a retry may
/// cure is returned as the pass's problem instead, and the nonce stays pending.
pub async fn refused<K>(
    ctx: &Context,
    obj: &K,
    common: &mut ManagedStatus,
    (action, nonce): (String, String),
    error: CimiError,
) -> Result<(Progress, Duration), Problem>
where
    K: kube::Resource<DynamicType = ()>,
{
    if error.is_retryable() {
        return Err(error.into());
    }
    let message = format!("the provider refused {action}: {error}");
    common.last_action = Some(LastAction {
        action,
        nonce,
        phase: ActionPhase::Failed,
        message: Some(message.clone()),
        job: None,
        result: None,
        completed_at: Some(now()),
    });
    publish(&ctx.recorder, obj, true, "ActionFailed", "Action", message).await;
    Ok((Progress::Working(Reason::Updating, "re-reading after a refused action".into()), ACTIVE_REQUEUE))
}

/// Records a request the plan rejected (not offered now): Rejected, with the message; no provider call.
pub async fn rejected<K>(
    ctx: &Context,
    obj: &K,
    common: &mut ManagedStatus,
    (action, nonce): (String, String),
    message: String,
) -> Result<(Progress, Duration), Problem>
where
    K: kube::Resource<DynamicType = ()>,
{
    common.last_action = Some(LastAction {
        action,
        nonce,
        phase: ActionPhase::Rejected,
        message: Some(message.clone()),
        job: None,
        result: None,
        completed_at: Some(now()),
    });
    publish(&ctx.recorder, obj, true, "ActionRejected", "Action", message).await;
    Ok((Progress::Working(Reason::Updating, "re-reading after a rejected action".into()), ACTIVE_REQUEUE))
}

/// Moves a running one-shot action to Succeeded or Failed once its Job (the object's Job) ended.
pub fn settle(common: &mut ManagedStatus) {
    let (Some(last), Some(job)) = (common.last_action.as_mut(), common.job.as_ref()) else { return };
    if last.phase != ActionPhase::Running || last.job.as_deref() != Some(job.href.as_str()) {
        return;
    }
    match job.job_state() {
        JobState::Success => last.phase = ActionPhase::Succeeded,
        state if state.is_failure() => {
            last.phase = ActionPhase::Failed;
            last.message = job.status_message.clone();
        }
        _ => return,
    }
    last.completed_at = Some(now());
}

/// Whether the object's Job is the one a one-shot action started (its failure is the action's outcome, not
/// an operation to retry).
pub fn is_one_shot_job(common: &ManagedStatus) -> bool {
    let job = common.job.as_ref().map(|j| j.href.as_str());
    job.is_some() && common.last_action.as_ref().and_then(|a| a.job.as_deref()) == job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::JobStatus;

    fn ops(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_offered_action_runs_and_another_is_rejected_naming_what_is_offered() {
        let request = ("restart".to_string(), "7".to_string());
        assert_eq!(
            decide(&request, &ops(&["stop", "restart"]), "system", "STARTED"),
            OneShot::Run { action: "restart".into(), nonce: "7".into() }
        );
        match decide(&request, &ops(&["start"]), "system", "STOPPED") {
            OneShot::Reject { message, .. } => {
                assert!(message.contains("restart on this system in state STOPPED (it offers: start)"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nonce_is_handled_once() {
        let mut system: crate::api::CimiSystem = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiSystem",
            "metadata": {"name": "shop", "annotations": {"cimi.dev/action": "restart@1"}},
            "spec": {"providerRef": {"name": "p"}, "systemTemplate": {"name": "t"}}
        }))
        .expect("a system");
        let mut common = ManagedStatus::default();
        assert_eq!(new_request(&system, &common), Some(("restart".into(), "1".into())));
        common.last_action = Some(LastAction { nonce: "1".into(), ..Default::default() });
        assert_eq!(new_request(&system, &common), None, "handled");
        system.metadata.annotations = Some([("cimi.dev/action".to_string(), "re start@2".to_string())].into());
        assert_eq!(new_request(&system, &common), None, "not an action");
    }

    #[test]
    fn a_running_action_settles_with_its_job() {
        let job = |state: &str| JobStatus { href: "j1".into(), state: Some(state.into()), ..Default::default() };
        let mut common = ManagedStatus {
            job: Some(job("RUNNING")),
            last_action: Some(LastAction {
                action: "restart".into(),
                nonce: "1".into(),
                phase: ActionPhase::Running,
                job: Some("j1".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(is_one_shot_job(&common));
        settle(&mut common);
        assert_eq!(common.last_action.as_ref().map(|a| a.phase), Some(ActionPhase::Running));
        common.job = Some(JobStatus { status_message: Some("disk on fire".into()), ..job("FAILED") });
        settle(&mut common);
        let last = common.last_action.clone().expect("last");
        assert_eq!((last.phase, last.message.as_deref()), (ActionPhase::Failed, Some("disk on fire")));
        assert!(last.completed_at.is_some());
    }
}
