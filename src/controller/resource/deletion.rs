//! Deleting (policy Delete) or untagging (policy Orphan) an object's provider resource, one step per pass: the
//! finalizer goes only once a GET says the resource is gone.

use serde_json::{Map, json};

use super::jobs::{job_running, job_started, refresh_job};
use super::reads::{find_by_uid, observe, properties_of};
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
            if state(&current) == ResourceState::Deleting {
                return Ok(Cleanup::Wait("the provider is deleting the resource".into()));
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
