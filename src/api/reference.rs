//! The API reference (`docs/api-reference.md`), generated from the CRDs' OpenAPI schemas by
//! `make crds`: per kind its scope, names and printer columns, then every spec and status field with
//! its type, whether it is required, and its documentation.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};

/// The Markdown reference of every CRD of [`super::crds::crds`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# API reference\n\n<!-- Generated from the CRDs by `make crds`; do not edit by hand. -->\n\n\
         Group `cimi.dev`. Condition reasons are listed in [reasons.md](reasons.md), admission rules in \
         [admission.md](admission.md).\n",
    );
    for crd in super::crds::crds() {
        crd_section(&crd, &mut out);
    }
    out
}

fn crd_section(crd: &CustomResourceDefinition, out: &mut String) {
    let names = &crd.spec.names;
    for version in &crd.spec.versions {
        out.push_str(&format!("\n## {}\n\n", names.kind));
        out.push_str(&format!(
            "`{}/{}`, {}, plural `{}`",
            crd.spec.group,
            version.name,
            if crd.spec.scope == "Cluster" { "cluster-scoped" } else { "namespaced" },
            names.plural
        ));
        if let Some(short) = names.short_names.as_ref().filter(|s| !s.is_empty()) {
            out.push_str(&format!(", short names `{}`", short.join("`, `")));
        }
        if let Some(categories) = names.categories.as_ref().filter(|c| !c.is_empty()) {
            out.push_str(&format!(", categories `{}`", categories.join("`, `")));
        }
        out.push_str(".\n");
        if let Some(columns) = version.additional_printer_columns.as_ref().filter(|c| !c.is_empty()) {
            let list: Vec<String> = columns.iter().map(|c| format!("{} (`{}`)", c.name, c.json_path)).collect();
            out.push_str(&format!("\n`kubectl get` columns: {}.\n", list.join(", ")));
        }
        let Some(root) = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()) else {
            continue;
        };
        if let Some(text) = &root.description {
            out.push_str(&format!("\n{}\n", one_line(text)));
        }
        for part in ["spec", "status"] {
            if let Some(schema) = root.properties.as_ref().and_then(|p| p.get(part)) {
                out.push_str(&format!(
                    "\n### {}.{part}\n\n| field | type | required | description |\n|---|---|---|---|\n",
                    names.kind
                ));
                fields(schema, part, out);
            }
        }
    }
}

fn fields(schema: &JSONSchemaProps, path: &str, out: &mut String) {
    let required = schema.required.clone().unwrap_or_default();
    for (name, child) in schema.properties.iter().flatten() {
        let child_path = format!("{path}.{name}");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            child_path,
            type_of(child),
            if required.contains(name) { "yes" } else { "" },
            child.description.as_deref().map(one_line).unwrap_or_default()
        ));
        fields(child, &child_path, out);
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = &child.items {
            fields(items, &format!("{child_path}[]"), out);
        }
    }
}

fn type_of(schema: &JSONSchemaProps) -> String {
    let base = schema.type_.clone().unwrap_or_else(|| {
        if schema.x_kubernetes_int_or_string == Some(true) { "int-or-string".into() } else { "object".into() }
    });
    match (&base[..], &schema.items) {
        ("array", Some(JSONSchemaPropsOrArray::Schema(items))) => format!("[]{}", type_of(items)),
        _ => match &schema.enum_ {
            Some(values) if !values.is_empty() => {
                let list: Vec<String> = values.iter().map(|v| v.0.to_string().replace('"', "")).collect();
                format!("{base} ({})", list.join(" \\| "))
            }
            _ => base,
        },
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}
