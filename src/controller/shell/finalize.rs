//! Deleting a managed object, one step per pass: wait while other objects hold it, release the in-use
//! finalizer, then delete (or orphan) the provider resource and drop the cleanup finalizer once a GET says it
//! is gone. `cimi.dev/force-orphan` drops it without any provider call.

use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::error::Error;
use super::kind::{KindStatus, ManagedKind};
use super::status::write;
use crate::api::conditions::{ConditionSet, READY, RECONCILING, STALLED, SYNCED, Status};
use crate::api::reasons::Reason;
use crate::cimi::model::ResourceState;
use crate::controller::connection::connection;
use crate::controller::context::Context;
use crate::controller::kubeops::{flag, has_finalizer, publish, remove_finalizer};
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem};
use crate::controller::resource::deletion::{Cleanup, cleanup};
use crate::controller::resource::jobs::{delete_overdue, transient_timeout};
use crate::names::{ANNOTATION_FORCE_ORPHAN, FINALIZER_CLEANUP, FINALIZER_IN_USE};

/// One deletion step of `obj`; `held_by` are the objects that still hold it (`CimiMachine web-1`).
pub async fn finalize<K: ManagedKind>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    old: K::Status,
    mut status: K::Status,
    mut conds: ConditionSet,
    held_by: Vec<String>,
) -> Result<Action, Error> {
    if !held_by.is_empty() {
        let message = format!("in use by {}; it is deleted once released", held_by.join(", "));
        conds.set(READY, Status::False, Reason::Deleting, message.clone());
        conds.set(RECONCILING, Status::True, Reason::Deleting, message);
        status.common_mut().conditions = conds.build();
        write(ctx, api, obj, &old, status).await?;
        return Ok(Action::requeue(std::time::Duration::from_secs(2)));
    }
    if has_finalizer(obj, FINALIZER_IN_USE) {
        remove_finalizer(api, obj, FINALIZER_IN_USE).await?;
        return Ok(Action::requeue(std::time::Duration::from_millis(100)));
    }
    if !has_finalizer(obj, FINALIZER_CLEANUP) {
        return Ok(Action::await_change());
    }
    let owner = (obj.namespace().unwrap_or_default(), obj.name_any());
    let id = status.common().id.clone();
    ctx.observer.forget(&obj.provider_key(), K::COLLECTION, id.as_deref(), &K::kind(&()), &owner);
    if flag(obj, ANNOTATION_FORCE_ORPHAN) {
        let note = format!(
            "cimi.dev/force-orphan: the finalizer was removed without any provider call; the provider {} {} may \
             remain",
            K::NOUN,
            id.as_deref().unwrap_or("(unknown)")
        );
        publish(&ctx.recorder, obj, true, "ForceOrphaned", "Delete", note).await;
        remove_finalizer(api, obj, FINALIZER_CLEANUP).await?;
        return Ok(Action::await_change());
    }
    let uid = obj.uid().unwrap_or_default();
    let policy = obj.deletion_policy();
    let mut overdue_job = None;
    let step = match connection(ctx, &obj.provider_key(), &obj.namespace().unwrap_or_default()).await {
        Ok(conn) => {
            // A create, update or action Job still running when the object is deleted gets its timeout, then is
            // stopped (the delete follows once it has ended: a hung create would otherwise hold the deletion for
            // ever); a delete Job is left to run.
            if status.common().job.as_ref().is_some_and(|j| j.action.as_deref() != Some("delete")) {
                overdue_job = obj.stop_late_job(&conn.client, &mut status).await;
            }
            // A resource left in a transient state by a Job the operator never recorded (its answer was lost):
            // past the timeout, that Job is looked up and recorded, to be stopped as above on the next pass.
            let state = ResourceState::parse(status.common().state.as_deref().unwrap_or_default());
            if let Some(problem) = transient_timeout(&conn.client, obj, K::NOUN, &state, status.common_mut()).await {
                overdue_job = Some(problem.message);
            }
            let force_stop = K::COLLECTION == "machines" && conn.machine_stop_force;
            cleanup(&conn.client, K::COLLECTION, status.common_mut(), &uid, policy, force_stop)
                .await
                .map_err(Problem::from)
        }
        // Never created, and the provider is gone or never admitted the namespace: nothing to clean up.
        Err(problem)
            if matches!(problem.reason, Reason::ProviderNotFound | Reason::NotAllowedNamespace)
                && status.common().id.is_none() =>
        {
            Ok(Cleanup::Done)
        }
        Err(problem) => Err(problem),
    };
    match step {
        Ok(Cleanup::Done) => {
            publish(&ctx.recorder, obj, false, "Deleted", "Delete", K::gone_note(policy)).await;
            remove_finalizer(api, obj, FINALIZER_CLEANUP).await?;
            Ok(Action::await_change())
        }
        Ok(Cleanup::Step(message)) => {
            publish(&ctx.recorder, obj, false, "DeleteStep", "Delete", message.clone()).await;
            conds.set(READY, Status::False, Reason::Deleting, message.clone());
            conds.set(RECONCILING, Status::True, Reason::Deleting, message);
            status.common_mut().conditions = conds.build();
            write(ctx, api, obj, &old, status).await?;
            Ok(Action::requeue(ACTIVE_REQUEUE))
        }
        Ok(Cleanup::Wait(message)) => {
            conds.set(READY, Status::False, Reason::Deleting, message.clone());
            conds.set(RECONCILING, Status::True, Reason::Deleting, message);
            if let Some(late) = overdue_job.or_else(|| delete_overdue(obj, status.common().job.as_ref())) {
                conds.set(STALLED, Status::True, Reason::Timeout, late);
            }
            status.common_mut().conditions = conds.build();
            write(ctx, api, obj, &old, status).await?;
            Ok(Action::requeue(ACTIVE_REQUEUE))
        }
        Ok(Cleanup::Stuck(message)) => {
            conds.set(READY, Status::False, Reason::DeleteNotOffered, message.clone());
            conds.set(STALLED, Status::True, Reason::DeleteNotOffered, message.clone());
            conds.set(RECONCILING, Status::False, Reason::DeleteNotOffered, "");
            publish(&ctx.recorder, obj, true, "DeleteNotOffered", "Delete", message).await;
            status.common_mut().conditions = conds.build();
            write(ctx, api, obj, &old, status).await?;
            Ok(Action::requeue(std::time::Duration::from_secs(30)))
        }
        Err(problem) => {
            let failures = ctx.failed(&format!("{}-delete/{uid}", K::NOUN));
            conds.set(READY, Status::False, Reason::Deleting, format!("deleting: {}", problem.message));
            conds.set(SYNCED, Status::False, problem.reason, problem.message.clone());
            status.common_mut().conditions = conds.build();
            write(ctx, api, obj, &old, status).await?;
            Ok(Action::requeue(Problem { stalled: false, ..problem }.requeue_after(failures)))
        }
    }
}
