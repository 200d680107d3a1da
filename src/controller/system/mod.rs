//! The CimiSystem controller: observe (the provider system, its Job and nested Jobs, its machines,
//! volumes and networks) -> plan ([`plan::plan_system`], pure) -> act (one CIMI call on the system,
//! recorded in status before waiting on it) -> status (members, counts, `ready`, conditions; Events on
//! transitions). With `spec.exposeMembers`, each member is also shown as a read-only CimiMachine,
//! CimiVolume or CimiNetwork owned by the system ([`expose`]).

pub mod expose;
pub mod members;
pub mod plan;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;

use kube::{Resource as _, ResourceExt as _};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use url::Url;

use self::plan::{SystemPlanInput, SystemStep, count_members, failed_components, plan_system};
use super::context::Context;
use super::kubeops::{add_finalizer, apply_status, flag, has_finalizer, object_api, publish, remove_finalizer};
use super::observer;
use super::outcome::{Problem, Progress};
use super::registry::ProviderConnection;
use crate::api::CimiSystem;
use crate::api::common::{DeletionPolicy, JobStatus, ManagementPolicy, ResourceGonePolicy};
use crate::api::conditions::{ConditionSet, READY, RECONCILING, SYNCED, Status};
use crate::api::managed::Managed as _;
use crate::api::reasons::Reason;
use crate::api::system::{CimiSystemStatus, NestedJob};
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, CimiError, model};
use crate::controller::connection::{connection, poll_interval};
use crate::controller::kubeops::ready_transition_event;
use crate::controller::outcome::ACTIVE_REQUEUE;
use crate::controller::resource::attributes::{attribute_changes, desired_properties};
use crate::controller::resource::deletion::{Cleanup, cleanup};
use crate::controller::resource::identity::{find_own, tags};
use crate::controller::resource::jobs::{job_running, job_started};
use crate::controller::resource::reads::{entries, observe, operations};
use crate::names::{ANNOTATION_FORCE_ORPHAN, FINALIZER_CLEANUP};

/// The CEP collection of systems.
pub const COLLECTION: &str = "systems";

/// Runs the controller until `shutdown`.
pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl std::future::Future<Output = ()> + Send + 'static {
    let controller = super::driver::namespaced::<CimiSystem>(&ctx, &shutdown);
    super::driver::drive(controller, ctx, reconcile, error_policy)
}

/// A reconcile failure that only the Kubernetes API can cause (provider problems land in status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

fn error_policy(_: Arc<CimiSystem>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "cimisystem reconcile failed");
    Action::requeue(super::outcome::backoff(3, None))
}

async fn reconcile(system: Arc<CimiSystem>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = system.namespace().unwrap_or_default();
    if !ctx.config.watches_namespace(&ns) {
        return Ok(Action::await_change());
    }
    let api = object_api(&ctx.client, &*system);
    let key = format!("system/{ns}/{}", system.name_any());
    let old = system.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = system.meta().generation;
    let mut conds = ConditionSet::new(&old.common.conditions, generation, now.clone());

    let deleting = system.meta().deletion_timestamp.is_some();
    if super::outcome::held_by_pause(&*system) {
        super::outcome::set_paused(&mut conds, deleting);
        status.common.conditions = conds.build();
        write(&ctx, &api, &system, &old, status).await?;
        return Ok(Action::await_change());
    }
    if deleting {
        return finalize(&system, &ctx, &api, old, status, conds).await;
    }
    if !has_finalizer(&*system, FINALIZER_CLEANUP) {
        add_finalizer(&api, &*system, FINALIZER_CLEANUP).await?;
    }
    super::outcome::begin(&mut conds, &mut status.common, generation);

    let mut outcome = sync(&system, &ctx, &api, &mut status).await;
    if outcome.is_ok()
        && let Err(problem) = expose::sync_exposed(&ctx, &system, &mut status).await
    {
        outcome = Err(problem);
    }
    // Under ObserveOnly a system in sync is an observed one (ObserveOnly reports no drift for systems).
    let observe_only = system.spec.management_policy == ManagementPolicy::ObserveOnly;
    let outcome = outcome.map(|(progress, requeue)| match progress {
        Progress::InSync if observe_only => (Progress::Observed(None), requeue),
        other => (other, requeue),
    });
    let state = format!(
        "{}, {} members ready",
        status.common.state.clone().unwrap_or_default(),
        status.ready.clone().unwrap_or_else(|| "0/0".into())
    );
    let (requeue, reached) = super::outcome::conclude(&ctx.failures, &key, &mut conds, outcome, "system", &state);
    if reached {
        status.common.last_sync_time = Some(now);
    }
    status.common.conditions = conds.build();
    write(&ctx, &api, &system, &old, status).await?;
    Ok(Action::requeue(requeue))
}

/// Writes status when something other than the sync time changed, and records Ready transitions.
async fn write(
    ctx: &Context,
    api: &Api<CimiSystem>,
    system: &CimiSystem,
    old: &CimiSystemStatus,
    status: CimiSystemStatus,
) -> Result<(), Error> {
    let status = super::kubeops::bounded(&status);
    let comparable = |s: &CimiSystemStatus| {
        let mut s = s.clone();
        s.common.last_sync_time = None;
        s
    };
    if comparable(old) == comparable(&status) {
        return Ok(());
    }
    apply_status(api, &system.name_any(), &status).await?;
    ready_transition_event(&ctx.recorder, system, &old.common.conditions, &status.common.conditions).await;
    Ok(())
}

/// One pass against the provider. Returns the progress and when to look again.
async fn sync(
    system: &CimiSystem,
    ctx: &Context,
    api: &Api<CimiSystem>,
    status: &mut CimiSystemStatus,
) -> Result<(Progress, Duration), Problem> {
    let conn = connection(ctx, system.provider_name(), &system.namespace().unwrap_or_default()).await?;
    let client = &conn.client;
    let uid = system.uid().unwrap_or_default();
    let spec = &system.spec;

    // Follow the system's Job and its nested Jobs.
    let was_running = job_running(status.common.job.as_ref());
    if was_running && let Some(job) = status.common.job.as_mut() {
        follow_job(client, job, &mut status.nested_jobs).await?;
        check_timeout(system, job)?;
    }
    let job_ended_badly = was_running
        && status.common.job.as_ref().is_some_and(|j| matches!(j.state.as_deref(), Some("FAILED" | "STOPPED")));

    // Observe.
    let current = match status.common.id.clone() {
        Some(href) if spec.import.is_some() => observe_imported(client, &href).await?,
        Some(href) => observe(client, &href, &uid).await?,
        None if spec.import.is_some() => return import(system, client, status).await,
        None => find_own(ctx, client, COLLECTION, "system", system, &mut status.common).await?,
    };
    let Some(current) = current else {
        if let Some(href) = status.common.id.clone() {
            if job_running(status.common.job.as_ref()) {
                return Ok((Progress::Working(Reason::Creating, "waiting for the create Job".into()), ACTIVE_REQUEUE));
            }
            if let Some(job) = status.common.job.as_ref().filter(|j| j.state.as_deref() == Some("FAILED")) {
                return Err(Problem::stalled(Reason::JobFailed, job_failure_message(job, &status.nested_jobs)));
            }
            if spec.resource_gone_policy == ResourceGonePolicy::Recreate && spec.import.is_none() {
                let message = format!(
                    "the provider system {href} no longer exists; creating it again (resourceGonePolicy: Recreate): \
                     what it held is lost"
                );
                publish(&ctx.recorder, system, true, "Recreating", "Create", message.clone()).await;
                status.common.id = None;
                status.common.job = None;
                status.common.state = None;
                return Ok((Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE));
            }
            return Err(Problem::stalled(
                Reason::ResourceGone,
                format!(
                    "the provider system {href} no longer exists; delete and recreate the object, or set \
                     spec.resourceGonePolicy: Recreate to have it created again"
                ),
            ));
        }
        return create(system, ctx, api, &conn, status).await;
    };
    if let Some(id) = current.get("id").and_then(Value::as_str) {
        status.common.id = Some(client.resolve(id).await?.to_string());
    }
    status.common.state = current.get("state").and_then(Value::as_str).map(str::to_string);
    let member_docs = members::observe_members(client, &current, status).await?;
    let monitor_due = mirror_events(ctx, client, system, &current, &member_docs, status).await;
    let (ready, total, states) = count_members(&status.machines, &status.volumes, &status.networks, spec.power_state);
    status.members_ready = Some(ready);
    status.members_total = Some(total);
    status.member_states = states;
    status.ready = Some(format!("{ready}/{total}"));
    let machines = status.machines.clone();
    members::truncate_lists(status);

    if job_ended_badly && let Some(job) = status.common.job.as_ref() {
        // A system Job that failed (one of its nested Jobs did): say which component, then carry on.
        let message = job_failure_message(job, &status.nested_jobs);
        publish(&ctx.recorder, system, true, "ComponentFailed", "Reconcile", message.clone()).await;
        if status.common.state.as_deref() != Some("ERROR") {
            return Err(Problem::transient(Reason::JobFailed, message));
        }
    }

    // Plan.
    let imported = spec.import.is_some();
    let name = match (&spec.name, imported) {
        (Some(n), _) => n.clone(),
        (None, true) => current.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
        (None, false) => system.name_any(),
    };
    // An imported system keeps the properties it had; the spec's are added, then our tags.
    let mut user = if imported { crate::controller::resource::reads::properties_of(&current) } else { BTreeMap::new() };
    user.extend(spec.properties.clone().unwrap_or_default());
    let props = desired_properties(Some(&user), &tags(ctx, system));
    let input = SystemPlanInput {
        state: status.common.state.clone().unwrap_or_default(),
        operations: operations(&current),
        job_running: job_running(status.common.job.as_ref()),
        power: spec.power_state,
        machines,
        attribute_changes: attribute_changes(&name, spec.description.as_deref(), &props, &current),
        observe_only: spec.management_policy == ManagementPolicy::ObserveOnly,
    };
    let step = plan_system(&input);
    tracing::debug!(system = %system.name_any(), ?step, "plan");

    // Act.
    match step {
        SystemStep::Wait(message) => {
            let reason = if status.common.state.as_deref() == Some("CREATING") {
                Reason::Creating
            } else {
                Reason::WaitingForJob
            };
            Ok((Progress::Working(reason, progress_message(message, status)), ACTIVE_REQUEUE))
        }
        SystemStep::Failed(message) => {
            let failed = failed_components(&status.nested_jobs);
            if failed.is_empty() {
                Err(Problem::stalled(Reason::ProviderError, message))
            } else {
                Err(Problem::stalled(Reason::JobFailed, format!("{message}; failed: {}", failed.join("; "))))
            }
        }
        SystemStep::Update(changes) => {
            let accepted = client.update(&current, &changes, &[]).await?;
            start_job(status, job_started(&accepted, "edit"));
            let what: Vec<&str> = changes.keys().map(String::as_str).collect();
            Ok((Progress::Working(Reason::Updating, format!("updating {}", what.join(", "))), ACTIVE_REQUEUE))
        }
        SystemStep::Power(action) => {
            let accepted = client.action(&current, action, Map::new()).await?;
            start_job(status, job_started(&accepted, action));
            publish(
                &ctx.recorder,
                system,
                false,
                "ChangingPowerState",
                "Action",
                format!(
                    "{action} requested on the system ({} members ready) to reach {}",
                    status.ready.clone().unwrap_or_default(),
                    spec.power_state.cimi_state()
                ),
            )
            .await;
            Ok((
                Progress::Working(
                    Reason::ChangingPowerState,
                    format!(
                        "{action} requested to bring every machine to {} (system {})",
                        spec.power_state.cimi_state(),
                        status.common.state.clone().unwrap_or_default()
                    ),
                ),
                ACTIVE_REQUEUE,
            ))
        }
        SystemStep::PowerUnsupported(message) => Err(Problem::stalled(Reason::UnsupportedByProvider, message)),
        SystemStep::InSync => {
            let (ready, total) = (status.members_ready.unwrap_or(0), status.members_total.unwrap_or(0));
            if ready < total {
                let message = format!("{ready}/{total} members ready; waiting for the others");
                return Ok((Progress::Working(Reason::WaitingForJob, message), Duration::from_secs(2)));
            }
            Ok((Progress::InSync, poll_interval(ctx, system.provider_name()).await.min(monitor_due)))
        }
    }
}

/// Mirrors the provider events of the system and of each member (notes naming the member, such as
/// `machine web1`) as Kubernetes Events on the CimiSystem, each member with its own cursor in status; returns
/// how long until the next are due.
async fn mirror_events(
    ctx: &Context,
    client: &CimiClient,
    system: &CimiSystem,
    current: &Value,
    member_docs: &[members::MemberDoc],
    status: &mut CimiSystemStatus,
) -> Duration {
    let provider = system.provider_name();
    let own = observer::monitor(&ctx.observer, provider, client, system, current, &mut status.common).await;
    let Some(system_href) = status.common.id.clone() else { return own };
    let mut listed: Vec<observer::Member<'_>> = member_docs
        .iter()
        .map(|m| {
            let name = m.doc.get("name").and_then(Value::as_str).unwrap_or(&m.href);
            let cursor = members::member_mut(status, &m.href).and_then(|s| s.event_cursor.clone());
            observer::Member { href: &m.href, label: format!("{} {name}", m.kind), doc: &m.doc, cursor }
        })
        .collect();
    let next = observer::monitor_members(&ctx.observer, provider, client, system, &system_href, &mut listed).await;
    for member in listed {
        if let Some(entry) = members::member_mut(status, member.href) {
            entry.event_cursor = member.cursor;
        }
    }
    own.min(next)
}

/// A new system Job replaces the last one and its nested Jobs.
fn start_job(status: &mut CimiSystemStatus, job: Option<JobStatus>) {
    if let Some(job) = job {
        status.common.job = Some(job);
        status.nested_jobs.clear();
    }
}

/// The wait message, with the nested Jobs' progress when a system Job runs.
fn progress_message(message: String, status: &CimiSystemStatus) -> String {
    if status.nested_jobs.is_empty() || !job_running(status.common.job.as_ref()) {
        return message;
    }
    let done = status.nested_jobs.iter().filter(|n| n.job.state.as_deref() == Some("SUCCESS")).count();
    format!("{message}: {done}/{} component Jobs done", status.nested_jobs.len())
}

/// What the user reads when a system Job failed: which components failed and why.
fn job_failure_message(job: &JobStatus, nested: &[NestedJob]) -> String {
    let action = job.action.as_deref().unwrap_or("system");
    let failed = failed_components(nested);
    if failed.is_empty() {
        format!(
            "the system's {action} Job {} ended {}: {}",
            job.href,
            job.state.as_deref().unwrap_or(""),
            job.status_message.clone().unwrap_or_default()
        )
    } else {
        format!("the system's {action} Job failed at component {}", failed.join("; "))
    }
}

/// Stalls with Timeout when the running Job is older than the spec allows.
fn check_timeout(system: &CimiSystem, job: &JobStatus) -> Result<(), Problem> {
    let Some(started) = job.started_at.as_ref() else { return Ok(()) };
    let limit = match job.action.as_deref() {
        Some("add") => system.create_timeout(),
        Some("delete") => system.delete_timeout(),
        _ => system.update_timeout(),
    };
    let elapsed = k8s_openapi::jiff::Timestamp::now().as_millisecond() - started.0.as_millisecond();
    if job_running(Some(job)) && elapsed > limit.as_millis() as i64 {
        return Err(Problem::stalled(
            Reason::Timeout,
            format!("the provider Job {} has run longer than {}s", job.href, limit.as_secs()),
        ));
    }
    Ok(())
}

/// Reads a system Job and its nested Jobs: state, progress, message, and the component each works on.
async fn follow_job(client: &CimiClient, job: &mut JobStatus, nested: &mut Vec<NestedJob>) -> Result<(), CimiError> {
    let Ok(url) = Url::parse(&job.href) else { return Ok(()) };
    let doc = match client.get_value(&url).await {
        Ok(d) => d,
        Err(CimiError::NotFound { .. }) => {
            job.state = Some("SUCCESS".into());
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    fill_job(job, &doc);
    let hrefs: Vec<String> = doc
        .get("nestedJobs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("href").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let mut next = Vec::new();
    for h in hrefs {
        let url = client.resolve(&h).await?;
        let known = nested.iter().find(|n| n.job.href == url.as_str()).cloned();
        if let Some(k) = &known
            && !job_running(Some(&k.job))
            && k.component.is_some()
        {
            next.push(k.clone());
            continue;
        }
        let mut entry = known.unwrap_or_else(|| NestedJob {
            component: None,
            job: JobStatus { href: url.to_string(), ..Default::default() },
        });
        match client.get_value(&url).await {
            Ok(d) => {
                fill_job(&mut entry.job, &d);
                if entry.component.is_none() {
                    entry.component = component_of(client, &d).await?;
                }
            }
            Err(CimiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        next.push(entry);
    }
    *nested = next;
    Ok(())
}

fn fill_job(job: &mut JobStatus, doc: &Value) {
    job.state = doc.get("state").and_then(Value::as_str).map(str::to_string).or(job.state.take());
    job.progress = doc.get("progress").and_then(Value::as_i64).map(|p| p as i32).or(job.progress);
    job.status_message = doc.get("statusMessage").and_then(Value::as_str).map(str::to_string);
    if job.action.is_none() {
        job.action = doc.get("action").and_then(Value::as_str).map(|a| a.rsplit('/').next().unwrap_or(a).to_string());
    }
}

/// The name of the component a nested Job works on: its target, or (for a create, whose target is a
/// collection) the first other affected resource.
async fn component_of(client: &CimiClient, job: &Value) -> Result<Option<String>, CimiError> {
    let target = job.get("targetResource").and_then(|t| t.get("href")).and_then(Value::as_str);
    let affected: Vec<&str> = job
        .get("affectedResources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("href").and_then(Value::as_str))
        .filter(|h| Some(*h) != target)
        .collect();
    let Some(href) = affected.first().copied().or(target) else { return Ok(None) };
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(doc) => Ok(Some(doc.get("name").and_then(Value::as_str).unwrap_or(url.as_str()).to_string())),
        Err(CimiError::NotFound { .. }) => Ok(Some(url.to_string())),
        Err(e) => Err(e),
    }
}

/// Reads an imported system (it carries no tag of ours when observed only): `None` when it is gone.
async fn observe_imported(client: &CimiClient, href: &str) -> Result<Option<Value>, CimiError> {
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(v) => Ok(Some(v)),
        Err(CimiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Adopts the system of `spec.import` (by href, or by a filter that matches exactly one) and records it.
async fn import(
    system: &CimiSystem,
    client: &CimiClient,
    status: &mut CimiSystemStatus,
) -> Result<(Progress, Duration), Problem> {
    let Some(spec) = &system.spec.import else {
        return Err(Problem::stalled(Reason::InvalidSpec, "spec.import is not set"));
    };
    let found = if let Some(href) = &spec.href {
        observe_imported(client, href).await?.ok_or_else(|| {
            Problem::stalled(Reason::ImportNotFound, format!("spec.import.href {href} names no provider system"))
        })?
    } else {
        let text = spec.filter.clone().unwrap_or_default();
        // The user's filter goes to the provider as written (percent-encoded, spaces as %20).
        let mut url = client.collection_url(COLLECTION).await?;
        let encoded = percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC).to_string();
        url.set_query(Some(&format!("$filter={encoded}")));
        let page = client.list_page_value(&url, &Query::new(), "System").await?;
        let mut matches = entries(&page);
        match matches.len() {
            0 => {
                return Err(Problem::stalled(
                    Reason::ImportNotFound,
                    format!("spec.import.filter {text:?} matches no provider system"),
                ));
            }
            1 => matches.remove(0),
            n => {
                return Err(Problem::stalled(
                    Reason::ImportAmbiguous,
                    format!("spec.import.filter {text:?} matches {n} provider systems; narrow it or import by href"),
                ));
            }
        }
    };
    let Some(id) = found.get("id").and_then(Value::as_str) else {
        return Err(Problem::stalled(Reason::ImportNotFound, "the provider system has no id"));
    };
    status.common.id = Some(client.resolve(id).await?.to_string());
    status.common.state = found.get("state").and_then(Value::as_str).map(str::to_string);
    Ok((Progress::Working(Reason::Creating, "adopted the provider system; reading its members".into()), ACTIVE_REQUEUE))
}

/// The string values of the Secrets the template by value names (never logged).
async fn template_secrets(
    ctx: &Context,
    system: &CimiSystem,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Problem> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &system.namespace().unwrap_or_default());
    let mut out = BTreeMap::new();
    let names = system
        .spec
        .template
        .iter()
        .flat_map(|t| t.component_descriptors.iter())
        .filter_map(|c| c.credential_template.as_ref().and_then(|t| t.secret_ref.as_ref()))
        .map(|r| r.name.clone());
    for name in names {
        if let Some(secret) = api.get_opt(&name).await? {
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
                .collect();
            out.insert(name, data);
        }
    }
    Ok(out)
}

/// Builds the SystemCreate and POSTs it; the href and Job go into status at once.
async fn create(
    system: &CimiSystem,
    ctx: &Context,
    api: &Api<CimiSystem>,
    conn: &ProviderConnection,
    status: &mut CimiSystemStatus,
) -> Result<(Progress, Duration), Problem> {
    let spec = &system.spec;
    let secrets = template_secrets(ctx, system).await?;
    let template = template::system_template(
        spec.template_ref.as_ref(),
        spec.template.as_ref(),
        &conn.catalog,
        &secrets,
        spec.power_state,
    )
    .map_err(|(reason, message)| Problem::stalled(reason, message))?;
    let mut body = json!({
        "resourceURI": model::type_uri("SystemCreate"),
        "name": system.cimi_name(),
        "properties": desired_properties(spec.properties.as_ref(), &tags(ctx, system)),
        "systemTemplate": template,
    });
    if let Some(d) = &spec.description {
        body["description"] = json!(d);
    }
    let client = &conn.client;
    let collection = client.collection_url(COLLECTION).await?;
    let accepted = client.create(COLLECTION, &body).await?;
    let href = client.created_href(&accepted, &collection).await?;
    status.common.id = href.map(|u| u.to_string());
    start_job(status, job_started(&accepted, "add"));
    // Write-ahead: the href and the Job are in status before anything waits on them.
    let mut conds = ConditionSet::new(
        &status.common.conditions,
        system.meta().generation,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    conds.set(READY, Status::False, Reason::Creating, "the provider is creating the system");
    conds.set(RECONCILING, Status::True, Reason::Creating, "the provider is creating the system");
    status.common.conditions = conds.build();
    apply_status(api, &system.name_any(), &*status).await.map_err(Problem::from)?;
    publish(
        &ctx.recorder,
        system,
        false,
        "Created",
        "Create",
        format!("provider system {} requested", status.common.id.clone().unwrap_or_default()),
    )
    .await;
    Ok((Progress::Working(Reason::Creating, "the provider is creating the system".into()), ACTIVE_REQUEUE))
}

/// The deletion path: force-orphan, or delete/orphan on the provider, then drop the finalizer.
async fn finalize(
    system: &CimiSystem,
    ctx: &Context,
    api: &Api<CimiSystem>,
    old: CimiSystemStatus,
    mut status: CimiSystemStatus,
    mut conds: ConditionSet,
) -> Result<Action, Error> {
    if !has_finalizer(system, FINALIZER_CLEANUP) {
        return Ok(Action::await_change());
    }
    let owner = (system.namespace().unwrap_or_default(), system.name_any());
    ctx.observer.forget(system.provider_name(), COLLECTION, status.common.id.as_deref(), "CimiSystem", &owner);
    if flag(system, ANNOTATION_FORCE_ORPHAN) {
        publish(&ctx.recorder,
            system,
            true,
            "ForceOrphaned",
            "Delete",
            format!(
                "cimi.dev/force-orphan: the finalizer was removed without any provider call; the provider system {} and its members may remain",
                status.common.id.clone().unwrap_or_else(|| "(unknown)".into())
            ),
        )
        .await;
        remove_finalizer(api, system, FINALIZER_CLEANUP).await?;
        return Ok(Action::await_change());
    }
    let uid = system.uid().unwrap_or_default();
    let step = match connection(ctx, system.provider_name(), &system.namespace().unwrap_or_default()).await {
        Ok(conn) => cleanup(&conn.client, COLLECTION, &mut status.common, &uid, system.spec.deletion_policy)
            .await
            .map_err(Problem::from),
        Err(problem) if problem.reason == Reason::ProviderNotFound && status.common.id.is_none() => Ok(Cleanup::Done),
        Err(problem) => Err(problem),
    };
    match step {
        Ok(Cleanup::Done) => {
            let note = match system.spec.deletion_policy {
                DeletionPolicy::Delete => "the provider system and its members are gone".to_string(),
                DeletionPolicy::Orphan => "the provider system was left in place, untagged".to_string(),
            };
            publish(&ctx.recorder, system, false, "Deleted", "Delete", note).await;
            remove_finalizer(api, system, FINALIZER_CLEANUP).await?;
            Ok(Action::await_change())
        }
        Ok(Cleanup::Wait(message)) => {
            conds.set(READY, Status::False, Reason::Deleting, message.clone());
            conds.set(RECONCILING, Status::True, Reason::Deleting, message);
            status.common.conditions = conds.build();
            write(ctx, api, system, &old, status).await?;
            Ok(Action::requeue(ACTIVE_REQUEUE))
        }
        Err(problem) => {
            let failures = ctx.failed(&format!("system-delete/{uid}"));
            conds.set(READY, Status::False, Reason::Deleting, format!("deleting: {}", problem.message));
            conds.set(SYNCED, Status::False, problem.reason, problem.message.clone());
            status.common.conditions = conds.build();
            write(ctx, api, system, &old, status).await?;
            Ok(Action::requeue(Problem { stalled: false, ..problem }.requeue_after(failures)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::Timeouts;
    use crate::api::{CimiSystemSpec, common::ProviderRef};

    fn job(action: &str, state: &str, started_secs_ago: i64) -> JobStatus {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        JobStatus {
            href: "http://p/jobs/1".into(),
            action: Some(action.into()),
            state: Some(state.into()),
            started_at: k8s_openapi::jiff::Timestamp::from_second(now - started_secs_ago).ok().map(Time),
            ..Default::default()
        }
    }

    #[test]
    fn a_job_older_than_its_timeout_stalls() {
        let mut system = CimiSystem::new(
            "shop",
            CimiSystemSpec { provider_ref: ProviderRef { name: "p".into() }, ..Default::default() },
        );
        system.spec.timeouts = Some(Timeouts { create: Some("1m".into()), ..Default::default() });
        assert!(check_timeout(&system, &job("add", "RUNNING", 30)).is_ok());
        let problem = check_timeout(&system, &job("add", "RUNNING", 90)).expect_err("too old");
        assert_eq!((problem.reason, problem.stalled), (Reason::Timeout, true));
        assert!(check_timeout(&system, &job("add", "SUCCESS", 90)).is_ok(), "a finished Job never times out");
        assert!(check_timeout(&system, &job("start", "RUNNING", 90)).is_ok(), "actions use the update timeout");
    }

    #[test]
    fn a_failed_job_names_its_failed_components() {
        let nested = vec![
            NestedJob { component: Some("web1".into()), job: job("add", "SUCCESS", 1) },
            NestedJob {
                component: Some("web2".into()),
                job: JobStatus { status_message: Some("no capacity".into()), ..job("add", "FAILED", 1) },
            },
        ];
        let message = job_failure_message(&job("add", "FAILED", 1), &nested);
        assert!(message.contains("failed at component web2 (add FAILED: no capacity)"), "{message}");
        assert!(!message.contains("web1"), "{message}");
        let message =
            job_failure_message(&JobStatus { status_message: Some("boom".into()), ..job("start", "FAILED", 1) }, &[]);
        assert!(message.contains("start Job") && message.contains("boom"), "{message}");
    }
}
