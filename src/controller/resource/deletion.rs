//! Deleting (policy Delete) or untagging (policy Orphan) an object's provider resource, one step per pass: the
//! finalizer goes only once a GET says the resource is gone.

use serde_json::{Map, json};

use super::jobs::{job_running, job_started, refresh_job};
use super::reads::{find_by_uid, observe, operations, properties_of};
use crate::api::common::{DeletionPolicy, ManagedStatus};
use crate::cimi::model::ResourceState;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::{state, text};

/// One step of deleting (or orphaning) a provider resource.
#[derive(Debug, PartialEq)]
pub enum Cleanup {
    /// Nothing is left to do on the provider: the finalizer may go.
    Done,
    /// The provider is working on it; look again soon.
    Wait(String),
    /// An operation was invoked to reach a state with `delete` (the message names it); look again soon.
    Step(String),
    /// The provider offers no way to delete it: a human must act (the message says how).
    Stuck(String),
}

/// The most operations invoked to reach a state where the provider offers `delete`: the longest path of the
/// state table is resume, stop, forced stop; a provider that still offers no delete after that is going round
/// in circles, and the object says so instead of trying for ever.
pub const MAX_DELETE_STEPS: u32 = 3;

/// How long a machine may stay STOPPING after the operator's graceful stop before the stop is forced (where the
/// provider advertises force): a guest gets this long to shut down cleanly before it is powered off.
pub const GRACEFUL_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// The way to a deletion when the provider may not offer `delete` in every state (DSP0263 lets a provider
/// advertise each operation per state; some 1.x providers delete only stopped resources).
#[derive(Debug, PartialEq)]
pub enum DeletePath {
    /// `delete` is offered now.
    Delete,
    /// The resource is between states; look again once it has settled.
    Wait(String),
    /// Invoke this offered operation first (with `force` when true); the next pass re-checks what is offered then.
    Step(&'static str, bool),
    /// No offered operation leads to a state with `delete`.
    NoWay(String),
}

/// How to reach a deletion from `state` with the `operations` offered now: delete when offered, else stop
/// (a paused or suspended resource that cannot stop is started first, which stop then follows). A resource
/// still STOPPING is stopped again with `force` when `force_stop` says it may be (the provider advertises the
/// Machine capability MachineStopForce, and the operator's graceful stop has had [`GRACEFUL_STOP_GRACE`]), as
/// the state table allows. Pure.
pub fn delete_path(state: &ResourceState, operations: &[String], force_stop: bool) -> DeletePath {
    let offered = |op: &str| operations.iter().any(|o| o == op);
    if offered("delete") {
        return DeletePath::Delete;
    }
    if *state == ResourceState::Stopping && force_stop && offered("stop") {
        return DeletePath::Step("stop", true);
    }
    if state.is_transient() {
        return DeletePath::Wait(format!(
            "the provider offers no delete while the resource is {state}; waiting for it to settle"
        ));
    }
    if offered("stop") && *state != ResourceState::Stopped {
        return DeletePath::Step("stop", false);
    }
    if offered("start") && matches!(state, ResourceState::Paused | ResourceState::Suspended) {
        return DeletePath::Step("start", false);
    }
    DeletePath::NoWay(format!(
        "the provider offers no delete in state {state} and no operation that leads to one (it offers: {}); fix the \
         resource on the provider, or annotate the object cimi.dev/force-orphan: \"true\" to release it (the \
         provider resource stays)",
        offered_list(operations)
    ))
}

/// Whether a stop may be forced now: the provider advertises force (`advertised`), the operator took a step
/// already (its graceful stop: `steps`), and that step is at least [`GRACEFUL_STOP_GRACE`] old (`since`).
pub fn may_force(advertised: bool, steps: u32, since: Option<std::time::Duration>) -> bool {
    advertised && steps >= 1 && since.is_some_and(|d| d >= GRACEFUL_STOP_GRACE)
}

fn offered_list(operations: &[String]) -> String {
    if operations.is_empty() { "nothing".to_string() } else { operations.join(", ") }
}

/// Deletes (policy Delete) or untags (policy Orphan) the provider resource of an object, one step
/// per call: the finalizer goes only once a GET says the resource is gone.
pub async fn cleanup(
    client: &CimiClient,
    collection: &str,
    status: &mut ManagedStatus,
    uid: &str,
    policy: DeletionPolicy,
    force_stop: bool,
) -> Result<Cleanup, CimiError> {
    if job_running(status.job.as_ref())
        && let Some(job) = status.job.as_mut()
    {
        refresh_job(client, job).await?;
        if job_running(Some(job)) {
            return Ok(Cleanup::Wait(format!("waiting for provider Job {}", job.href)));
        }
    }
    let current = match &status.id {
        Some(href) => observe(client, href, uid).await?,
        None => find_by_uid(client, collection, uid).await?,
    };
    let Some(current) = current else { return Ok(Cleanup::Done) };
    if let Some(id) = text(&current, "id") {
        status.id = Some(client.resolve(id).await?.to_string());
    }
    match policy {
        DeletionPolicy::Orphan => {
            let mut props = properties_of(&current);
            props.retain(|k, _| !k.starts_with("cimi.dev/"));
            let mut changes = Map::new();
            changes.insert("properties".into(), json!(props));
            client.update(&current, &changes, &[]).await?;
            Ok(Cleanup::Done)
        }
        DeletionPolicy::Delete => {
            let now = state(&current);
            status.state = text(&current, "state").map(str::to_string);
            if now == ResourceState::Deleting {
                return Ok(Cleanup::Wait("the provider is deleting the resource".into()));
            }
            let offered = operations(&current);
            // Force only a stop the operator asked for gracefully, once it has had its grace.
            let graceful_for = status.deletion_step_time.as_ref().and_then(|t| {
                std::time::Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(t.0)).ok()
            });
            let force_now = may_force(force_stop, status.deletion_steps.unwrap_or(0), graceful_for);
            match delete_path(&now, &offered, force_now) {
                DeletePath::Delete => {}
                DeletePath::Wait(message) => return Ok(Cleanup::Wait(message)),
                DeletePath::NoWay(message) => return Ok(Cleanup::Stuck(message)),
                DeletePath::Step(step, force) => {
                    let taken = status.deletion_steps.unwrap_or(0);
                    if taken >= MAX_DELETE_STEPS {
                        return Ok(Cleanup::Stuck(format!(
                            "{taken} operations were invoked to reach a state where the provider offers delete, and \
                             it still offers none (the resource is {now}; it offers: {}); fix the resource on the \
                             provider, or annotate the object cimi.dev/force-orphan: \"true\" to release it (the \
                             provider resource stays)",
                            offered_list(&offered)
                        )));
                    }
                    let mut params = Map::new();
                    if force {
                        params.insert("force".into(), json!(true));
                    }
                    let accepted = client.action(&current, step, params).await?;
                    status.job = job_started(&accepted, step).or(status.job.take());
                    status.deletion_steps = Some(taken + 1);
                    status.deletion_step_time =
                        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
                    let how = if force { format!("{step} with force") } else { step.to_string() };
                    return Ok(Cleanup::Step(format!(
                        "the provider offers delete only in another state: {how} requested first (step {} of at most \
                         {MAX_DELETE_STEPS}; the resource is {now}), then delete",
                        taken + 1
                    )));
                }
            }
            match client.delete(&current).await {
                Ok(accepted) => {
                    status.job = job_started(&accepted, "delete").or(status.job.take());
                    Ok(Cleanup::Wait("delete requested; waiting until the provider says it is gone".into()))
                }
                Err(CimiError::NotFound { .. }) => Ok(Cleanup::Done),
                Err(CimiError::NotAllowedNow { message, .. }) => {
                    Ok(Cleanup::Wait(format!("the provider cannot delete it now ({}): {message}", state(&current))))
                }
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn delete_when_offered_else_stop_first_else_say_there_is_no_way() {
        assert_eq!(delete_path(&ResourceState::Started, &ops(&["stop", "delete"]), false), DeletePath::Delete);
        assert_eq!(
            delete_path(&ResourceState::Started, &ops(&["stop", "restart"]), false),
            DeletePath::Step("stop", false)
        );
        assert_eq!(
            delete_path(&ResourceState::Paused, &ops(&["start"]), true),
            DeletePath::Step("start", false),
            "resume, then stop"
        );
        assert!(
            matches!(delete_path(&ResourceState::Stopping, &ops(&["edit"]), true), DeletePath::Wait(m) if m.contains("STOPPING"))
        );
        match delete_path(&ResourceState::Error, &ops(&[]), true) {
            DeletePath::NoWay(m) => assert!(
                m.contains("state ERROR") && m.contains("it offers: nothing") && m.contains("cimi.dev/force-orphan"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(delete_path(&ResourceState::Stopped, &ops(&["start"]), false), DeletePath::NoWay(_)),
            "never start a stopped resource to delete it"
        );
    }

    #[test]
    fn a_graceful_stop_gets_its_grace_before_it_is_forced() {
        let minute = std::time::Duration::from_secs(60);
        assert!(!may_force(true, 1, Some(minute)), "a minute after the graceful stop: wait");
        assert!(may_force(true, 1, Some(GRACEFUL_STOP_GRACE)), "after the grace: force");
        assert!(!may_force(false, 1, Some(10 * minute)), "never where force is not advertised");
        assert!(!may_force(true, 0, Some(10 * minute)), "never a stop the operator did not ask for");
        assert!(!may_force(true, 1, None));
    }

    #[test]
    fn a_stop_that_does_not_end_is_forced_only_where_the_provider_advertises_force() {
        let stopping = ResourceState::Stopping;
        assert_eq!(delete_path(&stopping, &ops(&["stop"]), true), DeletePath::Step("stop", true));
        assert!(
            matches!(delete_path(&stopping, &ops(&["stop"]), false), DeletePath::Wait(_)),
            "no force advertised: wait for the graceful stop"
        );
        assert!(
            matches!(delete_path(&stopping, &ops(&[]), true), DeletePath::Wait(_)),
            "stop not offered while stopping: wait"
        );
        assert_eq!(delete_path(&stopping, &ops(&["stop", "delete"]), true), DeletePath::Delete);
        assert_eq!(
            delete_path(&ResourceState::Started, &ops(&["stop"]), true),
            DeletePath::Step("stop", false),
            "the first stop is graceful even where force is offered"
        );
    }
}
