//! `CimiMachine`: a provider Machine, created from a template by reference or by value.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CatalogRef, DeletionPolicy, ImportSpec, LocalObjectRef, ManagedStatus, ManagementPolicy, Properties, ProviderRef,
    ResourceGonePolicy, SecretKeyRef, SecretRef, Timeouts,
};

/// The power state the user wants the machine in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PowerState {
    /// Running (CIMI STARTED).
    #[default]
    Started,
    /// Powered off (CIMI STOPPED).
    Stopped,
    /// Paused in memory (CIMI PAUSED).
    Paused,
    /// Suspended to disk (CIMI SUSPENDED).
    Suspended,
}

impl PowerState {
    /// The value as the spec writes it: `Started`...
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::Started => "Started",
            PowerState::Stopped => "Stopped",
            PowerState::Paused => "Paused",
            PowerState::Suspended => "Suspended",
        }
    }

    /// The CIMI state that corresponds to this power state.
    pub fn cimi_state(self) -> &'static str {
        match self {
            PowerState::Started => "STARTED",
            PowerState::Stopped => "STOPPED",
            PowerState::Paused => "PAUSED",
            PowerState::Suspended => "SUSPENDED",
        }
    }

    /// The same, as a CIMI resource state.
    pub fn resource_state(self) -> crate::cimi::model::ResourceState {
        crate::cimi::model::ResourceState::parse(self.cimi_state())
    }
}

/// A CimiMachine declares one provider Machine: its template, its power state, the volumes attached to it and the networks it is connected to.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiMachine",
    plural = "cimimachines",
    singular = "cimimachine",
    namespaced,
    status = "CimiMachineStatus",
    shortname = "cimim",
    category = "cimi",
    derive = "PartialEq",
    doc = "A provider Machine managed through DMTF CIMI.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the machine exists and matches the spec"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the machine"),
    printcolumn(name = "CPU", type_ = "integer", json_path = ".status.cpu", description = "Number of CPUs"),
    printcolumn(name = "Memory", type_ = "string", json_path = ".status.memory", description = "Memory"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip", description = "First address of the machine"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the machine is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__import__) || has(self.machineTemplate) != has(self.template)").message("set exactly one of spec.machineTemplate and spec.template"),
    validation = Rule::new("!(has(self.machineTemplate) && has(self.template))").message("spec.machineTemplate and spec.template are mutually exclusive"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.resourceGonePolicy != 'Recreate' || (self.managementPolicy == 'Managed' && !has(self.__import__))").message("resourceGonePolicy Recreate needs a Managed object that is not imported: only what the operator created can be created again"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing machine and never creates one"),
    validation = Rule::new("has(self.machineTemplate) == has(oldSelf.machineTemplate) && has(self.template) == has(oldSelf.template)").message("spec.machineTemplate and spec.template cannot be added or removed after creation"),
    validation = Rule::new("has(self.__import__) == has(oldSelf.__import__)").message("spec.import cannot be added or removed after creation"),
)]
pub struct CimiMachineSpec {
    /// The CimiProvider that serves this machine. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.providerRef is immutable"))]
    pub provider_ref: ProviderRef,
    /// The CIMI `name` of the machine. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The CIMI `description` of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` of the machine. Keys starting with `cimi.dev/` are reserved for the operator's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// A provider MachineTemplate of the catalog, by name or href. Exclusive with `template`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.machineTemplate is immutable"))]
    pub machine_template: Option<CatalogRef>,
    /// The machine's template by value. Exclusive with `machineTemplate`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.template is immutable; create a new CimiMachine instead"))]
    pub template: Option<MachineTemplateSpec>,
    /// The power state to keep the machine in: Started, Stopped, Paused or Suspended.
    #[serde(default)]
    pub power_state: PowerState,
    /// CimiVolumes (in this namespace) attached to the machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(v, self.exists_one(w, w.volumeRef.name == v.volumeRef.name))").message("each CimiVolume may be attached once"))]
    pub volumes: Vec<MachineVolume>,
    /// CimiNetworks (in this namespace) the machine has an interface on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub network_interfaces: Vec<MachineNetworkInterface>,
    /// What happens to the provider machine when this object is deleted: Delete (default) or Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Managed (default) or ObserveOnly (requires `import` and `deletionPolicy: Orphan`).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Adopt an existing provider machine instead of creating one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "import")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.import is immutable"))]
    pub import: Option<ImportSpec>,
    /// Limits on how long operations may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What to do when the provider machine is deleted behind the operator's back: Report (default: the object says ResourceGone and waits for a human) or Recreate (create it again from the spec; whatever the lost machine held is lost).
    #[serde(default)]
    pub resource_gone_policy: ResourceGonePolicy,
}

/// A machine template by value: a configuration (from the catalog or inline), an image, a credential and user data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.machineConfig) && (has(self.cpu) || has(self.memory) || has(self.disks)))").message("template.machineConfig and inline cpu/memory/disks are mutually exclusive"),
    validation = Rule::new("has(self.machineConfig) || (has(self.cpu) && has(self.memory))").message("template needs machineConfig, or both cpu and memory"),
    validation = Rule::new("has(self.machineImage) != has(self.imageRef)").message("template needs exactly one of machineImage (a provider catalog image) and imageRef (a CimiMachineImage)"),
)]
pub struct MachineTemplateSpec {
    /// A provider MachineConfiguration, by name or href. Exclusive with cpu, memory and disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_config: Option<CatalogRef>,
    /// Number of CPUs, for an inline configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub cpu: Option<i32>,
    /// Memory as a Kubernetes quantity (such as `4Gi`), for an inline configuration; sent to CIMI in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::quantity::quantity_schema")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("memory must be a positive quantity such as 4Gi"))]
    pub memory: Option<Quantity>,
    /// Disks of an inline configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub disks: Option<Vec<DiskSpec>>,
    /// The provider MachineImage to boot, from the catalog, by name or href. Exclusive with `imageRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_image: Option<CatalogRef>,
    /// Boot from this CimiMachineImage (in this namespace, on the same provider): a machine restored from a
    /// capture gets the captured machine's disks. The machine waits until the image is Ready. Exclusive with
    /// `machineImage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<LocalObjectRef>,
    /// A Secret in this namespace whose keys become the attributes of the machine's CIMI Credential (for example `username` and `password`, or `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_secret_ref: Option<SecretRef>,
    /// A Secret key in this namespace holding the user data handed to the machine (sent base64-encoded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_secret_ref: Option<SecretKeyRef>,
}

/// One disk of an inline machine configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskSpec {
    /// Capacity as a Kubernetes quantity (such as `20Gi`); sent to CIMI in kilobytes.
    #[schemars(schema_with = "crate::api::quantity::quantity_schema")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("disk capacity must be a positive quantity such as 20Gi"))]
    pub capacity: Quantity,
    /// The file system format, such as `ext4`; absent means unformatted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub format: Option<String>,
    /// Where the disk appears in the machine, such as `/dev/vdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub initial_location: Option<String>,
}

/// A CimiVolume attached to the machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineVolume {
    /// The CimiVolume, in this namespace.
    pub volume_ref: LocalObjectRef,
    /// Where the volume appears in the machine, such as `/dev/vdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub initial_location: Option<String>,
}

/// A network interface of the machine, on a CimiNetwork.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineNetworkInterface {
    /// The CimiNetwork, in this namespace.
    pub network_ref: LocalObjectRef,
}

/// What the operator observed of the machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiMachineStatus {
    /// State, Job, conditions and the other fields every kind shares.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// Number of CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// Memory, as a Kubernetes quantity (such as `4Gi`; CIMI states it in KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The machine's IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The first IP address, for printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The disks the provider reports, in the order it lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<ObservedDisk>,
    /// Attached volumes: the CimiVolume name, its href and where it appears.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<AttachedVolume>,
    /// Network interfaces: the CimiNetwork name, the network href and the interface's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// The href of the machine's latest snapshot, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_snapshot: Option<String>,
}

/// A disk as the provider reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedDisk {
    /// Capacity, as a Kubernetes quantity (CIMI states it in kilobytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
    /// Where the disk appears in the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_location: Option<String>,
}

/// A volume attached to the machine, as the provider reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachedVolume {
    /// The name of the CimiVolume object, when the operator knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The href of the provider volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Where the volume appears in the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_location: Option<String>,
    /// The provider's state of the attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A network interface of the machine, as the provider reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// The name of the CimiNetwork object, when the operator knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The href of the provider network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// The interface's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The provider's state of the interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}
