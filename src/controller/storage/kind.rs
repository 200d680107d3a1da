//! What is particular to a volume or a network, beyond what every managed kind supplies.

use crate::cimi::model::{self, ResourceState};
use std::sync::Arc;

use kube::ResourceExt as _;
use serde_json::Value;

use crate::api::CimiMachine;
use crate::controller::outcome::Problem;
use crate::controller::registry::Catalog;
use crate::controller::shell::kind::ManagedKind;

/// A kind whose provider resource is created, observed, updated (name, description, properties) and deleted,
/// without actions, and which machines may hold: CimiVolume and CimiNetwork.
pub trait StorageKind: ManagedKind {
    /// The provider state in which the resource is ready (`AVAILABLE`, `STARTED`).
    const READY_STATE: ResourceState;

    /// The CIMI name the spec sets, if it sets one.
    fn spec_name(&self) -> Option<&str>;
    /// Mirrors the provider resource into status.
    fn observe_into(resource: &Value, status: &mut Self::Status);
    /// The provider's create body (VolumeCreate, NetworkCreate).
    type Create: model::Resource + serde::Serialize;

    /// The body of the create, without name, description and properties.
    fn create_body(&self, catalog: &Catalog) -> Result<Self::Create, Problem>;
    /// The objects of this kind (in its namespace) a machine's spec names.
    fn named_by(machine: &CimiMachine) -> Vec<String>;

    /// Records in status the CimiMachines that hold the object (a volume lists them; a network does not).
    fn record_holders(_status: &mut Self::Status, _holders: Vec<String>) {}

    /// The CimiMachines (in this namespace) that use this object, by name.
    fn held_by(&self, machines: &[Arc<CimiMachine>]) -> Vec<String> {
        let name = self.name_any();
        machines.iter().filter(|m| Self::named_by(m).contains(&name)).map(|m| m.name_any()).collect()
    }
}
