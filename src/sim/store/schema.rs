//! What the simulated provider serves, as data: its collections and their item types, how each type is
//! created (by value, or from a template with `<Type>Create`), which attributes a consumer never writes or never
//! reads back, the check of a document against the typed model, and the ResourceMetadata it advertises.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::cimi::model::{self as m, MetadataAttribute, Resource, type_uri};
use crate::sim::error::{SimError, bad};
use crate::sim::lifecycle;

/// The top-level collections: CloudEntryPoint attribute (also the path) and item type.
pub const COLLECTIONS: &[(&str, &str)] = &[
    ("resourceMetadata", "ResourceMetadata"),
    ("systems", "System"),
    ("systemTemplates", "SystemTemplate"),
    ("machines", "Machine"),
    ("machineTemplates", "MachineTemplate"),
    ("machineConfigs", "MachineConfiguration"),
    ("machineImages", "MachineImage"),
    ("credentials", "Credential"),
    ("credentialTemplates", "CredentialTemplate"),
    ("volumes", "Volume"),
    ("volumeTemplates", "VolumeTemplate"),
    ("volumeConfigs", "VolumeConfiguration"),
    ("volumeImages", "VolumeImage"),
    ("networks", "Network"),
    ("networkTemplates", "NetworkTemplate"),
    ("networkConfigs", "NetworkConfiguration"),
    ("networkPorts", "NetworkPort"),
    ("networkPortTemplates", "NetworkPortTemplate"),
    ("networkPortConfigs", "NetworkPortConfiguration"),
    ("addresses", "Address"),
    ("addressTemplates", "AddressTemplate"),
    ("forwardingGroups", "ForwardingGroup"),
    ("forwardingGroupTemplates", "ForwardingGroupTemplate"),
    ("jobs", "Job"),
    ("meters", "Meter"),
    ("meterTemplates", "MeterTemplate"),
    ("meterConfigs", "MeterConfiguration"),
    ("eventLogs", "EventLog"),
    ("eventLogTemplates", "EventLogTemplate"),
];

/// Collections absent from the CloudEntryPoint when Jobs are off.
pub const JOB_ONLY: &[&str] = &["jobs", "meters", "meterTemplates", "meterConfigs", "eventLogs", "eventLogTemplates"];

/// Types created by POSTing the resource itself.
pub const BY_VALUE: &[&str] = &[
    "MachineTemplate",
    "MachineConfiguration",
    "MachineImage",
    "CredentialTemplate",
    "VolumeTemplate",
    "VolumeConfiguration",
    "VolumeImage",
    "NetworkTemplate",
    "NetworkConfiguration",
    "NetworkPortTemplate",
    "NetworkPortConfiguration",
    "AddressTemplate",
    "ForwardingGroupTemplate",
    "SystemTemplate",
    "MeterTemplate",
    "MeterConfiguration",
    "EventLogTemplate",
];

/// Types created from a template with `<Type>Create`.
pub const BY_TEMPLATE: &[&str] =
    &["Machine", "Credential", "Volume", "Network", "NetworkPort", "Address", "ForwardingGroup", "System"];

/// Attributes a consumer never writes.
pub const READ_ONLY: &[&str] = &["resourceURI", "id", "created", "updated", "operations", "state"];

/// Attribute names whose value is never returned (write-only).
pub const WRITE_ONLY: &[&str] = &["password"];

/// Reads a document as the typed `T`, refusing attributes the model does not know (except `allowed_extra`).
pub fn parse_typed<T: DeserializeOwned + Resource>(v: &Value, allowed_extra: &[String]) -> Result<T, SimError> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| bad(format!("invalid {}: {e}", T::TYPE_NAME)))?;
    let unknown: Vec<&String> = t.extra().keys().filter(|k| !allowed_extra.contains(k)).collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(bad(format!("unknown attribute(s) for {}: {}", T::TYPE_NAME, names.join(", "))));
    }
    Ok(t)
}

/// Checks a document against the model of `type_name`: types of known attributes, and no unknown attribute
/// (except the allowed extension attributes).
pub fn validate(type_name: &str, v: &Value, allowed_extra: &[String]) -> Result<(), SimError> {
    macro_rules! check {
        ($($t:ident),*) => {
            match type_name {
                $(stringify!($t) => parse_typed::<m::$t>(v, allowed_extra).map(|_| ()),)*
                other => Err(bad(format!("{other} cannot be written"))),
            }
        };
    }
    check!(
        CloudEntryPoint,
        Machine,
        MachineTemplate,
        MachineConfiguration,
        MachineImage,
        MachineCreate,
        Credential,
        CredentialTemplate,
        CredentialCreate,
        MachineVolume,
        Volume,
        VolumeTemplate,
        VolumeConfiguration,
        VolumeImage,
        VolumeCreate,
        Network,
        NetworkTemplate,
        NetworkConfiguration,
        NetworkCreate,
        NetworkPort,
        NetworkPortTemplate,
        NetworkPortConfiguration,
        Address,
        AddressTemplate,
        AddressCreate,
        ForwardingGroup,
        ForwardingGroupTemplate,
        System,
        SystemTemplate,
        Job,
        Meter,
        MeterTemplate,
        MeterConfiguration,
        EventLog,
        EventLogTemplate,
        Action,
        SystemCreate,
        NetworkPortCreate,
        ForwardingGroupCreate,
        MeterCreate,
        EventLogCreate
    )
}

/// Refuses a body whose `resourceURI` names another type (a body without one is taken as `expected`).
pub fn check_resource_uri(body: &Map<String, Value>, expected: &str) -> Result<(), SimError> {
    match body.get("resourceURI").and_then(Value::as_str) {
        Some(uri) if uri != type_uri(expected) => Err(bad(format!("resourceURI {uri} is not {}", type_uri(expected)))),
        _ => Ok(()),
    }
}

/// The ResourceMetadata documents (Credential, Machine, Volume, CloudEntryPoint, Job), by id: the capabilities
/// and extension attributes the simulator advertises. Without Jobs (`jobs` false) the Job entry has no
/// capabilities.
pub fn resource_metadata(
    credential_attrs: &[MetadataAttribute],
    jobs: bool,
) -> Vec<(&'static str, Map<String, Value>)> {
    let cred = json!({
        "name": "Credential", "typeURI": type_uri("Credential"),
        "attributes": credential_attrs,
        "capabilities": [{"name": "CredentialTemplateByValue",
            "uri": m::capability_uri("Credential", "CredentialTemplateByValue")}]
    });
    let machine = json!({
        "name": "Machine", "typeURI": type_uri("Machine"),
        "capabilities": [
            {"name": "InitialStates", "uri": m::capability_uri("Machine", "InitialStates"),
             "value": lifecycle::MACHINE_INITIAL_STATES.join(",")},
            {"name": "MachineConfigByValue", "uri": m::capability_uri("Machine", "MachineConfigByValue")},
            {"name": "MachineImageByValue", "uri": m::capability_uri("Machine", "MachineImageByValue")},
            {"name": "MachineCredentialByValue", "uri": m::capability_uri("Machine", "MachineCredentialByValue")},
            {"name": "MachineTemplateByValue", "uri": m::capability_uri("Machine", "MachineTemplateByValue")},
            {"name": "MachineStopForce", "uri": m::capability_uri("Machine", "MachineStopForce")},
            {"name": "MachineStopForceDefault", "uri": m::capability_uri("Machine", "MachineStopForceDefault"),
             "value": "false"}
        ]
    });
    let volume = json!({
        "name": "Volume", "typeURI": type_uri("Volume"),
        "capabilities": [
            {"name": "VolumeConfigByValue", "uri": m::capability_uri("Volume", "VolumeConfigByValue")},
            {"name": "VolumeTemplateByValue", "uri": m::capability_uri("Volume", "VolumeTemplateByValue")},
            {"name": "SharedVolumeSupport", "uri": m::capability_uri("Volume", "SharedVolumeSupport"),
             "value": "false"},
            {"name": "VolumeSnapshot", "uri": m::capability_uri("Volume", "VolumeSnapshot")}
        ]
    });
    let params = [
        "FilterParameter",
        "FirstParameter",
        "LastParameter",
        "SelectParameter",
        "ExpandParameter",
        "FormatParameter",
        "OrderByParameter",
        "QueryPathNotation",
    ];
    let caps: Vec<Value> =
        params.iter().map(|p| json!({"name": p, "uri": m::capability_uri("CloudEntryPoint", p)})).collect();
    let cep = json!({"name": "CloudEntryPoint", "typeURI": type_uri("CloudEntryPoint"), "capabilities": caps});
    let mut job = json!({"name": "Job", "typeURI": type_uri("Job"),
        "capabilities": [{"name": "JobRetention", "uri": m::capability_uri("Job", "JobRetention"),
            "value": "60"}]});
    if !jobs && let Some(o) = job.as_object_mut() {
        o.remove("capabilities");
    }
    [("Credential", cred), ("Machine", machine), ("Volume", volume), ("CloudEntryPoint", cep), ("Job", job)]
        .into_iter()
        .filter_map(|(id, doc)| match doc {
            Value::Object(doc) => Some((id, doc)),
            _ => None,
        })
        .collect()
}
