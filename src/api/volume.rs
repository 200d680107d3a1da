//! `CimiVolume`: a provider Volume, from an inline capacity or a catalog configuration or template.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CatalogRef, DeletionPolicy, ImportSpec, LocalObjectRef, ManagedStatus, ManagementPolicy, Properties, ProviderRef,
    ResourceGonePolicy, Timeouts,
};

/// A CimiVolume declares one provider Volume (block storage) that CimiMachines can attach.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiVolume",
    plural = "cimivolumes",
    singular = "cimivolume",
    namespaced,
    status = "CimiVolumeStatus",
    shortname = "cimivol",
    category = "cimi",
    derive = "PartialEq",
    doc = "A provider Volume managed through DMTF CIMI.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the volume exists, is available and matches the spec"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the volume"),
    printcolumn(name = "Capacity", type_ = "string", json_path = ".status.capacity", description = "Capacity"),
    printcolumn(name = "Attached", type_ = "string", json_path = ".status.attachedTo[*]", description = "The CimiMachines that hold the volume", priority = 1),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the volume is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__import__) || (has(self.capacity) ? 1 : 0) + (has(self.volumeConfig) ? 1 : 0) + (has(self.volumeTemplate) ? 1 : 0) + (has(self.imageRef) ? 1 : 0) == 1").message("set exactly one of spec.capacity, spec.volumeConfig, spec.volumeTemplate and spec.imageRef"),
    validation = Rule::new("!(has(self.imageRef) && has(self.volumeImage))").message("spec.imageRef (a CimiVolumeImage) and spec.volumeImage (a provider catalog image) are mutually exclusive"),
    validation = Rule::new("has(self.imageRef) == has(oldSelf.imageRef)").message("spec.imageRef cannot be added or removed after creation"),
    validation = Rule::new("has(self.capacity) || !(has(self.type) || has(self.format))").message("spec.type and spec.format need an inline spec.capacity"),
    validation = Rule::new("!(has(self.volumeTemplate) && has(self.volumeImage))").message("spec.volumeTemplate excludes spec.volumeImage (the template carries it)"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.resourceGonePolicy != 'Recreate' || (self.managementPolicy == 'Managed' && !has(self.__import__))").message("resourceGonePolicy Recreate needs a Managed object that is not imported: only what the operator created can be created again"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing volume and never creates one"),
    validation = Rule::new("has(self.capacity) == has(oldSelf.capacity) && has(self.volumeConfig) == has(oldSelf.volumeConfig) && has(self.volumeTemplate) == has(oldSelf.volumeTemplate)").message("spec.capacity, spec.volumeConfig and spec.volumeTemplate cannot be added or removed after creation"),
    validation = Rule::new("has(self.__import__) == has(oldSelf.__import__)").message("spec.import cannot be added or removed after creation"),
)]
pub struct CimiVolumeSpec {
    /// The CimiProvider that serves this volume. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.providerRef is immutable"))]
    pub provider_ref: ProviderRef,
    /// The CIMI `name` of the volume. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The CIMI `description` of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` of the volume. Keys starting with `cimi.dev/` are reserved for the operator's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// Capacity as a Kubernetes quantity (such as `10Gi`), sent to CIMI in kilobytes. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::quantity::quantity_schema")]
    #[x_kube(
        validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("capacity must be a positive quantity such as 10Gi"),
        validation = Rule::new("self == oldSelf").message("spec.capacity is immutable")
    )]
    pub capacity: Option<Quantity>,
    /// The volume type URI, with an inline capacity.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.type is immutable"))]
    pub type_: Option<String>,
    /// The file system format, such as `ext4`; absent means unformatted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub format: Option<String>,
    /// Whether the volume can boot a machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootable: Option<bool>,
    /// A provider VolumeConfiguration, by name or href. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.volumeConfig is immutable"))]
    pub volume_config: Option<CatalogRef>,
    /// A provider VolumeTemplate, by name or href. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.volumeTemplate is immutable"))]
    pub volume_template: Option<CatalogRef>,
    /// A provider VolumeImage to fill the volume from, by name or href. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.volumeImage is immutable"))]
    pub volume_image: Option<CatalogRef>,
    /// Restore the volume from this CimiVolumeImage (in this namespace, on the same provider): the volume gets
    /// the snapshot's data and capacity. The volume waits until the image is Ready. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.imageRef is immutable"))]
    pub image_ref: Option<LocalObjectRef>,
    /// What happens to the provider volume when this object is deleted: Delete (default) or Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Managed (default) or ObserveOnly (requires `import` and `deletionPolicy: Orphan`).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Adopt an existing provider volume instead of creating one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "import")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.import is immutable"))]
    pub import: Option<ImportSpec>,
    /// Limits on how long operations may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What to do when the provider volume is deleted behind the operator's back: Report (default: the object says ResourceGone and waits for a human) or Recreate (create it again from the spec; whatever the lost volume held is lost).
    #[serde(default)]
    pub resource_gone_policy: ResourceGonePolicy,
}

/// What the operator observed of the volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiVolumeStatus {
    /// State, Job, conditions and the other fields every kind shares.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// Capacity, as a Kubernetes quantity (CIMI states it in kilobytes: `10G`, or `10737419k` for a `10Gi`
    /// request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// The volume type URI the provider reports.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub type_: Option<String>,
    /// Whether the provider reports the volume as bootable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootable: Option<bool>,
    /// The CimiMachines (in this namespace) that hold the volume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_to: Vec<String>,
}
