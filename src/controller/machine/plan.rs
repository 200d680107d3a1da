//! `plan_machine`: the next CIMI operation for a machine, from what the spec asks and what the
//! provider shows. Pure: no I/O, unit-tested from fixtures.

use serde_json::{Map, Value};

use crate::api::PowerState;
use crate::cimi::model::ResourceState;
use crate::controller::resource::actions::{OneShot, decide};

/// A volume attachment the spec wants: the provider volume's href and where it appears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedVolume {
    /// The CimiVolume's name.
    pub name: String,
    /// The provider Volume href.
    pub href: String,
    /// Where it appears in the machine.
    pub initial_location: Option<String>,
}

/// A volume attachment the provider reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeAttachment {
    /// The MachineVolume entry's href (what a detach deletes).
    pub entry: String,
    /// The provider Volume href.
    pub volume: String,
}

/// A network interface the spec wants: the provider network's href.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedNetwork {
    /// The CimiNetwork's name.
    pub name: String,
    /// The provider Network href.
    pub href: String,
}

/// A network interface the provider reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedInterface {
    /// The provider Network href the interface is on.
    pub network: String,
}

/// Everything the plan looks at.
#[derive(Clone, Debug, Default)]
pub struct MachinePlanInput {
    /// The provider's state of the machine.
    pub state: ResourceState,
    /// The operations the machine offers now, by short name.
    pub operations: Vec<String>,
    /// True while a Job the operator started runs.
    pub job_running: bool,
    /// The power state the spec asks for.
    pub power: PowerState,
    /// The partial update the attributes need (empty when in sync).
    pub attribute_changes: Map<String, Value>,
    /// The attachments the spec wants (only volumes that are ready).
    pub wanted_volumes: Vec<WantedVolume>,
    /// The attachments the provider reports.
    pub attached_volumes: Vec<VolumeAttachment>,
    /// The network interfaces the spec wants (only networks that are ready).
    pub wanted_networks: Vec<WantedNetwork>,
    /// The network interfaces the provider reports (only those the operator may remove or keep).
    pub attached_interfaces: Vec<AttachedInterface>,
    /// A one-shot action requested by annotation, as (action, nonce).
    pub requested_action: Option<(String, String)>,
    /// The nonce of the last one-shot action handled.
    pub last_action_nonce: Option<String>,
}

/// The next step.
#[derive(Clone, Debug, PartialEq)]
pub enum MachineStep {
    /// Something runs on the provider; look again soon.
    Wait(String),
    /// The provider reports the machine in ERROR.
    Failed(String),
    /// Run the one-shot action of the annotation.
    OneShot {
        /// The action (`restart`...).
        action: String,
        /// Its nonce.
        nonce: String,
    },
    /// The one-shot action cannot run in this state or on this provider.
    RejectOneShot {
        /// The action.
        action: String,
        /// Its nonce.
        nonce: String,
        /// Why.
        message: String,
    },
    /// PUT these attributes.
    Update(Map<String, Value>),
    /// Delete this MachineVolume entry.
    Detach(VolumeAttachment),
    /// Attach this volume.
    Attach(WantedVolume),
    /// Remove this network interface.
    Disconnect(AttachedInterface),
    /// Add an interface on this network.
    Connect(WantedNetwork),
    /// Invoke this power action.
    Power(&'static str),
    /// The power state cannot be reached with the operations the provider offers.
    PowerUnsupported(String),
    /// The machine is as the spec says.
    InSync,
}

/// The next operation for the machine.
pub fn plan_machine(input: &MachinePlanInput) -> MachineStep {
    let state = &input.state;
    if input.job_running {
        return MachineStep::Wait("a provider Job of this machine is running".into());
    }
    if state.is_transient() {
        return MachineStep::Wait(format!("the machine is {state}"));
    }
    if *state == ResourceState::Error {
        return MachineStep::Failed("the provider reports the machine in state ERROR".into());
    }
    let allowed = |op: &str| input.operations.iter().any(|o| o == op);
    if let Some(request) = &input.requested_action
        && input.last_action_nonce.as_deref() != Some(request.1.as_str())
    {
        return match decide(request, &input.operations, "machine", state.as_str()) {
            OneShot::Run { action, nonce } => MachineStep::OneShot { action, nonce },
            OneShot::Reject { action, nonce, message } => MachineStep::RejectOneShot { action, nonce, message },
        };
    }
    if !input.attribute_changes.is_empty() && allowed("edit") {
        return MachineStep::Update(input.attribute_changes.clone());
    }
    if let Some(extra) =
        input.attached_volumes.iter().find(|a| !input.wanted_volumes.iter().any(|w| w.href == a.volume))
    {
        return MachineStep::Detach(extra.clone());
    }
    if let Some(missing) =
        input.wanted_volumes.iter().find(|w| !input.attached_volumes.iter().any(|a| a.volume == w.href))
    {
        return MachineStep::Attach(missing.clone());
    }
    if let Some(extra) =
        input.attached_interfaces.iter().find(|a| !input.wanted_networks.iter().any(|w| w.href == a.network))
    {
        return MachineStep::Disconnect(extra.clone());
    }
    if let Some(missing) =
        input.wanted_networks.iter().find(|w| !input.attached_interfaces.iter().any(|a| a.network == w.href))
    {
        return MachineStep::Connect(missing.clone());
    }
    match power_action(state, input.power, &input.operations) {
        None => MachineStep::InSync,
        Some(Ok(action)) => MachineStep::Power(action),
        Some(Err(message)) => MachineStep::PowerUnsupported(message),
    }
}

/// The action that moves `state` towards `desired`, if one is needed; an error when the provider
/// offers no way there.
pub fn power_action(
    state: &ResourceState,
    desired: PowerState,
    operations: &[String],
) -> Option<Result<&'static str, String>> {
    if *state == desired.resource_state() {
        return None;
    }
    let allowed = |op: &str| operations.iter().any(|o| o == op);
    let direct = match desired {
        PowerState::Started => "start",
        PowerState::Stopped => "stop",
        PowerState::Paused => "pause",
        PowerState::Suspended => "suspend",
    };
    if allowed(direct) {
        return Some(Ok(direct));
    }
    // Pausing or suspending goes through STARTED.
    if matches!(desired, PowerState::Paused | PowerState::Suspended)
        && *state != ResourceState::Started
        && allowed("start")
    {
        return Some(Ok("start"));
    }
    Some(Err(format!(
        "cannot go from {state} to {}: the provider offers {} in this state",
        desired.cimi_state(),
        if operations.is_empty() { "no operation".to_string() } else { operations.join(", ") }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn stopped() -> MachinePlanInput {
        MachinePlanInput {
            state: "STOPPED".into(),
            operations: ops(&["edit", "delete", "start", "restart", "capture"]),
            power: PowerState::Started,
            ..Default::default()
        }
    }

    #[test]
    fn a_stopped_machine_that_should_run_is_started() {
        assert_eq!(plan_machine(&stopped()), MachineStep::Power("start"));
    }

    #[test]
    fn nothing_starts_while_a_job_runs_or_the_state_is_transient() {
        let mut input = stopped();
        input.job_running = true;
        assert!(matches!(plan_machine(&input), MachineStep::Wait(_)));
        let mut input = stopped();
        input.state = "STARTING".into();
        assert!(matches!(plan_machine(&input), MachineStep::Wait(_)));
    }

    #[test]
    fn in_sync_when_the_state_matches() {
        let mut input = stopped();
        input.power = PowerState::Stopped;
        assert_eq!(plan_machine(&input), MachineStep::InSync);
    }

    #[test]
    fn pause_goes_through_started_and_unsupported_is_reported() {
        assert_eq!(power_action(&"STOPPED".into(), PowerState::Paused, &ops(&["start"])), Some(Ok("start")));
        assert_eq!(power_action(&"STARTED".into(), PowerState::Paused, &ops(&["stop", "pause"])), Some(Ok("pause")));
        assert!(matches!(power_action(&"SUSPENDED".into(), PowerState::Stopped, &ops(&["start"])), Some(Err(_))));
    }

    #[test]
    fn a_new_nonce_runs_the_action_once() {
        let mut input = stopped();
        input.state = "STARTED".into();
        input.operations = ops(&["edit", "stop", "restart"]);
        input.requested_action = Some(("restart".into(), "1".into()));
        assert_eq!(plan_machine(&input), MachineStep::OneShot { action: "restart".into(), nonce: "1".into() });
        input.last_action_nonce = Some("1".into());
        assert_eq!(plan_machine(&input), MachineStep::InSync);
        input.requested_action = Some(("explode".into(), "2".into()));
        assert!(matches!(plan_machine(&input), MachineStep::RejectOneShot { .. }));
    }

    #[test]
    fn attributes_then_detach_then_attach_then_power() {
        let mut input = stopped();
        input.attribute_changes.insert("description".into(), json!("x"));
        input.attached_volumes = vec![VolumeAttachment { entry: "m/1/volumes/9".into(), volume: "v/old".into() }];
        input.wanted_volumes = vec![WantedVolume { name: "data".into(), href: "v/new".into(), initial_location: None }];
        assert!(matches!(plan_machine(&input), MachineStep::Update(_)));
        input.attribute_changes.clear();
        assert!(matches!(plan_machine(&input), MachineStep::Detach(ref a) if a.volume == "v/old"));
        input.attached_volumes.clear();
        assert!(matches!(plan_machine(&input), MachineStep::Attach(ref w) if w.href == "v/new"));
        input.attached_volumes = vec![VolumeAttachment { entry: "e".into(), volume: "v/new".into() }];
        assert_eq!(plan_machine(&input), MachineStep::Power("start"));
    }

    #[test]
    fn interfaces_are_removed_then_added_before_power() {
        let mut input = stopped();
        input.attached_interfaces = vec![AttachedInterface { network: "n/old".into() }];
        input.wanted_networks = vec![WantedNetwork { name: "back".into(), href: "n/new".into() }];
        assert!(matches!(plan_machine(&input), MachineStep::Disconnect(ref a) if a.network == "n/old"));
        input.attached_interfaces.clear();
        assert!(matches!(plan_machine(&input), MachineStep::Connect(ref w) if w.href == "n/new"));
        input.attached_interfaces = vec![AttachedInterface { network: "n/new".into() }];
        assert_eq!(plan_machine(&input), MachineStep::Power("start"));
        input.job_running = true;
        assert!(matches!(plan_machine(&input), MachineStep::Wait(_)), "never a second operation while one runs");
    }

    #[test]
    fn error_state_is_reported() {
        let mut input = stopped();
        input.state = "ERROR".into();
        assert!(matches!(plan_machine(&input), MachineStep::Failed(_)));
    }
}
