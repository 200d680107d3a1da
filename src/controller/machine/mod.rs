//! The CimiMachine controller: observe (the provider machine, its interfaces and volumes) -> plan
//! ([`plan::plan_machine`], pure) -> act (one CIMI call, recorded in status before waiting on it)
//! -> status (server-side apply, only when it changed; Events on Ready transitions).

pub mod plan;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use self::plan::{
    AttachedInterface, AttachedVolume, MachinePlanInput, MachineStep, WantedNetwork, WantedVolume,
    parse_action_annotation, plan_machine, power_action,
};
use super::context::Context;
use super::kubeops::{
    add_finalizer, annotation, apply_status, flag, has_finalizer, object_api, publish, remove_finalizer,
};
use super::outcome::{Problem, Progress, retry_delay};
use super::registry::resolve_catalog;
use super::{observer, watching};
use crate::api::common::{LastAction, ManagementPolicy};
use crate::api::conditions::{ConditionSet, READY, RECONCILING, STALLED, SYNCED, Status};
use crate::api::machine::{CimiMachineStatus, ObservedAttachment};
use crate::api::quantity::{capacity_kb, format_memory_kib, memory_kib};
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiNetwork, CimiVolume};
use crate::cimi::{CimiClient, CimiError, model};
use crate::controller::connection::{connection, poll_interval};
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
use crate::controller::resource::reads::{entries, operations};
use crate::names::{ANNOTATION_ACTION, ANNOTATION_FORCE_ORPHAN, FINALIZER_CLEANUP};

/// The CEP collection of machines.
pub const COLLECTION: &str = "machines";

/// Builds the controller (its watches register with readiness at once) and returns the future that
/// runs it until `shutdown`: CimiMachines of the watched namespaces with the label selector, and the
/// names of the Secrets there, so a change of a Secret a machine references (its credential or user
/// data) reconciles that machine again.
pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let controller = watching::namespaced::<CimiMachine>(&ctx, &shutdown);
    let store = controller.store();
    let secrets = ctx.watches().secret_names(&CimiMachine::plural(&()), None);
    let controller = controller
        // Provider-side changes seen by the observer's collection reads.
        .reconcile_on(ctx.observer.changes::<CimiMachine>(COLLECTION))
        .watches_stream(secrets, move |secret| {
            let (namespace, name) = (secret.namespace(), secret.name_any());
            watching::referencing(&store, |m: &CimiMachine| {
                m.namespace() == namespace && secrets_of(m).any(|secret| secret == name)
            })
        });
    watching::drive(controller, ctx, reconcile, error_policy)
}

/// The names of the Secrets (in its namespace) a machine's spec references.
fn secrets_of(machine: &CimiMachine) -> impl Iterator<Item = &str> {
    let template = machine.spec.template.as_ref();
    let credential = template.and_then(|t| t.credential_secret_ref.as_ref()).map(|r| r.name.as_str());
    let user_data = template.and_then(|t| t.user_data_secret_ref.as_ref()).map(|r| r.name.as_str());
    credential.into_iter().chain(user_data)
}

/// A reconcile failure that only the Kubernetes API can cause (provider problems land in status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

fn error_policy(_: Arc<CimiMachine>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "cimimachine reconcile failed");
    Action::requeue(super::outcome::backoff(3, None))
}

async fn reconcile(machine: Arc<CimiMachine>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = machine.namespace().unwrap_or_default();
    if !ctx.config.watches_namespace(&ns) {
        return Ok(Action::await_change());
    }
    let api = object_api(&ctx.client, &*machine);
    let key = format!("machine/{ns}/{}", machine.name_any());
    let old = machine.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = machine.meta().generation;
    let mut conds = ConditionSet::new(&old.common.conditions, generation, now.clone());

    let deleting = machine.meta().deletion_timestamp.is_some();
    if super::outcome::held_by_pause(&*machine) {
        super::outcome::set_paused(&mut conds, deleting);
        status.common.conditions = conds.build();
        write(&ctx, &api, &machine, &old, status).await?;
        return Ok(Action::await_change());
    }
    if deleting {
        return finalize(&machine, &ctx, &api, old, status, conds).await;
    }
    if !has_finalizer(&*machine, FINALIZER_CLEANUP) {
        add_finalizer(&api, &*machine, FINALIZER_CLEANUP).await?;
    }
    super::outcome::begin(&mut conds, &mut status.common, generation);

    let outcome = sync(&machine, &ctx, &api, &mut status).await;
    if matches!(outcome, Ok((Progress::InSync, _))) {
        ctx.succeeded(&format!("machine-retry/{ns}/{}", machine.name_any()));
    }
    let state = status.common.state.clone().unwrap_or_default();
    let (requeue, reached) = super::outcome::conclude(&ctx.failures, &key, &mut conds, outcome, "machine", &state);
    if reached {
        status.common.last_sync_time = Some(now);
    }
    status.common.conditions = conds.build();
    write(&ctx, &api, &machine, &old, status).await?;
    Ok(Action::requeue(requeue))
}

/// Writes status when something other than the sync time changed, and records Ready transitions.
async fn write(
    ctx: &Context,
    api: &Api<CimiMachine>,
    machine: &CimiMachine,
    old: &CimiMachineStatus,
    status: CimiMachineStatus,
) -> Result<(), Error> {
    let status = super::kubeops::bounded(&status);
    let comparable = |s: &CimiMachineStatus| {
        let mut s = s.clone();
        s.common.last_sync_time = None;
        s
    };
    if comparable(old) == comparable(&status) {
        return Ok(());
    }
    apply_status(api, &machine.name_any(), &status).await?;
    ready_transition_event(&ctx.recorder, machine, &old.common.conditions, &status.common.conditions).await;
    Ok(())
}

/// One pass against the provider. Returns the progress and when to look again.
async fn sync(
    machine: &CimiMachine,
    ctx: &Context,
    api: &Api<CimiMachine>,
    status: &mut CimiMachineStatus,
) -> Result<(Progress, Duration), Problem> {
    let provider = &machine.spec.provider_ref.name;
    let conn = connection(ctx, provider, &machine.namespace().unwrap_or_default()).await?;
    let client = &conn.client;
    let uid = machine.uid().unwrap_or_default();
    // Steady (Ready for this generation, no Job, no new one-shot action): observe from the cache.
    let pending_action = annotation(machine, ANNOTATION_ACTION)
        .and_then(parse_action_annotation)
        .is_some_and(|(_, nonce)| status.common.last_action.as_ref().map(|a| a.nonce.as_str()) != Some(nonce.as_str()));
    let steady = observer::steady(&status.common, machine.meta().generation) && !pending_action;

    let spec = &machine.spec;
    let observe_only = spec.management_policy == ManagementPolicy::ObserveOnly;
    let retry_key = format!("machine-retry/{}/{}", machine.namespace().unwrap_or_default(), machine.name_any());

    // Follow the Job we started, if it still runs, within the spec's timeouts.
    let was_running = job_running(status.common.job.as_ref());
    if was_running && let Some(job) = status.common.job.as_mut() {
        refresh_job(client, job).await?;
    }
    if let Some(job) = status.common.job.as_ref()
        && let Some(problem) = enforce_timeout(client, machine, job).await
    {
        let failures = ctx.failed(&retry_key);
        return Err(Problem { retry_after: Some(retry_delay(failures)), ..problem });
    }
    settle_last_action(status);
    if let Some(message) =
        recover_failed_create(&ctx.failures, client, &retry_key, "machine", &mut status.common, &uid, was_running)
            .await?
    {
        return Ok((Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE));
    }
    failed_operation(ctx, &retry_key, status, was_running)?;

    // Observe: the resource in status, else the one carrying our UID tag, else the one to import.
    let imported = spec.import.as_ref();
    let current = match (status.common.id.clone(), imported) {
        (Some(href), imported) => {
            let href = href.as_str();
            let at = observer::Lookup {
                provider,
                client,
                collection: COLLECTION,
                href,
                steady,
                imported: imported.is_some(),
            };
            match observe_known(ctx, machine, &at, "machine", &mut status.common).await? {
                Ok(v) => Some(v),
                Err(early) => return Ok(early),
            }
        }
        (None, Some(import)) => {
            let ours = if observe_only {
                None
            } else {
                find_own(ctx, client, COLLECTION, "machine", machine, &mut status.common).await?
            };
            match ours {
                Some(v) => Some(v),
                None => {
                    let found = find_import::<CimiMachine>(ctx, client, COLLECTION, "machine", import, &uid).await?;
                    let id = found.get("id").and_then(Value::as_str).unwrap_or("?");
                    publish(
                        &ctx.recorder,
                        machine,
                        false,
                        "Imported",
                        "Import",
                        format!("adopted the provider machine {id}"),
                    )
                    .await;
                    Some(found)
                }
            }
        }
        (None, None) => find_own(ctx, client, COLLECTION, "machine", machine, &mut status.common).await?,
    };
    let Some(current) = current else {
        if observe_only {
            return Err(Problem::stalled(Reason::InvalidSpec, "managementPolicy ObserveOnly needs spec.import"));
        }
        return create(machine, ctx, api, &conn, status).await;
    };
    if let Some(id) = current.get("id").and_then(Value::as_str) {
        status.common.id = Some(client.resolve(id).await?.to_string());
    }
    let attached = observe_into_status(ctx, provider, client, &current, status, steady).await?;
    // Meters and events only in the steady state (creation and changes go first); one second after
    // an object turns Ready its next pass reads them.
    let monitor_due = if steady {
        observer::monitor(&ctx.observer, provider, client, machine, &current, &mut status.common).await
    } else {
        Duration::from_secs(1)
    };
    let state = status.common.state.clone().unwrap_or_default();

    // ObserveOnly: mirror, and report (never correct) what differs from the spec.
    if observe_only {
        let (name, props) = wanted_attributes(
            spec.name.as_deref(),
            &machine.name_any(),
            spec.properties.as_ref(),
            &Default::default(),
            Some(&current),
        );
        let changes = attribute_changes(&name, spec.description.as_deref(), &props, &current);
        let power = (!plan::TRANSIENT_STATES.contains(&state.as_str())
            && power_action(&state, spec.power_state, &operations(&current)).is_some())
        .then_some((state.as_str(), spec.power_state.cimi_state()));
        let drift = drift_report(&changes, &current, power);
        return Ok((Progress::Observed(drift), poll_interval(ctx, provider).await.min(monitor_due)));
    }

    // A provider without Jobs: a transient state is bounded by the spec's timeouts as well.
    if !job_running(status.common.job.as_ref())
        && plan::TRANSIENT_STATES.contains(&state.as_str())
        && let Some(problem) = transient_overdue(machine, "machine", &state, &status.common.conditions)
    {
        return Err(Problem { retry_after: Some(Duration::from_secs(10)), ..problem });
    }

    // Plan.
    let (name, props) = wanted_attributes(
        spec.name.as_deref(),
        &machine.name_any(),
        spec.properties.as_ref(),
        &tags(ctx, machine),
        imported.map(|_| &current),
    );
    let (wanted_volumes, known_volumes, waiting_for) = wanted_volumes(ctx, machine).await?;
    // Only attachments of volumes Kubernetes knows are ours to remove; others (an imported machine's
    // own disks, say) are left alone.
    let attached: Vec<AttachedVolume> = attached
        .into_iter()
        .filter(|a| known_volumes.contains(&a.volume) || wanted_volumes.iter().any(|w| w.href == a.volume))
        .collect();
    let (wanted_networks, known_networks, networks_waiting) = network_refs(ctx, machine).await?;
    // Likewise, only interfaces on networks Kubernetes knows are ours to remove.
    // (From the interfaces just mirrored into status: no second read of the collection.)
    let mut attached_interfaces = Vec::new();
    for nic in &status.network_interfaces {
        let Some(href) = &nic.href else { continue };
        let network = client.resolve(href).await?.to_string();
        if known_networks.contains(&network) || wanted_networks.iter().any(|w| w.href == network) {
            attached_interfaces.push(AttachedInterface { network });
        }
    }
    let waiting_for = match (waiting_for, networks_waiting) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    let input = MachinePlanInput {
        state,
        operations: operations(&current),
        job_running: job_running(status.common.job.as_ref()),
        power: spec.power_state,
        attribute_changes: attribute_changes(&name, spec.description.as_deref(), &props, &current),
        wanted_volumes,
        attached_volumes: attached,
        wanted_networks,
        attached_interfaces,
        requested_action: annotation(machine, ANNOTATION_ACTION).and_then(parse_action_annotation),
        last_action_nonce: status.common.last_action.as_ref().map(|a| a.nonce.clone()),
    };
    let step = plan_machine(&input);
    tracing::debug!(machine = %machine.name_any(), ?step, "plan");

    // Act.
    match step {
        MachineStep::Wait(message) => Ok((Progress::Working(Reason::WaitingForJob, message), ACTIVE_REQUEUE)),
        MachineStep::Failed(message) => Err(Problem::stalled(Reason::ProviderError, message)),
        MachineStep::OneShot { action, nonce } => {
            // capture and snapshot make a MachineImage (its href is the action's result); the rest are Actions.
            let image = matches!(action.as_str(), "capture" | "snapshot");
            let requested = if image {
                let name = format!("{}-{nonce}", machine.name_any());
                client.capture(&current, &action, &name).await
            } else {
                client.action(&current, &action, Map::new()).await
            };
            let accepted = match requested {
                Ok(accepted) => accepted,
                Err(error) if error.is_retryable() => return Err(error.into()),
                // Refused for good (the provider said no): this nonce is done, as Failed; a new nonce asks again.
                Err(error) => {
                    let message = format!("the provider refused {action}: {error}");
                    status.common.last_action = Some(LastAction {
                        action: action.clone(),
                        nonce,
                        phase: "Failed".into(),
                        message: Some(message.clone()),
                        job: None,
                        result: None,
                        completed_at: Some(Time(k8s_openapi::jiff::Timestamp::now())),
                    });
                    publish(&ctx.recorder, machine, true, "ActionFailed", "Action", message).await;
                    return Ok((
                        Progress::Working(Reason::Updating, "re-reading after a refused action".into()),
                        ACTIVE_REQUEUE,
                    ));
                }
            };
            let job = job_started(&accepted, &action);
            let result = if image {
                let images = client.collection_url("machineImages").await.ok();
                match images {
                    Some(collection) => client.created_href(&accepted, &collection).await.ok().flatten(),
                    None => accepted.location.clone(),
                }
                .map(|u| u.to_string())
            } else {
                None
            };
            status.common.last_action = Some(LastAction {
                action: action.clone(),
                nonce,
                phase: if job.is_some() { "Running".into() } else { "Succeeded".into() },
                message: None,
                job: job.as_ref().map(|j| j.href.clone()),
                result,
                completed_at: if job.is_some() { None } else { Some(Time(k8s_openapi::jiff::Timestamp::now())) },
            });
            if job.is_some() {
                status.common.job = job;
            }
            publish(
                &ctx.recorder,
                machine,
                false,
                "ActionStarted",
                "Action",
                format!("{action} requested on the provider"),
            )
            .await;
            Ok((Progress::Working(Reason::ChangingPowerState, format!("{action} requested")), ACTIVE_REQUEUE))
        }
        MachineStep::RejectOneShot { action, nonce, message } => {
            status.common.last_action = Some(LastAction {
                action,
                nonce,
                phase: "Rejected".into(),
                message: Some(message.clone()),
                job: None,
                result: None,
                completed_at: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            });
            publish(&ctx.recorder, machine, true, "ActionRejected", "Action", message).await;
            Ok((Progress::Working(Reason::Updating, "re-reading after a rejected action".into()), ACTIVE_REQUEUE))
        }
        MachineStep::Update(changes) => {
            let accepted = client.update(&current, &changes, &[]).await?;
            status.common.job = job_started(&accepted, "edit").or(status.common.job.take());
            let what: Vec<&str> = changes.keys().map(String::as_str).collect();
            Ok((Progress::Working(Reason::Updating, format!("updating {}", what.join(", "))), ACTIVE_REQUEUE))
        }
        MachineStep::Detach(attached) => {
            let entry = client.get_value(&client.resolve(&attached.entry).await?).await?;
            let accepted = client.detach_volume(&entry).await?;
            status.common.job = job_started(&accepted, "detach").or(status.common.job.take());
            Ok((Progress::Working(Reason::Updating, format!("detaching volume {}", attached.volume)), ACTIVE_REQUEUE))
        }
        MachineStep::Attach(wanted) => {
            let volume = client.resolve(&wanted.href).await?;
            let location = wanted.initial_location.clone().unwrap_or_default();
            let accepted = client.attach_volume(&current, &volume, &location).await?;
            status.common.job = job_started(&accepted, "attach").or(status.common.job.take());
            Ok((Progress::Working(Reason::Updating, format!("attaching CimiVolume {}", wanted.name)), ACTIVE_REQUEUE))
        }
        MachineStep::Disconnect(attached) => {
            let Some(entry) = interface_entry(client, &current, &attached.network).await? else {
                return Ok((Progress::Working(Reason::Updating, "re-reading the interfaces".into()), ACTIVE_REQUEUE));
            };
            let accepted = client.delete(&entry).await?;
            status.common.job = job_started(&accepted, "disconnect").or(status.common.job.take());
            Ok((
                Progress::Working(Reason::Updating, format!("removing the interface on network {}", attached.network)),
                ACTIVE_REQUEUE,
            ))
        }
        MachineStep::Connect(wanted) => {
            let Some(href) = current.get("networkInterfaces").and_then(|v| v.get("href")).and_then(Value::as_str)
            else {
                return Err(Problem::stalled(
                    Reason::UnsupportedByProvider,
                    "the provider machine has no networkInterfaces collection; interfaces cannot be added",
                ));
            };
            let collection = client.resolve(href).await?;
            let body = json!({
                "resourceURI": model::type_uri("MachineNetworkInterface"),
                "network": {"href": wanted.href},
                "state": "ACTIVE",
            });
            let accepted = client.create_at(&collection, &body).await?;
            status.common.job = job_started(&accepted, "connect").or(status.common.job.take());
            Ok((
                Progress::Working(Reason::Updating, format!("adding an interface on CimiNetwork {}", wanted.name)),
                ACTIVE_REQUEUE,
            ))
        }
        MachineStep::Power(action) => {
            let accepted = client.action(&current, action, Map::new()).await?;
            status.common.job = job_started(&accepted, action).or(status.common.job.take());
            Ok((
                Progress::Working(
                    Reason::ChangingPowerState,
                    format!("{action} requested to reach {}", spec.power_state.cimi_state()),
                ),
                ACTIVE_REQUEUE,
            ))
        }
        MachineStep::PowerUnsupported(message) => Err(Problem::stalled(Reason::UnsupportedByProvider, message)),
        MachineStep::InSync => match waiting_for {
            Some(message) => Ok((Progress::Working(Reason::WaitingForDependency, message), Duration::from_secs(2))),
            // Provider-side changes trigger a reconcile through the observer; the next pass on its own is
            // when meters or events are due.
            None => Ok((Progress::InSync, monitor_due)),
        },
    }
}

/// Moves a running one-shot action to Succeeded or Failed once its Job ended.
fn settle_last_action(status: &mut CimiMachineStatus) {
    let (Some(last), Some(job)) = (status.common.last_action.as_mut(), status.common.job.as_ref()) else { return };
    if last.phase != "Running" || last.job.as_deref() != Some(job.href.as_str()) {
        return;
    }
    match job.state.as_deref() {
        Some("SUCCESS") => last.phase = "Succeeded".into(),
        Some("FAILED" | "STOPPED") => {
            last.phase = "Failed".into();
            last.message = job.status_message.clone();
        }
        _ => return,
    }
    last.completed_at = Some(Time(k8s_openapi::jiff::Timestamp::now()));
}

/// Holds a failed operation (a power action, an update, an attachment; not a create, whose failure
/// is reported above, nor a one-shot action, whose outcome is `status.lastAction`) back for a delay
/// that doubles with each failure in a row, reporting `JobFailed` (or the `Timeout` that stopped it)
/// meanwhile; then lets the plan retry.
fn failed_operation(
    ctx: &Context,
    retry_key: &str,
    status: &CimiMachineStatus,
    was_running: bool,
) -> Result<(), Problem> {
    let Some(job) = &status.common.job else { return Ok(()) };
    let failed = matches!(job.state.as_deref(), Some("FAILED" | "STOPPED"));
    let one_shot = status.common.last_action.as_ref().and_then(|a| a.job.as_deref()) == Some(job.href.as_str());
    if !failed || one_shot || job.action.as_deref() == Some("add") {
        return Ok(());
    }
    let reported = crate::api::conditions::find(&status.common.conditions, STALLED)
        .filter(|c| c.status == "True" && matches!(c.reason.as_str(), "JobFailed" | "Timeout"))
        .filter(|c| c.message.contains(&job.href));
    if let Some(c) = reported {
        let delay = retry_delay(ctx.failures(retry_key).max(1));
        let since = k8s_openapi::jiff::Timestamp::now().duration_since(c.last_transition_time.0);
        let since = Duration::try_from(since).unwrap_or_default();
        if since < delay {
            let reason = if c.reason == "Timeout" { Reason::Timeout } else { Reason::JobFailed };
            return Err(Problem { retry_after: Some(delay - since), ..Problem::stalled(reason, c.message.clone()) });
        }
        return Ok(());
    }
    if was_running {
        let failures = ctx.failed(retry_key);
        return Err(Problem {
            retry_after: Some(retry_delay(failures)),
            ..Problem::stalled(
                Reason::JobFailed,
                format!(
                    "the {} Job {} ended {}: {}; retrying in {}s",
                    job.action.as_deref().unwrap_or("?"),
                    job.href,
                    job.state.as_deref().unwrap_or("?"),
                    job.status_message.clone().unwrap_or_default(),
                    retry_delay(failures).as_secs()
                ),
            )
        });
    }
    Ok(())
}

/// The volumes the spec wants attached, with their provider hrefs; the hrefs of every CimiVolume of
/// the namespace (what Kubernetes knows); and which volumes are not ready yet, by name.
async fn wanted_volumes(
    ctx: &Context,
    machine: &CimiMachine,
) -> Result<(Vec<WantedVolume>, Vec<String>, Option<String>), Problem> {
    let all = ctx.objects::<CimiVolume>(machine.namespace().as_deref()).await?;
    let known: Vec<String> = all.iter().filter_map(|v| v.status.as_ref().and_then(|s| s.common.id.clone())).collect();
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for v in &machine.spec.volumes {
        let name = &v.volume_ref.name;
        match all.iter().find(|vol| vol.name_any() == *name) {
            Some(vol) => match vol.status.as_ref().and_then(|s| {
                crate::api::conditions::is_true(&s.common.conditions, READY).then(|| s.common.id.clone()).flatten()
            }) {
                Some(href) => {
                    out.push(WantedVolume { name: name.clone(), href, initial_location: v.initial_location.clone() })
                }
                None => waiting.push(format!("CimiVolume {name} is not Ready")),
            },
            None => waiting.push(format!("CimiVolume {name} does not exist")),
        }
    }
    Ok((out, known, (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))))
}

/// The networks the spec wants interfaces on, with their provider hrefs; the hrefs of every
/// CimiNetwork of the namespace (what Kubernetes knows); and which networks are not ready yet.
async fn network_refs(
    ctx: &Context,
    machine: &CimiMachine,
) -> Result<(Vec<WantedNetwork>, Vec<String>, Option<String>), Problem> {
    let all = ctx.objects::<CimiNetwork>(machine.namespace().as_deref()).await?;
    let known: Vec<String> = all.iter().filter_map(|n| n.status.as_ref().and_then(|s| s.common.id.clone())).collect();
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for n in &machine.spec.network_interfaces {
        let name = &n.network_ref.name;
        match all.iter().find(|net| net.name_any() == *name) {
            Some(net) => match net.status.as_ref().and_then(|s| {
                crate::api::conditions::is_true(&s.common.conditions, READY).then(|| s.common.id.clone()).flatten()
            }) {
                Some(href) => out.push(WantedNetwork { name: name.clone(), href }),
                None => waiting.push(format!("CimiNetwork {name} is not Ready")),
            },
            None => waiting.push(format!("CimiNetwork {name} does not exist")),
        }
    }
    Ok((out, known, (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))))
}

/// The machine's interface entry on `network` (what a disconnect deletes), if it has one.
async fn interface_entry(client: &CimiClient, machine: &Value, network: &str) -> Result<Option<Value>, CimiError> {
    let Some(href) = machine.get("networkInterfaces").and_then(|v| v.get("href")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let url = client.resolve(href).await?;
    let page = client.list_page_value(&url, &Default::default(), "MachineNetworkInterface").await?;
    for e in entries(&page) {
        let Some(on) = e.get("network").and_then(|v| v.get("href")).and_then(Value::as_str) else { continue };
        if client.resolve(on).await?.as_str() == network {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Mirrors the provider machine into status: state, cpu, memory, addresses, interfaces, volumes; returns
/// the volume attachments for the plan. The sub-collections (interfaces, their addresses, volumes) are
/// read when the object is not `steady`, when the machine's `updated` changed, or once per meter
/// interval; otherwise the observer's last reading is reused.
async fn observe_into_status(
    ctx: &Context,
    status_provider: &str,
    client: &CimiClient,
    m: &Value,
    status: &mut CimiMachineStatus,
    steady: bool,
) -> Result<Vec<AttachedVolume>, CimiError> {
    status.common.state = m.get("state").and_then(Value::as_str).map(str::to_string);
    status.cpu = m.get("cpu").and_then(Value::as_i64);
    status.memory = m.get("memory").and_then(Value::as_i64);
    status.memory_display = status.memory.map(format_memory_kib);
    let href = status.common.id.clone().unwrap_or_default();
    let updated = m.get("updated").and_then(Value::as_str);
    let reading = match ctx.observer.sub_reading(status_provider, &href, updated).await.filter(|_| steady) {
        Some(r) => r,
        None => {
            let r = read_sub_collections(client, m).await?;
            ctx.observer.store_sub_reading(&href, updated, r.clone());
            r
        }
    };
    let list = |k: &str| -> Vec<ObservedAttachment> {
        reading.get(k).cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    };
    status.network_interfaces = list("networkInterfaces");
    status.volumes = list("volumes");
    status.addresses = status.network_interfaces.iter().flat_map(|n| n.addresses.iter().cloned()).collect();
    status.ip = status.addresses.first().cloned();
    let attached = reading
        .get("attached")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(AttachedVolume {
                entry: a.get("entry")?.as_str()?.to_string(),
                volume: a.get("volume")?.as_str()?.to_string(),
            })
        })
        .collect();
    Ok(attached)
}

/// The most network interfaces, addresses per interface, and attached volumes read of one machine: what a
/// provider serves beyond is not read (a hostile provider cannot make one machine cost unbounded requests).
const MAX_SUB_ENTRIES: usize = 64;

/// Reads a machine's network interfaces (with their addresses) and attached volumes, as JSON:
/// `{networkInterfaces: [ObservedAttachment], volumes: [ObservedAttachment], attached: [{entry, volume}]}`.
async fn read_sub_collections(client: &CimiClient, m: &Value) -> Result<Value, CimiError> {
    let mut interfaces = Vec::new();
    if let Some(href) = m.get("networkInterfaces").and_then(|v| v.get("href")).and_then(Value::as_str) {
        let page = client
            .list_page_value(&client.resolve(href).await?, &Default::default(), "MachineNetworkInterface")
            .await?;
        for nic in entries(&page).into_iter().take(MAX_SUB_ENTRIES) {
            let mut attachment = ObservedAttachment {
                href: nic.get("network").and_then(|n| n.get("href")).and_then(Value::as_str).map(str::to_string),
                state: nic.get("state").and_then(Value::as_str).map(str::to_string),
                ..Default::default()
            };
            if let Some(ah) = nic.get("addresses").and_then(|a| a.get("href")).and_then(Value::as_str) {
                let page = client
                    .list_page_value(&client.resolve(ah).await?, &Default::default(), "MachineNetworkInterfaceAddress")
                    .await?;
                for entry in entries(&page).into_iter().take(MAX_SUB_ENTRIES) {
                    if let Some(addr) = entry.get("address").and_then(|a| a.get("href")).and_then(Value::as_str) {
                        let address = client.get_value(&client.resolve(addr).await?).await?;
                        if let Some(ip) = address.get("ip").and_then(Value::as_str) {
                            attachment.addresses.push(ip.to_string());
                        }
                    }
                }
            }
            interfaces.push(attachment);
        }
    }
    let mut volumes = Vec::new();
    let mut attached = Vec::new();
    if let Some(href) = m.get("volumes").and_then(|v| v.get("href")).and_then(Value::as_str) {
        let page = client.list_page_value(&client.resolve(href).await?, &Default::default(), "MachineVolume").await?;
        for e in entries(&page).into_iter().take(MAX_SUB_ENTRIES) {
            let volume = e.get("volume").and_then(|v| v.get("href")).and_then(Value::as_str);
            volumes.push(ObservedAttachment {
                href: volume.map(str::to_string),
                initial_location: e.get("initialLocation").and_then(Value::as_str).map(str::to_string),
                ..Default::default()
            });
            if let (Some(id), Some(volume)) = (e.get("id").and_then(Value::as_str), volume) {
                attached.push(json!({
                    "entry": client.resolve(id).await?.to_string(),
                    "volume": client.resolve(volume).await?.to_string(),
                }));
            }
        }
    }
    Ok(json!({"networkInterfaces": interfaces, "volumes": volumes, "attached": attached}))
}

/// Builds the MachineCreate and POSTs it; the href and Job go into status at once.
async fn create(
    machine: &CimiMachine,
    ctx: &Context,
    api: &Api<CimiMachine>,
    conn: &super::registry::ProviderConnection,
    status: &mut CimiMachineStatus,
) -> Result<(Progress, Duration), Problem> {
    let (networks, _, networks_waiting) = network_refs(ctx, machine).await?;
    let (volumes, _, volumes_waiting) = wanted_volumes(ctx, machine).await?;
    let waiting: Vec<String> = [volumes_waiting, networks_waiting].into_iter().flatten().collect();
    if !waiting.is_empty() {
        return Ok((Progress::Working(Reason::WaitingForDependency, waiting.join("; ")), Duration::from_secs(2)));
    }
    let networks: Vec<String> = networks.into_iter().map(|n| n.href).collect();
    let spec = &machine.spec;
    let mut template = Map::new();
    if let Some(reference) = &spec.template_ref {
        let href = resolve_catalog(catalog(conn, "machineTemplates"), reference, "templateRef")
            .map_err(|(reason, message)| Problem::stalled(reason, message))?;
        template.insert("href".into(), json!(href));
    } else if let Some(t) = &spec.template {
        if let Some(reference) = &t.machine_config {
            let href = resolve_catalog(catalog(conn, "machineConfigs"), reference, "machineConfig")
                .map_err(|(reason, message)| Problem::stalled(reason, message))?;
            template.insert("machineConfig".into(), json!({"href": href}));
        } else {
            let invalid = |e: crate::api::quantity::QuantityError| Problem::stalled(Reason::InvalidSpec, e.to_string());
            let memory = t.memory.as_ref().map(memory_kib).transpose().map_err(invalid)?;
            let mut disks = Vec::new();
            for d in t.disks.iter().flatten() {
                let mut disk = json!({"capacity": capacity_kb(&d.capacity).map_err(invalid)?});
                if let Some(f) = &d.format {
                    disk["format"] = json!(f);
                }
                if let Some(l) = &d.initial_location {
                    disk["initialLocation"] = json!(l);
                }
                disks.push(disk);
            }
            template.insert(
                "machineConfig".into(),
                json!({"resourceURI": model::type_uri("MachineConfiguration"), "cpu": t.cpu, "memory": memory, "disks": disks}),
            );
        }
        let image = resolve_catalog(catalog(conn, "machineImages"), &t.machine_image, "machineImage")
            .map_err(|(reason, message)| Problem::stalled(reason, message))?;
        template.insert("machineImage".into(), json!({"href": image}));
        let secrets: Api<Secret> = object_api_secret(ctx, machine);
        if let Some(r) = &t.credential_secret_ref {
            let data = secret_data(&secrets, &r.name).await?;
            let mut credential = Map::new();
            for (k, v) in data {
                credential.insert(k, json!(v));
            }
            template.insert("credential".into(), Value::Object(credential));
        }
        if let Some(r) = &t.user_data_secret_ref {
            let data = secret_data(&secrets, &r.name).await?;
            let value = data.get(&r.key).ok_or_else(|| {
                Problem::stalled(Reason::SecretNotFound, format!("Secret {} has no key {}", r.name, r.key))
            })?;
            template.insert("userData".into(), json!(base64::engine::general_purpose::STANDARD.encode(value)));
        }
        template.insert("initialState".into(), json!(spec.power_state.cimi_state()));
    }
    if !networks.is_empty() {
        let nics: Vec<Value> = networks.iter().map(|h| json!({"network": {"href": h}})).collect();
        template.insert("networkInterfaces".into(), json!(nics));
    }
    if !volumes.is_empty() {
        let vols: Vec<Value> = volumes
            .iter()
            .map(|v| match &v.initial_location {
                Some(l) => json!({"href": v.href, "initialLocation": l}),
                None => json!({"href": v.href}),
            })
            .collect();
        template.insert("volumes".into(), json!(vols));
    }
    let mut body = json!({
        "resourceURI": model::type_uri("MachineCreate"),
        "name": spec.name.clone().unwrap_or_else(|| machine.name_any()),
        "properties": desired_properties(spec.properties.as_ref(), &tags(ctx, machine)),
        "machineTemplate": template,
    });
    if let Some(d) = &spec.description {
        body["description"] = json!(d);
    }
    let client = &conn.client;
    let collection = client.collection_url(COLLECTION).await?;
    let accepted = client.create(COLLECTION, &body).await?;
    let href = client.created_href(&accepted, &collection).await?;
    status.common.id = href.map(|u| u.to_string());
    status.common.job = job_started(&accepted, "add");
    // Write-ahead: the href and the Job are in status before anything waits on them.
    let mut conds = ConditionSet::new(
        &status.common.conditions,
        machine.meta().generation,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    conds.set(READY, Status::False, Reason::Creating, "the provider is creating the machine");
    conds.set(RECONCILING, Status::True, Reason::Creating, "the provider is creating the machine");
    status.common.conditions = conds.build();
    apply_status(api, &machine.name_any(), &*status).await.map_err(Problem::from)?;
    publish(
        &ctx.recorder,
        machine,
        false,
        "Created",
        "Create",
        format!("provider machine {} requested", status.common.id.clone().unwrap_or_default()),
    )
    .await;
    Ok((Progress::Working(Reason::Creating, "the provider is creating the machine".into()), ACTIVE_REQUEUE))
}

fn catalog<'a>(conn: &'a super::registry::ProviderConnection, name: &str) -> &'a [crate::api::provider::CatalogEntry] {
    conn.catalog.get(name).map(Vec::as_slice).unwrap_or(&[])
}

fn object_api_secret(ctx: &Context, machine: &CimiMachine) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &machine.namespace().unwrap_or_default())
}

/// The string values of a Secret in the machine's namespace (never logged).
async fn secret_data(secrets: &Api<Secret>, name: &str) -> Result<std::collections::BTreeMap<String, String>, Problem> {
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Problem::stalled(Reason::SecretNotFound, format!("Secret {name} does not exist")))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
        .collect())
}

/// The deletion path: force-orphan, or delete/orphan on the provider, then drop the finalizer.
async fn finalize(
    machine: &CimiMachine,
    ctx: &Context,
    api: &Api<CimiMachine>,
    old: CimiMachineStatus,
    mut status: CimiMachineStatus,
    mut conds: ConditionSet,
) -> Result<Action, Error> {
    if !has_finalizer(machine, FINALIZER_CLEANUP) {
        return Ok(Action::await_change());
    }
    let owner = (machine.namespace().unwrap_or_default(), machine.name_any());
    ctx.observer.forget(
        &machine.spec.provider_ref.name,
        COLLECTION,
        status.common.id.as_deref(),
        "CimiMachine",
        &owner,
    );
    if flag(machine, ANNOTATION_FORCE_ORPHAN) {
        publish(&ctx.recorder,
            machine,
            true,
            "ForceOrphaned",
            "Delete",
            format!(
                "cimi.dev/force-orphan: the finalizer was removed without any provider call; the provider machine {} may remain",
                status.common.id.clone().unwrap_or_else(|| "(unknown)".into())
            ),
        )
        .await;
        remove_finalizer(api, machine, FINALIZER_CLEANUP).await?;
        return Ok(Action::await_change());
    }
    let uid = machine.uid().unwrap_or_default();
    let step = match connection(ctx, &machine.spec.provider_ref.name, &machine.namespace().unwrap_or_default()).await {
        Ok(conn) => cleanup(&conn.client, COLLECTION, &mut status.common, &uid, machine.spec.deletion_policy)
            .await
            .map_err(Problem::from),
        Err(problem)
            if matches!(problem.reason, Reason::ProviderNotFound | Reason::NotAllowedNamespace)
                && status.common.id.is_none() =>
        {
            Ok(Cleanup::Done)
        }
        Err(problem) => Err(problem),
    };
    match step {
        Ok(Cleanup::Done) => {
            publish(
                &ctx.recorder,
                machine,
                false,
                "Deleted",
                "Delete",
                match machine.spec.deletion_policy {
                    crate::api::common::DeletionPolicy::Delete => "the provider machine is gone".to_string(),
                    crate::api::common::DeletionPolicy::Orphan => {
                        "the provider machine was left in place, untagged".to_string()
                    }
                },
            )
            .await;
            remove_finalizer(api, machine, FINALIZER_CLEANUP).await?;
            Ok(Action::await_change())
        }
        Ok(Cleanup::Wait(message)) => {
            conds.set(READY, Status::False, Reason::Deleting, message.clone());
            conds.set(RECONCILING, Status::True, Reason::Deleting, message);
            if let Some(late) = delete_overdue(machine, status.common.job.as_ref()) {
                conds.set(STALLED, Status::True, Reason::Timeout, late);
            }
            status.common.conditions = conds.build();
            write(ctx, api, machine, &old, status).await?;
            Ok(Action::requeue(ACTIVE_REQUEUE))
        }
        Err(problem) => {
            let failures = ctx.failed(&format!("machine-delete/{}", uid));
            conds.set(READY, Status::False, Reason::Deleting, format!("deleting: {}", problem.message));
            conds.set(SYNCED, Status::False, problem.reason, problem.message.clone());
            status.common.conditions = conds.build();
            write(ctx, api, machine, &old, status).await?;
            Ok(Action::requeue(Problem { stalled: false, ..problem }.requeue_after(failures)))
        }
    }
}
