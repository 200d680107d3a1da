//! One pass of a machine against the provider: the Job in flight (followed, bounded by the spec's timeouts, a
//! failed create recovered), observe (the provider machine, its sub-collections, its volumes and networks),
//! plan ([`super::plan::plan_machine`], pure), act ([`super::act::act`]).

use std::time::Duration;

use kube::{Resource as _, ResourceExt as _};

use super::act::{Target, act};
use super::create::create;
use super::input::plan_input;
use super::observe::COLLECTION;
use super::observe::{interface_networks, name_attachments, observe_into_status, related};
use super::plan::{MachineStep, plan_machine, power_action};
use crate::api::CimiMachine;
use crate::cimi::model::ResourceState;
use crate::controller::resource::reads::text;

use crate::api::common::ManagementPolicy;
use crate::api::conditions::STALLED;
use crate::api::machine::CimiMachineStatus;
use crate::api::managed::Managed as _;
use crate::api::reasons::Reason;
use crate::controller::connection::{connection, poll_interval};
use crate::controller::context::Context;
use crate::controller::observer;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress, retry_delay};
use crate::controller::resource::actions;
use crate::controller::resource::attributes::{attribute_changes, drift, wanted_attributes};
use crate::controller::resource::identity::{find_own, tags};
use crate::controller::resource::import::adopt_import;
use crate::controller::resource::jobs::{
    enforce_timeout, job_running, recover_failed_create, refresh_job, transient_timeout,
};
use crate::controller::resource::known::observe_known;
use crate::controller::resource::reads::operations;
use crate::controller::shell::reconcile::retry_key;

/// One pass against the provider. Returns the progress and when to look again.
pub async fn sync(
    machine: &CimiMachine,
    ctx: &Context,
    status: &mut CimiMachineStatus,
) -> Result<(Progress, Duration), Problem> {
    let provider = &machine.provider_key();
    let conn = connection(ctx, provider, &machine.namespace().unwrap_or_default()).await?;
    let client = &conn.client;
    let uid = machine.uid().unwrap_or_default();
    // Steady (Ready for this generation, no Job, no new one-shot action): observe from the cache.
    let pending_action = actions::new_request(machine, &status.common).is_some();
    let steady = observer::steady(&status.common, machine.meta().generation) && !pending_action;

    let spec = &machine.spec;
    let observe_only = spec.management_policy == ManagementPolicy::ObserveOnly;
    let retry_key = retry_key::<CimiMachine>(&machine.namespace().unwrap_or_default(), &machine.name_any());

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
    actions::settle(&mut status.common);
    if let Some(message) =
        recover_failed_create(&ctx.failures, client, &retry_key, "machine", &mut status.common, &uid, was_running, None)
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
        (None, Some(_)) => {
            let ours = if observe_only {
                None
            } else {
                find_own(ctx, client, COLLECTION, "machine", machine, &mut status.common).await?
            };
            match ours {
                Some(v) => Some(v),
                None => Some(adopt_import(ctx, &conn, machine, COLLECTION, "machine").await?),
            }
        }
        (None, None) => find_own(ctx, client, COLLECTION, "machine", machine, &mut status.common).await?,
    };
    let Some(current) = current else {
        if observe_only {
            return Err(Problem::stalled(Reason::InvalidSpec, "managementPolicy ObserveOnly needs spec.import"));
        }
        return create(machine, ctx, &conn, status).await;
    };
    if let Some(id) = text(&current, "id") {
        status.common.id = Some(client.resolve(id).await?.to_string());
    }
    let attached = observe_into_status(ctx, provider, client, &current, status, steady).await?;
    let state = ResourceState::parse(status.common.state.as_deref().unwrap_or_default());

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
        let power = (!state.is_transient() && power_action(&state, spec.power_state, &operations(&current)).is_some())
            .then_some((state.as_str(), spec.power_state));
        let drift = drift(&changes, &current, power);
        let monitor_due =
            observer::monitor(&ctx.observer, provider, client, machine, &current, &mut status.common).await;
        return Ok((Progress::Observed(drift), poll_interval(ctx, provider).await.min(monitor_due)));
    }

    // A transient state with no Job known (a provider without Jobs, or a Job whose answer was lost) is bounded
    // by the spec's timeouts as well.
    if let Some(problem) = transient_timeout(client, machine, "machine", &state, &mut status.common).await {
        return Err(problem);
    }

    // Plan: a pure function of what was observed.
    let related = related(ctx, machine).await?;
    name_attachments(client, status, &related).await;
    let interfaces = interface_networks(client, status).await?;
    let input = plan_input(machine, &tags(ctx, machine), &current, &status.common, &attached, &interfaces, &related);
    let step = plan_machine(&input);
    tracing::debug!(machine = %machine.name_any(), ?step, "plan");
    // Meters and events once the machine is in sync (creation and changes go first): the pass that finds a new
    // machine in sync reads them too, so its first event cursor goes into status with Ready (at 1,000 new
    // machines, a thousand passes and status writes fewer than reading them one second later).
    let in_sync = steady || (matches!(step, MachineStep::InSync) && related.waiting_for.is_none());
    let monitor_due = if in_sync {
        observer::monitor(&ctx.observer, provider, client, machine, &current, &mut status.common).await
    } else {
        Duration::from_secs(1)
    };

    // Act.
    let target = Target { ctx, machine, client, current: &current };
    act(step, &target, status, related.waiting_for, monitor_due).await
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
    let failed = job.job_state().is_failure();
    let one_shot = actions::is_one_shot_job(&status.common);
    if !failed || one_shot || job.action.as_deref() == Some("add") {
        return Ok(());
    }
    let reported = crate::api::conditions::find(&status.common.conditions, STALLED)
        .filter(|c| {
            c.status == "True" && matches!(Reason::from_name(&c.reason), Some(Reason::JobFailed | Reason::Timeout))
        })
        .filter(|c| c.message.contains(&job.href));
    if let Some(c) = reported {
        let delay = retry_delay(ctx.failures(retry_key).max(1));
        let since = k8s_openapi::jiff::Timestamp::now().duration_since(c.last_transition_time.0);
        let since = Duration::try_from(since).unwrap_or_default();
        if since < delay {
            let reason = Reason::from_name(&c.reason).unwrap_or(Reason::JobFailed);
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
