//! The input of the machine's plan, built from what was observed: a pure function, no I/O (everything it
//! needs was read by [`super::observe`]).

use std::collections::BTreeMap;

use kube::ResourceExt as _;
use serde_json::Value;

use super::observe::Related;
use super::plan::{AttachedInterface, MachinePlanInput, VolumeAttachment};
use crate::api::CimiMachine;
use crate::api::common::ManagedStatus;
use crate::cimi::model::ResourceState;
use crate::controller::resource::actions;
use crate::controller::resource::attributes::{attribute_changes, wanted_attributes};
use crate::controller::resource::jobs::job_running;
use crate::controller::resource::reads::operations;
use crate::controller::resource::reads::text;

/// The plan's input for `machine`, whose provider machine is `current`, with our `tags`, the machine's shared
/// `status`, the volume attachments and interface networks the provider reports, and the `related` objects.
/// Only attachments of volumes, and interfaces on networks, that Kubernetes knows and the spec does not name
/// are the operator's to remove: others (an imported machine's own disks, say, or a named volume that is not
/// Ready for the moment) are left alone.
pub fn plan_input(
    machine: &CimiMachine,
    tags: &BTreeMap<String, String>,
    current: &Value,
    status: &ManagedStatus,
    attached: &[VolumeAttachment],
    interface_networks: &[String],
    related: &Related,
) -> MachinePlanInput {
    let spec = &machine.spec;
    let (name, props) = wanted_attributes(
        spec.name.as_deref(),
        &machine.name_any(),
        spec.properties.as_ref(),
        tags,
        spec.import.as_ref().map(|_| current),
    );
    let attached_volumes = attached
        .iter()
        .filter(|a| {
            related.removable_volumes.contains(&a.volume) || related.wanted_volumes.iter().any(|w| w.href == a.volume)
        })
        .cloned()
        .collect();
    let attached_interfaces = interface_networks
        .iter()
        .filter(|n| related.removable_networks.contains(n) || related.wanted_networks.iter().any(|w| &&w.href == n))
        .map(|network| AttachedInterface { network: network.clone() })
        .collect();
    MachinePlanInput {
        state: ResourceState::parse(text(current, "state").unwrap_or_default()),
        operations: operations(current),
        job_running: job_running(status.job.as_ref()),
        power: spec.power_state,
        attribute_changes: attribute_changes(&name, spec.description.as_deref(), &props, current),
        wanted_volumes: related.wanted_volumes.clone(),
        attached_volumes,
        wanted_networks: related.wanted_networks.clone(),
        attached_interfaces,
        requested_action: actions::new_request(machine, status),
        last_action_nonce: status.last_action.as_ref().map(|a| a.nonce.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::machine::plan::{WantedNetwork, WantedVolume};
    use serde_json::json;

    fn machine() -> CimiMachine {
        serde_json::from_value(json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine",
            "metadata": {"name": "web-1", "namespace": "team", "annotations": {"cimi.dev/action": "restart@7"}},
            "spec": {"providerRef": {"name": "p"}, "description": "front",
                     "template": {"machineConfig": {"name": "small"}, "machineImage": {"name": "img"}}}
        }))
        .expect("machine")
    }

    #[test]
    fn only_attachments_kubernetes_knows_are_the_operators() {
        let current = json!({"name": "web-1", "description": "front", "state": "STARTED",
                             "operations": [{"rel": "edit", "href": "m/1"}]});
        let attached = vec![
            VolumeAttachment { entry: "m/1/volumes/1".into(), volume: "v/known".into() },
            VolumeAttachment { entry: "m/1/volumes/2".into(), volume: "v/own-disk".into() },
        ];
        let related = Related {
            wanted_volumes: vec![WantedVolume { name: "data".into(), href: "v/wanted".into(), initial_location: None }],
            removable_volumes: vec!["v/known".into()],
            wanted_networks: vec![WantedNetwork { name: "net".into(), href: "n/wanted".into() }],
            removable_networks: vec!["n/known".into()],
            waiting_for: None,
        };
        let tags = BTreeMap::from([("cimi.dev/uid".to_string(), "u1".to_string())]);
        let input = plan_input(
            &machine(),
            &tags,
            &current,
            &ManagedStatus::default(),
            &attached,
            &["n/known".into(), "n/foreign".into(), "n/wanted".into()],
            &related,
        );
        assert_eq!(input.state, "STARTED");
        assert_eq!(input.operations, ["edit"]);
        let volumes: Vec<&str> = input.attached_volumes.iter().map(|a| a.volume.as_str()).collect();
        assert_eq!(volumes, ["v/known"], "a volume no CimiVolume stands for is left alone");
        let networks: Vec<&str> = input.attached_interfaces.iter().map(|a| a.network.as_str()).collect();
        assert_eq!(networks, ["n/known", "n/wanted"]);
        assert_eq!(input.requested_action, Some(("restart".into(), "7".into())));
        assert!(
            input.attribute_changes.contains_key("properties"),
            "our tags are missing: {:?}",
            input.attribute_changes
        );
    }
}
