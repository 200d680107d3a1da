//! Request bodies: a `<Type>Create` body from a [`Template`] (by value or by reference), and the check that
//! a body to write says its `resourceURI`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::cimi::error::CimiError;
use crate::cimi::model;

/// The template of a `…Create` body.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// The template's attributes inline (nested configs, images, credentials may be values or `{href}`).
    ByValue(Value),
    /// A provider template by href, with attributes overridden for this instantiation only; a `null`
    /// override erases the attribute.
    ByReference {
        /// The template's href.
        href: String,
        /// Overrides.
        overrides: Map<String, Value>,
    },
}

/// A `<Type>Create` body (`MachineCreate`, `VolumeCreate`, `CredentialCreate`...): name, description and
/// properties for the new resource, and the `<type>Template` by value or by reference.
pub fn create_body(
    type_name: &str,
    name: &str,
    description: Option<&str>,
    properties: &BTreeMap<String, String>,
    template: Template,
) -> Value {
    let mut body = Map::new();
    body.insert("resourceURI".into(), Value::String(model::type_uri(&format!("{type_name}Create"))));
    body.insert("name".into(), Value::String(name.to_string()));
    if let Some(d) = description {
        body.insert("description".into(), Value::String(d.to_string()));
    }
    if !properties.is_empty() {
        let props: Map<String, Value> = properties.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        body.insert("properties".into(), Value::Object(props));
    }
    let mut key: String = type_name.chars().take(1).flat_map(char::to_lowercase).collect();
    key.push_str(type_name.get(1..).unwrap_or(""));
    key.push_str("Template");
    let template = match template {
        Template::ByValue(v) => v,
        Template::ByReference { href, mut overrides } => {
            overrides.insert("href".into(), Value::String(href));
            Value::Object(overrides)
        }
    };
    body.insert(key, template);
    Value::Object(body)
}

/// A body for a write: serialised, with its `resourceURI` checked.
pub(super) fn to_body(body: &impl Serialize) -> Result<Value, CimiError> {
    let v = serde_json::to_value(body).map_err(|e| CimiError::Config(format!("body: {e}")))?;
    match v.get("resourceURI").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => Ok(v),
        _ => Err(CimiError::Config("a CIMI request body needs its resourceURI".into())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_bodies_by_value_and_by_reference() {
        let mut props = BTreeMap::new();
        props.insert("cimi.dev/uid".to_string(), "u1".to_string());
        let mut overrides = Map::new();
        overrides.insert("initialState".into(), json!("STOPPED"));
        overrides.insert("userData".into(), Value::Null);
        let b = create_body(
            "Machine",
            "web1",
            None,
            &props,
            Template::ByReference { href: "machineTemplates/t".into(), overrides },
        );
        assert_eq!(
            b,
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "web1",
                   "properties": {"cimi.dev/uid": "u1"},
                   "machineTemplate": {"href": "machineTemplates/t", "initialState": "STOPPED", "userData": null}})
        );
        let b = create_body(
            "Volume",
            "data",
            Some("d"),
            &BTreeMap::new(),
            Template::ByValue(json!({"volumeConfig": {"href": "c"}})),
        );
        assert_eq!(b["volumeTemplate"], json!({"volumeConfig": {"href": "c"}}));
        assert_eq!(b["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/VolumeCreate"));
    }

    #[test]
    fn bodies_need_a_resource_uri() {
        assert!(to_body(&json!({"name": "x"})).is_err());
        assert!(to_body(&model::Action::new("start")).is_ok());
    }
}
