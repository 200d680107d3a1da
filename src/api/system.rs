//! `CimiSystem`: a provider System, a group of machines, volumes, networks and credentials made from one
//! SystemTemplate (a provider's, by name or href, or one given by value), started, stopped and deleted as a unit.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::common::{
    CatalogRef, DeletionPolicy, EventCursor, ImportSpec, JobStatus, ManagedStatus, ManagementPolicy, Properties,
    ProviderRef, ResourceGonePolicy, SecretRef, Timeouts,
};
use super::machine::PowerState;

/// A CimiSystem declares one provider System, made from a SystemTemplate by reference or by value.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiSystem",
    plural = "cimisystems",
    singular = "cimisystem",
    namespaced,
    status = "CimiSystemStatus",
    shortname = "cimisys",
    category = "cimi",
    derive = "PartialEq",
    doc = "A provider System (a group of resources) managed through DMTF CIMI.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the system and all its members are in the desired state"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the system (MIXED when its machines disagree)"),
    printcolumn(name = "Members", type_ = "string", json_path = ".status.members.summary", description = "Members in the desired state / all members"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the system is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__import__) || has(self.systemTemplate) != has(self.template)").message("set exactly one of spec.systemTemplate and spec.template"),
    validation = Rule::new("!(has(self.systemTemplate) && has(self.template))").message("spec.systemTemplate and spec.template are mutually exclusive"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.resourceGonePolicy != 'Recreate' || (self.managementPolicy == 'Managed' && !has(self.__import__))").message("resourceGonePolicy Recreate needs a Managed object that is not imported: only what the operator created can be created again"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing system and never creates one"),
    validation = Rule::new("has(self.systemTemplate) == has(oldSelf.systemTemplate) && has(self.template) == has(oldSelf.template)").message("spec.systemTemplate and spec.template cannot be added or removed after creation"),
    validation = Rule::new("has(self.__import__) == has(oldSelf.__import__)").message("spec.import cannot be added or removed after creation"),
)]
pub struct CimiSystemSpec {
    /// The CimiProvider that serves this system. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.providerRef is immutable"))]
    pub provider_ref: ProviderRef,
    /// The CIMI `name` of the system. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The CIMI `description` of the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` of the system. Keys starting with `cimi.dev/` are reserved for the operator's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// A provider SystemTemplate of the catalog, by name or href. Exclusive with `template`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.systemTemplate is immutable"))]
    pub system_template: Option<CatalogRef>,
    /// The system's template by value. Exclusive with `systemTemplate`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.template is immutable; create a new CimiSystem instead"))]
    pub template: Option<SystemTemplateSpec>,
    /// The power state to keep the system's machines in: Started, Stopped, Paused or Suspended.
    #[serde(default)]
    pub power_state: PowerState,
    /// Also show each member as a read-only CimiMachine, CimiVolume or CimiNetwork (ObserveOnly, Orphan) owned
    /// by this object, named `<system>-<member>`; Kubernetes' garbage collector removes them with the system.
    #[serde(default)]
    pub expose_members: bool,
    /// What happens to the provider system when this object is deleted: Delete (default) or Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Managed (default) or ObserveOnly (requires `import` and `deletionPolicy: Orphan`).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Adopt an existing provider system instead of creating one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "import")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.import is immutable"))]
    pub import: Option<ImportSpec>,
    /// Limits on how long operations may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What to do when the provider system is deleted behind the operator's back: Report (default: the object says ResourceGone and waits for a human) or Recreate (create it again from the spec; whatever the lost system held is lost).
    #[serde(default)]
    pub resource_gone_policy: ResourceGonePolicy,
}

/// A system template by value: the components the system is made of. A component refers to another one with
/// the symbolic href `#<component name>` (with a quantity above one, `#<name>` is its first member).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.componentDescriptors.all(c, !has(c.machineTemplate) || !has(c.machineTemplate.networkInterfaces) || c.machineTemplate.networkInterfaces.all(n, !n.network.href.startsWith('#') || self.componentDescriptors.exists(d, has(d.networkTemplate) && '#' + d.name == n.network.href)))").message("a machine's network interface refers to #name, but no network component has that name"),
    validation = Rule::new("self.componentDescriptors.all(c, !has(c.machineTemplate) || !has(c.machineTemplate.volumes) || c.machineTemplate.volumes.all(v, !v.volume.href.startsWith('#') || self.componentDescriptors.exists(d, has(d.volumeTemplate) && '#' + d.name == v.volume.href)))").message("a machine's volume refers to #name, but no volume component has that name"),
    validation = Rule::new("self.componentDescriptors.all(c, !has(c.machineTemplate) || !has(c.machineTemplate.credential) || !c.machineTemplate.credential.href.startsWith('#') || self.componentDescriptors.exists(d, has(d.credentialTemplate) && '#' + d.name == c.machineTemplate.credential.href))").message("a machine's credential refers to #name, but no credential component has that name"),
)]
pub struct SystemTemplateSpec {
    /// The components of the system, each named uniquely.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub component_descriptors: Vec<ComponentDescriptor>,
}

/// One component of a system: a machine, volume, network or credential template, and how many members to
/// make from it. Exactly one template is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.machineTemplate) ? 1 : 0) + (has(self.volumeTemplate) ? 1 : 0) + (has(self.networkTemplate) ? 1 : 0) + (has(self.credentialTemplate) ? 1 : 0) == 1").message("a component sets exactly one of machineTemplate, volumeTemplate, networkTemplate and credentialTemplate"))]
pub struct ComponentDescriptor {
    /// The component's name; with a quantity N the members are named name1 ... nameN.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"))]
    pub name: String,
    /// The component's description, given to each member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` given to each member. Keys starting with `cimi.dev/` are reserved for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// How many members to make from the template (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub quantity: Option<i32>,
    /// A machine component: a provider MachineTemplate by name or href, or a template by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_template: Option<ComponentMachineTemplate>,
    /// A volume component: a provider VolumeTemplate by name or href, or a template by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_template: Option<ComponentVolumeTemplate>,
    /// A network component: a provider NetworkTemplate by name or href, or a template by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_template: Option<ComponentNetworkTemplate>,
    /// A credential component: a provider CredentialTemplate by name or href, or a Secret's keys by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_template: Option<ComponentCredentialTemplate>,
}

/// A reference from one component to a resource: `#<component name>` for another component of this
/// template, or a provider href.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentRef {
    /// `#<component name>`, or the href of a provider resource.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("!self.startsWith('#') || self.matches('^#[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$')").message("a symbolic reference is # followed by a component name"))]
    pub href: String,
}

/// A network interface of a machine component.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentNetworkInterface {
    /// The network: `#<network component>` or a provider Network href.
    pub network: ComponentRef,
}

/// A volume attached to a machine component.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentVolume {
    /// The volume: `#<volume component>` or a provider Volume href.
    pub volume: ComponentRef,
    /// Where the volume appears in the machine, such as `/dev/vdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub initial_location: Option<String>,
}

/// The machine template of a component: a provider MachineTemplate by `name` or `href` (the other fields then
/// override the template's), or `machineConfig` and `machineImage` by value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.name) && has(self.href))").message("machineTemplate: set at most one of name and href"),
    validation = Rule::new("has(self.name) || has(self.href) || (has(self.machineConfig) && has(self.machineImage))").message("machineTemplate: name or href of a provider MachineTemplate, or both machineConfig and machineImage"),
)]
pub struct ComponentMachineTemplate {
    /// The CIMI name of a provider MachineTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The href of a provider MachineTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub href: Option<String>,
    /// A provider MachineConfiguration, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_config: Option<CatalogRef>,
    /// The provider MachineImage to boot, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_image: Option<CatalogRef>,
    /// The credential: `#<credential component>` or a provider Credential href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<ComponentRef>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub network_interfaces: Vec<ComponentNetworkInterface>,
    /// Attached volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub volumes: Vec<ComponentVolume>,
}

/// The volume template of a component: a provider VolumeTemplate by `name` or `href`, or by value a
/// `volumeConfig` from the catalog or an inline `capacity`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.name) ? 1 : 0) + (has(self.href) ? 1 : 0) + (has(self.volumeConfig) ? 1 : 0) + (has(self.capacity) ? 1 : 0) == 1").message("volumeTemplate: set exactly one of name, href, volumeConfig and capacity"))]
pub struct ComponentVolumeTemplate {
    /// The CIMI name of a provider VolumeTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The href of a provider VolumeTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub href: Option<String>,
    /// A provider VolumeConfiguration, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_config: Option<CatalogRef>,
    /// Capacity as a Kubernetes quantity (such as `10Gi`), sent to CIMI in kilobytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::quantity::quantity_schema")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("capacity must be a positive quantity such as 10Gi"))]
    pub capacity: Option<Quantity>,
}

/// The network template of a component: a provider NetworkTemplate by `name` or `href`, or a
/// `networkConfig` from the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.name) ? 1 : 0) + (has(self.href) ? 1 : 0) + (has(self.networkConfig) ? 1 : 0) == 1").message("networkTemplate: set exactly one of name, href and networkConfig"))]
pub struct ComponentNetworkTemplate {
    /// The CIMI name of a provider NetworkTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The href of a provider NetworkTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub href: Option<String>,
    /// A provider NetworkConfiguration, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<CatalogRef>,
}

/// The credential template of a component: a provider CredentialTemplate by `name` or `href`, or a Secret in
/// this namespace whose keys become the Credential's attributes (for example `userID` and `password`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.name) ? 1 : 0) + (has(self.href) ? 1 : 0) + (has(self.credentialSecretRef) ? 1 : 0) == 1").message("credentialTemplate: set exactly one of name, href and credentialSecretRef"))]
pub struct ComponentCredentialTemplate {
    /// The CIMI name of a provider CredentialTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The href of a provider CredentialTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub href: Option<String>,
    /// A Secret in this namespace whose keys become the Credential's attributes (never shown in status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_secret_ref: Option<SecretRef>,
}

/// What the operator observed of the system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiSystemStatus {
    /// State (the provider's, MIXED when its machines disagree), Job, conditions and the other fields every kind
    /// shares. `job` is the system's own Job; `nestedJobs` shows its components' Jobs.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// How many members are in the desired state, of how many, and in which provider states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<MemberCounts>,
    /// The system's machines (at most 100 are listed; the counts cover all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachineMember>,
    /// The system's volumes (at most 100 are listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMember>,
    /// The system's networks (at most 100 are listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<SystemMember>,
    /// The nested Jobs of the latest system Job: one per component operation, with its progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nested_jobs: Vec<NestedJob>,
    /// The CimiMachine, CimiVolume and CimiNetwork objects that show the members (`spec.exposeMembers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<String>,
}

/// The members of a system in numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberCounts {
    /// Members in the desired state: machines in the spec's power state, volumes AVAILABLE, networks STARTED.
    pub ready: i32,
    /// All members (machines, volumes and networks).
    pub total: i32,
    /// `ready/total`, for the printer column (such as `3/4`).
    pub summary: String,
    /// How many members are in each provider state, such as `STARTED: 2`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<String, i32>,
}

/// What every member of a system has, as the provider reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemMember {
    /// The member's CIMI name (such as `web1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The member's href.
    pub href: String,
    /// The member's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The last of the member's provider events mirrored onto the system as a Kubernetes Event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_cursor: Option<EventCursor>,
}

/// A machine of a system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineMember {
    /// Name, href, state and event cursor.
    #[serde(flatten)]
    pub member: SystemMember,
    /// The machine's IP addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Number of CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// Memory, as a Kubernetes quantity (CIMI states it in KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A volume of a system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMember {
    /// Name, href, state and event cursor.
    #[serde(flatten)]
    pub member: SystemMember,
    /// Capacity, as a Kubernetes quantity (CIMI states it in kilobytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<String>,
}

impl AsRef<SystemMember> for SystemMember {
    fn as_ref(&self) -> &SystemMember {
        self
    }
}

impl AsRef<SystemMember> for MachineMember {
    fn as_ref(&self) -> &SystemMember {
        &self.member
    }
}

impl AsRef<SystemMember> for VolumeMember {
    fn as_ref(&self) -> &SystemMember {
        &self.member
    }
}

impl CimiSystemStatus {
    /// Every member (machines, volumes, networks) by what they share.
    pub fn all_members(&self) -> impl Iterator<Item = &SystemMember> {
        self.machines
            .iter()
            .map(|m| &m.member)
            .chain(self.volumes.iter().map(|v| &v.member))
            .chain(self.networks.iter())
    }

    /// Every member, to update what they share.
    pub fn all_members_mut(&mut self) -> impl Iterator<Item = &mut SystemMember> {
        self.machines
            .iter_mut()
            .map(|m| &mut m.member)
            .chain(self.volumes.iter_mut().map(|v| &mut v.member))
            .chain(self.networks.iter_mut())
    }
}

/// A nested Job of the system's Job: one component's part of a system operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NestedJob {
    /// The component member the Job works on (its CIMI name, or its href when it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The Job, its action, state, progress and status message.
    #[serde(flatten)]
    pub job: JobStatus,
}
