//! The next step of a volume or network, a pure function of what was observed. They have no actions: once
//! created they are kept in the state their provider calls ready, with the attributes the spec owns.

use serde_json::{Map, Value};

use crate::cimi::model::ResourceState;
use crate::controller::resource::attributes::Drift;

/// What the plan of a volume or network looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoragePlanInput {
    /// `managementPolicy: ObserveOnly`: mirror, never change.
    pub observe_only: bool,
    /// A Job the operator started runs.
    pub job_running: bool,
    /// The provider's state of the resource.
    pub state: ResourceState,
    /// The state in which the kind is ready (`AVAILABLE` for a volume, `STARTED` for a network).
    pub ready_state: ResourceState,
    /// The partial update the attributes need (empty when in sync).
    pub attribute_changes: Map<String, Value>,
    /// For ObserveOnly: what differs from the spec, field by field, as the object reports it.
    pub drift: Vec<Drift>,
}

/// The next step of a volume or network.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageStep {
    /// ObserveOnly: mirrored; the drift, if any, is reported and never corrected.
    Observed(Vec<Drift>),
    /// A provider Job runs: wait for it.
    WaitForJob,
    /// The provider reports the resource in ERROR.
    Failed,
    /// Change these attributes with one partial update.
    Update(Map<String, Value>),
    /// The resource is not in its ready state yet (it is `state`): wait for it.
    Settling(ResourceState),
    /// In the state and with the attributes the spec asks for.
    InSync,
}

/// The next step from `input`.
pub fn plan_storage(input: &StoragePlanInput) -> StorageStep {
    if input.observe_only {
        return StorageStep::Observed(input.drift.clone());
    }
    if input.job_running {
        return StorageStep::WaitForJob;
    }
    if input.state == ResourceState::Error {
        return StorageStep::Failed;
    }
    if !input.attribute_changes.is_empty() {
        return StorageStep::Update(input.attribute_changes.clone());
    }
    if input.state != input.ready_state {
        return StorageStep::Settling(input.state.clone());
    }
    StorageStep::InSync
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn available() -> StoragePlanInput {
        StoragePlanInput { state: "AVAILABLE".into(), ready_state: ResourceState::Available, ..Default::default() }
    }

    fn changes(key: &str, value: Value) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(key.into(), value);
        m
    }

    #[test]
    fn a_ready_volume_with_its_attributes_is_in_sync() {
        assert_eq!(plan_storage(&available()), StorageStep::InSync);
    }

    #[test]
    fn a_changed_description_is_one_partial_update() {
        let input = StoragePlanInput { attribute_changes: changes("description", json!("new")), ..available() };
        assert_eq!(plan_storage(&input), StorageStep::Update(changes("description", json!("new"))));
    }

    #[test]
    fn nothing_is_changed_while_a_job_runs() {
        let input =
            StoragePlanInput { job_running: true, attribute_changes: changes("name", json!("x")), ..available() };
        assert_eq!(plan_storage(&input), StorageStep::WaitForJob);
    }

    #[test]
    fn a_resource_in_error_is_reported_not_touched() {
        let input =
            StoragePlanInput { state: "ERROR".into(), attribute_changes: changes("name", json!("x")), ..available() };
        assert_eq!(plan_storage(&input), StorageStep::Failed);
    }

    #[test]
    fn a_network_still_starting_is_waited_for() {
        let input =
            StoragePlanInput { state: "STARTING".into(), ready_state: ResourceState::Started, ..Default::default() };
        assert_eq!(plan_storage(&input), StorageStep::Settling("STARTING".into()));
    }

    #[test]
    fn an_observed_resource_reports_its_drift_and_is_never_changed() {
        let input = StoragePlanInput {
            observe_only: true,
            state: "ERROR".into(),
            attribute_changes: changes("description", json!("spec")),
            drift: vec![Drift { field: "spec.description".into(), desired: "spec".into(), observed: "by hand".into() }],
            ..available()
        };
        assert_eq!(plan_storage(&input), StorageStep::Observed(input.drift.clone()));
    }
}
