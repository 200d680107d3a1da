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

/// The way to a deletion when the provider may not offer `delete` in every state (DSP0263 lets a provider
/// advertise each operation per state; some 1.x providers delete only stopped resources).
#[derive(Debug, PartialEq)]
pub enum DeletePath {
    /// `delete` is offered now.
    Delete,
    /// The resource is between states; look again once it has settled.
    Wait(String),
    /// Invoke this offered operation first; the next pass re-checks what is offered then.
    Step(&'static str),
    /// No offered operation leads to a state with `delete`.
    NoWay(String),
}

/// How to reach a deletion from `state` with the `operations` offered now: delete when offered, else stop
/// (a paused or suspended resource that cannot stop is started first, which stop then follows). Pure.
pub fn delete_path(state: &ResourceState, operations: &[String]) -> DeletePath {
    let offered = |op: &str| operations.iter().any(|o| o == op);
    if offered("delete") {
        return DeletePath::Delete;
    }
    if state.is_transient() {
        return DeletePath::Wait(format!(
            "the provider offers no delete while the resource is {state}; waiting for it to settle"
        ));
    }
    if offered("stop") && *state != ResourceState::Stopped {
        return DeletePath::Step("stop");
    }
    if offered("start") && matches!(state, ResourceState::Paused | ResourceState::Suspended) {
        return DeletePath::Step("start");
    }
    DeletePath::NoWay(format!(
        "the provider offers no delete in state {state} and no operation that leads to one (it offers: {}); fix the \
         resource on the provider, or annotate the object cimi.dev/force-orphan: \"true\" to release it (the \
         provider resource stays)",
        if operations.is_empty() { "nothing".to_string() } else { operations.join(", ") }
    ))
}

/// Deletes (policy Delete) or untags (policy Orphan) the provider resource of an object, one step
/// per call: the finalizer goes only once a GET says the resource is gone.
pub async fn cleanup(
    client: &CimiClient,
    collection: &str,
    status: &mut ManagedStatus,
    uid: &str,
    policy: DeletionPolicy,
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
            if now == ResourceState::Deleting {
                return Ok(Cleanup::Wait("the provider is deleting the resource".into()));
            }
            match delete_path(&now, &operations(&current)) {
                DeletePath::Delete => {}
                DeletePath::Wait(message) => return Ok(Cleanup::Wait(message)),
                DeletePath::NoWay(message) => return Ok(Cleanup::Stuck(message)),
                DeletePath::Step(step) => {
                    let accepted = client.action(&current, step, Map::new()).await?;
                    status.job = job_started(&accepted, step).or(status.job.take());
                    return Ok(Cleanup::Step(format!(
                        "the provider offers delete only in another state: {step} requested first (the resource \
                         is {now}), then delete"
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
        assert_eq!(delete_path(&ResourceState::Started, &ops(&["stop", "delete"])), DeletePath::Delete);
        assert_eq!(delete_path(&ResourceState::Started, &ops(&["stop", "restart"])), DeletePath::Step("stop"));
        assert_eq!(
            delete_path(&ResourceState::Paused, &ops(&["start"])),
            DeletePath::Step("start"),
            "resume, then stop"
        );
        assert!(
            matches!(delete_path(&ResourceState::Stopping, &ops(&["edit"])), DeletePath::Wait(m) if m.contains("STOPPING"))
        );
        match delete_path(&ResourceState::Error, &ops(&[])) {
            DeletePath::NoWay(m) => assert!(
                m.contains("state ERROR") && m.contains("it offers: nothing") && m.contains("cimi.dev/force-orphan"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(delete_path(&ResourceState::Stopped, &ops(&["start"])), DeletePath::NoWay(_)),
            "never start a stopped resource to delete it"
        );
    }
}
