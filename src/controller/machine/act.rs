//! Acting on a machine: one CIMI call for the step the plan chose, recorded in status (the Job, the one-shot
//! action) before anything waits on it.

use std::time::Duration;

use kube::ResourceExt as _;
use serde_json::{Map, Value, json};

use super::observe::interface_entry;
use super::plan::MachineStep;
use crate::api::CimiMachine;
use crate::api::machine::CimiMachineStatus;
use crate::api::reasons::Reason;
use crate::cimi::{CimiClient, model};
use crate::controller::context::Context;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress};
use crate::controller::resource::actions;
use crate::controller::resource::jobs::job_started;
use crate::controller::resource::reads::ref_href;
use crate::controller::shell::status::action_already_handled;

/// The machine a step acts on: its object, its provider machine as observed, and the provider's client.
pub struct Target<'a> {
    /// What every reconcile shares.
    pub ctx: &'a Context,
    /// The object.
    pub machine: &'a CimiMachine,
    /// The provider's client.
    pub client: &'a CimiClient,
    /// The provider machine, as observed in this pass.
    pub current: &'a Value,
}

/// Carries out `step` on the provider machine: returns where the machine stands and when to look again.
/// `waiting_for` names the volumes or networks that are not Ready yet (in sync, the machine waits for them);
/// `monitor_due` is when its meters or events are due next.
pub async fn act(
    step: MachineStep,
    target: &Target<'_>,
    status: &mut CimiMachineStatus,
    waiting_for: Option<String>,
    monitor_due: Duration,
) -> Result<(Progress, Duration), Problem> {
    let Target { ctx, machine, client, current } = *target;
    let spec = &machine.spec;
    match step {
        MachineStep::Wait(message) => Ok((Progress::Working(Reason::WaitingForJob, message), ACTIVE_REQUEUE)),
        MachineStep::Failed(message) => Err(Problem::stalled(Reason::ProviderError, message)),
        MachineStep::OneShot { action, nonce } | MachineStep::RejectOneShot { action, nonce, .. }
            if action_already_handled(ctx, machine, status, &nonce).await? =>
        {
            Ok((Progress::Working(Reason::ChangingPowerState, format!("{action} requested")), ACTIVE_REQUEUE))
        }
        MachineStep::OneShot { action, nonce } => {
            // capture and snapshot make a MachineImage (its href is the action's result); the rest are Actions.
            let image = matches!(action.as_str(), "capture" | "snapshot");
            let requested = if image {
                let name = format!("{}-{nonce}", machine.name_any());
                client.capture(current, &action, &name).await
            } else {
                client.action(current, &action, Map::new()).await
            };
            let accepted = match requested {
                Ok(accepted) => accepted,
                Err(error) => return actions::refused(ctx, machine, &mut status.common, (action, nonce), error).await,
            };
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
            actions::started(ctx, machine, &mut status.common, (action, nonce), &accepted, result).await
        }
        MachineStep::RejectOneShot { action, nonce, message } => {
            actions::rejected(ctx, machine, &mut status.common, (action, nonce), message).await
        }
        MachineStep::Update(changes) => {
            let accepted = client.update(current, &changes, &[]).await?;
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
            let accepted = client.attach_volume(current, &volume, &location).await?;
            status.common.job = job_started(&accepted, "attach").or(status.common.job.take());
            Ok((Progress::Working(Reason::Updating, format!("attaching CimiVolume {}", wanted.name)), ACTIVE_REQUEUE))
        }
        MachineStep::Disconnect(attached) => {
            let Some(entry) = interface_entry(client, current, &attached.network).await? else {
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
            let Some(href) = ref_href(current, "networkInterfaces") else {
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
            let accepted = client.action(current, action, Map::new()).await?;
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
