//! A system's Job and its nested Jobs (one per component): followed, bounded by the spec's timeouts, and
//! described by the components that failed.

use serde_json::Value;
use url::Url;

use crate::api::CimiSystem;
use crate::api::common::JobStatus;
use crate::api::managed::Managed as _;
use crate::api::reasons::Reason;
use crate::api::system::{CimiSystemStatus, NestedJob};
use crate::cimi::model::JobState;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::outcome::Problem;
use crate::controller::resource::jobs::job_running;
use crate::controller::resource::reads::{int, operations, ref_href, text};

use super::plan::failed_components;

/// What the user reads when a system Job failed: which components failed and why.
pub fn job_failure_message(job: &JobStatus, nested: &[NestedJob]) -> String {
    let action = job.action.as_deref().unwrap_or("system");
    let failed = failed_components(nested);
    if failed.is_empty() {
        format!(
            "the system's {action} Job {} ended {}: {}",
            job.href,
            job.state.as_deref().unwrap_or(""),
            job.status_message.clone().unwrap_or_default()
        )
    } else {
        format!("the system's {action} Job failed at component {}", failed.join("; "))
    }
}

/// Stalls with Timeout when the running Job is older than the spec allows.
fn check_timeout(system: &CimiSystem, job: &JobStatus) -> Result<(), Problem> {
    let Some(started) = job.started_at.as_ref() else { return Ok(()) };
    let limit = match job.action.as_deref() {
        Some("add") => system.create_timeout(),
        Some("delete") => system.delete_timeout(),
        _ => system.update_timeout(),
    };
    let elapsed = k8s_openapi::jiff::Timestamp::now().as_millisecond() - started.0.as_millisecond();
    if job_running(Some(job)) && elapsed > limit.as_millis() as i64 {
        return Err(Problem::stalled(
            Reason::Timeout,
            format!("the provider Job {} has run longer than {}s", job.href, limit.as_secs()),
        ));
    }
    Ok(())
}

/// Asks the provider to stop a system Job that ran longer than the spec allows, as the other kinds do: the
/// nested Jobs still running, then the system's own, each only where it offers `stop` (best effort). A delete
/// is left to run (stopping it would only leave the system behind). True when the provider took a stop.
async fn stop_overdue(client: &CimiClient, job: &JobStatus, nested: &[NestedJob]) -> bool {
    if job.action.as_deref() == Some("delete") {
        return false;
    }
    let running = nested.iter().filter(|n| job_running(Some(&n.job))).map(|n| n.job.href.as_str());
    let mut stopped = false;
    for href in running.chain([job.href.as_str()]) {
        if let Ok(url) = client.resolve(href).await
            && let Ok(current) = client.get_value(&url).await
            && operations(&current).iter().any(|o| o == "stop")
            && client.action(&current, "stop", serde_json::Map::new()).await.is_ok()
        {
            stopped = true;
        }
    }
    stopped
}

/// When the system's Job has run longer than the spec allows: asks the provider to stop it ([`stop_overdue`])
/// and returns the Timeout problem, which says whether the provider took the stop. `None` within the limit.
pub async fn enforce_timeout(
    client: &CimiClient,
    system: &CimiSystem,
    job: &JobStatus,
    nested: &[NestedJob],
) -> Option<Problem> {
    let problem = check_timeout(system, job).err()?;
    if stop_overdue(client, job, nested).await {
        let message = format!("{}; the operator asked the provider to stop it", problem.message);
        return Some(Problem { message, ..problem });
    }
    Some(problem)
}

/// Reads a system Job and its nested Jobs: state, progress, message, and the component each works on.
pub async fn follow_job(
    client: &CimiClient,
    job: &mut JobStatus,
    nested: &mut Vec<NestedJob>,
) -> Result<(), CimiError> {
    let Ok(url) = Url::parse(&job.href) else { return Ok(()) };
    let doc = match client.get_value(&url).await {
        Ok(d) => d,
        Err(CimiError::NotFound { .. }) => {
            job.state = Some(JobState::Success.to_string());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    fill_job(job, &doc);
    let hrefs: Vec<String> = doc
        .get("nestedJobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| text(n, "href"))
        .map(str::to_string)
        .collect();
    let mut next = Vec::new();
    for h in hrefs {
        let url = client.resolve(&h).await?;
        let known = nested.iter().find(|n| n.job.href == url.as_str()).cloned();
        if let Some(k) = &known
            && !job_running(Some(&k.job))
            && k.component.is_some()
        {
            next.push(k.clone());
            continue;
        }
        let mut entry = known.unwrap_or_else(|| NestedJob {
            component: None,
            job: JobStatus { href: url.to_string(), ..Default::default() },
        });
        match client.get_value(&url).await {
            Ok(d) => {
                fill_job(&mut entry.job, &d);
                if entry.component.is_none() {
                    entry.component = component_of(client, &d).await?;
                }
            }
            Err(CimiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        next.push(entry);
    }
    *nested = next;
    Ok(())
}

pub fn fill_job(job: &mut JobStatus, doc: &Value) {
    job.state = text(doc, "state").map(str::to_string).or(job.state.take());
    job.progress = int(doc, "progress").map(|p| p as i32).or(job.progress);
    job.status_message = text(doc, "statusMessage").map(str::to_string);
    if job.action.is_none() {
        job.action = text(doc, "action").map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    }
}

/// The name of the component a nested Job works on: its target, or (for a create, whose target is a
/// collection) the first other affected resource.
pub async fn component_of(client: &CimiClient, job: &Value) -> Result<Option<String>, CimiError> {
    let target = ref_href(job, "targetResource");
    let affected: Vec<&str> = job
        .get("affectedResources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| text(r, "href"))
        .filter(|h| Some(*h) != target)
        .collect();
    let Some(href) = affected.first().copied().or(target) else { return Ok(None) };
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(doc) => Ok(Some(text(&doc, "name").unwrap_or(url.as_str()).to_string())),
        Err(CimiError::NotFound { .. }) => Ok(Some(url.to_string())),
        Err(e) => Err(e),
    }
}

/// A new system Job replaces the last one and its nested Jobs.
pub fn start_job(status: &mut CimiSystemStatus, job: Option<JobStatus>) {
    if let Some(job) = job {
        status.common.job = Some(job);
        status.nested_jobs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::Timeouts;
    use crate::api::{CimiSystemSpec, common::ProviderRef};

    fn job(action: &str, state: &str, started_secs_ago: i64) -> JobStatus {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        JobStatus {
            href: "http://p/jobs/1".into(),
            action: Some(action.into()),
            state: Some(state.into()),
            started_at: k8s_openapi::jiff::Timestamp::from_second(now - started_secs_ago)
                .ok()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_older_than_its_timeout_stalls() {
        let mut system =
            CimiSystem::new("shop", CimiSystemSpec { provider_ref: ProviderRef::cluster("p"), ..Default::default() });
        system.spec.timeouts = Some(Timeouts { create: Some("1m".into()), ..Default::default() });
        assert!(check_timeout(&system, &job("add", "RUNNING", 30)).is_ok());
        let problem = check_timeout(&system, &job("add", "RUNNING", 90)).expect_err("too old");
        assert_eq!((problem.reason, problem.stalled), (Reason::Timeout, true));
        assert!(check_timeout(&system, &job("add", "SUCCESS", 90)).is_ok(), "a finished Job never times out");
        assert!(check_timeout(&system, &job("start", "RUNNING", 90)).is_ok(), "actions use the update timeout");
    }

    #[test]
    fn a_failed_job_names_its_failed_components() {
        let nested = vec![
            NestedJob { component: Some("web1".into()), job: job("add", "SUCCESS", 1) },
            NestedJob {
                component: Some("web2".into()),
                job: JobStatus { status_message: Some("no capacity".into()), ..job("add", "FAILED", 1) },
            },
        ];
        let message = job_failure_message(&job("add", "FAILED", 1), &nested);
        assert!(message.contains("failed at component web2 (add FAILED: no capacity)"), "{message}");
        assert!(!message.contains("web1"), "{message}");
        let message =
            job_failure_message(&JobStatus { status_message: Some("boom".into()), ..job("start", "FAILED", 1) }, &[]);
        assert!(message.contains("start Job") && message.contains("boom"), "{message}");
    }
}
