//! Admission cases: objects the API server must refuse, each with the message a user sees, and valid
//! objects it must accept. Data only: nothing here talks to an API server.
//!
//! The e2e tests (`tests/e2e/api.rs`) run them against a real kube-apiserver with the CRDs of `crds/`; the
//! unit tests run the CEL ones through a client-side CEL evaluator. A case with `old` is an update: create
//! `old`, then replace it with `object` (carrying the `resourceVersion` the create returned). Objects carry
//! no namespace: the test puts each in its own.

use serde_json::{Value, json};

/// Which part of the schema refuses a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// An `x-kubernetes-validations` (CEL) rule on create.
    Cel,
    /// A CEL transition rule (using `oldSelf`), on update.
    CelTransition,
    /// The OpenAPI schema: enum, pattern, bounds, list type.
    OpenApi,
}

/// One object the API server must refuse.
#[derive(Clone, Debug)]
pub struct AdmissionCase {
    /// A short unique name, usable as a test name and as a metadata.name suffix.
    pub name: &'static str,
    /// The object to create, or the update to apply when `old` is set.
    pub object: Value,
    /// For an update case: the valid object to create first.
    pub old: Option<Value>,
    /// A substring of the message the API server answers.
    pub expected_message: &'static str,
    /// Which rule refuses it.
    pub check: Check,
}

const API_VERSION: &str = "cimi.dev/v1alpha1";

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// A valid CimiMachine spec with a template by value.
pub fn machine_spec() -> Value {
    json!({
        "providerRef": {"name": "sim"},
        "template": {
            "machineConfig": {"name": "small"},
            "machineImage": {"name": "Linux SUSE"}
        }
    })
}

/// A valid CimiVolume spec with an inline capacity.
pub fn volume_spec() -> Value {
    json!({"providerRef": {"name": "sim"}, "capacity": "10Gi"})
}

/// A valid CimiNetwork spec with an inline configuration.
pub fn network_spec() -> Value {
    json!({"providerRef": {"name": "sim"}, "networkType": "Private", "mtu": 1500})
}

/// A valid CimiSystem spec with a template by value.
pub fn system_spec() -> Value {
    json!({
        "providerRef": {"name": "sim"},
        "template": {"componentDescriptors": [
            {"name": "web", "quantity": 2, "machineTemplate": {"name": "web"}},
            {"name": "data", "volumeTemplate": {"href": "http://sim/volumeTemplates/1"}}
        ]}
    })
}

/// A valid CimiProvider spec.
pub fn provider_spec() -> Value {
    json!({
        "endpoint": "https://cimi.example.net/cimi/cloudEntryPoint",
        "credentialSecretRef": {"name": "lab-credentials"},
        "rateLimit": {"requestsPerSecond": 20, "burst": 40, "maxConcurrent": 8},
        "trustedOrigins": ["https://jobs.example.net", "https://images.example.net:8443/"],
        "readLimits": {"maxBodySize": "32Mi", "maxPages": 2000, "maxEntries": 200000, "listingTimeout": "5m"}
    })
}

/// Objects the API server must accept, one or more per kind (the positive control of the cases).
pub fn valid_objects() -> Vec<Value> {
    let mut inline = machine_spec();
    inline["template"] = json!({
        "cpu": 2, "memory": "4Gi",
        "disks": [{"capacity": "20Gi", "format": "ext4", "initialLocation": "/dev/vda"}],
        "machineImage": {"href": "http://sim/machineImages/1"},
        "credentialSecretRef": {"name": "login"},
        "userDataSecretRef": {"name": "cloud-init"}
    });
    inline["powerState"] = json!("Stopped");
    inline["volumes"] = json!([{"volumeRef": {"name": "data"}, "initialLocation": "/dev/vdb"}]);
    inline["networkInterfaces"] = json!([{"networkRef": {"name": "backend"}}]);
    inline["properties"] = json!({"team": "a"});
    inline["timeouts"] = json!({"create": "20m", "delete": "1h30m"});
    let observed = json!({
        "providerRef": {"name": "sim"},
        "import": {"filter": "name='legacy'"},
        "managementPolicy": "ObserveOnly",
        "deletionPolicy": "Orphan"
    });
    vec![
        object("CimiProvider", "valid-provider", provider_spec()),
        object(
            "CimiProvider",
            "valid-provider-import-rights",
            with(
                provider_spec(),
                &["importRights"],
                json!([
                    {"managementPolicies": ["ObserveOnly"]},
                    {"namespaces": {"matchLabels": {"cimi.dev/import": "managed"}}, "managementPolicies": ["ObserveOnly", "Managed"]}
                ]),
            ),
        ),
        object(
            "CimiNamespacedProvider",
            "valid-namespaced-provider",
            with(provider_spec(), &["importRights"], json!([{"managementPolicies": ["Managed"]}])),
        ),
        object(
            "CimiMachine",
            "valid-machine-on-a-namespaced-provider",
            with(machine_spec(), &["providerRef"], json!({"kind": "CimiNamespacedProvider", "name": "team"})),
        ),
        object("CimiMachine", "valid-machine", machine_spec()),
        object("CimiMachine", "valid-machine-inline", inline),
        object(
            "CimiMachine",
            "valid-machine-ref",
            json!({"providerRef": {"name": "sim"}, "machineTemplate": {"name": "web"}}),
        ),
        object("CimiMachine", "valid-machine-observed", observed),
        object("CimiVolume", "valid-volume", volume_spec()),
        object(
            "CimiVolume",
            "valid-volume-restored",
            json!({"providerRef": {"name": "sim"}, "imageRef": {"name": "nightly"}}),
        ),
        object(
            "CimiMachine",
            "valid-machine-restored",
            json!({"providerRef": {"name": "sim"},
                   "template": {"machineConfig": {"name": "small"}, "imageRef": {"name": "golden"}}}),
        ),
        object(
            "CimiMachineImage",
            "valid-machine-image",
            json!({"providerRef": {"name": "sim"}, "source": {"machineRef": {"name": "web-1"}}}),
        ),
        object(
            "CimiMachineImage",
            "valid-machine-image-registered",
            json!({"providerRef": {"name": "sim"}, "imageLocation": "nfs://images/base.qcow2"}),
        ),
        object(
            "CimiVolumeImage",
            "valid-volume-image",
            json!({"providerRef": {"name": "sim"}, "source": {"volumeRef": {"name": "data"}}}),
        ),
        object("CimiNetwork", "valid-network", network_spec()),
        object("CimiSystem", "valid-system", system_spec()),
        object(
            "CimiSystem",
            "valid-system-by-value",
            json!({
                "providerRef": {"name": "sim"},
                "powerState": "Stopped",
                "exposeMembers": true,
                "template": {"componentDescriptors": [
                    {"name": "net", "networkTemplate": {"networkConfig": {"name": "private"}}},
                    {"name": "data", "volumeTemplate": {"capacity": "10Gi"}},
                    {"name": "admin", "credentialTemplate": {"credentialSecretRef": {"name": "login"}}},
                    {"name": "web", "quantity": 2, "properties": {"tier": "front"}, "machineTemplate": {
                        "machineConfig": {"name": "small"}, "machineImage": {"name": "Linux SUSE"},
                        "credential": {"href": "#admin"},
                        "networkInterfaces": [{"network": {"href": "#net"}}],
                        "volumes": [{"volume": {"href": "#data"}, "initialLocation": "/dev/vdb"}]
                    }}
                ]}
            }),
        ),
        object(
            "CimiSystem",
            "valid-system-ref",
            json!({"providerRef": {"name": "sim"}, "systemTemplate": {"name": "web-tier"}}),
        ),
        object(
            "CimiSystem",
            "valid-system-observed",
            json!({
                "providerRef": {"name": "sim"},
                "import": {"href": "http://sim/systems/1"},
                "managementPolicy": "ObserveOnly",
                "deletionPolicy": "Orphan"
            }),
        ),
    ]
}

fn with(mut spec: Value, path: &[&str], value: Value) -> Value {
    let mut cursor = &mut spec;
    for key in &path[..path.len() - 1] {
        cursor = &mut cursor[*key];
    }
    cursor[path[path.len() - 1]] = value;
    spec
}

fn without(mut spec: Value, path: &[&str]) -> Value {
    let mut cursor = &mut spec;
    for key in &path[..path.len() - 1] {
        cursor = &mut cursor[*key];
    }
    if let Some(map) = cursor.as_object_mut() {
        map.remove(path[path.len() - 1]);
    }
    spec
}

fn case(name: &'static str, kind: &str, spec: Value, expected_message: &'static str, check: Check) -> AdmissionCase {
    AdmissionCase { name, object: object(kind, name, spec), old: None, expected_message, check }
}

fn update(name: &'static str, kind: &str, old: Value, new: Value, expected_message: &'static str) -> AdmissionCase {
    AdmissionCase {
        name,
        object: object(kind, name, new),
        old: Some(object(kind, name, old)),
        expected_message,
        check: Check::CelTransition,
    }
}

/// Every admission case: at least 12, of which at least 6 CEL rules and at least 3 transition rules.
pub fn admission_cases() -> Vec<AdmissionCase> {
    use Check::*;
    let m = machine_spec;
    vec![
        // --- CEL on create ---
        case(
            "machine-two-templates",
            "CimiMachine",
            with(m(), &["machineTemplate"], json!({"name": "web"})),
            "spec.machineTemplate and spec.template are mutually exclusive",
            Cel,
        ),
        case(
            "machine-no-template",
            "CimiMachine",
            without(m(), &["template"]),
            "set exactly one of spec.machineTemplate and spec.template",
            Cel,
        ),
        case(
            "machine-observeonly-delete",
            "CimiMachine",
            with(with(m(), &["managementPolicy"], json!("ObserveOnly")), &["import"], json!({"href": "http://sim/machines/1"})),
            "managementPolicy ObserveOnly requires deletionPolicy Orphan",
            Cel,
        ),
        case(
            "machine-observeonly-no-import",
            "CimiMachine",
            with(with(m(), &["managementPolicy"], json!("ObserveOnly")), &["deletionPolicy"], json!("Orphan")),
            "managementPolicy ObserveOnly requires spec.import",
            Cel,
        ),
        case(
            "machine-bad-memory",
            "CimiMachine",
            with(m(), &["template"], json!({"cpu": 1, "memory": "four gigs", "machineImage": {"name": "img"}})),
            "memory must be a positive quantity",
            Cel,
        ),
        case(
            "machine-zero-memory",
            "CimiMachine",
            with(m(), &["template"], json!({"cpu": 1, "memory": "0Gi", "machineImage": {"name": "img"}})),
            "memory must be a positive quantity",
            Cel,
        ),
        case(
            "machine-config-and-inline",
            "CimiMachine",
            with(m(), &["template", "cpu"], json!(2)),
            "template.machineConfig and inline cpu/memory/disks are mutually exclusive",
            Cel,
        ),
        case(
            "machine-inline-without-memory",
            "CimiMachine",
            with(m(), &["template"], json!({"cpu": 2, "machineImage": {"name": "img"}})),
            "template needs machineConfig, or both cpu and memory",
            Cel,
        ),
        case(
            "machine-image-name-and-href",
            "CimiMachine",
            with(m(), &["template", "machineImage"], json!({"name": "img", "href": "http://sim/machineImages/1"})),
            "set exactly one of name and href",
            Cel,
        ),
        case(
            "machine-reserved-property",
            "CimiMachine",
            with(m(), &["properties"], json!({"cimi.dev/uid": "forged"})),
            "reserved for the operator",
            Cel,
        ),
        case(
            "machine-volume-twice",
            "CimiMachine",
            with(m(), &["volumes"], json!([{"volumeRef": {"name": "data"}}, {"volumeRef": {"name": "data"}}])),
            "each CimiVolume may be attached once",
            Cel,
        ),
        case(
            "machine-import-href-and-filter",
            "CimiMachine",
            with(m(), &["import"], json!({"href": "http://sim/machines/1", "filter": "name='a'"})),
            "import: set exactly one of href and filter",
            Cel,
        ),
        case(
            "machine-name-too-long",
            "CimiMachine",
            m(),
            "metadata.name must be at most 63 characters",
            Cel,
        ),
        case(
            "volume-no-size",
            "CimiVolume",
            without(volume_spec(), &["capacity"]),
            "set exactly one of spec.capacity, spec.volumeConfig, spec.volumeTemplate and spec.imageRef",
            Cel,
        ),
        case(
            "volume-image-ref-and-capacity",
            "CimiVolume",
            with(volume_spec(), &["imageRef"], json!({"name": "nightly"})),
            "set exactly one of spec.capacity, spec.volumeConfig, spec.volumeTemplate and spec.imageRef",
            Cel,
        ),
        case(
            "machine-image-ref-and-catalog-image",
            "CimiMachine",
            with(machine_spec(), &["template", "imageRef"], json!({"name": "golden"})),
            "template needs exactly one of machineImage (a provider catalog image) and imageRef (a CimiMachineImage)",
            Cel,
        ),
        case(
            "machine-image-two-sources",
            "CimiMachineImage",
            json!({"providerRef": {"name": "sim"}, "source": {"machineRef": {"name": "web-1"}},
                   "imageLocation": "nfs://images/base.qcow2"}),
            "set exactly one of spec.source (capture a CimiMachine), spec.imageLocation (register an image) and spec.import (adopt an existing image)",
            Cel,
        ),
        case(
            "machine-image-bad-method",
            "CimiMachineImage",
            json!({"providerRef": {"name": "sim"}, "source": {"machineRef": {"name": "web-1"}, "method": "Clone"}}),
            "Unsupported value",
            OpenApi,
        ),
        case(
            "volume-image-without-source",
            "CimiVolumeImage",
            json!({"providerRef": {"name": "sim"}}),
            "set exactly one of spec.source (snapshot a CimiVolume) and spec.import (adopt an existing volume image)",
            Cel,
        ),
        case(
            "volume-negative-capacity",
            "CimiVolume",
            with(volume_spec(), &["capacity"], json!("-5Gi")),
            "capacity must be a positive quantity",
            Cel,
        ),
        case(
            "volume-type-with-config",
            "CimiVolume",
            with(with(without(volume_spec(), &["capacity"]), &["volumeConfig"], json!({"name": "fast"})), &["format"], json!("ext4")),
            "spec.type and spec.format need an inline spec.capacity",
            Cel,
        ),
        case(
            "network-two-configs",
            "CimiNetwork",
            with(network_spec(), &["networkConfig"], json!({"name": "private"})),
            "set exactly one of spec.networkType (inline), spec.networkConfig and spec.networkTemplate",
            Cel,
        ),
        case(
            "system-component-two-templates",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "web", "machineTemplate": {"name": "web"}, "volumeTemplate": {"name": "data"}}]),
            ),
            "a component sets exactly one of machineTemplate, volumeTemplate, networkTemplate and credentialTemplate",
            Cel,
        ),
        case(
            "system-unknown-network-component",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "web", "machineTemplate": {"name": "web", "networkInterfaces": [{"network": {"href": "#net"}}]}}]),
            ),
            "a machine's network interface refers to #name, but no network component has that name",
            Cel,
        ),
        case(
            "system-unknown-volume-component",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([
                    {"name": "net", "networkTemplate": {"name": "private"}},
                    {"name": "web", "machineTemplate": {"name": "web", "volumes": [{"volume": {"href": "#net"}}]}}
                ]),
            ),
            "a machine's volume refers to #name, but no volume component has that name",
            Cel,
        ),
        case(
            "system-bad-symbolic-reference",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "web", "machineTemplate": {"name": "web", "credential": {"href": "#"}}}]),
            ),
            "a symbolic reference is # followed by a component name",
            Cel,
        ),
        case(
            "system-machine-template-incomplete",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "web", "machineTemplate": {"machineImage": {"name": "Linux SUSE"}}}]),
            ),
            "machineTemplate: name or href of a provider MachineTemplate, or both machineConfig and machineImage",
            Cel,
        ),
        case(
            "system-volume-two-sources",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "data", "volumeTemplate": {"name": "small", "capacity": "10Gi"}}]),
            ),
            "volumeTemplate: set exactly one of name, href, volumeConfig and capacity",
            Cel,
        ),
        case(
            "system-credential-two-sources",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "admin", "credentialTemplate": {"href": "http://sim/credentialTemplates/1", "credentialSecretRef": {"name": "login"}}}]),
            ),
            "credentialTemplate: set exactly one of name, href and credentialSecretRef",
            Cel,
        ),
        case(
            "system-observeonly-delete",
            "CimiSystem",
            json!({"providerRef": {"name": "sim"}, "import": {"href": "http://sim/systems/1"}, "managementPolicy": "ObserveOnly"}),
            "managementPolicy ObserveOnly requires deletionPolicy Orphan",
            Cel,
        ),
        case(
            "provider-ftp-endpoint",
            "CimiProvider",
            with(provider_spec(), &["endpoint"], json!("ftp://cimi.example.net/")),
            "endpoint must be an http or https URL",
            Cel,
        ),
        case(
            "provider-trusted-origin-with-path",
            "CimiProvider",
            with(provider_spec(), &["trustedOrigins"], json!(["https://jobs.example.net/jobs"])),
            "trustedOrigins: each entry must be an origin",
            Cel,
        ),
        case(
            "provider-trusted-origin-with-userinfo",
            "CimiProvider",
            with(provider_spec(), &["trustedOrigins"], json!(["https://user@jobs.example.net"])),
            "trustedOrigins: each entry must be an origin",
            Cel,
        ),
        case(
            "provider-read-limit-body-too-small",
            "CimiProvider",
            with(provider_spec(), &["readLimits"], json!({"maxBodySize": "1k"})),
            "readLimits.maxBodySize must be a quantity between 4Ki and 1Gi",
            Cel,
        ),
        case(
            "provider-ca-replaces-roots-without-ca",
            "CimiProvider",
            with(provider_spec(), &["caBundleReplacesSystemRoots"], json!(true)),
            "caBundleReplacesSystemRoots needs caBundleSecretRef",
            Cel,
        ),
        case(
            "provider-poll-too-fast",
            "CimiProvider",
            with(provider_spec(), &["pollInterval"], json!("500ms")),
            "pollInterval must be at least 1s",
            Cel,
        ),
        case(
            "provider-insecure-with-ca",
            "CimiProvider",
            with(
                with(provider_spec(), &["insecureSkipTLSVerify"], json!(true)),
                &["caBundleSecretRef"],
                json!({"name": "lab-ca"}),
            ),
            "caBundleSecretRef and insecureSkipTLSVerify are mutually exclusive",
            Cel,
        ),
        case(
            "namespaced-provider-import-rights-for-other-namespaces",
            "CimiNamespacedProvider",
            with(
                provider_spec(),
                &["importRights"],
                json!([{"namespaces": {"matchLabels": {"team": "b"}}, "managementPolicies": ["Managed"]}]),
            ),
            "importRights of a CimiNamespacedProvider cannot name namespaces",
            Cel,
        ),
        case(
            "provider-import-right-twice-the-same-policy",
            "CimiProvider",
            with(provider_spec(), &["importRights"], json!([{"managementPolicies": ["Managed", "Managed"]}])),
            "importRights: each management policy at most once",
            Cel,
        ),
        case(
            "machine-unknown-provider-kind",
            "CimiMachine",
            with(m(), &["providerRef", "kind"], json!("ClusterIssuer")),
            "Unsupported value: \"ClusterIssuer\"",
            OpenApi,
        ),
        case(
            "provider-burst-below-rate",
            "CimiProvider",
            with(provider_spec(), &["rateLimit", "burst"], json!(5)),
            "rateLimit.burst must be at least rateLimit.requestsPerSecond",
            Cel,
        ),
        // --- OpenAPI schema ---
        case(
            "machine-bad-power-state",
            "CimiMachine",
            with(m(), &["powerState"], json!("Running")),
            "Unsupported value: \"Running\"",
            OpenApi,
        ),
        case(
            "machine-bad-deletion-policy",
            "CimiMachine",
            with(m(), &["deletionPolicy"], json!("Keep")),
            "Unsupported value: \"Keep\"",
            OpenApi,
        ),
        case(
            "machine-too-many-interfaces",
            "CimiMachine",
            with(m(), &["networkInterfaces"], json!((0..9).map(|i| json!({"networkRef": {"name": format!("n{i}")}})).collect::<Vec<_>>())),
            "must have at most 8 items",
            OpenApi,
        ),
        case(
            "machine-zero-cpu",
            "CimiMachine",
            with(m(), &["template"], json!({"cpu": 0, "memory": "1Gi", "machineImage": {"name": "img"}})),
            "should be greater than or equal to 1",
            OpenApi,
        ),
        case(
            "provider-bad-duration",
            "CimiProvider",
            with(provider_spec(), &["pollInterval"], json!("soon")),
            "should match",
            OpenApi,
        ),
        case(
            "provider-bad-format",
            "CimiProvider",
            with(provider_spec(), &["format"], json!("yaml")),
            "Unsupported value: \"yaml\"",
            OpenApi,
        ),
        case(
            "network-tiny-mtu",
            "CimiNetwork",
            with(network_spec(), &["mtu"], json!(10)),
            "should be greater than or equal to 68",
            OpenApi,
        ),
        case(
            "system-bad-power-state",
            "CimiSystem",
            with(system_spec(), &["powerState"], json!("Running")),
            "Unsupported value: \"Running\"",
            OpenApi,
        ),
        case(
            "system-zero-quantity",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "web", "quantity": 0, "machineTemplate": {"name": "web"}}]),
            ),
            "should be greater than or equal to 1",
            OpenApi,
        ),
        case(
            "system-duplicate-component",
            "CimiSystem",
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([{"name": "web", "machineTemplate": {"name": "a"}}, {"name": "web", "machineTemplate": {"name": "b"}}]),
            ),
            "Duplicate value",
            OpenApi,
        ),
        // --- CEL transition rules, on update ---
        update(
            "machine-change-provider",
            "CimiMachine",
            m(),
            with(m(), &["providerRef", "name"], json!("other")),
            "spec.providerRef is immutable",
        ),
        update(
            "machine-change-template",
            "CimiMachine",
            m(),
            with(m(), &["template", "machineImage"], json!({"name": "Windows"})),
            "spec.template is immutable",
        ),
        update(
            "machine-swap-template-for-ref",
            "CimiMachine",
            m(),
            with(without(m(), &["template"]), &["machineTemplate"], json!({"name": "web"})),
            "spec.machineTemplate and spec.template cannot be added or removed after creation",
        ),
        update(
            "machine-drop-import",
            "CimiMachine",
            with(m(), &["import"], json!({"href": "http://sim/machines/1"})),
            m(),
            "spec.import cannot be added or removed after creation",
        ),
        update(
            "volume-resize",
            "CimiVolume",
            volume_spec(),
            with(volume_spec(), &["capacity"], json!("20Gi")),
            "spec.capacity is immutable",
        ),
        update(
            "network-change-type",
            "CimiNetwork",
            network_spec(),
            with(network_spec(), &["networkType"], json!("Public")),
            "spec.networkType is immutable",
        ),
        update(
            "system-change-template",
            "CimiSystem",
            system_spec(),
            with(
                system_spec(),
                &["template", "componentDescriptors"],
                json!([
                    {"name": "web", "quantity": 3, "machineTemplate": {"name": "web"}},
                    {"name": "data", "volumeTemplate": {"href": "http://sim/volumeTemplates/1"}}
                ]),
            ),
            "spec.template is immutable",
        ),
        update(
            "system-add-import",
            "CimiSystem",
            system_spec(),
            with(system_spec(), &["import"], json!({"href": "http://sim/systems/1"})),
            "spec.import cannot be added or removed after creation",
        ),
    ]
    .into_iter()
    .map(|mut c| {
        if c.name == "machine-name-too-long" {
            c.object["metadata"]["name"] = json!("m".repeat(64));
        }
        c
    })
    .collect()
}

/// The admission cases as Markdown: the text of `docs/admission.md`.
pub fn admission_markdown() -> String {
    let mut out = String::new();
    out.push_str("# What admission refuses\n\n");
    out.push_str("<!-- Generated from src/api/fixtures.rs by `make crds`; do not edit by hand. -->\n\n");
    out.push_str(
        "The CRDs validate objects when they are written, before the operator sees them. Each row is an \
         object the API server refuses, and a part of the message it answers. `CEL` rows are \
         `x-kubernetes-validations` rules, `CEL (update)` rows are transition rules checked when an object \
         changes, `OpenAPI` rows are schema bounds, enums and patterns. The e2e tests send every row to a \
         real kube-apiserver.\n\n",
    );
    out.push_str("| Case | Kind | Check | Message contains |\n|---|---|---|---|\n");
    for case in admission_cases() {
        let check = match case.check {
            Check::Cel => "CEL",
            Check::CelTransition => "CEL (update)",
            Check::OpenApi => "OpenAPI",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            case.name,
            case.object["kind"].as_str().unwrap_or_default(),
            check,
            case.expected_message.replace('|', "\\|"),
        ));
    }
    out
}
