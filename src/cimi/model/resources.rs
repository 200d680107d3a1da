//! The resource structs of the CIMI 1.x model, and the bodies of create and action requests.
//!
//! Each struct carries the common attributes, its own attributes (all optional: an absent attribute is
//! undefined), and `extra`, which keeps unknown attributes for echoing. Dates are xsd:dateTime with their
//! offset kept; memory is in KiB and capacities in kilobytes, as the standard states them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{Location, Operation, Ref, RefOr, Resource, action_uri};

/// An xsd:dateTime with its offset kept.
pub type Timestamp = chrono::DateTime<chrono::FixedOffset>;

/// Declares a resource struct with the common attributes, the given attributes and the `extra` map.
macro_rules! cimi_resource {
    (
        $(#[$meta:meta])*
        $name:ident ($type_name:literal, $collection_key:literal) {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// The type URI, `http://schemas.dmtf.org/cimi/1/<Type>`; always present in provider output.
            #[serde(rename = "resourceURI", default, skip_serializing_if = "Option::is_none")]
            pub resource_uri: Option<String>,
            /// The resource's own URI (read-only).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            /// A human-readable name (consumer-writable).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            /// A human-readable description (consumer-writable).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub description: Option<String>,
            /// When the resource was created (read-only).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub created: Option<Timestamp>,
            /// When the resource was last edited (read-only; actions do not change it).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub updated: Option<Timestamp>,
            /// Consumer-defined key/value pairs the provider stores and echoes.
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub properties: BTreeMap<String, String>,
            /// The operations allowed now (read-only).
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub operations: Vec<Operation>,
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Attributes this model does not know (provider extensions), kept so a full PUT can echo them.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }

        impl Resource for $name {
            const TYPE_NAME: &'static str = $type_name;
            const COLLECTION_KEY: &'static str = $collection_key;
            fn id(&self) -> Option<&str> {
                self.id.as_deref()
            }
            fn extra(&self) -> &Map<String, Value> {
                &self.extra
            }
            fn typed() -> Self {
                Self { resource_uri: Some(Self::resource_uri()), ..Default::default() }
            }
            fn describe(&mut self, name: String, description: Option<String>, properties: BTreeMap<String, String>) {
                self.resource_uri = Some(Self::resource_uri());
                self.name = Some(name);
                self.description = description;
                self.properties = properties;
            }
        }
    };
}

cimi_resource! {
    /// The CloudEntryPoint: the root of a provider, linking every collection this consumer may use.
    CloudEntryPoint("CloudEntryPoint", "cloudEntryPoints") {
        /// The base URI relative references resolve against (ends with `/`).
        #[serde(rename = "baseURI")]
        base_uri: String,
        /// The ResourceMetadata collection.
        resource_metadata: Ref,
        /// The System collection.
        systems: Ref,
        /// The SystemTemplate collection.
        system_templates: Ref,
        /// The Machine collection.
        machines: Ref,
        /// The MachineTemplate collection.
        machine_templates: Ref,
        /// The MachineConfiguration collection.
        machine_configs: Ref,
        /// The MachineImage collection.
        machine_images: Ref,
        /// The Credential collection.
        credentials: Ref,
        /// The CredentialTemplate collection.
        credential_templates: Ref,
        /// The Volume collection.
        volumes: Ref,
        /// The VolumeTemplate collection.
        volume_templates: Ref,
        /// The VolumeConfiguration collection.
        volume_configs: Ref,
        /// The VolumeImage collection.
        volume_images: Ref,
        /// The Network collection.
        networks: Ref,
        /// The NetworkTemplate collection.
        network_templates: Ref,
        /// The NetworkConfiguration collection.
        network_configs: Ref,
        /// The NetworkPort collection.
        network_ports: Ref,
        /// The NetworkPortTemplate collection.
        network_port_templates: Ref,
        /// The NetworkPortConfiguration collection.
        network_port_configs: Ref,
        /// The Address collection.
        addresses: Ref,
        /// The AddressTemplate collection.
        address_templates: Ref,
        /// The ForwardingGroup collection.
        forwarding_groups: Ref,
        /// The ForwardingGroupTemplate collection.
        forwarding_group_templates: Ref,
        /// The Job collection.
        jobs: Ref,
        /// The Meter collection.
        meters: Ref,
        /// The MeterTemplate collection.
        meter_templates: Ref,
        /// The MeterConfiguration collection.
        meter_configs: Ref,
        /// The EventLog collection.
        event_logs: Ref,
        /// The EventLogTemplate collection.
        event_log_templates: Ref,
    }
}

/// One attribute described by a ResourceMetadata (1.x form).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataAttribute {
    /// The attribute name, e.g. `userID`.
    pub name: String,
    /// The namespace of an extension attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The type, e.g. `string`, `integer`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Whether a consumer must supply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Anything else the provider says about it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One capability of a resource type; an absent value means boolean true.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// The short name, e.g. `DefaultInitialState`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The capability URI.
    pub uri: String,
    /// A human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value, as a string (XML element text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One provider-defined action described by a ResourceMetadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataAction {
    /// The short name.
    pub name: String,
    /// The action URI (the operation rel).
    pub uri: String,
    /// A human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The type URI of the request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_message: Option<String>,
    /// The type URI of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_message: Option<String>,
}

cimi_resource! {
    /// The description of a resource type: extension attributes, capabilities and actions.
    ResourceMetadata("ResourceMetadata", "resourceMetadatas") {
        /// The `resourceURI` of the type described.
        #[serde(rename = "typeURI")]
        type_uri: String,
        /// Extension attributes and constraints.
        attributes: Vec<MetadataAttribute>,
        /// Capabilities of the type.
        capabilities: Vec<Capability>,
        /// Provider-defined actions.
        actions: Vec<MetadataAction>,
    }
}

cimi_resource! {
    /// A Machine: an instantiated compute resource.
    Machine("Machine", "machines") {
        /// CREATING, STARTING, STARTED, STOPPING, STOPPED, PAUSING, PAUSED, SUSPENDING, SUSPENDED, DELETING, ERROR.
        state: String,
        /// Number of CPUs.
        cpu: i64,
        /// Memory in KiB.
        memory: i64,
        /// The Disk collection.
        disks: Ref,
        /// CPU architecture, e.g. `x86_64`.
        cpu_arch: String,
        /// CPU speed in MHz.
        cpu_speed: i64,
        /// The MachineVolume collection (attached volumes).
        volumes: Ref,
        /// The MachineNetworkInterface collection.
        network_interfaces: Ref,
        /// The latest snapshot image.
        latest_snapshot: Ref,
        /// The MachineSnapshot collection.
        snapshots: Ref,
        /// The Meter collection of this machine.
        meters: Ref,
        /// The EventLog of this machine.
        event_log: Ref,
    }
}

/// A disk of a MachineConfiguration: capacity in kilobytes, format, and optional location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskConfig {
    /// Capacity in kilobytes.
    pub capacity: i64,
    /// File system format, e.g. `ext4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Where the disk appears in the machine, e.g. `/dev/sda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_location: Option<String>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

cimi_resource! {
    /// The hardware of a machine: cpu, memory and disks.
    MachineConfiguration("MachineConfiguration", "machineConfigurations") {
        /// Number of CPUs.
        cpu: i64,
        /// Memory in KiB.
        memory: i64,
        /// Disks created with the machine.
        disks: Vec<DiskConfig>,
        /// CPU architecture.
        cpu_arch: String,
        /// CPU speed in MHz.
        cpu_speed: i64,
    }
}

cimi_resource! {
    /// An image a machine boots from (IMAGE), or a snapshot of a machine (SNAPSHOT, PARTIAL_SNAPSHOT).
    MachineImage("MachineImage", "machineImages") {
        /// CREATING, AVAILABLE, DELETING, ERROR.
        state: String,
        /// IMAGE, SNAPSHOT or PARTIAL_SNAPSHOT.
        #[serde(rename = "type")]
        type_: String,
        /// Where the image data is (for a capture: the machine's URI).
        image_location: Location,
        /// The image this one derives from.
        related_image: Ref,
    }
}

cimi_resource! {
    /// A Credential; its attributes (e.g. `userID`, `password`) are provider-defined, advertised in the
    /// Credential ResourceMetadata, and kept in `extra`.
    Credential("Credential", "credentials") {}
}

cimi_resource! {
    /// A CredentialTemplate; like a Credential, its attributes are provider-defined and kept in `extra`.
    CredentialTemplate("CredentialTemplate", "credentialTemplates") {}
}

/// A volume to attach at machine creation: `{href, initialLocation}` (MachineTemplate `volumes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineTemplateVolume {
    /// The Volume.
    pub href: String,
    /// Where it appears in the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_location: Option<String>,
}

/// A volume to create and attach at machine creation (MachineTemplate `volumeTemplates`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineTemplateVolumeTemplate {
    /// A VolumeTemplate reference (with optional overrides in its `extra`); absent when given by value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// Where it appears in the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_location: Option<String>,
    /// The VolumeTemplate attributes given by value (or overrides).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A network interface to create with the machine (MachineTemplate `networkInterfaces`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineTemplateNetworkInterface {
    /// Addresses to use (Address references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Ref>>,
    /// The Network (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Ref>,
    /// The NetworkPort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_port: Option<Ref>,
    /// The interface state (ACTIVE, PASSIVE, DISABLED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Maximum transmission unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Unknown attributes.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

cimi_resource! {
    /// The constructor data of a machine.
    MachineTemplate("MachineTemplate", "machineTemplates") {
        /// The state the machine goes to after CREATING.
        initial_state: String,
        /// The hardware.
        machine_config: RefOr<MachineConfiguration>,
        /// The image.
        machine_image: RefOr<MachineImage>,
        /// The initial credential.
        credential: RefOr<Credential>,
        /// Existing volumes to attach.
        volumes: Vec<MachineTemplateVolume>,
        /// Volumes to create and attach.
        volume_templates: Vec<MachineTemplateVolumeTemplate>,
        /// Network interfaces to create.
        network_interfaces: Vec<MachineTemplateNetworkInterface>,
        /// Base64 user data.
        user_data: String,
        /// Meters to create with the machine.
        meter_templates: Vec<RefOr<MeterTemplate>>,
        /// The EventLog to create with the machine.
        event_log_template: RefOr<EventLogTemplate>,
    }
}

cimi_resource! {
    /// The body of a Machine create: name, description, properties and the template (by value or reference).
    MachineCreate("MachineCreate", "machineCreates") {
        /// The template, by value or `{href, overrides…}`.
        machine_template: RefOr<MachineTemplate>,
    }
}

cimi_resource! {
    /// The body of a Credential create.
    CredentialCreate("CredentialCreate", "credentialCreates") {
        /// The template, by value or `{href, overrides…}`.
        credential_template: RefOr<CredentialTemplate>,
    }
}

cimi_resource! {
    /// A disk of a machine (entry of the machine's `disks` collection).
    Disk("Disk", "disks") {
        /// Capacity in kilobytes.
        capacity: i64,
        /// File system format.
        format: String,
        /// Where the disk appears in the machine.
        initial_location: String,
    }
}

cimi_resource! {
    /// A volume attached to a machine (entry of the machine's `volumes` collection).
    MachineVolume("MachineVolume", "machineVolumes") {
        /// Where the volume appears in the machine.
        initial_location: String,
        /// The Volume.
        volume: Ref,
    }
}

cimi_resource! {
    /// A network interface of a machine.
    MachineNetworkInterface("MachineNetworkInterface", "machineNetworkInterfaces") {
        /// The MachineNetworkInterfaceAddress collection.
        addresses: Ref,
        /// The Network.
        network: Ref,
        /// The NetworkPort.
        network_port: Ref,
        /// ACTIVE, PASSIVE or DISABLED.
        state: String,
        /// The MAC address.
        mac_address: String,
        /// Maximum transmission unit.
        mtu: i64,
    }
}

cimi_resource! {
    /// An address of a machine network interface.
    MachineNetworkInterfaceAddress("MachineNetworkInterfaceAddress", "machineNetworkInterfaceAddresses") {
        /// The Address.
        address: Ref,
    }
}

cimi_resource! {
    /// A snapshot of a machine (entry of the machine's `snapshots` collection).
    MachineSnapshot("MachineSnapshot", "machineSnapshots") {
        /// The snapshot MachineImage.
        snapshot: Ref,
    }
}

cimi_resource! {
    /// A Volume: block or file-system storage that can be attached to machines.
    Volume("Volume", "volumes") {
        /// CREATING, AVAILABLE, CAPTURING, DELETING, ERROR.
        state: String,
        /// The volume type URI, e.g. `http://schemas.dmtf.org/cimi/1/mapped`.
        #[serde(rename = "type")]
        type_: String,
        /// Capacity in kilobytes.
        capacity: i64,
        /// Whether machines can boot from it.
        bootable: bool,
        /// The VolumeVolumeImage collection.
        images: Ref,
        /// The Meter collection.
        meters: Ref,
        /// The EventLog.
        event_log: Ref,
    }
}

cimi_resource! {
    /// The constructor data of a volume.
    VolumeTemplate("VolumeTemplate", "volumeTemplates") {
        /// The configuration (required).
        volume_config: RefOr<VolumeConfiguration>,
        /// The image to initialise it from.
        volume_image: RefOr<VolumeImage>,
        /// Meters to create.
        meter_templates: Vec<RefOr<MeterTemplate>>,
        /// The EventLog to create.
        event_log_template: RefOr<EventLogTemplate>,
    }
}

cimi_resource! {
    /// The shape of a volume: type, format and capacity.
    VolumeConfiguration("VolumeConfiguration", "volumeConfigurations") {
        /// The volume type URI.
        #[serde(rename = "type")]
        type_: String,
        /// File system format (absent: unformatted).
        format: String,
        /// Capacity in kilobytes.
        capacity: i64,
    }
}

cimi_resource! {
    /// An image a volume is initialised from, or a snapshot of a volume.
    VolumeImage("VolumeImage", "volumeImages") {
        /// CREATING, AVAILABLE, DELETING, ERROR.
        state: String,
        /// Where the image data is.
        image_location: Location,
        /// Whether it is bootable.
        bootable: bool,
    }
}

cimi_resource! {
    /// An image of a volume (entry of the volume's `images` collection).
    VolumeVolumeImage("VolumeVolumeImage", "volumeVolumeImages") {
        /// The VolumeImage.
        volume_image: Ref,
    }
}

cimi_resource! {
    /// The body of a Volume create.
    VolumeCreate("VolumeCreate", "volumeCreates") {
        /// The template, by value or `{href, overrides…}`.
        volume_template: RefOr<VolumeTemplate>,
    }
}

cimi_resource! {
    /// A Network: a layer 2 broadcast domain.
    Network("Network", "networks") {
        /// CREATING, STARTING, STARTED, STOPPING, STOPPED, DELETING, ERROR.
        state: String,
        /// PUBLIC or PRIVATE.
        network_type: String,
        /// Maximum transmission unit.
        mtu: i64,
        /// Class of service.
        class_of_service: String,
        /// The NetworkNetworkPort collection.
        network_ports: Ref,
        /// The ForwardingGroup it belongs to.
        forwarding_group: Ref,
        /// The Meter collection.
        meters: Ref,
        /// The EventLog.
        event_log: Ref,
    }
}

cimi_resource! {
    /// The constructor data of a network.
    NetworkTemplate("NetworkTemplate", "networkTemplates") {
        /// The state after CREATING.
        initial_state: String,
        /// The configuration.
        network_config: RefOr<NetworkConfiguration>,
        /// The ForwardingGroup to join.
        forwarding_group: Ref,
        /// Meters to create.
        meter_templates: Vec<RefOr<MeterTemplate>>,
        /// The EventLog to create.
        event_log_template: RefOr<EventLogTemplate>,
    }
}

cimi_resource! {
    /// The shape of a network.
    NetworkConfiguration("NetworkConfiguration", "networkConfigurations") {
        /// PUBLIC or PRIVATE.
        network_type: String,
        /// Maximum transmission unit.
        mtu: i64,
        /// Class of service.
        class_of_service: String,
    }
}

cimi_resource! {
    /// The body of a Network create.
    NetworkCreate("NetworkCreate", "networkCreates") {
        /// The template, by value or `{href, overrides…}`.
        network_template: RefOr<NetworkTemplate>,
    }
}

cimi_resource! {
    /// A port of a network.
    NetworkPort("NetworkPort", "networkPorts") {
        /// As Network.
        state: String,
        /// The Network.
        network: Ref,
        /// ACCESS or TRUNK.
        port_type: String,
        /// Class of service.
        class_of_service: String,
        /// The Meter collection.
        meters: Ref,
        /// The EventLog.
        event_log: Ref,
    }
}

cimi_resource! {
    /// The constructor data of a network port.
    NetworkPortTemplate("NetworkPortTemplate", "networkPortTemplates") {
        /// The Network.
        network: Ref,
        /// The configuration.
        network_port_config: RefOr<NetworkPortConfiguration>,
    }
}

cimi_resource! {
    /// The shape of a network port.
    NetworkPortConfiguration("NetworkPortConfiguration", "networkPortConfigurations") {
        /// ACCESS or TRUNK.
        port_type: String,
        /// Class of service.
        class_of_service: String,
    }
}

cimi_resource! {
    /// The body of a NetworkPort create.
    NetworkPortCreate("NetworkPortCreate", "networkPortCreates") {
        /// The template, by value or `{href, overrides…}`.
        network_port_template: RefOr<NetworkPortTemplate>,
    }
}

cimi_resource! {
    /// A port of a network (entry of the network's `networkPorts` collection).
    NetworkNetworkPort("NetworkNetworkPort", "networkNetworkPorts") {
        /// The NetworkPort.
        network_port: Ref,
    }
}

cimi_resource! {
    /// An IP address.
    Address("Address", "addresses") {
        /// The address.
        ip: String,
        /// The host name.
        hostname: String,
        /// dynamic or static.
        allocation: String,
        /// The default gateway.
        default_gateway: String,
        /// DNS servers.
        dns: String,
        /// IPv4 or IPv6.
        protocol: String,
        /// The network mask.
        mask: String,
        /// The Network it belongs to.
        network: Ref,
        /// The resource using it.
        resource: Ref,
    }
}

cimi_resource! {
    /// The constructor data of an address.
    AddressTemplate("AddressTemplate", "addressTemplates") {
        /// The address.
        ip: String,
        /// The host name.
        hostname: String,
        /// dynamic or static.
        allocation: String,
        /// The default gateway.
        default_gateway: String,
        /// DNS servers.
        dns: String,
        /// IPv4 or IPv6.
        protocol: String,
        /// The network mask.
        mask: String,
        /// The Network.
        network: Ref,
    }
}

cimi_resource! {
    /// The body of an Address create.
    AddressCreate("AddressCreate", "addressCreates") {
        /// The template, by value or `{href, overrides…}`.
        address_template: RefOr<AddressTemplate>,
    }
}

cimi_resource! {
    /// A group of networks that forward traffic to each other.
    ForwardingGroup("ForwardingGroup", "forwardingGroups") {
        /// The ForwardingGroupNetwork collection.
        networks: Ref,
    }
}

cimi_resource! {
    /// The constructor data of a forwarding group.
    ForwardingGroupTemplate("ForwardingGroupTemplate", "forwardingGroupTemplates") {
        /// The networks to join.
        networks: Vec<Ref>,
    }
}

cimi_resource! {
    /// The body of a ForwardingGroup create.
    ForwardingGroupCreate("ForwardingGroupCreate", "forwardingGroupCreates") {
        /// The template, by value or `{href, overrides…}`.
        forwarding_group_template: RefOr<ForwardingGroupTemplate>,
    }
}

cimi_resource! {
    /// A System: resources managed as one unit.
    System("System", "systems") {
        /// As Machine, plus MIXED when its machines disagree.
        state: String,
        /// The SystemSystem collection.
        systems: Ref,
        /// The SystemMachine collection.
        machines: Ref,
        /// The SystemCredential collection.
        credentials: Ref,
        /// The SystemVolume collection.
        volumes: Ref,
        /// The SystemNetwork collection.
        networks: Ref,
        /// The SystemNetworkPort collection.
        network_ports: Ref,
        /// The SystemAddress collection.
        addresses: Ref,
        /// The SystemForwardingGroup collection.
        forwarding_groups: Ref,
        /// The Meter collection.
        meters: Ref,
        /// The EventLog.
        event_log: Ref,
    }
}

cimi_resource! {
    /// One component of a SystemTemplate: a template of some type, `quantity` times.
    ComponentDescriptor("ComponentDescriptor", "componentDescriptors") {
        /// The type URI of the component, e.g. `http://schemas.dmtf.org/cimi/1/Machine`.
        #[serde(rename = "type")]
        type_: String,
        /// How many to create; names become `name1…nameN` when above one.
        quantity: i64,
        /// A machine component.
        machine_template: RefOr<MachineTemplate>,
        /// A volume component.
        volume_template: RefOr<VolumeTemplate>,
        /// A network component.
        network_template: RefOr<NetworkTemplate>,
        /// A credential component.
        credential_template: RefOr<CredentialTemplate>,
        /// A nested system component.
        system_template: RefOr<SystemTemplate>,
        /// An address component.
        address_template: RefOr<AddressTemplate>,
        /// A network port component.
        network_port_template: RefOr<NetworkPortTemplate>,
        /// A forwarding group component.
        forwarding_group_template: RefOr<ForwardingGroupTemplate>,
    }
}

cimi_resource! {
    /// The constructor data of a system.
    SystemTemplate("SystemTemplate", "systemTemplates") {
        /// The components.
        component_descriptors: Vec<ComponentDescriptor>,
        /// Meters to create.
        meter_templates: Vec<RefOr<MeterTemplate>>,
        /// The EventLog to create.
        event_log_template: RefOr<EventLogTemplate>,
    }
}

cimi_resource! {
    /// The body of a System create.
    SystemCreate("SystemCreate", "systemCreates") {
        /// The template, by value or `{href, overrides…}`.
        system_template: RefOr<SystemTemplate>,
    }
}

cimi_resource! {
    /// A machine of a system.
    SystemMachine("SystemMachine", "systemMachines") {
        /// The Machine.
        machine: Ref,
    }
}

cimi_resource! {
    /// A volume of a system.
    SystemVolume("SystemVolume", "systemVolumes") {
        /// The Volume.
        volume: Ref,
    }
}

cimi_resource! {
    /// A network of a system.
    SystemNetwork("SystemNetwork", "systemNetworks") {
        /// The Network.
        network: Ref,
    }
}

cimi_resource! {
    /// A credential of a system.
    SystemCredential("SystemCredential", "systemCredentials") {
        /// The Credential.
        credential: Ref,
    }
}

cimi_resource! {
    /// A Job: a process the provider runs for an operation.
    Job("Job", "jobs") {
        /// QUEUED, RUNNING, FAILED, SUCCESS, STOPPING, STOPPED.
        state: String,
        /// The resource operated on (for `add`: the collection).
        target_resource: Ref,
        /// Every resource affected, including the target.
        affected_resources: Vec<Ref>,
        /// `add`, `edit`, `delete` or an action URI.
        action: String,
        /// The result code (0 = success).
        return_code: i64,
        /// Percent done, 100 when finished.
        progress: i64,
        /// A human-readable status.
        status_message: String,
        /// When the state last changed.
        time_of_status_change: Timestamp,
        /// The parent Job.
        parent_job: Ref,
        /// Nested Jobs.
        nested_jobs: Vec<Ref>,
    }
}

cimi_resource! {
    /// A Meter: samples of one aspect of a resource.
    Meter("Meter", "meters") {
        /// The metered resource.
        target_resource: Ref,
        /// The aspect URI, e.g. `http://schemas.dmtf.org/cimi/1/aspect/cpu`.
        aspect: String,
        /// Units, e.g. `percent`.
        units: String,
        /// Seconds between samples.
        sample_interval: i64,
        /// Point or Interval.
        time_scope: String,
        /// The interval length (xsd:duration).
        interval_duration: String,
        /// Whether it samples continuously.
        is_continuous: bool,
        /// The Sample collection.
        samples: Ref,
        /// Lowest value seen.
        min_value: String,
        /// Highest value seen.
        max_value: String,
        /// When sampling stops.
        stop_time: Timestamp,
        /// When the meter expires.
        expires_time: Timestamp,
    }
}

cimi_resource! {
    /// One sample of a meter.
    Sample("Sample", "samples") {
        /// When it was taken.
        timestamp: Timestamp,
        /// The value.
        value: String,
    }
}

cimi_resource! {
    /// The constructor data of a meter.
    MeterTemplate("MeterTemplate", "meterTemplates") {
        /// The resource to meter.
        target_resource: Ref,
        /// The configuration.
        meter_config: RefOr<MeterConfiguration>,
    }
}

cimi_resource! {
    /// The shape of a meter.
    MeterConfiguration("MeterConfiguration", "meterConfigurations") {
        /// The resources it applies to.
        associated_to: Vec<Ref>,
        /// The aspect URI.
        aspect: String,
        /// Units.
        units: String,
        /// Seconds between samples.
        sample_interval: i64,
        /// Point or Interval.
        time_scope: String,
        /// The interval length.
        interval_duration: String,
        /// Whether it samples continuously.
        is_continuous: bool,
    }
}

cimi_resource! {
    /// The body of a Meter create.
    MeterCreate("MeterCreate", "meterCreates") {
        /// The template, by value or `{href, overrides…}`.
        meter_template: RefOr<MeterTemplate>,
    }
}

/// Counts of events by severity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventSummary {
    /// Low severity events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<i64>,
    /// Medium severity events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<i64>,
    /// High severity events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<i64>,
    /// Critical severity events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<i64>,
}

cimi_resource! {
    /// A log of events about one resource.
    EventLog("EventLog", "eventLogs") {
        /// The resource the events are about.
        target_resource: Ref,
        /// The Event collection.
        events: Ref,
        /// daily, weekly, monthly, yearly.
        persistence: String,
        /// Counts by severity.
        summary: EventSummary,
    }
}

cimi_resource! {
    /// The constructor data of an event log.
    EventLogTemplate("EventLogTemplate", "eventLogTemplates") {
        /// The resource the events are about.
        target_resource: Ref,
        /// How long events are kept.
        persistence: String,
    }
}

cimi_resource! {
    /// The body of an EventLog create.
    EventLogCreate("EventLogCreate", "eventLogCreates") {
        /// The template, by value or `{href, overrides…}`.
        event_log_template: RefOr<EventLogTemplate>,
    }
}

cimi_resource! {
    /// One event: a state, alarm, model or access notification.
    Event("Event", "events") {
        /// When it happened.
        timestamp: Timestamp,
        /// The event type URI, e.g. `http://schemas.dmtf.org/cimi/1/event/state`.
        #[serde(rename = "type")]
        type_: String,
        /// The content, by type (state: resName, resource, resType, state, previous; model: change, detail…).
        content: Map<String, Value>,
        /// Pending, Unknown, Status, Success, Warning, Failure.
        outcome: String,
        /// critical, high, medium, low.
        severity: String,
        /// Who to contact.
        contact: String,
    }
}

cimi_resource! {
    /// The body of an action: `{"resourceURI": …/Action, "action": …/action/<x>, params…}`.
    Action("Action", "actions") {
        /// The action URI.
        action: String,
        /// stop/restart: power off (true) or graceful (false).
        force: bool,
        /// restore: the image.
        image: Ref,
        /// import: where from.
        source: String,
        /// export: the format.
        format: String,
        /// export: where to.
        destination: String,
        /// connectvolume: the volume.
        volume: Ref,
        /// connectvolume: where it appears.
        initial_location: String,
    }
}

impl Action {
    /// An action body for `…/action/<name>`.
    pub fn new(name: &str) -> Self {
        Action { resource_uri: Some(Self::resource_uri()), action: Some(action_uri(name)), ..Default::default() }
    }
}
