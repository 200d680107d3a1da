//! `CimiNetwork`: a provider Network, from an inline configuration or a catalog configuration or template.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    CatalogRef, DeletionPolicy, ImportSpec, ManagedStatus, ManagementPolicy, Properties, ProviderRef,
    ResourceGonePolicy, Timeouts,
};

/// Whether a network is reachable from outside the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NetworkType {
    /// Reachable from outside (CIMI PUBLIC).
    Public,
    /// Internal to the provider (CIMI PRIVATE).
    Private,
}

impl NetworkType {
    /// The CIMI value of this network type.
    pub fn cimi_value(self) -> &'static str {
        match self {
            NetworkType::Public => "PUBLIC",
            NetworkType::Private => "PRIVATE",
        }
    }
}

/// A CimiNetwork declares one provider Network that CimiMachines connect to.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cimi.dev",
    version = "v1alpha1",
    kind = "CimiNetwork",
    plural = "ciminetworks",
    singular = "ciminetwork",
    namespaced,
    status = "CimiNetworkStatus",
    shortname = "ciminet",
    category = "cimi",
    derive = "PartialEq",
    doc = "A provider Network managed through DMTF CIMI.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Whether the network exists, is started and matches the spec"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state", description = "The provider's state of the network"),
    printcolumn(name = "Type", type_ = "string", json_path = ".status.networkType", description = "PUBLIC or PRIVATE"),
    printcolumn(name = "MTU", type_ = "integer", json_path = ".status.mtu", description = "Maximum transmission unit", priority = 1),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", description = "Why the network is (not) ready", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("metadata.name must be at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__import__) || (has(self.networkType) ? 1 : 0) + (has(self.networkConfig) ? 1 : 0) + (has(self.networkTemplate) ? 1 : 0) == 1").message("set exactly one of spec.networkType (inline), spec.networkConfig and spec.networkTemplate"),
    validation = Rule::new("has(self.networkType) || !(has(self.mtu) || has(self.classOfService))").message("spec.mtu and spec.classOfService need an inline spec.networkType"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || self.deletionPolicy == 'Orphan'").message("managementPolicy ObserveOnly requires deletionPolicy Orphan"),
    validation = Rule::new("self.resourceGonePolicy != 'Recreate' || (self.managementPolicy == 'Managed' && !has(self.__import__))").message("resourceGonePolicy Recreate needs a Managed object that is not imported: only what the operator created can be created again"),
    validation = Rule::new("self.managementPolicy != 'ObserveOnly' || has(self.__import__)").message("managementPolicy ObserveOnly requires spec.import: it observes an existing network and never creates one"),
    validation = Rule::new("has(self.networkConfig) == has(oldSelf.networkConfig) && has(self.networkTemplate) == has(oldSelf.networkTemplate) && has(self.networkType) == has(oldSelf.networkType)").message("spec.networkType, spec.networkConfig and spec.networkTemplate cannot be added or removed after creation"),
    validation = Rule::new("has(self.__import__) == has(oldSelf.__import__)").message("spec.import cannot be added or removed after creation"),
)]
pub struct CimiNetworkSpec {
    /// The CimiProvider that serves this network. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.providerRef is immutable"))]
    pub provider_ref: ProviderRef,
    /// The CIMI `name` of the network. Defaults to the object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The CIMI `description` of the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CIMI `properties` of the network. Keys starting with `cimi.dev/` are reserved for the operator's tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('cimi.dev/'))").message("properties keys starting with cimi.dev/ are reserved for the operator"))]
    pub properties: Option<Properties>,
    /// Inline configuration: Public or Private. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.networkType is immutable"))]
    pub network_type: Option<NetworkType>,
    /// Inline configuration: the maximum transmission unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<i32>,
    /// Inline configuration: the provider's class of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub class_of_service: Option<String>,
    /// A provider NetworkConfiguration, by name or href. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.networkConfig is immutable"))]
    pub network_config: Option<CatalogRef>,
    /// A provider NetworkTemplate, by name or href. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.networkTemplate is immutable"))]
    pub network_template: Option<CatalogRef>,
    /// What happens to the provider network when this object is deleted: Delete (default) or Orphan.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Managed (default) or ObserveOnly (requires `import` and `deletionPolicy: Orphan`).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    /// Adopt an existing provider network instead of creating one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "import")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.import is immutable"))]
    pub import: Option<ImportSpec>,
    /// Limits on how long operations may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// What to do when the provider network is deleted behind the operator's back: Report (default: the object says ResourceGone and waits for a human) or Recreate (create it again from the spec; whatever the lost network held is lost).
    #[serde(default)]
    pub resource_gone_policy: ResourceGonePolicy,
}

/// What the operator observed of the network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CimiNetworkStatus {
    /// State, Job, conditions and the other fields every kind shares.
    #[serde(flatten)]
    pub common: ManagedStatus,
    /// PUBLIC or PRIVATE, as the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_type: Option<String>,
    /// The maximum transmission unit the provider reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// The class of service the provider reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_of_service: Option<String>,
}
