//! The reconcile of the kinds whose provider resource is created, observed, updated (name,
//! description, properties) and deleted, without actions: CimiVolume and CimiNetwork. Each kind
//! says what is particular to it through [`SimpleKind`].

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::kubeops::{add_finalizer, apply_status, flag, has_finalizer, object_api, publish, remove_finalizer};
use super::observer;
use super::outcome::{Problem, Progress};
use super::registry::ProviderConnection;
use crate::api::common::{ManagedStatus, ManagementPolicy};
use crate::api::conditions::{ConditionSet, READY, RECONCILING, STALLED, SYNCED, Status};
use crate::api::reasons::Reason;
use crate::controller::connection::connection;
use crate::controller::kubeops::ready_transition_event;
use crate::controller::outcome::ACTIVE_REQUEUE;
use crate::controller::resource::attributes::{attribute_changes, desired_properties, drift_report, wanted_attributes};
use crate::controller::resource::deletion::{Cleanup, cleanup};
use crate::controller::resource::identity::{find_own, tags};
use crate::controller::resource::import::find_import;
use crate::controller::resource::jobs::{
    delete_overdue, enforce_timeout, job_running, job_started, recover_failed_create, refresh_job, transient_overdue,
};
use crate::controller::resource::known::observe_known;
use crate::names::{ANNOTATION_FORCE_ORPHAN, FINALIZER_CLEANUP, FINALIZER_IN_USE};

/// What is particular to one simple kind.
pub trait SimpleKind:
    crate::api::managed::Managed
    + super::stores::Cached
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
    type Status: Clone + Default + PartialEq + Serialize + serde::de::DeserializeOwned + Debug + Send + Sync;
    /// The CEP collection (`volumes`, `networks`).
    const COLLECTION: &'static str;
    /// The provider state in which the resource is ready (`AVAILABLE`, `STARTED`).
    const READY_STATE: &'static str;
    /// The provider state of the resource, for messages (`volume`, `network`).
    const NOUN: &'static str;

    /// The CIMI name the spec sets, if it sets one.
    fn spec_name(&self) -> Option<&str>;
    /// The status now.
    fn status_now(&self) -> Self::Status;
    /// The shared part of a status.
    fn common(status: &mut Self::Status) -> &mut ManagedStatus;
    /// Mirrors the provider resource into status.
    fn observe_into(resource: &Value, status: &mut Self::Status);
    /// The body of the create, without name, description and properties.
    fn create_body(&self, conn: &ProviderConnection) -> Result<Value, Problem>;
    /// The objects of this kind (in its namespace) a machine's spec names.
    fn named_by(machine: &crate::api::CimiMachine) -> Vec<String>;

    /// The CimiMachines (in this namespace) that use this object, by name.
    fn held_by(&self, machines: &[Arc<crate::api::CimiMachine>]) -> Vec<String> {
        let name = self.name_any();
        machines.iter().filter(|m| Self::named_by(m).contains(&name)).map(|m| m.name_any()).collect()
    }
}

/// Builds the controller of kind `K` (its watches register with readiness at once) and returns the
/// future that runs it until `shutdown`: objects of `K` in the watched namespaces with the label
/// selector, and the CimiMachines there (a machine that starts or stops using an object changes
/// whether it is held).
pub fn run<K: SimpleKind>(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let controller = super::driver::namespaced::<K>(&ctx, &shutdown);
    let machines = ctx.watches().related::<crate::api::CimiMachine>(&K::plural(&()));
    let controller = controller
        // Provider-side changes seen by the observer's collection reads.
        .reconcile_on(ctx.observer.changes::<K>(K::COLLECTION))
        // A machine event reconciles only the objects it names now or named before (a detach releases one).
        .watches_stream(machines, super::driver::naming::<crate::api::CimiMachine, K>(K::named_by));
    super::driver::drive(controller, ctx, reconcile::<K>, error_policy::<K>)
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

async fn reconcile<K: SimpleKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    if !ctx.config.watches_namespace(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<K> = object_api(&ctx.client, &*obj);
    let key = format!("{}/{ns}/{}", K::NOUN, obj.name_any());
    let old = obj.status_now();
    let mut status = old.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = obj.meta().generation;
    let mut conds = ConditionSet::new(&K::common(&mut status.clone()).conditions, generation, now.clone());

    // Held by machines: keep the in-use finalizer while any machine names the object.
    let mut held = obj.held_by(&ctx.objects::<crate::api::CimiMachine>(Some(&ns)).await?);
    if held.is_empty() && has_finalizer(&*obj, FINALIZER_IN_USE) {
        // About to release it: make sure from the API, not from a cache that may lag a new machine.
        held = obj.held_by(&ctx.listed::<crate::api::CimiMachine>(Some(&ns)).await?);
    }
    if !held.is_empty() && !has_finalizer(&*obj, FINALIZER_IN_USE) && obj.meta().deletion_timestamp.is_none() {
        add_finalizer(&api, &*obj, FINALIZER_IN_USE).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }

    let deleting = obj.meta().deletion_timestamp.is_some();
    if super::outcome::held_by_pause(&*obj) {
        super::outcome::set_paused(&mut conds, deleting);
        K::common(&mut status).conditions = conds.build();
        write(&ctx, &api, &*obj, &old, status).await?;
        return Ok(Action::await_change());
    }
    if deleting {
        return finalize(&*obj, &ctx, &api, old, status, conds, held).await;
    }
    if held.is_empty() && has_finalizer(&*obj, FINALIZER_IN_USE) {
        remove_finalizer(&api, &*obj, FINALIZER_IN_USE).await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    if !has_finalizer(&*obj, FINALIZER_CLEANUP) {
        add_finalizer(&api, &*obj, FINALIZER_CLEANUP).await?;
    }
    super::outcome::begin(&mut conds, K::common(&mut status), generation);

    let outcome = sync(&*obj, &ctx, &api, &mut status).await;
    if matches!(outcome, Ok((Progress::InSync, _))) {
        ctx.succeeded(&format!("{}-retry/{ns}/{}", K::NOUN, obj.name_any()));
    }
    let state = K::common(&mut status).state.clone().unwrap_or_default();
    let (requeue, reached) = super::outcome::conclude(&ctx.failures, &key, &mut conds, outcome, K::NOUN, &state);
    if reached {
        K::common(&mut status).last_sync_time = Some(now);
    }
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
    let status = super::kubeops::bounded(&status);
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
    ready_transition_event(&ctx.recorder, obj, &K::common(&mut o).conditions, &K::common(&mut n).conditions).await;
    Ok(())
}

async fn sync<K: SimpleKind>(
    obj: &K,
    ctx: &Context,
    api: &Api<K>,
    status: &mut K::Status,
) -> Result<(Progress, Duration), Problem> {
    let conn = connection(ctx, obj.provider_name(), &obj.namespace().unwrap_or_default()).await?;
    let client = &conn.client;
    let uid = obj.uid().unwrap_or_default();
    let observe_only = obj.management_policy() == ManagementPolicy::ObserveOnly;
    let common = K::common(status);
    // Steady (Ready for this generation, no Job): observe from the observer's cache.
    let steady = observer::steady(common, obj.meta().generation);
    let was_running = job_running(common.job.as_ref());
    if was_running && let Some(job) = common.job.as_mut() {
        refresh_job(client, job).await?;
    }
    if let Some(job) = common.job.as_ref()
        && let Some(problem) = enforce_timeout(client, obj, job).await
    {
        return Err(Problem { retry_after: Some(Duration::from_secs(10)), ..problem });
    }
    let retry_key = format!("{}-retry/{}/{}", K::NOUN, obj.namespace().unwrap_or_default(), obj.name_any());
    if let Some(message) =
        recover_failed_create(&ctx.failures, client, &retry_key, K::NOUN, common, &uid, was_running).await?
    {
        return Ok((Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE));
    }
    // Observe: the resource in status, else the one carrying our UID tag, else the one to import.
    let imported = obj.import_spec();
    let current = match (common.id.clone(), imported) {
        (Some(href), imported) => {
            let href = href.as_str();
            let at = observer::Lookup {
                provider: obj.provider_name(),
                client,
                collection: K::COLLECTION,
                href,
                steady,
                imported: imported.is_some(),
            };
            match observe_known(ctx, obj, &at, K::NOUN, common).await? {
                Ok(v) => Some(v),
                Err(early) => return Ok(early),
            }
        }
        (None, Some(import)) => {
            let ours =
                if observe_only { None } else { find_own(ctx, client, K::COLLECTION, K::NOUN, obj, common).await? };
            match ours {
                Some(v) => Some(v),
                None => {
                    let found = find_import::<K>(ctx, client, K::COLLECTION, K::NOUN, import, &uid).await?;
                    let id = found.get("id").and_then(Value::as_str).unwrap_or("?");
                    publish(
                        &ctx.recorder,
                        obj,
                        false,
                        "Imported",
                        "Import",
                        format!("adopted the provider {} {id}", K::NOUN),
                    )
                    .await;
                    Some(found)
                }
            }
        }
        (None, None) => find_own(ctx, client, K::COLLECTION, K::NOUN, obj, common).await?,
    };
    let description = obj.cimi_description();
    let Some(current) = current else {
        if observe_only {
            return Err(Problem::stalled(Reason::InvalidSpec, "managementPolicy ObserveOnly needs spec.import"));
        }
        let props = desired_properties(obj.user_properties(), &tags(ctx, obj));
        let mut body = obj.create_body(&conn)?;
        body["name"] = serde_json::json!(obj.cimi_name());
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
        publish(&ctx.recorder, obj, false, "Created", "Create", format!("provider {} requested", K::NOUN)).await;
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
        observer::monitor(&ctx.observer, obj.provider_name(), client, obj, &current, K::common(status)).await
    } else {
        Duration::from_secs(1)
    };
    let state = K::common(status).state.clone().unwrap_or_default();
    let object_name = obj.name_any();
    let spec_name = obj.spec_name();
    if observe_only {
        let (name, props) =
            wanted_attributes(spec_name, &object_name, obj.user_properties(), &Default::default(), Some(&current));
        let changes = attribute_changes(&name, description, &props, &current);
        return Ok((
            Progress::Observed(drift_report(&changes, &current, None)),
            Duration::from_secs(30).min(monitor_due),
        ));
    }
    if job_busy {
        return Ok((Progress::Working(Reason::WaitingForJob, "a provider Job runs".into()), ACTIVE_REQUEUE));
    }
    if state == "ERROR" {
        return Err(Problem::stalled(
            Reason::ProviderError,
            format!("the provider reports the {} in state ERROR", K::NOUN),
        ));
    }
    let (name, props) =
        wanted_attributes(spec_name, &object_name, obj.user_properties(), &tags(ctx, obj), imported.map(|_| &current));
    let changes = attribute_changes(&name, description, &props, &current);
    if !changes.is_empty() {
        let accepted = client.update(&current, &changes, &[]).await?;
        K::common(status).job = job_started(&accepted, "edit").or(K::common(status).job.take());
        return Ok((Progress::Working(Reason::Updating, "updating attributes".into()), ACTIVE_REQUEUE));
    }
    if state != K::READY_STATE {
        if matches!(state.as_str(), "CREATING" | "STARTING" | "STOPPING" | "DELETING")
            && let Some(problem) = transient_overdue(obj, K::NOUN, &state, &K::common(status).conditions)
        {
            return Err(Problem { retry_after: Some(Duration::from_secs(10)), ..problem });
        }
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
        publish(&ctx.recorder, obj, true, "ForceOrphaned", "Delete", format!("cimi.dev/force-orphan: the finalizer was removed without any provider call; the provider {} may remain", K::NOUN)).await;
        remove_finalizer(api, obj, FINALIZER_CLEANUP).await?;
        return Ok(Action::await_change());
    }
    let uid = obj.uid().unwrap_or_default();
    let policy = obj.deletion_policy();
    let step = match connection(ctx, obj.provider_name(), &obj.namespace().unwrap_or_default()).await {
        Ok(conn) => {
            cleanup(&conn.client, K::COLLECTION, K::common(&mut status), &uid, policy).await.map_err(Problem::from)
        }
        Err(problem)
            if matches!(problem.reason, Reason::ProviderNotFound | Reason::NotAllowedNamespace)
                && K::common(&mut status).id.is_none() =>
        {
            Ok(Cleanup::Done)
        }
        Err(problem) => Err(problem),
    };
    match step {
        Ok(Cleanup::Done) => {
            publish(
                &ctx.recorder,
                obj,
                false,
                "Deleted",
                "Delete",
                format!("the provider {} is gone (or orphaned)", K::NOUN),
            )
            .await;
            remove_finalizer(api, obj, FINALIZER_CLEANUP).await?;
            Ok(Action::await_change())
        }
        Ok(Cleanup::Wait(message)) => {
            conds.set(READY, Status::False, Reason::Deleting, message.clone());
            conds.set(RECONCILING, Status::True, Reason::Deleting, message);
            if let Some(late) = delete_overdue(obj, K::common(&mut status).job.as_ref()) {
                conds.set(STALLED, Status::True, Reason::Timeout, late);
            }
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
