//! Schema tests: every CRD generates with the names, columns and rules users rely on, the committed
//! YAML matches the code, and the admission fixtures meet the CEL rules as the API server would.

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use super::fixtures::{AdmissionCase, Check, admission_cases, valid_objects};
use super::*;

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

fn crd_of(kind: &str) -> CustomResourceDefinition {
    crds().into_iter().find(|c| c.spec.names.kind == kind).expect("kind has a CRD")
}

/// Every `x-kubernetes-validations` rule message in a schema, recursively.
fn rule_messages(value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                for rule in rules {
                    out.push((
                        rule["rule"].as_str().unwrap_or_default().to_string(),
                        rule["message"].as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
            map.values().for_each(|v| rule_messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| rule_messages(v, out)),
        _ => {}
    }
}

#[test]
fn every_kind_has_names_scope_category_and_status() {
    let expected = [
        ("CimiProvider", "cimiproviders", "cimiprov", "Cluster"),
        ("CimiNamespacedProvider", "ciminamespacedproviders", "cimiprovns", "Namespaced"),
        ("CimiMachine", "cimimachines", "cimim", "Namespaced"),
        ("CimiVolume", "cimivolumes", "cimivol", "Namespaced"),
        ("CimiNetwork", "ciminetworks", "ciminet", "Namespaced"),
        ("CimiSystem", "cimisystems", "cimisys", "Namespaced"),
        ("CimiMachineImage", "cimimachineimages", "cimimi", "Namespaced"),
        ("CimiVolumeImage", "cimivolumeimages", "cimivi", "Namespaced"),
    ];
    let all = crds();
    assert_eq!(all.len(), expected.len());
    for (kind, plural, short, scope) in expected {
        let crd = crd_of(kind);
        assert_eq!(crd.spec.group, crate::names::API_GROUP);
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(crd.spec.versions[0].name, crate::names::API_VERSION);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.scope, scope, "{kind}");
        assert_eq!(crd.spec.names.short_names.as_deref(), Some(&[short.to_string()][..]));
        assert_eq!(crd.spec.names.categories.as_deref(), Some(&["cimi".to_string()][..]));
        let subresources = crd.spec.versions[0].subresources.as_ref().expect("subresources");
        assert!(subresources.status.is_some(), "{kind} has a status subresource");
        assert_eq!(crd_file_name(&crd), format!("{plural}.cimi.dev.yaml"));
    }
}

#[test]
fn short_names_collide_with_no_builtin() {
    let builtin = [
        "cm", "cs", "csr", "ds", "deploy", "ep", "ev", "hpa", "ing", "limits", "ns", "no", "pvc", "pv", "po", "pdb",
        "psp", "rc", "rs", "sa", "svc", "sts", "quota", "crd", "crds", "netpol", "pc", "sc", "cj", "vol",
    ];
    for crd in crds() {
        for short in crd.spec.names.short_names.unwrap_or_default() {
            assert!(!builtin.contains(&short.as_str()), "{short} collides with a built-in short name");
        }
    }
}

#[test]
fn printer_columns_answer_is_it_up_and_what_is_it() {
    // docs/api-conventions.md: READY first (the Ready condition), the kind's own columns, AGE last; the Ready
    // reason (and details) in the wide output.
    let expected: [(&str, &[&str], &[&str]); 8] = [
        ("CimiProvider", &["Ready", "Version", "Age"], &["Endpoint", "Latency", "Reason"]),
        ("CimiNamespacedProvider", &["Ready", "Version", "Age"], &["Endpoint", "Latency", "Reason"]),
        ("CimiMachine", &["Ready", "State", "CPU", "Memory", "IP", "Age"], &["Reason"]),
        ("CimiVolume", &["Ready", "State", "Capacity", "Age"], &["Attached", "Reason"]),
        ("CimiNetwork", &["Ready", "State", "Type", "Age"], &["MTU", "Reason"]),
        ("CimiSystem", &["Ready", "State", "Members", "Age"], &["Reason"]),
        ("CimiMachineImage", &["Ready", "State", "Type", "Age"], &["Source", "Reason"]),
        ("CimiVolumeImage", &["Ready", "State", "Source", "Age"], &["Reason"]),
    ];
    for (kind, default, wide) in expected {
        let crd = crd_of(kind);
        let columns = crd.spec.versions[0].additional_printer_columns.clone().expect("printer columns");
        let shown = |wide: bool| -> Vec<String> {
            columns.iter().filter(|c| (c.priority.unwrap_or(0) > 0) == wide).map(|c| c.name.clone()).collect()
        };
        assert_eq!(shown(false), default, "{kind}: the default columns, in order");
        assert_eq!(shown(true), wide, "{kind}: the wide columns");
        let ready = columns.iter().find(|c| c.name == "Ready").expect("ready column");
        assert_eq!(
            ready.json_path, ".status.conditions[?(@.type==\"Ready\")].status",
            "{kind}: READY is the condition"
        );
    }
    let path = |kind: &str, column: &str| {
        crd_of(kind).spec.versions[0]
            .additional_printer_columns
            .clone()
            .expect("columns")
            .into_iter()
            .find(|c| c.name == column)
            .map(|c| c.json_path)
            .expect("column")
    };
    assert_eq!(path("CimiMachine", "Memory"), ".status.memory", "a quantity, shown as is");
    assert_eq!(path("CimiSystem", "Members"), ".status.members.summary", "members ready/total, such as 2/2");
}

#[test]
fn schemas_carry_cel_rules_defaults_and_list_maps() {
    let mut total_rules = 0;
    let mut transition_rules = 0;
    for crd in crds() {
        let schema = schema_of(&crd);
        let mut rules = Vec::new();
        rule_messages(&schema, &mut rules);
        assert!(rules.len() >= 3, "{} has too few rules", crd.spec.names.kind);
        for (rule, message) in &rules {
            assert!(!message.is_empty(), "rule {rule} has no message");
        }
        total_rules += rules.len();
        transition_rules += rules.iter().filter(|(r, _)| r.contains("oldSelf")).count();
        // Status conditions are a list keyed by type, so server-side apply merges them per type.
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{}", crd.spec.names.kind);
        assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
    }
    assert!(total_rules >= 30, "only {total_rules} rules");
    assert!(transition_rules >= 10, "only {transition_rules} transition rules");

    let machine = schema_of(&crd_of("CimiMachine"));
    let spec = &machine["properties"]["spec"]["properties"];
    assert_eq!(spec["powerState"]["default"], "Started");
    assert_eq!(spec["deletionPolicy"]["default"], "Delete");
    assert_eq!(spec["managementPolicy"]["default"], "Managed");
    assert_eq!(spec["volumes"]["maxItems"], 16);
    assert_eq!(spec["networkInterfaces"]["maxItems"], 8);
    assert!(spec["description"]["description"].as_str().is_some_and(|d| d.contains("CIMI")));
    let provider = schema_of(&crd_of("CimiProvider"));
    assert_eq!(provider["properties"]["spec"]["properties"]["format"]["default"], "json");
}

#[test]
fn every_spec_field_is_documented() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, prop) in props {
                let here = format!("{path}.{name}");
                if prop.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                    missing.push(here.clone());
                }
                walk(&here, prop, missing);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for crd in crds() {
        let schema = schema_of(&crd);
        let mut missing = Vec::new();
        walk("spec", &schema["properties"]["spec"], &mut missing);
        walk("status", &schema["properties"]["status"], &mut missing);
        assert!(missing.is_empty(), "{}: fields without docs: {missing:?}", crd.spec.names.kind);
    }
}

#[test]
fn committed_crds_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    if std::env::var_os("CIMI_UPDATE_GENERATED").is_some() {
        write_crds(&dir).expect("write crds/");
    }
    let mut stale = Vec::new();
    for crd in crds() {
        let path = dir.join(crd_file_name(&crd));
        let expected = crd_yaml(&crd).expect("yaml");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    let mut expected_names: Vec<_> = crds().iter().map(crd_file_name).collect();
    expected_names.sort();
    let mut present: Vec<_> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    present.sort();
    assert!(
        stale.is_empty() && present == expected_names,
        "crds/ differs from the Rust types ({stale:?}; files {present:?}): run `make crds` (cimi-operator generate) and commit the result"
    );
}

#[test]
fn crd_stream_holds_every_kind() {
    let stream = crds_yaml().expect("yaml");
    assert_eq!(stream.matches("---\n").count(), 8);
    for plural in [
        "cimiproviders",
        "ciminamespacedproviders",
        "cimimachines",
        "cimivolumes",
        "ciminetworks",
        "cimisystems",
        "cimimachineimages",
        "cimivolumeimages",
    ] {
        assert!(stream.contains(&format!("name: {plural}.cimi.dev")), "{plural}");
    }
}

// --- Admission fixtures against the CEL rules, evaluated client-side ---

/// Applies the schema defaults the API server would, by a round trip through the Rust types.
fn defaulted(object: &Value) -> Option<Value> {
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Option<Value> {
        let typed: T = serde_json::from_value(v.clone()).ok()?;
        serde_json::to_value(typed).ok()
    }
    match object["kind"].as_str()? {
        "CimiMachine" => round::<CimiMachine>(object),
        "CimiVolume" => round::<CimiVolume>(object),
        "CimiNetwork" => round::<CimiNetwork>(object),
        "CimiSystem" => round::<CimiSystem>(object),
        "CimiMachineImage" => round::<crate::api::CimiMachineImage>(object),
        "CimiVolumeImage" => round::<crate::api::CimiVolumeImage>(object),
        "CimiProvider" => round::<CimiProvider>(object),
        "CimiNamespacedProvider" => round::<crate::api::CimiNamespacedProvider>(object),
        _ => None,
    }
}

fn cel_errors(object: &Value, old: Option<&Value>) -> Vec<String> {
    let kind = object["kind"].as_str().expect("kind");
    let schema = schema_of(&crd_of(kind));
    match kube::core::cel::Validator::new().validate(&schema, object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn valid_objects_pass_every_rule() {
    for object in valid_objects() {
        let object = defaulted(&object).expect("valid object decodes");
        let errors = cel_errors(&object, None);
        assert!(errors.is_empty(), "{} refused: {errors:?}", object["metadata"]["name"]);
        // An unchanged update passes every transition rule.
        let errors = cel_errors(&object, Some(&object));
        assert!(errors.is_empty(), "{} refused on a no-op update: {errors:?}", object["metadata"]["name"]);
    }
}

#[test]
fn admission_cases_are_enough_and_distinct() {
    let cases = admission_cases();
    let cel = cases.iter().filter(|c| c.check == Check::Cel).count();
    let transition = cases.iter().filter(|c| c.check == Check::CelTransition).count();
    assert!(
        cases.len() >= 12 && cel >= 6 && transition >= 3,
        "{} cases, {cel} CEL, {transition} transition",
        cases.len()
    );
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for case in &cases {
        assert_eq!(case.old.is_some(), case.check == Check::CelTransition, "{}", case.name);
    }
    // For a manual run against a real API server: CIMI_DUMP_FIXTURES=<dir> writes every case as JSON.
    if let Some(dir) = std::env::var_os("CIMI_DUMP_FIXTURES") {
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).expect("dump dir");
        for case in &cases {
            let dump = serde_json::json!({"object": case.object, "old": case.old, "expected": case.expected_message});
            std::fs::write(dir.join(format!("{}.json", case.name)), dump.to_string()).expect("dump");
        }
        for (i, object) in valid_objects().iter().enumerate() {
            std::fs::write(dir.join(format!("valid-{i}.json")), object.to_string()).expect("dump");
        }
    }
}

fn check_case(case: &AdmissionCase) -> Result<(), String> {
    let object = defaulted(&case.object).ok_or_else(|| format!("{}: does not decode", case.name))?;
    let old = match &case.old {
        Some(old) => {
            let old = defaulted(old).ok_or_else(|| format!("{}: old does not decode", case.name))?;
            let errors = cel_errors(&old, None);
            if !errors.is_empty() {
                return Err(format!("{}: the old object is refused: {errors:?}", case.name));
            }
            Some(old)
        }
        None => None,
    };
    let errors = cel_errors(&object, old.as_ref());
    if errors.iter().any(|e| e.contains(case.expected_message)) {
        Ok(())
    } else {
        Err(format!("{}: expected {:?}, got {errors:?}", case.name, case.expected_message))
    }
}

#[test]
fn cel_cases_are_refused_with_their_message() {
    let failures: Vec<String> =
        admission_cases().iter().filter(|c| c.check != Check::OpenApi).filter_map(|c| check_case(c).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn openapi_cases_break_the_schema() {
    // The API server checks these against the OpenAPI schema; here, at least, the constraint they
    // hit must be in the schema and the object must otherwise pass the CEL rules.
    for case in admission_cases().iter().filter(|c| c.check == Check::OpenApi) {
        let kind = case.object["kind"].as_str().expect("kind");
        let schema = serde_json::to_string(&schema_of(&crd_of(kind))).expect("schema");
        let hint = match case.name {
            "machine-bad-power-state"
            | "machine-bad-deletion-policy"
            | "provider-bad-format"
            | "machine-unknown-provider-kind"
            | "system-bad-power-state"
            | "machine-image-bad-method" => "\"enum\"",
            "system-zero-quantity" => "\"minimum\":1",
            "machine-too-many-interfaces" => "\"maxItems\":8",
            "machine-zero-cpu" => "\"minimum\":1",
            "provider-bad-duration" => "\"pattern\"",
            "network-tiny-mtu" => "\"minimum\":68",
            "system-duplicate-component" => "\"x-kubernetes-list-map-keys\":[\"name\"]",
            other => panic!("no schema hint for OpenAPI case {other}"),
        };
        assert!(schema.contains(hint), "{}: schema lacks {hint}", case.name);
    }
}

#[test]
fn admission_doc_is_in_sync() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admission.md");
    let expected = super::fixtures::admission_markdown();
    if std::env::var_os("CIMI_UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &expected).expect("write docs/admission.md");
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/admission.md differs from src/api/fixtures.rs: run `make crds` (cimi-operator generate) and commit the result"
    );
}

#[test]
fn a_provider_reference_names_exactly_the_provider_its_key_says() {
    let cluster = common::ProviderRef::cluster("lab");
    let namespaced = common::ProviderRef { kind: common::ProviderKind::CimiNamespacedProvider, name: "lab".into() };
    for (reference, namespace) in [(&cluster, "team-a"), (&namespaced, "team-a"), (&namespaced, "team-b")] {
        for key in ["lab", "team-a/lab", "team-b/lab", "other", "team-a/other", "lab/team-a"] {
            assert_eq!(
                reference.names(namespace, key),
                reference.key(namespace).to_string() == key,
                "{reference:?} from {namespace} against {key}"
            );
        }
    }
}
