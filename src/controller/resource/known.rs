//! The provider resource an object already points at (`status.id`): observed through the observer's cache or
//! a GET; adopted again when a restored status points at it under an old UID; otherwise "gone", reported or
//! recreated as `spec.resourceGonePolicy` says.

use std::time::Duration;

use kube::ResourceExt;
use serde_json::Value;

use super::identity::{adopt, carries_identity, check_not_claimed};
use super::jobs::job_running;
use super::reads::read_imported;
use crate::api::common::{ManagedStatus, ResourceGonePolicy};
use crate::api::managed::Managed;
use crate::api::reasons::Reason;
use crate::controller::context::Context;
use crate::controller::kubeops;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem};

/// The provider resource an object already points at (`status.id` = `href`), through the observer: the
/// document, or the outcome the pass ends with when it is not there (still being created by a running Job, or
/// gone: the object must be deleted, or deleted and recreated). An imported resource that another object's UID
/// tag claims is a problem too.
pub async fn observe_known<K>(
    ctx: &Context,
    obj: &K,
    at: &crate::controller::observer::Lookup<'_>,
    noun: &str,
    status: &mut ManagedStatus,
) -> Result<Result<Value, (crate::controller::outcome::Progress, Duration)>, Problem>
where
    K: Managed + crate::controller::stores::Cached,
{
    let creating = job_running(status.job.as_ref());
    let uid = obj.uid().unwrap_or_default();
    let (href, imported) = (at.href, at.imported);
    let observed = crate::controller::observer::observe_object(&ctx.observer, obj, at).await?;
    // Not ours by UID: a status restored with the object (a backup) or copied keeps the href of the resource
    // the object had under its old UID; one that carries this object's identity is adopted again.
    let observed = match observed {
        None if !imported && !creating => match read_imported(at.client, href).await? {
            Some(v) if carries_identity(ctx, obj, &v) => Some(adopt(ctx, at.client, noun, obj, v, status).await?),
            _ => None,
        },
        other => other,
    };
    match observed {
        Some(v) => {
            if imported {
                check_not_claimed::<K>(ctx, &v, &uid, noun).await?;
            }
            Ok(Ok(v))
        }
        None if !imported && creating => Ok(Err((
            crate::controller::outcome::Progress::Working(Reason::Creating, "waiting for the create Job".into()),
            ACTIVE_REQUEUE,
        ))),
        None if imported => Err(Problem::stalled(
            Reason::ResourceGone,
            format!("the imported provider {noun} {href} no longer exists; delete the object"),
        )),
        None if obj.resource_gone_policy() == ResourceGonePolicy::Recreate => {
            let message = format!(
                "the provider {noun} {href} no longer exists; creating it again (resourceGonePolicy: Recreate): what \
                 it held is lost"
            );
            kubeops::publish(&ctx.recorder, obj, true, "Recreating", "Create", message.clone()).await;
            // Fields another manager wrote (a restore of status) are not removed by leaving them out of an apply.
            kubeops::clear_status(&kubeops::object_api(&ctx.client, obj), &obj.name_any(), &["id", "job", "state"])
                .await?;
            status.id = None;
            status.job = None;
            status.state = None;
            Ok(Err((crate::controller::outcome::Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE)))
        }
        None => Err(Problem::stalled(
            Reason::ResourceGone,
            format!(
                "the provider {noun} {href} no longer exists; delete and recreate the object, or set \
                 spec.resourceGonePolicy: Recreate to have it created again"
            ),
        )),
    }
}
