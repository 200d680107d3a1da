//! What is particular to a volume or a network, beyond what every managed kind supplies.

use crate::cimi::model::{self, ResourceState};
use std::future::Future;
use std::sync::Arc;

use kube::ResourceExt as _;
use serde_json::Value;

use crate::controller::context::Context;
use crate::controller::outcome::Problem;
use crate::controller::registry::Catalog;
use crate::controller::shell::kind::ManagedKind;

/// A kind whose provider resource is created, observed, updated (name, description, properties) and deleted,
/// without actions, and which objects of another kind may hold: CimiVolume and CimiNetwork (held by the
/// CimiMachines that attach them), CimiMachineImage and CimiVolumeImage (held by the CimiMachines and
/// CimiVolumes restored from them).
pub trait StorageKind: ManagedKind {
    /// The provider state in which the resource is ready (`AVAILABLE`, `STARTED`).
    const READY_STATE: ResourceState;
    /// The kind whose objects hold this one.
    type Holder: ManagedKind;

    /// The CIMI name the spec sets, if it sets one.
    fn spec_name(&self) -> Option<&str>;
    /// Mirrors the provider resource into status.
    fn observe_into(resource: &Value, status: &mut Self::Status);
    /// Adds to status what the object itself says (the machine an image was taken from). Nothing by default.
    fn annotate(&self, _status: &mut Self::Status) {}
    /// The provider's create body (VolumeCreate, NetworkCreate).
    type Create: model::Resource + serde::Serialize;

    /// The href of what the create takes its data from, when it needs one (the machine a capture is taken from,
    /// the image a volume is restored from), read from this namespace's objects; a problem that says what it
    /// waits for when that object is not ready. None by default.
    fn source(&self, ctx: &Context) -> impl Future<Output = Result<Option<String>, Problem>> + Send {
        let _ = ctx;
        async { Ok(None) }
    }
    /// The body of the create, without name, description and properties; `source` is what [`Self::source`]
    /// found.
    fn create_body(&self, catalog: &Catalog, source: Option<&str>) -> Result<Self::Create, Problem>;
    /// The objects of this kind (in its namespace) a holder's spec names.
    fn named_by(holder: &Self::Holder) -> Vec<String>;

    /// Records in status the holders of the object (a volume lists its machines; a network does not).
    fn record_holders(_status: &mut Self::Status, _holders: Vec<String>) {}

    /// The holders (in this namespace) that use this object, by name.
    fn held_by(&self, holders: &[Arc<Self::Holder>]) -> Vec<String> {
        let name = self.name_any();
        holders.iter().filter(|h| Self::named_by(h).contains(&name)).map(|h| h.name_any()).collect()
    }
}
