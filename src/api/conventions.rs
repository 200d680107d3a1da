//! The checked rules of `docs/api-conventions.md`, as a walk over a CRD's schema. The test of this module runs
//! it on every CRD of the crate, so that a new kind or field keeps to the vocabulary from its first commit; the
//! walk itself is tested on a schema that breaks every rule.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Acronyms that Kubernetes writes all in capitals inside a name (`insecureSkipTLSVerify`, `baseURI`), found in
/// their mixed-case spelling. `Ip` and `Api` count only before a capital or at the end (`Ipsum` is a word).
const MIXED_CASE_ACRONYMS: &[&str] = &["Tls", "Http", "Uri", "Url", "Cpu", "Mtu", "Json", "Xml", "Ip", "Api"];

/// Integer fields whose name is a size without its unit.
const SIZES: &[&str] = &["memory", "capacity", "size"];

/// One broken rule: where, and which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// The field, as a path such as `spec.credentialsSecretRef`.
    pub path: String,
    /// What the field breaks, in the words of `docs/api-conventions.md`.
    pub rule: String,
}

/// Every breach of the conventions in `crd`: its schema's fields, and its printer columns.
pub fn check_crd(crd: &CustomResourceDefinition) -> Vec<Breach> {
    let kind = &crd.spec.names.kind;
    let mut out = Vec::new();
    for version in &crd.spec.versions {
        if let Some(schema) = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) {
            let schema = serde_json::to_value(schema).unwrap_or_default();
            check_schema(&schema, kind, &mut out);
            if schema.pointer("/properties/status/properties/ready").is_some() {
                out.push(breach(&format!("{kind}.status.ready"), "whether an object is ready is its Ready condition"));
            }
        }
        let columns: Vec<(String, String)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| (c.name.clone(), c.json_path.clone()))
            .collect();
        let first_is_ready = columns
            .first()
            .is_some_and(|(name, path)| name == "Ready" && path == ".status.conditions[?(@.type==\"Ready\")].status");
        if !first_is_ready {
            out.push(breach(&format!("{kind} printer columns"), "the first column is Ready, the Ready condition"));
        }
        if columns.last().map(|(name, _)| name.as_str()) != Some("Age") {
            out.push(breach(&format!("{kind} printer columns"), "the last column is Age"));
        }
    }
    out
}

/// Every breach of the field rules in an OpenAPI schema whose root is at `path`.
pub fn check_schema(schema: &Value, path: &str, out: &mut Vec<Breach>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, field) in properties {
            let here = format!("{path}.{name}");
            check_field(name, field, &here, out);
            check_schema(field, &here, out);
        }
    }
    if let Some(items) = schema.get("items") {
        check_schema(items, &format!("{path}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        check_schema(values, &format!("{path}{{}}"), out);
    }
}

fn check_field(name: &str, field: &Value, path: &str, out: &mut Vec<Breach>) {
    let field_names: Vec<&str> = field
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let type_of = |v: &Value| v.get("type").and_then(Value::as_str).map(str::to_string);
    let kind = type_of(field);

    for acronym in MIXED_CASE_ACRONYMS {
        if let Some(at) = name.find(acronym).filter(|at| *at > 0) {
            let next = name[at + acronym.len()..].chars().next();
            let whole = matches!(*acronym, "Ip" | "Api") && next.is_some_and(|c| c.is_ascii_lowercase());
            if !whole {
                out.push(breach(path, &format!("acronyms are capitals inside a name ({acronym})")));
            }
        }
    }
    if name == "secretRef" {
        out.push(breach(path, "a Secret reference says what the Secret holds: <what>SecretRef"));
    }
    if name.ends_with("Ref") && name.len() > 3 {
        if !field_names.contains(&"name") {
            out.push(breach(path, "a *Ref names a Kubernetes object: it has a name"));
        }
        if field_names.contains(&"namespace") {
            out.push(breach(path, "a reference has no namespace: the object is in the referrer's namespace"));
        }
        if field_names.contains(&"href") {
            out.push(breach(path, "a provider catalog entry is named by what it is, without Ref"));
        }
        let allowed: &[&str] = if name.ends_with("SecretRef") { &["name", "key"] } else { &["name", "kind", "key"] };
        if let Some(extra) = field_names.iter().find(|f| !allowed.contains(f)) {
            out.push(breach(path, &format!("a reference holds {} only, not {extra}", allowed.join(", "))));
        }
    }
    if SIZES.contains(&name) && kind.as_deref() == Some("integer") {
        out.push(breach(path, "a size is a Kubernetes quantity, or its name says the unit"));
    }
    if name.ends_with("Display") {
        out.push(breach(path, "no *Display twin: the value itself is written to be read"));
    }
    let description = field.get("description").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    if kind.as_deref() == Some("string") && description.contains("comma-separated") {
        out.push(breach(path, "several values are a list, never a joined string"));
    }
}

fn breach(path: &str, rule: &str) -> Breach {
    Breach { path: path.to_string(), rule: rule.to_string() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_crd_keeps_the_api_conventions() {
        let breaches: Vec<Breach> = crate::api::crds().iter().flat_map(check_crd).collect();
        assert!(
            breaches.is_empty(),
            "fields that break docs/api-conventions.md:\n{}",
            breaches.iter().map(|b| format!("  {}: {}", b.path, b.rule)).collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn a_schema_that_breaks_each_rule_is_caught_field_by_field() {
        let name_ref = |extra: Value| {
            let mut p = json!({"name": {"type": "string"}});
            p.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
            json!({"type": "object", "properties": p})
        };
        let schema = json!({"type": "object", "properties": {
            "insecureSkipTlsVerify": {"type": "boolean"},
            "allowPlainHttp": {"type": "boolean"},
            "podIp": {"type": "string"},
            "apiVersion": {"type": "string"},
            "ipsum": {"type": "string"},
            "secretRef": name_ref(json!({})),
            "credentialsSecretRef": name_ref(json!({"namespace": {"type": "string"}})),
            "templateRef": {"type": "object", "properties": {"name": {"type": "string"}, "href": {"type": "string"}}},
            "volumeRef": name_ref(json!({})),
            "providerRef": name_ref(json!({"kind": {"type": "string"}})),
            "userDataSecretRef": name_ref(json!({"key": {"type": "string"}})),
            "status": {"type": "object", "properties": {
                "memory": {"type": "integer"},
                "memoryDisplay": {"type": "string"},
                "capacity": {"type": "string"},
                "attachedTo": {"type": "string", "description": "The machines, comma-separated."},
                "machines": {"type": "array", "items": {"type": "object", "properties": {"size": {"type": "integer"}}}}
            }}
        }});
        let mut out = Vec::new();
        check_schema(&schema, "Kind", &mut out);
        let paths: Vec<&str> = out.iter().map(|b| b.path.as_str()).collect();
        let expected = [
            "Kind.allowPlainHttp",
            "Kind.credentialsSecretRef",
            "Kind.insecureSkipTlsVerify",
            "Kind.podIp",
            "Kind.secretRef",
            "Kind.status.attachedTo",
            "Kind.status.machines[].size",
            "Kind.status.memory",
            "Kind.status.memoryDisplay",
            "Kind.templateRef",
        ];
        let mut found: Vec<&str> = paths.clone();
        found.sort();
        found.dedup();
        assert_eq!(found, expected, "{out:#?}");
        let rule_of = |path: &str| out.iter().filter(|b| b.path == path).map(|b| b.rule.clone()).collect::<Vec<_>>();
        assert!(rule_of("Kind.credentialsSecretRef").iter().any(|r| r.contains("no namespace")));
        assert!(rule_of("Kind.templateRef").iter().any(|r| r.contains("catalog entry")));
        assert!(rule_of("Kind.status.attachedTo").iter().any(|r| r.contains("list")));
    }

    #[test]
    fn a_kind_without_ready_first_or_age_last_or_with_a_ready_field_is_caught() {
        let mut crd = crate::api::crds().into_iter().next().expect("a CRD");
        let version = &mut crd.spec.versions[0];
        version.additional_printer_columns.as_mut().expect("columns").reverse();
        let schema = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()).expect("schema");
        let status = schema.properties.as_mut().and_then(|p| p.get_mut("status")).expect("status");
        status.properties.get_or_insert_default().insert(
            "ready".into(),
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps {
                type_: Some("boolean".into()),
                ..Default::default()
            },
        );
        let rules: Vec<String> = check_crd(&crd).into_iter().map(|b| b.rule).collect();
        assert!(rules.iter().any(|r| r.contains("first column is Ready")), "{rules:?}");
        assert!(rules.iter().any(|r| r.contains("last column is Age")), "{rules:?}");
        assert!(rules.iter().any(|r| r.contains("Ready condition")), "{rules:?}");
    }
}
