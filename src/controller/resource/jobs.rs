//! Provider Jobs of an object's operations: the record started in status, refreshed while it runs, bounded by
//! the spec's timeouts (stopped when the provider offers `stop`), and the recovery of a create whose Job
//! failed. A provider without Jobs is bounded by how long its resource stays in a transient state.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Map;
use url::Url;

use super::reads::{observe, operations};
use crate::api::common::{JobStatus, ManagedStatus};
use crate::api::managed::Managed;
use crate::api::reasons::Reason;
use crate::cimi::model::{JobState, ResourceState};
use crate::cimi::{Accepted, CimiClient, CimiError};
use crate::controller::outcome::{Failures, Problem};
use crate::controller::resource::reads::{int, state, text};

/// The spec's limit for the operation a Job stands for: `add` is a create, `delete` a delete,
/// anything else an update or action.
pub fn job_limit<K: Managed>(obj: &K, job: &JobStatus) -> (&'static str, Duration) {
    match job.action.as_deref() {
        Some("add") => ("create", obj.create_timeout()),
        Some("delete") => ("delete", obj.delete_timeout()),
        _ => ("update", obj.update_timeout()),
    }
}

/// A running Job that has run longer than the spec allows: its operation, the limit and how long
/// it has run.
pub fn overdue<K: Managed>(obj: &K, job: &JobStatus) -> Option<(&'static str, Duration, Duration)> {
    if !job_running(Some(job)) {
        return None;
    }
    let started = job.started_at.as_ref()?;
    let (operation, limit) = job_limit(obj, job);
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(started.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or_default();
    (elapsed > limit).then_some((operation, limit, elapsed))
}

/// For a provider without Jobs: the Timeout problem of a resource that has stayed in a transient
/// state (`CREATING`, `STARTING`...) longer than the spec allows, counted from when the object
/// started reconciling. The state says which operation: `CREATING` a create, `DELETING` a delete,
/// any other an update or action.
pub fn transient_overdue<K: Managed>(
    obj: &K,
    noun: &str,
    state: &ResourceState,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<Problem> {
    let since = reconciling_since(conditions)?;
    let (operation, limit) = match state {
        ResourceState::Creating => ("create", obj.create_timeout()),
        ResourceState::Deleting => ("delete", obj.delete_timeout()),
        _ => ("update", obj.update_timeout()),
    };
    let elapsed = Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(since)).unwrap_or_default();
    (elapsed > limit).then(|| {
        Problem::stalled(
            Reason::Timeout,
            format!(
                "the {operation} operation timed out: the {noun} is still {state} after {}s, longer than \
                 spec.timeouts.{operation} ({}s)",
                elapsed.as_secs(),
                limit.as_secs_f64()
            ),
        )
    })
}

/// A resource that stays in a transient state longer than the spec allows while the operator holds no running
/// Job for it (`None` otherwise: a recorded Job is bounded by [`enforce_timeout`]): the Timeout problem. When the provider lists an unfinished Job working on it ([`unrecorded_job`]), that
/// Job goes into `status` and the next pass, a second later, stops it as it does any Job past its limit;
/// otherwise the problem says there is no Job to stop, and the state is looked at again in 10 seconds.
pub async fn transient_timeout<K: Managed>(
    client: &CimiClient,
    obj: &K,
    noun: &str,
    state: &ResourceState,
    status: &mut ManagedStatus,
) -> Option<Problem> {
    if job_running(status.job.as_ref()) || !state.is_transient() {
        return None;
    }
    let problem = transient_overdue(obj, noun, state, &status.conditions)?;
    let found = match status.id.as_deref() {
        Some(href) => unrecorded_job(client, href, &status.conditions).await,
        None => None,
    };
    let Some(job) = found else {
        let message = format!("{}; the provider lists no Job to stop", problem.message);
        return Some(Problem { message, retry_after: Some(Duration::from_secs(10)), ..problem });
    };
    let message = format!("{}; the operator found its provider Job {} and stops it", problem.message, job.href);
    status.job = Some(job);
    Some(Problem { message, retry_after: Some(Duration::from_secs(1)), ..problem })
}

/// Since when the object has been reconciling (Reconciling=True), by the operator's clock.
fn reconciling_since(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<k8s_openapi::jiff::Timestamp> {
    let c =
        crate::api::conditions::find(conditions, crate::api::conditions::RECONCILING).filter(|c| c.status == "True")?;
    Some(c.last_transition_time.0)
}

/// For a resource that stays in a transient state past its limit while the operator holds no Job for it (the
/// answer that named the Job was lost, or the operator stopped before recording it): the provider's queued or
/// running Job that works on the resource at `href`, found in the Jobs collection, as a record started when the
/// object began reconciling, so that the spec's timeouts bound it (and stop it) like a Job the operator
/// started. `None` when the provider has no Jobs or lists none for the resource; a read that fails counts as
/// none (the caller reports the timeout either way).
pub async fn unrecorded_job(
    client: &CimiClient,
    href: &str,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<JobStatus> {
    use crate::cimi::model::Job;
    use crate::cimi::query::{Filter, Query};
    if !client.discovery().await.ok()?.has_jobs() {
        return None;
    }
    let target = client.resolve(href).await.ok()?;
    let unfinished = Filter::attr("state").ok()?.eq("QUEUED").or(Filter::attr("state").ok()?.eq("RUNNING"));
    let listing = client.list_all::<Job>("jobs", &Query::new().filter(unfinished)).await.ok()?;
    for job in listing.entries {
        // A provider that ignores the filter still lists finished Jobs: they are passed over here.
        if !matches!(JobState::parse(job.state.as_deref().unwrap_or("")), JobState::Queued | JobState::Running) {
            continue;
        }
        let refs = job.target_resource.iter().chain(job.affected_resources.iter().flatten());
        let mut works_on = false;
        for r in refs {
            works_on |= client.resolve(&r.href).await.is_ok_and(|u| u == target);
        }
        let Some(id) = job.id.as_deref().filter(|_| works_on) else { continue };
        let Ok(job_href) = client.resolve(id).await else { continue };
        let action = job.action.as_deref().map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
        return Some(JobStatus {
            href: job_href.to_string(),
            action,
            state: job.state.clone(),
            progress: job.progress.map(|p| p as i32),
            status_message: job.status_message.clone(),
            started_at: Some(Time(reconciling_since(conditions).unwrap_or_else(k8s_openapi::jiff::Timestamp::now))),
        });
    }
    None
}

/// The Timeout message of a delete that runs longer than the spec allows (it is left to run).
pub fn delete_overdue<K: Managed>(obj: &K, job: Option<&JobStatus>) -> Option<String> {
    let job = job?;
    let (operation, limit, elapsed) = overdue(obj, job)?;
    Some(format!(
        "the {operation} operation timed out: provider Job {} still ran after {}s, longer than spec.timeouts.{operation} \
         ({}s); the operator keeps waiting for it",
        job.href,
        elapsed.as_secs(),
        limit.as_secs_f64()
    ))
}

/// When a running Job has run longer than the spec allows: asks the provider to stop it (best
/// effort, when it offers `stop`) and returns the Timeout problem that says which operation timed
/// out after how long. `None` while it is within its limit.
pub async fn enforce_timeout<K: Managed>(client: &CimiClient, obj: &K, job: &JobStatus) -> Option<Problem> {
    let (operation, limit, elapsed) = overdue(obj, job)?;
    let mut stopped = "";
    // A delete is left to run (stopping it would only leave the resource behind); others are stopped.
    if operation != "delete"
        && let Ok(url) = client.resolve(&job.href).await
        && let Ok(current) = client.get_value(&url).await
        && operations(&current).iter().any(|o| o == "stop")
        && client.action(&current, "stop", Map::new()).await.is_ok()
    {
        stopped = "; the operator asked the provider to stop the Job";
    }
    Some(Problem::stalled(
        Reason::Timeout,
        format!(
            "the {operation} operation timed out: provider Job {} ({}) still ran after {}s, longer than \
             spec.timeouts.{operation} ({}s){stopped}",
            job.href,
            job.action.as_deref().unwrap_or("?"),
            elapsed.as_secs(),
            limit.as_secs_f64(),
        ),
    ))
}

/// POSTs the create `body` to the CEP collection `collection` and returns the href of what was made and its
/// Job, for status. An answer the operator cannot take (a `Location` or Job href on an untrusted origin, an
/// answer past the read limits) may follow a create the provider carried out: that problem is reported as it
/// is, and the next pass — which finds a resource made this way by its UID tag — comes within seconds
/// (doubling while it keeps failing, counted under `retry_key`) rather than at a stalled problem's five minutes.
pub async fn post_create(
    failures: &Failures,
    client: &CimiClient,
    retry_key: &str,
    collection: &str,
    body: &impl serde::Serialize,
) -> Result<(Option<String>, Option<JobStatus>), Problem> {
    let at = client.collection_url(collection).await?;
    let answered = async {
        let accepted = client.create(collection, body).await?;
        let href = client.created_href(&accepted, &at).await?;
        Ok::<_, CimiError>((href.map(|u| u.to_string()), job_started(&accepted, "add")))
    };
    answered.await.map_err(|error| {
        let unanswered = matches!(error, CimiError::UntrustedHref { .. } | CimiError::ReadLimit { .. });
        let problem = Problem::from(error);
        if !unanswered {
            return problem;
        }
        let delay = crate::controller::outcome::retry_delay(failures.failed(retry_key));
        Problem { retry_after: Some(delay), ..problem }
    })
}

/// A create whose Job failed (or was stopped) is retried: after a delay that doubles with each
/// failure in a row (reported as `JobFailed` meanwhile), what the failed create left (a resource in
/// ERROR) is deleted, and once it is gone the record is cleared so that the next pass creates again.
/// `cause` says why the Job failed when the caller knows better than the Job's own message (a system:
/// which component). `Ok(None)`: nothing to recover, or recovered (go on); `Ok(Some(message))`: working on it.
#[allow(clippy::too_many_arguments)]
pub async fn recover_failed_create(
    failures: &Failures,
    client: &CimiClient,
    retry_key: &str,
    noun: &str,
    status: &mut ManagedStatus,
    uid: &str,
    was_running: bool,
    cause: Option<String>,
) -> Result<Option<String>, Problem> {
    let Some(job) = status.job.clone() else { return Ok(None) };
    if job.action.as_deref() != Some("add") || !job.job_state().is_failure() {
        return Ok(None);
    }
    let reported = crate::api::conditions::find(&status.conditions, crate::api::conditions::STALLED)
        .filter(|c| {
            c.status == "True" && matches!(Reason::from_name(&c.reason), Some(Reason::JobFailed | Reason::Timeout))
        })
        .filter(|c| c.message.contains(&job.href));
    if let Some(c) = reported {
        let delay = crate::controller::outcome::retry_delay(failures.count(retry_key).max(1));
        let since = k8s_openapi::jiff::Timestamp::now().duration_since(c.last_transition_time.0);
        let since = Duration::try_from(since).unwrap_or_default();
        if since < delay {
            let reason = Reason::from_name(&c.reason).unwrap_or(Reason::JobFailed);
            return Err(Problem { retry_after: Some(delay - since), ..Problem::stalled(reason, c.message.clone()) });
        }
    } else if was_running {
        let failures = failures.failed(retry_key);
        let delay = crate::controller::outcome::retry_delay(failures);
        return Err(Problem {
            retry_after: Some(delay),
            ..Problem::stalled(
                Reason::JobFailed,
                format!(
                    "the create Job {} ended {}: {}; the operator removes what it left and creates the {noun} \
                     again in {}s",
                    job.href,
                    job.state.as_deref().unwrap_or("?"),
                    cause.unwrap_or_else(|| job.status_message.clone().unwrap_or_default()),
                    delay.as_secs()
                ),
            )
        });
    }
    // The delay is over: remove what the failed create left, then create again.
    let left = match &status.id {
        Some(href) => observe(client, href, uid).await?,
        None => None,
    };
    match left {
        Some(resource) => {
            match state(&resource) {
                ResourceState::Error => match client.delete(&resource).await {
                    Ok(_) | Err(CimiError::NotFound { .. }) => {
                        Ok(Some(format!("removing the {noun} whose create failed, to create it again")))
                    }
                    Err(CimiError::NotAllowedNow { .. }) => Ok(Some(format!("waiting to remove the failed {noun}"))),
                    Err(e) => Err(e.into()),
                },
                ResourceState::Deleting => {
                    Ok(Some(format!("removing the {noun} whose create failed, to create it again")))
                }
                // It came up after all: forget the failed Job and go on with it.
                _ => {
                    status.job = None;
                    Ok(None)
                }
            }
        }
        None => {
            status.id = None;
            status.job = None;
            status.state = None;
            Ok(None)
        }
    }
}

/// A Job record for an operation just started.
pub fn job_started(accepted: &Accepted, action: &str) -> Option<JobStatus> {
    accepted.job.as_ref().map(|href| JobStatus {
        href: href.to_string(),
        action: Some(action.to_string()),
        state: Some(JobState::Queued.to_string()),
        progress: Some(0),
        status_message: None,
        started_at: Some(Time(k8s_openapi::jiff::Timestamp::now())),
    })
}

/// Whether a recorded Job still runs.
pub fn job_running(job: Option<&JobStatus>) -> bool {
    job.is_some_and(|j| !j.job_state().is_terminal())
}

/// Reads a Job and updates its record. A Job that is gone counts as done.
pub async fn refresh_job(client: &CimiClient, job: &mut JobStatus) -> Result<(), CimiError> {
    let url = Url::parse(&job.href).or_else(|_| Url::parse("http://invalid/"));
    let url = match url {
        Ok(u) => u,
        Err(_) => return Ok(()),
    };
    match client.get_value(&url).await {
        Ok(j) => {
            job.state = text(&j, "state").map(str::to_string).or(job.state.take());
            job.progress = int(&j, "progress").map(|p| p as i32).or(job.progress);
            job.status_message = text(&j, "statusMessage").map(str::to_string);
            Ok(())
        }
        Err(CimiError::NotFound { .. }) => {
            job.state = Some(JobState::Success.to_string());
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn timeouts_follow_the_operation_of_the_job() {
        use crate::api::common::Timeouts;
        let mut m = crate::api::CimiMachine::new("m", Default::default());
        m.spec.timeouts = Some(Timeouts { create: Some("1h".into()), update: Some("1s".into()), delete: None });
        let ago = |secs: i64| {
            Some(Time(k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs)))
        };
        let job = |action: &str, state: &str, started_at| JobStatus {
            href: "j/1".into(),
            action: Some(action.into()),
            state: Some(state.into()),
            started_at,
            ..Default::default()
        };
        assert_eq!(overdue(&m, &job("add", "RUNNING", ago(5))), None, "within the create limit");
        let (op, limit, elapsed) = overdue(&m, &job("start", "RUNNING", ago(5))).expect("over the update limit");
        assert_eq!((op, limit), ("update", Duration::from_secs(1)));
        assert!(elapsed >= Duration::from_secs(5));
        assert_eq!(overdue(&m, &job("start", "SUCCESS", ago(5))), None, "a finished Job never times out");
        assert!(delete_overdue(&m, Some(&job("delete", "RUNNING", ago(16 * 60)))).is_some(), "default delete limit");
        assert!(delete_overdue(&m, None).is_none());
    }

    #[test]
    fn a_transient_state_without_a_job_times_out_too() {
        use crate::api::common::Timeouts;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let mut m = crate::api::CimiMachine::new("m", Default::default());
        m.spec.timeouts = Some(Timeouts { update: Some("1s".into()), ..Default::default() });
        let reconciling = |status: &str, secs: i64| {
            vec![Condition {
                type_: "Reconciling".into(),
                status: status.into(),
                reason: "ChangingPowerState".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(
                    k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs),
                ),
            }]
        };
        let p = transient_overdue(&m, "machine", &"STARTING".into(), &reconciling("True", 5)).expect("overdue");
        assert_eq!(p.reason, Reason::Timeout);
        assert!(p.message.contains("update") && p.message.contains("STARTING"), "{}", p.message);
        assert!(transient_overdue(&m, "machine", &"CREATING".into(), &reconciling("True", 5)).is_none(), "create: 15m");
        assert!(transient_overdue(&m, "machine", &"STARTING".into(), &reconciling("False", 5)).is_none());
    }
}
