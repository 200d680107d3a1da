//! One pass of a system against the provider: its Job and nested Jobs, observe (the system, its members,
//! their events), plan ([`super::plan::plan_system`], pure), act.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt as _;
use serde_json::{Map, Value};

use crate::api::CimiSystem;
use crate::api::common::{ManagementPolicy, ResourceGonePolicy};
use crate::api::managed::Managed as _;
use crate::api::reasons::Reason;
use crate::api::system::CimiSystemStatus;
use crate::cimi::model::{JobState, ResourceState};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::connection::{connection, poll_interval};
use crate::controller::context::Context;
use crate::controller::kubeops::publish;
use crate::controller::observer;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress, retry_delay};
use crate::controller::registry::ProviderConnection;
use crate::controller::resource::actions::{self, OneShot};
use crate::controller::resource::attributes::{attribute_changes, desired_properties};
use crate::controller::resource::identity::{find_own, tags};
use crate::controller::resource::import::find_import;
use crate::controller::resource::jobs::{job_running, job_started, recover_failed_create, transient_timeout};
use crate::controller::resource::reads::{observe, operations};
use crate::controller::resource::reads::{state, text};
use crate::controller::shell::kind::ManagedKind;
use crate::controller::shell::reconcile::retry_key;
use crate::controller::shell::status::action_already_handled;

use super::create::create;
use super::jobs::{enforce_timeout, follow_job, job_failure_message, start_job};
use super::members;
use super::plan::{SystemPlanInput, SystemStep, count_members, failed_components, plan_system, system_drift};

/// One pass against the provider. Returns the progress and when to look again.
pub async fn sync(
    system: &CimiSystem,
    ctx: &Context,
    status: &mut CimiSystemStatus,
) -> Result<(Progress, Duration), Problem> {
    let conn = connection(ctx, &system.provider_key(), &system.namespace().unwrap_or_default()).await?;
    let client = &conn.client;
    let uid = system.uid().unwrap_or_default();
    let spec = &system.spec;

    let retry_key = retry_key::<CimiSystem>(&system.namespace().unwrap_or_default(), &system.name_any());

    // Follow the system's Job and its nested Jobs, within the spec's timeouts: one that runs longer is
    // stopped, so that it ends and what it was for is done again.
    let was_running = job_running(status.common.job.as_ref());
    if was_running && let Some(job) = status.common.job.as_mut() {
        follow_job(client, job, &mut status.nested_jobs).await?;
        if let Some(problem) = enforce_timeout(client, system, job, &status.nested_jobs).await {
            let delay = retry_delay(ctx.failed(&retry_key));
            return Err(Problem { retry_after: Some(delay), ..problem });
        }
    }
    let job_ended_badly = was_running && status.common.job.as_ref().is_some_and(|j| j.job_state().is_failure());
    actions::settle(&mut status.common);
    // A create that failed (or was stopped) is retried as for the other kinds: after a delay, what it left
    // (a system in ERROR, with its members) is deleted, then the system is created again. When it ends, the
    // Event and the condition say which component failed.
    let failed_create =
        job_ended_badly && status.common.job.as_ref().is_some_and(|j| j.action.as_deref() == Some("add"));
    let cause = failed_create.then(|| failed_components(&status.nested_jobs)).filter(|f| !f.is_empty());
    let cause = cause.map(|failed| format!("it failed at component {}", failed.join("; ")));
    if failed_create && let Some(job) = status.common.job.as_ref() {
        let message = job_failure_message(job, &status.nested_jobs);
        publish(&ctx.recorder, system, true, "ComponentFailed", "Reconcile", message).await;
    }
    if spec.import.is_none()
        && let Some(message) = recover_failed_create(
            &ctx.failures,
            client,
            &retry_key,
            "system",
            &mut status.common,
            &uid,
            was_running,
            cause,
        )
        .await?
    {
        return Ok((Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE));
    }

    // Observe.
    let current = match status.common.id.clone() {
        Some(href) if spec.import.is_some() => observe_imported(client, &href).await?,
        Some(href) => observe(client, &href, &uid).await?,
        None if spec.import.is_some() => return import(ctx, &conn, system, status).await,
        None => {
            find_own(ctx, client, <CimiSystem as ManagedKind>::COLLECTION, "system", system, &mut status.common).await?
        }
    };
    let Some(current) = current else {
        if let Some(href) = status.common.id.clone() {
            if job_running(status.common.job.as_ref()) {
                return Ok((Progress::Working(Reason::Creating, "waiting for the create Job".into()), ACTIVE_REQUEUE));
            }
            if let Some(job) = status.common.job.as_ref().filter(|j| j.job_state() == JobState::Failed) {
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
        return create(system, ctx, &conn, status).await;
    };
    if let Some(id) = text(&current, "id") {
        status.common.id = Some(client.resolve(id).await?.to_string());
    }
    status.common.state = text(&current, "state").map(str::to_string);
    let current_state = state(&current);
    let member_docs = members::observe_members(client, &current, status).await?;
    let monitor_due = mirror_events(ctx, client, system, &current, &member_docs, status).await;
    status.members = Some(count_members(status, spec.power_state));
    let machines = status.machines.clone();
    members::truncate_lists(status);

    if job_ended_badly && let Some(job) = status.common.job.as_ref() {
        // A system Job that failed (one of its nested Jobs did): say which component, then carry on.
        let message = job_failure_message(job, &status.nested_jobs);
        publish(&ctx.recorder, system, true, "ComponentFailed", "Reconcile", message.clone()).await;
        if actions::is_one_shot_job(&status.common) {
            // A one-shot action's outcome is status.lastAction, with the components that failed.
            if let Some(last) = status.common.last_action.as_mut() {
                last.message = Some(message);
            }
        } else if current_state != ResourceState::Error {
            return Err(Problem::transient(Reason::JobFailed, message));
        }
    }

    // Plan.
    let imported = spec.import.is_some();
    let name = match (&spec.name, imported) {
        (Some(n), _) => n.clone(),
        (None, true) => text(&current, "name").unwrap_or_default().to_string(),
        (None, false) => system.name_any(),
    };
    // An imported system keeps the properties it had; the spec's are added, then our tags.
    let mut user = if imported { crate::controller::resource::reads::properties_of(&current) } else { BTreeMap::new() };
    user.extend(spec.properties.clone().unwrap_or_default());
    // ObserveOnly never expects our tags on the system; Managed does.
    let observe_only = spec.management_policy == ManagementPolicy::ObserveOnly;
    let tags = if observe_only { BTreeMap::new() } else { tags(ctx, system) };
    let props = desired_properties(Some(&user), &tags);
    let changes = attribute_changes(&name, spec.description.as_deref(), &props, &current);
    let drift = if observe_only {
        system_drift(&changes, &current, &current_state, &machines, spec.power_state)
    } else {
        Vec::new()
    };
    let input = SystemPlanInput {
        state: current_state.clone(),
        operations: operations(&current),
        job_running: job_running(status.common.job.as_ref()),
        power: spec.power_state,
        machines,
        attribute_changes: changes,
        observe_only,
        drift,
        requested_action: actions::new_request(system, &status.common),
    };
    let step = plan_system(&input);
    tracing::debug!(system = %system.name_any(), ?step, "plan");

    // Act.
    match step {
        SystemStep::Wait(message) => {
            // A transient state with no Job known (the create's answer was lost) is bounded by the timeouts too.
            if let Some(problem) = transient_timeout(client, system, "system", &current_state, &mut status.common).await
            {
                return Err(problem);
            }
            let reason =
                if current_state == ResourceState::Creating { Reason::Creating } else { Reason::WaitingForJob };
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
                    status.members.as_ref().map(|m| m.summary.clone()).unwrap_or_default(),
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
        SystemStep::OneShot(OneShot::Run { action, nonce } | OneShot::Reject { action, nonce, .. })
            if action_already_handled(ctx, system, status, &nonce).await? =>
        {
            Ok((Progress::Working(Reason::ChangingPowerState, format!("{action} requested")), ACTIVE_REQUEUE))
        }
        SystemStep::OneShot(OneShot::Run { action, nonce }) => {
            match client.action(&current, &action, Map::new()).await {
                Ok(accepted) => {
                    status.nested_jobs.clear();
                    actions::started(ctx, system, &mut status.common, (action, nonce), &accepted, None).await
                }
                Err(error) => actions::refused(ctx, system, &mut status.common, (action, nonce), error).await,
            }
        }
        SystemStep::OneShot(OneShot::Reject { action, nonce, message }) => {
            actions::rejected(ctx, system, &mut status.common, (action, nonce), message).await
        }
        SystemStep::Observed(drift) => {
            Ok((Progress::Observed(drift), poll_interval(ctx, &system.provider_key()).await.min(monitor_due)))
        }
        SystemStep::InSync => {
            let (ready, total) = status.members.as_ref().map_or((0, 0), |m| (m.ready, m.total));
            if ready < total {
                let message = format!("{ready}/{total} members ready; waiting for the others");
                return Ok((Progress::Working(Reason::WaitingForJob, message), Duration::from_secs(2)));
            }
            Ok((Progress::InSync, poll_interval(ctx, &system.provider_key()).await.min(monitor_due)))
        }
    }
}

/// Mirrors the provider events of the system and of each member (notes naming the member, such as
/// `machine web1`) as Kubernetes Events on the CimiSystem, each member with its own cursor in status; returns
/// how long until the next are due.
pub async fn mirror_events(
    ctx: &Context,
    client: &CimiClient,
    system: &CimiSystem,
    current: &Value,
    member_docs: &[members::MemberDoc],
    status: &mut CimiSystemStatus,
) -> Duration {
    let provider = &system.provider_key();
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

/// The wait message, with the nested Jobs' progress when a system Job runs.
pub fn progress_message(message: String, status: &CimiSystemStatus) -> String {
    if status.nested_jobs.is_empty() || !job_running(status.common.job.as_ref()) {
        return message;
    }
    let done = status.nested_jobs.iter().filter(|n| n.job.job_state() == JobState::Success).count();
    format!("{message}: {done}/{} component Jobs done", status.nested_jobs.len())
}

/// Reads an imported system (it carries no tag of ours when observed only): `None` when it is gone.
pub async fn observe_imported(client: &CimiClient, href: &str) -> Result<Option<Value>, CimiError> {
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(v) => Ok(Some(v)),
        Err(CimiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Adopts the system of `spec.import` (by href, or by a filter that matches exactly one, as for every kind:
/// see [`find_import`]) and records it.
pub async fn import(
    ctx: &Context,
    conn: &ProviderConnection,
    system: &CimiSystem,
    status: &mut CimiSystemStatus,
) -> Result<(Progress, Duration), Problem> {
    let client = &conn.client;
    let found = find_import(ctx, conn, system, <CimiSystem as ManagedKind>::COLLECTION, "system").await?;
    let Some(id) = text(&found, "id") else {
        return Err(Problem::stalled(Reason::ImportNotFound, "the provider system has no id"));
    };
    status.common.id = Some(client.resolve(id).await?.to_string());
    status.common.state = text(&found, "state").map(str::to_string);
    Ok((Progress::Working(Reason::Creating, "adopted the provider system; reading its members".into()), ACTIVE_REQUEUE))
}
