//! One pass of any managed kind (see the [shell](super)), its error type and its error policy.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use tracing::Instrument as _;

use super::error::Error;
use super::finalize::finalize;
use super::kind::{KindStatus, ManagedKind};
use super::status::write;
use crate::api::conditions::ConditionSet;
use crate::controller::context::Context;
use crate::controller::kubeops::{add_finalizer, has_finalizer, object_api};
use crate::controller::outcome::{self, Progress};
use crate::controller::resource::attributes::since;
use crate::names::FINALIZER_CLEANUP;

/// One pass of `obj`, in a `reconcile` span naming it.
pub async fn reconcile<K: ManagedKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    if !ctx.config.watches_namespace(&namespace) {
        return Ok(Action::await_change());
    }
    let span = tracing::info_span!("reconcile", kind = %K::kind(&()), namespace = %namespace, name = %obj.name_any());
    pass(obj, ctx, namespace).instrument(span).await
}

async fn pass<K: ManagedKind>(obj: Arc<K>, ctx: Arc<Context>, namespace: String) -> Result<Action, Error> {
    let name = obj.name_any();
    let api = object_api(&ctx.client, &*obj);
    let old = obj.status_now();
    let mut status = old.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = obj.meta().generation;
    let mut conds = ConditionSet::new(&old.common().conditions, generation, now.clone());

    let guard = obj.guard(&ctx, &api).await?;
    if let Some(requeue) = guard.requeue {
        return Ok(requeue);
    }
    // Pause comes first: a paused object makes no provider call, even to be deleted.
    let deleting = obj.meta().deletion_timestamp.is_some();
    if outcome::held_by_pause(&*obj) {
        outcome::set_paused(&mut conds, deleting);
        status.common_mut().conditions = conds.build();
        write(&ctx, &api, &*obj, &old, status).await?;
        return Ok(Action::await_change());
    }
    if deleting {
        return finalize(&*obj, &ctx, &api, old, status, conds, guard.held_by).await;
    }
    if !has_finalizer(&*obj, FINALIZER_CLEANUP) {
        add_finalizer(&api, &*obj, FINALIZER_CLEANUP).await?;
    }
    outcome::begin(&mut conds, status.common_mut(), generation);

    let result = obj.sync(&ctx, &mut status).await;
    // Drift is what the last observation found: listed field by field when observed, cleared once in sync, kept
    // while a pass works or fails (it did not look).
    match &result {
        Ok((Progress::Observed(drift), _)) => {
            status.common_mut().drift = since(&old.common().drift, drift.clone(), &now);
        }
        Ok((Progress::InSync, _)) => status.common_mut().drift.clear(),
        _ => {}
    }
    if matches!(result, Ok((Progress::InSync, _))) {
        ctx.succeeded(&retry_key::<K>(&namespace, &name));
    }
    let state = K::ready_state(&status);
    let key = format!("{}/{namespace}/{name}", K::NOUN);
    let (requeue, reached) = outcome::conclude(&ctx.failures, &key, &mut conds, result, K::NOUN, &state);
    if reached {
        status.common_mut().last_sync_time = Some(now);
    }
    status.common_mut().conditions = conds.build();
    write(&ctx, &api, &*obj, &old, status).await?;
    Ok(Action::requeue(requeue))
}

/// The key of an object's failed provider operations in a row (a Job that failed, an operation that timed
/// out), for the delay before they are tried again; cleared once the object is in sync.
pub fn retry_key<K: ManagedKind>(namespace: &str, name: &str) -> String {
    format!("{}-retry/{namespace}/{name}", K::NOUN)
}
