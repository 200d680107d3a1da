//! CimiMachineImage and CimiVolumeImage: provider images owned by Kubernetes objects. A machine image is
//! captured (or snapshotted) from a CimiMachine, registered from an image location, or imported; a volume image
//! (CIMI's name for a volume snapshot) is snapshotted from a CimiVolume, or imported. New machines and volumes
//! are restored from them through `spec.imageRef`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DeletionPolicy, ImportSpec, LocalObjectRef, ManagedStatus, ManagementPolicy, Properties, ProviderRef,
    ResourceGonePolicy, Timeouts,
};

/// How a machine image is taken from a machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CaptureMethod {
    /// A full image of the machine (CIMI type IMAGE).
    #[default]
    Capture,
    /// A snapshot of the machine's disks (CIMI type SNAPSHOT).
    Snapshot,
}

impl CaptureMethod {
    /// The CIMI MachineImage `type` this method makes.
    pub fn image_type(self) -> &'static str {
        match self {
            CaptureMethod::Capture => "IMAGE",
            CaptureMethod::Snapshot => "SNAPSHOT",
        }
    }
}

/// The CimiMachine a machine image is taken from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineImageSource {
    /// The CimiMachine, in this namespace; it must have been created on the same provider.
    pub machine_ref: LocalObjectRef,
    /// Capture (default: a full image) or Snapshot.
    #[serde(default)]
    pub method: CaptureMethod,
}

/// A provider MachineImage managed through DMTF CIMI.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiMachineImage",
    plural = "cimimachineimages",
    singular = "cimimachineimage",
    namespaced,
    status = "CimiMachineImageStatus",
    shortname = "cimimi",
    category = "cimi",
    derive = "PartialEq",
    doc = "A provider MachineImage managed through DMTF CIMI: captured from a CimiMachine, registered from an image location, or imported.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the image exists, is available and matches the spec"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the image"),
    printcolumn(name = "Type", type_ = "string", json_path = ".status.type", description = "IMAGE, SNAPSHOT or PARTIAL_SNAPSHOT"),
    printcolumn(name = "Source", type_ = "string", json_path = ".status.sourceMachine", description = "The CimiMachine it was taken from", priority = 1),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the image is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.source) ? 1 : 0) + (has(self.imageLocation) ? 1 : 0) + (has(self.__import__) ? 1 : 0) == 1").message("set exactly one of spec.source (capture a CimiMachine), spec.imageLocation (register an image) and spec.import (adopt an existing image)"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing image and never creates one"),
    validation = Rule::new("self.resourceGonePolicy != 'Recreate' || has(self.imageLocation)").message("resourceGonePolicy Recreate needs spec.imageLocation: a capture cannot be made again from a machine that changed since"),
    validation = Rule::new("has(self.source) == has(oldSelf.source) && has(self.imageLocation) == has(oldSelf.imageLocation) && has(self.__import__) == has(oldSelf.__import__)").message("spec.source, spec.imageLocation and spec.import cannot be added or removed after creation"),
)]
pub struct CimiMachineImageSpec {
    /// The CimiProvider that serves this image. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.providerRef is immutable"))]
    pub provider_ref: ProviderRef,
    /// The CIMI `name` of the image. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The CIMI `description` of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` of the image. Keys starting with `cimi.dev/` are reserved for the operator's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// Capture (or snapshot) this CimiMachine. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.source is immutable"))]
    pub source: Option<MachineImageSource>,
    /// Register an image from this location (passed to the provider as `imageLocation`; the operator never
    /// fetches it). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.imageLocation is immutable"))]
    pub image_location: Option<String>,
    /// What happens to the provider image when this object is deleted: Delete (default) or Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Managed (default) or ObserveOnly (requires `import` and `deletionPolicy: Orphan`).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Adopt an existing provider image instead of making one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "import")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.import is immutable"))]
    pub import: Option<ImportSpec>,
    /// Limits on how long operations may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What to do when the provider image is deleted behind the operator's back: Report (default) or Recreate
    /// (register it again; only with `imageLocation`).
    #[serde(default)]
    pub resource_gone_policy: ResourceGonePolicy,
}

/// What the operator observed of the machine image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiMachineImageStatus {
    /// State, Job, conditions and the other fields every kind shares.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// The image type the provider reports: IMAGE, SNAPSHOT or PARTIAL_SNAPSHOT.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    /// Where the provider says the image comes from (a machine's href for a capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_location: Option<String>,
    /// The CimiMachine the image was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_machine: Option<String>,
    /// The CimiMachines (in this namespace) made from the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}

/// The CimiVolume a volume image is snapshotted from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeImageSource {
    /// The CimiVolume, in this namespace; it must have been created on the same provider.
    pub volume_ref: LocalObjectRef,
}

/// A provider VolumeImage (a volume snapshot) managed through DMTF CIMI.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiVolumeImage",
    plural = "cimivolumeimages",
    singular = "cimivolumeimage",
    namespaced,
    status = "CimiVolumeImageStatus",
    shortname = "cimivi",
    category = "cimi",
    derive = "PartialEq",
    doc = "A provider VolumeImage (a volume snapshot) managed through DMTF CIMI: snapshotted from a CimiVolume, or imported.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the snapshot exists, is available and matches the spec"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the snapshot"),
    printcolumn(name = "Source", type_ = "string", json_path = ".status.sourceVolume", description = "The CimiVolume it was taken from"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the snapshot is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.source) != has(self.__import__)").message("set exactly one of spec.source (snapshot a CimiVolume) and spec.import (adopt an existing volume image)"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing volume image and never creates one"),
    validation = Rule::new("self.resourceGonePolicy != 'Recreate'").message("resourceGonePolicy Recreate is not offered for volume images: a snapshot cannot be taken again of a volume that changed since"),
    validation = Rule::new("has(self.source) == has(oldSelf.source) && has(self.__import__) == has(oldSelf.__import__)").message("spec.source and spec.import cannot be added or removed after creation"),
)]
pub struct CimiVolumeImageSpec {
    /// The CimiProvider that serves this snapshot. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.providerRef is immutable"))]
    pub provider_ref: ProviderRef,
    /// The CIMI `name` of the snapshot. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The CIMI `description` of the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` of the snapshot. Keys starting with `cimi.dev/` are reserved for the operator's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// Snapshot this CimiVolume. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.source is immutable"))]
    pub source: Option<VolumeImageSource>,
    /// What happens to the provider snapshot when this object is deleted: Delete (default) or Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Managed (default) or ObserveOnly (requires `import` and `deletionPolicy: Orphan`).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Adopt an existing provider volume image instead of taking a snapshot. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "import")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.import is immutable"))]
    pub import: Option<ImportSpec>,
    /// Limits on how long operations may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What to do when the provider snapshot is deleted behind the operator's back: Report (the only choice).
    #[serde(default)]
    pub resource_gone_policy: ResourceGonePolicy,
}

/// What the operator observed of the volume image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiVolumeImageStatus {
    /// State, Job, conditions and the other fields every kind shares.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// Where the provider says the snapshot comes from (the volume's href).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_location: Option<String>,
    /// Whether the provider reports the snapshot as bootable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootable: Option<bool>,
    /// The CimiVolume the snapshot was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_volume: Option<String>,
    /// The CimiVolumes (in this namespace) restored from the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}
