//! The reconcile of the kinds whose provider resource is created, observed, updated (name,
//! description, properties) and deleted, without actions: CimiVolume and CimiNetwork. Each kind
//! says what is particular to it through [`SimpleKind`].

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, controller};
use kube::{Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::kubeops::{add_finalizer, apply_status, flag, has_finalizer, object_api, publish, remove_finalizer};
use super::managed::{
    ACTIVE_REQUEUE, Cleanup, attribute_changes, cleanup, connection, desired_properties, find_by_uid, job_running,
    job_started, ready_transition_event, refresh_job, tags,
};
use super::outcome::Problem;
use super::registry::ProviderConnection;
use super::{Context, observer};
use crate::api::common::{ManagedStatus, ManagementPolicy};
use crate::api::conditions::{ConditionSet, READY, RECONCILING, STALLED, SYNCED, Status};
use crate::api::reasons::Reason;
use crate::{ANNOTATION_FORCE_ORPHAN, ANNOTATION_PAUSED, FINALIZER_CLEANUP, FINALIZER_IN_USE};

/// What is particular to one simple kind.
pub trait SimpleKind:
    crate::api::managed::Managed
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Status: Clone + Default + PartialEq + Serialize + Debug + Send + Sync;
    /// The CEP collection (`volumes`, `networks`).
    const COLLECTION: &'static str;
    /// The provider state in which the resource is ready (`AVAILABLE`, `STARTED`).
    const READY_STATE: &'static str;
    /// The provider state of the resource, for messages (`volume`, `network`).
    const NOUN: &'static str;

    /// The status now.
    fn status_now(&self) -> Self::Status;
    /// The shared part of a status.
    fn common(status: &mut Self::Status) -> &mut ManagedStatus;
    /// Mirrors the provider resource into status.
    fn observe_into(resource: &Value, status: &mut Self::Status);
    /// The body of the create, without name, description and properties.
    fn create_body(&self, conn: &ProviderConnection) -> Result<Value, Problem>;
    /// The CimiMachines (in this namespace) that use this object, by name.
    fn held_by(&self, machines: &[crate::api::CimiMachine]) -> Vec<String>;
}

/// Runs the controller of kind `K` until `shutdown`.
pub async fn run<K: SimpleKind>(ctx: Arc<Context>, shutdown: CancellationToken) {
    let api = super::kubeops::watched_api::<K>(&ctx);
    let machines = super::kubeops::watched_api::<crate::api::CimiMachine>(&ctx);
    let controller = Controller::new(api, ctx.config.watcher_config());
    let store = controller.store();
    controller
        // Provider-side changes seen by the observer's collection reads.
        .reconcile_on(ctx.observer.changes::<K>(K::COLLECTION))
        // A machine that starts or stops using the object changes whether it is held.
        .watches(machines, ctx.config.watcher_config(), move |m: crate::api::CimiMachine| {
            let ns = m.namespace();
            store
                .state()
                .into_iter()
                .filter(|o| o.namespace() == ns)
                .map(|o| kube::runtime::reflector::ObjectRef::from_obj(&*o))
                .collect::<Vec<_>>()
        })
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, kind = K::NOUN, "reconcile");
            }
        })
        .await;
}

/// A reconcile failure that only the Kubernetes API can cause (provider problems land in status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

fn error_policy<K: SimpleKind>(_: Arc<K>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, kind = K::NOUN, "reconcile failed");
    Action::requeue(super::outcome::backoff(3, None))
}

enum Progress {
    InSync,
    Working(Reason, String),
}

async fn reconcile<K: SimpleKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    if !ctx.config.watches_namespace(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<K> = object_api(&ctx, &*obj);
    let key = format!("{}/{ns}/{}", K::NOUN, obj.name_any());
    let old = obj.status_now();
    let mut status = old.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = obj.meta().generation;
    let mut conds = ConditionSet::new(&K::common(&mut status.clone()).conditions, generation, now.clone());

    // Held by machines: keep the in-use finalizer while any machine names the object.
    let machines: Api<crate::api::CimiMachine> = Api::namespaced(ctx.client.clone(), &ns);
    let held = obj.held_by(&machines.list(&Default::default()).await?.items);
    if !held.is_empty() && !has_finalizer(&*obj, FINALIZER_IN_USE) && obj.meta().deletion_timestamp.is_none() {
        add_finalizer(&api, &*obj, FINALIZER_IN_USE).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }

    if obj.meta().deletion_timestamp.is_some() {
        return finalize(&*obj, &ctx, &api, old, status, conds, held).await;
    }
    if held.is_empty() && has_finalizer(&*obj, FINALIZER_IN_USE) {
        remove_finalizer(&api, &*obj, FINALIZER_IN_USE).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    if flag(&*obj, ANNOTATION_PAUSED) {
        conds.set(SYNCED, Status::False, Reason::Paused, "the object carries cimi.dev/paused: \"true\"");
        K::common(&mut status).conditions = conds.build();
        write(&ctx, &api, &*obj, &old, status).await?;
        return Ok(Action::await_change());
    }
    if !has_finalizer(&*obj, FINALIZER_CLEANUP) {
        add_finalizer(&api, &*obj, FINALIZER_CLEANUP).await?;
    }
    if K::common(&mut status).observed_generation.is_none() {
        conds.set(RECONCILING, Status::True, Reason::Creating, "the operator has seen the object");
        conds.set(READY, Status::False, Reason::Creating, "the operator has seen the object");
    }
    K::common(&mut status).observed_generation = generation;

    let requeue = match sync(&*obj, &ctx, &api, &mut status).await {
        Ok((Progress::InSync, requeue)) => {
            ctx.succeeded(&key);
            let state = K::common(&mut status).state.clone().unwrap_or_default();
            conds.set(READY, Status::True, Reason::Available, format!("the {} is {state}", K::NOUN));
            conds.set(SYNCED, Status::True, Reason::Available, format!("the provider {} matches the spec", K::NOUN));
            conds.set(RECONCILING, Status::False, Reason::Available, "");
            conds.set(STALLED, Status::False, Reason::Available, "");
            K::common(&mut status).last_sync_time = Some(now);
            requeue
        }
        Ok((Progress::Working(reason, message), requeue)) => {
            ctx.succeeded(&key);
            conds.set(READY, Status::False, reason, message.clone());
            conds.set(SYNCED, Status::True, Reason::Available, "the provider answered");
            conds.set(RECONCILING, Status::True, reason, message);
            conds.set(STALLED, Status::False, reason, "");
            K::common(&mut status).last_sync_time = Some(now);
            requeue
        }
        Err(problem) => {
            let failures = ctx.failed(&key);
            let ready = if problem.reason == Reason::ProviderUnreachable { Status::Unknown } else { Status::False };
            conds.set(READY, ready, problem.reason, problem.message.clone());
            conds.set(SYNCED, Status::False, problem.reason, problem.message.clone());
            if problem.stalled {
                conds.set(STALLED, Status::True, problem.reason, problem.message.clone());
                conds.set(RECONCILING, Status::False, problem.reason, "");
            } else {
                conds.set(STALLED, Status::False, problem.reason, "");
                conds.set(RECONCILING, Status::True, problem.reason, problem.message.clone());
            }
            problem.requeue_after(failures)
        }
    };
    K::common(&mut status).conditions = conds.build();
    write(&ctx, &api, &*obj, &old, status).await?;
    Ok(Action::requeue(requeue))
}

async fn write<K: SimpleKind>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    old: &K::Status,
    status: K::Status,
) -> Result<(), Error> {
    let comparable = |s: &K::Status| {
        let mut s = s.clone();
        K::common(&mut s).last_sync_time = None;
        s
    };
    if comparable(old) == comparable(&status) {
        return Ok(());
    }
    apply_status(api, &obj.name_any(), &status).await?;
    let (mut o, mut n) = (old.clone(), status.clone());
    ready_transition_event(ctx, obj, &K::common(&mut o).conditions, &K::common(&mut n).conditions).await;
    Ok(())
}

async fn sync<K: SimpleKind>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    status: &mut K::Status,
) -> Result<(Progress, Duration), Problem> {
    let conn = connection(ctx, obj.provider_name()).await?;
    let client = &conn.client;
    let uid = obj.uid().unwrap_or_default();
    let common = K::common(status);
    // Steady (Ready for this generation, no Job): observe from the observer's cache.
    let steady = observer::steady(common, obj.meta().generation);
    if job_running(common.job.as_ref())
        && let Some(job) = common.job.as_mut()
    {
        refresh_job(client, job).await?;
    }
    if let Some(job) = &common.job
        && matches!(job.state.as_deref(), Some("FAILED" | "STOPPED"))
        && job.action.as_deref() == Some("add")
        && common.state.is_none()
    {
        return Err(Problem::stalled(
            Reason::JobFailed,
            format!("the create Job {} failed: {}", job.href, job.status_message.clone().unwrap_or_default()),
        ));
    }
    let current = match &common.id {
        Some(href) => {
            match observer::observe_object(ctx, obj.provider_name(), client, K::COLLECTION, obj, href, steady).await? {
                Some(v) => Some(v),
                None if job_running(common.job.as_ref()) => {
                    return Ok((
                        Progress::Working(Reason::Creating, "waiting for the create Job".into()),
                        ACTIVE_REQUEUE,
                    ));
                }
                None => {
                    return Err(Problem::stalled(
                        Reason::ResourceGone,
                        format!("the provider {} {href} no longer exists; delete and recreate the object", K::NOUN),
                    ));
                }
            }
        }
        None => find_by_uid(client, K::COLLECTION, &uid).await?,
    };
    let (name, description, user_props) = (obj.cimi_name(), obj.cimi_description(), obj.user_properties());
    let props = desired_properties(user_props, &tags(ctx, obj));
    let Some(current) = current else {
        if obj.management_policy() == ManagementPolicy::ObserveOnly || obj.import_spec().is_some() {
            return Err(Problem::stalled(
                Reason::UnsupportedByProvider,
                format!("import of existing {}s is not implemented yet by this operator version", K::NOUN),
            ));
        }
        let mut body = obj.create_body(&conn)?;
        body["name"] = serde_json::json!(name);
        body["properties"] = serde_json::json!(props);
        if let Some(d) = description {
            body["description"] = serde_json::json!(d);
        }
        let collection = client.collection_url(K::COLLECTION).await?;
        let accepted = client.create(K::COLLECTION, &body).await?;
        let href = client.created_href(&accepted, &collection).await?;
        common.id = href.map(|u| u.to_string());
        common.job = job_started(&accepted, "add");
        // Write-ahead: href and Job in status before anything waits on them.
        apply_status(api, &obj.name_any(), &*status).await.map_err(Problem::from)?;
        publish(ctx, obj, false, "Created", "Create", format!("provider {} requested", K::NOUN)).await;
        return Ok((
            Progress::Working(Reason::Creating, format!("the provider is creating the {}", K::NOUN)),
            ACTIVE_REQUEUE,
        ));
    };
    if let Some(id) = current.get("id").and_then(Value::as_str) {
        common.id = Some(client.resolve(id).await?.to_string());
    }
    let job_busy = job_running(common.job.as_ref());
    K::observe_into(&current, status);
    // Meters and events only in the steady state (creation and changes go first); one second after
    // an object turns Ready its next pass reads them.
    let monitor_due = if steady {
        observer::monitor(ctx, obj.provider_name(), client, obj, &current, K::common(status)).await
    } else {
        Duration::from_secs(1)
    };
    let state = K::common(status).state.clone().unwrap_or_default();
    if job_busy {
        return Ok((Progress::Working(Reason::WaitingForJob, "a provider Job runs".into()), ACTIVE_REQUEUE));
    }
    if state == "ERROR" {
        return Err(Problem::stalled(
            Reason::ProviderError,
            format!("the provider reports the {} in state ERROR", K::NOUN),
        ));
    }
    let changes = attribute_changes(&name, description, &props, &current);
    if !changes.is_empty() {
        let accepted = client.update(&current, &changes, &[]).await?;
        K::common(status).job = job_started(&accepted, "edit").or(K::common(status).job.take());
        return Ok((Progress::Working(Reason::Updating, "updating attributes".into()), ACTIVE_REQUEUE));
    }
    if state != K::READY_STATE {
        return Ok((Progress::Working(Reason::Creating, format!("the {} is {state}", K::NOUN)), ACTIVE_REQUEUE));
    }
    // Provider-side changes trigger a reconcile through the observer; the next pass on its own is when
    // meters or events are due.
    Ok((Progress::InSync, monitor_due))
}

async fn finalize<K: SimpleKind>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    old: K::Status,
    mut status: K::Status,
    mut conds: ConditionSet,
    held: Vec<String>,
) -> Result<Action, Error> {
    if !held.is_empty() {
        let message = format!("in use by CimiMachine {}; it is deleted once released", held.join(", "));
        conds.set(READY, Status::False, Reason::Deleting, message.clone());
        conds.set(RECONCILING, Status::True, Reason::Deleting, message);
        K::common(&mut status).conditions = conds.build();
        write(ctx, api, obj, &old, status).await?;
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    if has_finalizer(obj, FINALIZER_IN_USE) {
        remove_finalizer(api, obj, FINALIZER_IN_USE).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    if !has_finalizer(obj, FINALIZER_CLEANUP) {
        return Ok(Action::await_change());
    }
    let owner = (obj.namespace().unwrap_or_default(), obj.name_any());
    let id = K::common(&mut status).id.clone();
    ctx.observer.forget(obj.provider_name(), K::COLLECTION, id.as_deref(), &K::kind(&()), &owner);
    if flag(obj, ANNOTATION_FORCE_ORPHAN) {
        publish(ctx, obj, true, "ForceOrphaned", "Delete", format!("cimi.dev/force-orphan: the finalizer was removed without any provider call; the provider {} may remain", K::NOUN)).await;
        remove_finalizer(api, obj, FINALIZER_CLEANUP).await?;
        return Ok(Action::await_change());
    }
    let uid = obj.uid().unwrap_or_default();
    let policy = obj.deletion_policy();
    let step = match connection(ctx, obj.provider_name()).await {
        Ok(conn) => {
            cleanup(&conn.client, K::COLLECTION, K::common(&mut status), &uid, policy).await.map_err(Problem::from)
        }
        Err(problem) if problem.reason == Reason::ProviderNotFound && K::common(&mut status).id.is_none() => {
            Ok(Cleanup::Done)
        }
        Err(problem) => Err(problem),
    };
    match step {
        Ok(Cleanup::Done) => {
            publish(ctx, obj, false, "Deleted", "Delete", format!("the provider {} is gone (or orphaned)", K::NOUN))
                .await;
            remove_finalizer(api, obj, FINALIZER_CLEANUP).await?;
            Ok(Action::await_change())
        }
        Ok(Cleanup::Wait(message)) => {
            conds.set(READY, Status::False, Reason::Deleting, message.clone());
            conds.set(RECONCILING, Status::True, Reason::Deleting, message);
            K::common(&mut status).conditions = conds.build();
            write(ctx, api, obj, &old, status).await?;
            Ok(Action::requeue(ACTIVE_REQUEUE))
        }
        Err(problem) => {
            let failures = ctx.failed(&format!("{}-delete/{uid}", K::NOUN));
            conds.set(READY, Status::False, Reason::Deleting, format!("deleting: {}", problem.message));
            conds.set(SYNCED, Status::False, problem.reason, problem.message.clone());
            K::common(&mut status).conditions = conds.build();
            write(ctx, api, obj, &old, status).await?;
            Ok(Action::requeue(Problem { stalled: false, ..problem }.requeue_after(failures)))
        }
    }
}
