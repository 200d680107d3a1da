//! `CimiSystem`: a provider System, a group of machines, volumes and networks made from one template.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CatalogRef, DeletionPolicy, ImportSpec, ManagedStatus, ManagementPolicy, Properties, ProviderRef, Timeouts,
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
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the system"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the system is in the desired state"),
    printcolumn(name = "Members", type_ = "string", json_path = ".status.membersDisplay", description = "Members in the desired state / all members"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__import__) || has(self.templateRef) != has(self.template)").message("set exactly one of spec.templateRef and spec.template"),
    validation = Rule::new("!(has(self.templateRef) && has(self.template))").message("spec.templateRef and spec.template are mutually exclusive"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing system and never creates one"),
    validation = Rule::new("has(self.templateRef) == has(oldSelf.templateRef) && has(self.template) == has(oldSelf.template)").message("spec.templateRef and spec.template cannot be added or removed after creation"),
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
    /// A provider SystemTemplate, by name or href. Exclusive with `template`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.templateRef is immutable"))]
    pub template_ref: Option<CatalogRef>,
    /// The system's template by value. Exclusive with `templateRef`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.template is immutable; create a new CimiSystem instead"))]
    pub template: Option<SystemTemplateSpec>,
    /// The power state to keep the system's machines in: Started, Stopped, Paused or Suspended.
    #[serde(default)]
    pub power_state: PowerState,
    /// List every member resource (kind, name, href, state) in `status.members`.
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
}

/// A system template by value: the components the system is made of.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemTemplateSpec {
    /// The components of the system, each named uniquely.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub component_descriptors: Vec<ComponentDescriptor>,
}

/// One component of a system: a machine, volume or network template (by name or href) and how many to make. Exactly one template is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.machineTemplate) ? 1 : 0) + (has(self.volumeTemplate) ? 1 : 0) + (has(self.networkTemplate) ? 1 : 0) == 1").message("a component sets exactly one of machineTemplate, volumeTemplate and networkTemplate"))]
pub struct ComponentDescriptor {
    /// The component's name; with a quantity N the members are named name1 ... nameN.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"))]
    pub name: String,
    /// The component's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// How many members to make from the template (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub quantity: Option<i32>,
    /// A provider MachineTemplate, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_template: Option<CatalogRef>,
    /// A provider VolumeTemplate, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_template: Option<CatalogRef>,
    /// A provider NetworkTemplate, by name or href.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_template: Option<CatalogRef>,
}

/// What the operator observed of the system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiSystemStatus {
    /// State, Job, conditions and the other fields every kind shares.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// Members in the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_ready: Option<i32>,
    /// All members of the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_total: Option<i32>,
    /// `ready/total`, for printer columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_display: Option<String>,
    /// The members, when `spec.exposeMembers` is set (at most 100 are listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<SystemMember>,
}

/// One member resource of a system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemMember {
    /// Machine, Volume, Network, ...
    pub kind: String,
    /// The member's CIMI name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The member's href.
    pub href: String,
    /// The member's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}
