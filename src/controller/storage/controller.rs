//! The reconcile of volumes and networks on the shell ([`crate::controller::shell`]): their guard (held by
//! machines), and one pass: the Job in flight, observe, plan ([`super::plan::plan_storage`], pure), act.

use crate::cimi::model::{Resource as _, ResourceState};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::Action;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::kind::StorageKind;
use super::plan::{StoragePlanInput, StorageStep, plan_storage};
use crate::api::common::ManagementPolicy;
use crate::api::reasons::Reason;
use crate::controller::connection::connection;
use crate::controller::context::Context;
use crate::controller::driver;
use crate::controller::kubeops::{add_finalizer, has_finalizer, remove_finalizer};
use crate::controller::observer;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress};
use crate::controller::resource::attributes::{attribute_changes, desired_properties, drift, wanted_attributes};
use crate::controller::resource::identity::{find_own, tags};
use crate::controller::resource::import::adopt_import;
use crate::controller::resource::jobs::{
    enforce_timeout, job_running, job_started, post_create, recover_failed_create, refresh_job, transient_timeout,
};
use crate::controller::resource::known::observe_known;
use crate::controller::resource::reads::text;
use crate::controller::shell::error::{Error, error_policy};
use crate::controller::shell::kind::{Guard, KindStatus};
use crate::controller::shell::reconcile::{reconcile, retry_key};
use crate::names::FINALIZER_IN_USE;

/// Builds the controller of kind `K` (its watches register with readiness at once) and returns the
/// future that runs it until `shutdown`: objects of `K` in the watched namespaces with the label
/// selector, and their holders there (a machine that starts or stops using a volume changes whether it is
/// held).
pub fn run<K: StorageKind>(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = driver::namespaced::<K>(&ctx, &shutdown);
    let holders = ctx.watches().related::<K::Holder>(&K::plural(&()));
    let controller = controller
        // Provider-side changes seen by the observer's collection reads.
        .reconcile_on(ctx.observer.changes::<K>(K::COLLECTION))
        // A holder's event reconciles only the objects it names now or named before (a detach releases one).
        .watches_stream(holders, driver::naming::<K::Holder, K>(K::named_by));
    driver::drive(controller, ctx, driver::Ownership::Shard, reconcile::<K>, error_policy::<K>)
}

/// The guard of a held kind: while holders name it, it keeps the `cimi.dev/in-use` finalizer (and its
/// deletion waits for them); once none does, the finalizer goes.
pub async fn guard<K: StorageKind>(obj: &K, ctx: &Context, api: &Api<K>) -> Result<Guard, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let mut held = obj.held_by(&ctx.objects::<K::Holder>(Some(&ns)).await?);
    if held.is_empty() && has_finalizer(obj, FINALIZER_IN_USE) {
        // About to release it: make sure from the API, not from a cache that may lag a new holder.
        held = obj.held_by(&ctx.listed::<K::Holder>(Some(&ns)).await?);
    }
    let holder = <K::Holder as kube::Resource>::kind(&()).to_string();
    let held: Vec<String> = held.into_iter().map(|name| format!("{holder} {name}")).collect();
    let deleting = obj.meta().deletion_timestamp.is_some();
    if !held.is_empty() && !has_finalizer(obj, FINALIZER_IN_USE) && !deleting {
        add_finalizer(api, obj, FINALIZER_IN_USE).await?;
        return Ok(Guard { held_by: held, requeue: Some(Action::requeue(Duration::from_millis(100))) });
    }
    if held.is_empty() && has_finalizer(obj, FINALIZER_IN_USE) && !deleting {
        remove_finalizer(api, obj, FINALIZER_IN_USE).await?;
        return Ok(Guard { held_by: held, requeue: Some(Action::requeue(Duration::from_millis(100))) });
    }
    Ok(Guard { held_by: held, requeue: None })
}

pub async fn sync<K: StorageKind>(
    obj: &K,
    ctx: &Context,
    status: &mut K::Status,
) -> Result<(Progress, Duration), Problem> {
    let namespace = obj.namespace().unwrap_or_default();
    K::record_holders(status, obj.held_by(&ctx.objects::<K::Holder>(Some(&namespace)).await?));
    let conn = connection(ctx, &obj.provider_key(), &namespace).await?;
    let client = &conn.client;
    let uid = obj.uid().unwrap_or_default();
    let observe_only = obj.management_policy() == ManagementPolicy::ObserveOnly;
    let common = status.common_mut();
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
    let retry_key = retry_key::<K>(&obj.namespace().unwrap_or_default(), &obj.name_any());
    if let Some(message) =
        recover_failed_create(&ctx.failures, client, &retry_key, K::NOUN, common, &uid, was_running, None).await?
    {
        return Ok((Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE));
    }
    // Observe: the resource in status, else the one carrying our UID tag, else the one to import.
    let imported = obj.import_spec();
    let current = match (common.id.clone(), imported) {
        (Some(href), imported) => {
            let href = href.as_str();
            let at = observer::Lookup {
                provider: &obj.provider_key(),
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
        (None, Some(_)) => {
            let ours =
                if observe_only { None } else { find_own(ctx, client, K::COLLECTION, K::NOUN, obj, common).await? };
            match ours {
                Some(v) => Some(v),
                None => Some(adopt_import(ctx, &conn, obj, K::COLLECTION, K::NOUN).await?),
            }
        }
        (None, None) => find_own(ctx, client, K::COLLECTION, K::NOUN, obj, common).await?,
    };
    let Some(current) = current else {
        if observe_only {
            return Err(Problem::stalled(Reason::InvalidSpec, "managementPolicy ObserveOnly needs spec.import"));
        }
        let props = desired_properties(obj.user_properties(), &tags(ctx, obj));
        let source = match obj.source(ctx).await {
            Ok(source) => source,
            Err(p) if p.reason == Reason::WaitingForDependency => {
                return Ok((Progress::Working(p.reason, p.message), Duration::from_secs(2)));
            }
            Err(p) => return Err(p),
        };
        let mut body = obj.create_body(&conn.catalog, source.as_deref())?;
        body.describe(obj.cimi_name(), obj.cimi_description().map(str::to_string), props);
        (common.id, common.job) = post_create(&ctx.failures, client, &retry_key, K::COLLECTION, &body).await?;
        // The href and the Job go into status at the end of this pass (see the machine's create).
        return Ok((
            Progress::Working(Reason::Creating, format!("the provider is creating the {}", K::NOUN)),
            ACTIVE_REQUEUE,
        ));
    };
    if let Some(id) = text(&current, "id") {
        common.id = Some(client.resolve(id).await?.to_string());
    }
    let job_busy = job_running(common.job.as_ref());
    K::observe_into(&current, status);
    obj.annotate(status);
    let state = ResourceState::parse(status.common().state.as_deref().unwrap_or_default());

    // Plan: a pure function of what was observed.
    let input = plan_input(ctx, obj, &current, job_busy, state);
    let step = plan_storage(&input);
    tracing::debug!(object = %obj.name_any(), ?step, "plan");
    // Meters and events once the object is in sync (creation and changes go first): the pass that finds a new
    // object in sync reads them too, so its first event cursor goes into status with Ready.
    let in_sync = steady || matches!(step, StorageStep::InSync | StorageStep::Observed(_));
    let monitor_due = if in_sync {
        observer::monitor(&ctx.observer, &obj.provider_key(), client, obj, &current, status.common_mut()).await
    } else {
        Duration::from_secs(1)
    };

    // Act.
    match step {
        StorageStep::Observed(drift) => Ok((Progress::Observed(drift), Duration::from_secs(30).min(monitor_due))),
        StorageStep::WaitForJob => {
            Ok((Progress::Working(Reason::WaitingForJob, "a provider Job runs".into()), ACTIVE_REQUEUE))
        }
        StorageStep::Failed => {
            Err(Problem::stalled(Reason::ProviderError, format!("the provider reports the {} in state ERROR", K::NOUN)))
        }
        StorageStep::Update(changes) => {
            let accepted = client.update(&current, &changes, &[]).await?;
            let common = status.common_mut();
            common.job = job_started(&accepted, "edit").or(common.job.take());
            Ok((Progress::Working(Reason::Updating, "updating attributes".into()), ACTIVE_REQUEUE))
        }
        StorageStep::Settling(state) => {
            // A transient state with no Job known (a provider without Jobs, or a Job whose answer was lost) is
            // bounded by the spec's timeouts as well.
            if let Some(problem) = transient_timeout(client, obj, K::NOUN, &state, status.common_mut()).await {
                return Err(problem);
            }
            // Still being made (a network may pass through STARTING), or busy with an operation of the provider
            // (a volume being snapshotted is CAPTURING): nothing new is started until it ends.
            let reason = if state == ResourceState::Capturing { Reason::WaitingForJob } else { Reason::Creating };
            Ok((Progress::Working(reason, format!("the {} is {state}", K::NOUN)), ACTIVE_REQUEUE))
        }
        // Provider-side changes trigger a reconcile through the observer; the next pass on its own is when
        // meters or events are due.
        StorageStep::InSync => Ok((Progress::InSync, monitor_due)),
    }
}

/// The plan's input from what was observed: no I/O.
fn plan_input<K: StorageKind>(
    ctx: &Context,
    obj: &K,
    current: &Value,
    job_running: bool,
    state: ResourceState,
) -> StoragePlanInput {
    let observe_only = obj.management_policy() == ManagementPolicy::ObserveOnly;
    let description = obj.cimi_description();
    let object_name = obj.name_any();
    // ObserveOnly never expects our tags on the resource; Managed does.
    let tags = if observe_only { Default::default() } else { tags(ctx, obj) };
    let imported = if observe_only || obj.import_spec().is_some() { Some(current) } else { None };
    let (name, props) = wanted_attributes(obj.spec_name(), &object_name, obj.user_properties(), &tags, imported);
    let attribute_changes = attribute_changes(&name, description, &props, current);
    let drift = if observe_only { drift(&attribute_changes, current, None) } else { Vec::new() };
    StoragePlanInput { observe_only, job_running, state, ready_state: K::READY_STATE, attribute_changes, drift }
}

/// The reconcile-shell side of a storage kind, the same for each: its status's shared part, its noun and CEP
/// collection, and the storage controller's guard and pass. `storage_kind!(CimiVolume, CimiVolumeStatus,
/// "volume", "volumes")`.
macro_rules! storage_kind {
    ($kind:ty, $status:ty, $noun:literal, $collection:literal) => {
        impl $crate::controller::shell::kind::KindStatus for $status {
            fn common(&self) -> &$crate::api::common::ManagedStatus {
                &self.common
            }
            fn common_mut(&mut self) -> &mut $crate::api::common::ManagedStatus {
                &mut self.common
            }
        }

        impl $crate::controller::shell::kind::ManagedKind for $kind {
            type Status = $status;
            const NOUN: &'static str = $noun;
            const COLLECTION: &'static str = $collection;

            fn status_now(&self) -> $status {
                self.status.clone().unwrap_or_default()
            }

            fn guard(
                &self,
                ctx: &$crate::controller::context::Context,
                api: &kube::api::Api<Self>,
            ) -> impl std::future::Future<
                Output = Result<$crate::controller::shell::kind::Guard, $crate::controller::shell::error::Error>,
            > + Send {
                $crate::controller::storage::controller::guard(self, ctx, api)
            }

            fn sync(
                &self,
                ctx: &$crate::controller::context::Context,
                status: &mut $status,
            ) -> impl std::future::Future<
                Output = Result<
                    ($crate::controller::outcome::Progress, std::time::Duration),
                    $crate::controller::outcome::Problem,
                >,
            > + Send {
                $crate::controller::storage::controller::sync(self, ctx, status)
            }
        }
    };
}
pub(crate) use storage_kind;
