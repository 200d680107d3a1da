//! `plan_system`: the next CIMI operation for a system, from what the spec asks and what the provider
//! shows of the system and its members; and the member counts of status. Pure: no I/O, unit-tested.

use serde_json::{Map, Value};

use crate::api::PowerState;
use crate::api::system::{CimiSystemStatus, MachineMember, MemberCounts, NestedJob, SystemMember};
use crate::cimi::model::ResourceState;
use crate::controller::machine::plan::power_action;
use crate::controller::resource::actions::{OneShot, decide};
use crate::controller::resource::attributes::Drift;

/// Everything the plan looks at.
#[derive(Clone, Debug, Default)]
pub struct SystemPlanInput {
    /// The provider's state of the system (MIXED when its machines disagree).
    pub state: ResourceState,
    /// The operations the system offers now, by short name.
    pub operations: Vec<String>,
    /// True while a Job the operator started runs.
    pub job_running: bool,
    /// The power state the spec asks for.
    pub power: PowerState,
    /// The system's machines.
    pub machines: Vec<MachineMember>,
    /// The partial update the attributes need (empty when in sync).
    pub attribute_changes: Map<String, Value>,
    /// managementPolicy ObserveOnly: never change anything.
    pub observe_only: bool,
    /// For ObserveOnly: what differs from the spec, field by field.
    pub drift: Vec<Drift>,
    /// A one-shot action requested with a nonce not handled yet, as (action, nonce).
    pub requested_action: Option<(String, String)>,
}

/// The next step.
#[derive(Clone, Debug, PartialEq)]
pub enum SystemStep {
    /// Something runs on the provider; look again soon.
    Wait(String),
    /// The provider reports the system or one of its machines in ERROR.
    Failed(String),
    /// PUT these attributes of the system.
    Update(Map<String, Value>),
    /// Invoke this system action (it applies to every machine that allows it).
    Power(&'static str),
    /// The power state cannot be reached with the operations the system offers.
    PowerUnsupported(String),
    /// The system is as the spec says.
    InSync,
    /// ObserveOnly: mirrored; the drift, if any, is reported and never corrected.
    Observed(Vec<Drift>),
    /// The one-shot action of the annotation: run it, or record why not.
    OneShot(OneShot),
}

fn member_name(m: &SystemMember) -> &str {
    m.name.as_deref().unwrap_or(m.href.as_str())
}

/// A member's state as status reports it.
pub fn member_state(m: &SystemMember) -> ResourceState {
    ResourceState::parse(m.state.as_deref().unwrap_or_default())
}

/// The next operation for the system.
pub fn plan_system(input: &SystemPlanInput) -> SystemStep {
    let state = &input.state;
    if input.job_running {
        return SystemStep::Wait("a provider Job of this system is running".into());
    }
    if state.is_transient() {
        return SystemStep::Wait(format!("the system is {state}"));
    }
    if *state == ResourceState::Error {
        return SystemStep::Failed("the provider reports the system in state ERROR".into());
    }
    let machines = || input.machines.iter().map(|m| &m.member);
    if let Some(m) = machines().find(|m| member_state(m) == ResourceState::Error) {
        return SystemStep::Failed(format!("the provider reports member {} in state ERROR", member_name(m)));
    }
    if let Some(m) = machines().find(|m| member_state(m).is_transient()) {
        return SystemStep::Wait(format!("member {} is {}", member_name(m), member_state(m)));
    }
    if input.observe_only {
        return SystemStep::Observed(input.drift.clone());
    }
    if let Some(request) = &input.requested_action {
        return SystemStep::OneShot(decide(request, &input.operations, "system", state.as_str()));
    }
    let allowed = |op: &str| input.operations.iter().any(|o| o == op);
    if !input.attribute_changes.is_empty() && allowed("edit") {
        return SystemStep::Update(input.attribute_changes.clone());
    }
    let desired = input.power.resource_state();
    let Some(off) = machines().find(|m| m.state.is_some() && member_state(m) != desired) else {
        return SystemStep::InSync;
    };
    match power_action(&member_state(off), input.power, &input.operations) {
        None => SystemStep::InSync,
        Some(Ok(action)) => SystemStep::Power(action),
        Some(Err(message)) => SystemStep::PowerUnsupported(format!("member {}: {message}", member_name(off))),
    }
}

/// What an ObserveOnly system's drift is: the attribute `changes` the spec would make, and the power state when
/// a machine is not in the state the spec asks for (the system's own state is shown, MIXED when they differ).
pub fn system_drift(
    changes: &Map<String, Value>,
    observed: &Value,
    state: &ResourceState,
    machines: &[MachineMember],
    power: PowerState,
) -> Vec<Drift> {
    let desired = power.resource_state();
    let off = machines.iter().any(|m| m.member.state.is_some() && member_state(&m.member) != desired);
    let power = (off && !state.is_transient()).then_some((state.as_str(), power));
    crate::controller::resource::attributes::drift(changes, observed, power)
}

/// Whether a member is in the state the spec asks for: machines in the power state, volumes AVAILABLE,
/// networks STARTED.
pub fn member_ready(kind: MemberKind, state: &ResourceState, power: PowerState) -> bool {
    *state
        == match kind {
            MemberKind::Machine => power.resource_state(),
            MemberKind::Volume => ResourceState::Available,
            MemberKind::Network => ResourceState::Started,
        }
}

/// The kinds of members the status lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A Machine.
    Machine,
    /// A Volume.
    Volume,
    /// A Network.
    Network,
}

/// The member counts of `status` (its lists before they are cut to what status shows).
pub fn count_members(status: &CimiSystemStatus, power: PowerState) -> MemberCounts {
    let mut counts = MemberCounts::default();
    let machines = status.machines.iter().map(|m| (MemberKind::Machine, &m.member));
    let volumes = status.volumes.iter().map(|v| (MemberKind::Volume, &v.member));
    let networks = status.networks.iter().map(|n| (MemberKind::Network, n));
    for (kind, m) in machines.chain(volumes).chain(networks) {
        counts.total += 1;
        if member_ready(kind, &member_state(m), power) {
            counts.ready += 1;
        }
        *counts.states.entry(m.state.clone().unwrap_or_else(|| "UNKNOWN".into())).or_insert(0) += 1;
    }
    counts.summary = format!("{}/{}", counts.ready, counts.total);
    counts
}

/// The components whose nested Jobs ended FAILED or STOPPED, as `name: message`.
pub fn failed_components(nested: &[NestedJob]) -> Vec<String> {
    nested
        .iter()
        .filter(|n| n.job.job_state().is_failure())
        .map(|n| {
            let who = n.component.clone().unwrap_or_else(|| n.job.href.clone());
            match n.job.status_message.as_deref().filter(|m| !m.is_empty()) {
                Some(m) => format!("{who} ({} {}: {m})", n.job.action.as_deref().unwrap_or("job"), state_of(n)),
                None => format!("{who} ({} {})", n.job.action.as_deref().unwrap_or("job"), state_of(n)),
            }
        })
        .collect()
}

fn state_of(n: &NestedJob) -> &str {
    n.job.state.as_deref().unwrap_or("")
}

/// The name of the object that shows a member (`spec.exposeMembers`): `<system>-<member>`, lower-cased, with
/// characters outside `[a-z0-9-]` turned into `-`, cut to 63 characters; `None` when nothing usable is left.
pub fn exposed_name(system: &str, member: &str) -> Option<String> {
    let raw = format!("{system}-{member}").to_ascii_lowercase();
    let mut name: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::JobStatus;

    fn member(name: &str, state: &str) -> SystemMember {
        SystemMember {
            name: Some(name.into()),
            href: format!("m/{name}"),
            state: Some(state.into()),
            ..Default::default()
        }
    }

    fn input(state: &str, machines: &[(&str, &str)]) -> SystemPlanInput {
        SystemPlanInput {
            state: state.into(),
            operations: ["edit", "delete", "start", "stop"].iter().map(|s| s.to_string()).collect(),
            power: PowerState::Started,
            machines: machines
                .iter()
                .map(|(n, s)| MachineMember { member: member(n, s), ..Default::default() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_mixed_system_is_started_as_a_whole() {
        let i = input("MIXED", &[("web1", "STARTED"), ("web2", "STOPPED")]);
        assert_eq!(plan_system(&i), SystemStep::Power("start"));
        let mut i = i;
        i.power = PowerState::Stopped;
        assert_eq!(plan_system(&i), SystemStep::Power("stop"));
    }

    #[test]
    fn in_sync_when_every_machine_is_in_the_power_state() {
        assert_eq!(plan_system(&input("STARTED", &[("web1", "STARTED"), ("web2", "STARTED")])), SystemStep::InSync);
        let mut i = input("STOPPED", &[("web1", "STOPPED")]);
        i.power = PowerState::Stopped;
        assert_eq!(plan_system(&i), SystemStep::InSync);
    }

    #[test]
    fn nothing_starts_while_a_job_runs_or_a_member_moves() {
        let mut i = input("MIXED", &[("web1", "STARTED"), ("web2", "STOPPED")]);
        i.job_running = true;
        assert!(matches!(plan_system(&i), SystemStep::Wait(_)));
        let i = input("MIXED", &[("web1", "STARTED"), ("web2", "STARTING")]);
        assert!(matches!(plan_system(&i), SystemStep::Wait(m) if m.contains("web2")));
        let i = input("CREATING", &[]);
        assert!(matches!(plan_system(&i), SystemStep::Wait(_)));
    }

    #[test]
    fn errors_name_the_member() {
        assert!(matches!(plan_system(&input("ERROR", &[])), SystemStep::Failed(_)));
        let i = input("MIXED", &[("web1", "STARTED"), ("web2", "ERROR")]);
        assert!(matches!(plan_system(&i), SystemStep::Failed(m) if m.contains("web2")));
    }

    #[test]
    fn observe_only_never_acts() {
        let mut i = input("MIXED", &[("web1", "STARTED"), ("web2", "STOPPED")]);
        i.observe_only = true;
        i.attribute_changes.insert("description".into(), Value::String("x".into()));
        i.drift = vec![Drift { field: "spec.powerState".into(), desired: "Started".into(), observed: "MIXED".into() }];
        assert_eq!(plan_system(&i), SystemStep::Observed(i.drift.clone()), "reported, not acted on");
    }

    #[test]
    fn an_observed_system_drifts_by_its_attributes_and_its_machines_power() {
        let i = input("MIXED", &[("web1", "STARTED"), ("web2", "STOPPED")]);
        let mut changes = Map::new();
        changes.insert("description".into(), Value::String("wanted".into()));
        let observed = serde_json::json!({"description": "by hand"});
        let drift = system_drift(&changes, &observed, &i.state, &i.machines, PowerState::Started);
        let fields: Vec<_> = drift.iter().map(|d| (d.field.as_str(), d.observed.as_str())).collect();
        assert_eq!(fields, [("spec.description", "by hand"), ("spec.powerState", "MIXED")]);
        let all_started = input("STARTED", &[("web1", "STARTED"), ("web2", "STARTED")]);
        assert!(
            system_drift(&Map::new(), &observed, &all_started.state, &all_started.machines, PowerState::Started)
                .is_empty()
        );
        let moving = input("STARTING", &[("web1", "STARTING")]);
        assert!(
            system_drift(&Map::new(), &observed, &moving.state, &moving.machines, PowerState::Started).is_empty(),
            "a system on its way is not drift"
        );
    }

    #[test]
    fn a_one_shot_action_runs_once_members_settle_and_before_any_change() {
        let mut i = input("STARTED", &[("web1", "STARTED")]);
        i.operations.push("restart".into());
        i.attribute_changes.insert("description".into(), Value::String("x".into()));
        i.requested_action = Some(("restart".into(), "n1".into()));
        assert_eq!(plan_system(&i), SystemStep::OneShot(OneShot::Run { action: "restart".into(), nonce: "n1".into() }));
        i.job_running = true;
        assert!(matches!(plan_system(&i), SystemStep::Wait(_)), "not while a Job runs");
        i.job_running = false;
        i.requested_action = Some(("capture".into(), "n2".into()));
        assert!(matches!(plan_system(&i), SystemStep::OneShot(OneShot::Reject { message, .. })
            if message.contains("capture on this system in state STARTED")));
        i.observe_only = true;
        assert!(matches!(plan_system(&i), SystemStep::Observed(_)), "ObserveOnly never acts");
    }

    #[test]
    fn attributes_before_power_and_unsupported_power_is_reported() {
        let mut i = input("STOPPED", &[("web1", "STOPPED")]);
        i.attribute_changes.insert("description".into(), Value::String("x".into()));
        assert!(matches!(plan_system(&i), SystemStep::Update(_)));
        i.attribute_changes.clear();
        i.operations = vec!["edit".into()];
        assert!(matches!(plan_system(&i), SystemStep::PowerUnsupported(m) if m.contains("web1")));
    }

    #[test]
    fn counts_per_state_and_ready() {
        let machine = |n, s| MachineMember { member: member(n, s), ..Default::default() };
        let status = CimiSystemStatus {
            machines: vec![machine("web1", "STARTED"), machine("web2", "STOPPED")],
            volumes: vec![crate::api::system::VolumeMember { member: member("data", "AVAILABLE"), capacity: None }],
            networks: vec![member("net", "STARTED")],
            ..Default::default()
        };
        let counts = count_members(&status, PowerState::Started);
        assert_eq!((counts.ready, counts.total, counts.summary.as_str()), (3, 4, "3/4"));
        assert_eq!(counts.states["STARTED"], 2);
        assert_eq!(counts.states["STOPPED"], 1);
        assert_eq!(counts.states["AVAILABLE"], 1);
        assert_eq!(count_members(&status, PowerState::Stopped).ready, 3);
    }

    #[test]
    fn failed_nested_jobs_name_their_component() {
        let job = |state: &str, msg: Option<&str>| JobStatus {
            href: "j".into(),
            action: Some("add".into()),
            state: Some(state.into()),
            status_message: msg.map(str::to_string),
            ..Default::default()
        };
        let nested = vec![
            NestedJob { component: Some("web1".into()), job: job("SUCCESS", None) },
            NestedJob { component: Some("web2".into()), job: job("FAILED", Some("no capacity")) },
        ];
        assert_eq!(failed_components(&nested), ["web2 (add FAILED: no capacity)"]);
    }

    #[test]
    fn exposed_names_are_dns_labels() {
        assert_eq!(exposed_name("shop", "web1").as_deref(), Some("shop-web1"));
        assert_eq!(exposed_name("Shop", "Web_1.a").as_deref(), Some("shop-web-1-a"));
        assert_eq!(exposed_name(&"s".repeat(60), "web1").map(|n| n.len()), Some(63));
    }
}
