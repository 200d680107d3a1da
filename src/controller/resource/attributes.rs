//! The user-owned attributes of a provider resource (name, description, properties) as a spec wants them, what
//! differs from what the provider has (a partial update of exactly that), and the drift report of an ObserveOnly
//! object. Pure functions.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::reads::{properties_of, text};

/// The properties the provider resource should carry: the user's plus our tags.
pub fn desired_properties(
    user: Option<&BTreeMap<String, String>>,
    tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = user.cloned().unwrap_or_default();
    out.retain(|k, _| !k.starts_with("cimi.dev/"));
    out.extend(tags.clone());
    out
}

/// The partial update that makes name, description and properties what the spec says; empty when
/// nothing differs. Properties are sent whole (a PUT of `properties` replaces the map), tags kept.
pub fn attribute_changes(
    name: &str,
    description: Option<&str>,
    properties: &BTreeMap<String, String>,
    observed: &Value,
) -> Map<String, Value> {
    let mut changes = Map::new();
    if text(observed, "name") != Some(name) {
        changes.insert("name".into(), json!(name));
    }
    if let Some(d) = description
        && text(observed, "description") != Some(d)
    {
        changes.insert("description".into(), json!(d));
    }
    if &properties_of(observed) != properties {
        changes.insert("properties".into(), json!(properties));
    }
    changes
}

/// The CIMI name and properties an object wants. An imported resource keeps what the spec leaves
/// unset: its own name, and its own properties (plus our tags, unless it is only observed).
pub fn wanted_attributes(
    spec_name: Option<&str>,
    object_name: &str,
    user: Option<&BTreeMap<String, String>>,
    tags: &BTreeMap<String, String>,
    imported: Option<&Value>,
) -> (String, BTreeMap<String, String>) {
    let name = match (spec_name, imported) {
        (Some(n), _) => n.to_string(),
        (None, Some(current)) => text(current, "name").unwrap_or(object_name).to_string(),
        (None, None) => object_name.to_string(),
    };
    let properties = match (user, imported) {
        (None, Some(current)) => desired_properties(Some(&properties_of(current)), tags),
        _ => desired_properties(user, tags),
    };
    (name, properties)
}

/// What differs between the spec and an observed resource, for an ObserveOnly object (our tags are
/// never expected on it): `None` when nothing does.
pub fn drift_report(changes: &Map<String, Value>, observed: &Value, power: Option<(&str, &str)>) -> Option<String> {
    let mut parts = Vec::new();
    for (key, wanted) in changes {
        let seen = observed.get(key).cloned().unwrap_or(Value::Null);
        parts.push(format!("{key} is {seen} (spec: {wanted})"));
    }
    if let Some((state, wanted)) = power {
        parts.push(format!("state is {state} (spec: {wanted})"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::names::{TAG_NAME, TAG_UID};

    fn tags() -> BTreeMap<String, String> {
        BTreeMap::from([(TAG_UID.to_string(), "u1".to_string()), (TAG_NAME.to_string(), "web-1".to_string())])
    }

    #[test]
    fn user_properties_cannot_override_tags() {
        let user = BTreeMap::from([("team".to_string(), "a".to_string()), (TAG_UID.to_string(), "x".to_string())]);
        let props = desired_properties(Some(&user), &tags());
        assert_eq!(props[TAG_UID], "u1");
        assert_eq!(props["team"], "a");
    }

    #[test]
    fn only_differing_attributes_are_updated_and_tags_are_kept() {
        let props = desired_properties(Some(&BTreeMap::from([("team".into(), "a".into())])), &tags());
        let observed = json!({"name": "web-1", "description": "old", "properties": props});
        assert!(attribute_changes("web-1", None, &props, &observed).is_empty());
        let changes = attribute_changes("web-1", Some("new"), &props, &observed);
        assert_eq!(changes.keys().collect::<Vec<_>>(), ["description"]);
        let more = desired_properties(Some(&BTreeMap::from([("team".into(), "b".into())])), &tags());
        let changes = attribute_changes("web-1", Some("old"), &more, &observed);
        assert_eq!(changes["properties"]["team"], "b");
        assert_eq!(changes["properties"][TAG_UID], "u1", "a PUT of properties keeps the tags");
    }

    #[test]
    fn an_import_keeps_what_the_spec_leaves_unset() {
        let current = json!({"name": "legacy", "properties": {"owner": "ops"}});
        let (name, props) = wanted_attributes(None, "obj", None, &tags(), Some(&current));
        assert_eq!(name, "legacy", "an imported resource keeps its own name");
        assert_eq!(props["owner"], "ops", "and its own properties");
        assert_eq!(props[TAG_UID], "u1", "plus our tags");
        let user = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let (name, props) = wanted_attributes(Some("web"), "obj", Some(&user), &tags(), Some(&current));
        assert_eq!(name, "web");
        assert!(!props.contains_key("owner"), "a spec that sets properties owns them all");
        let (name, props) = wanted_attributes(None, "obj", None, &BTreeMap::new(), None);
        assert_eq!((name.as_str(), props.len()), ("obj", 0));
    }

    #[test]
    fn drift_is_described_field_by_field() {
        let observed = json!({"description": "by hand"});
        let mut changes = Map::new();
        changes.insert("description".into(), json!("spec"));
        let report = drift_report(&changes, &observed, Some(("STOPPED", "STARTED"))).expect("drift");
        assert!(report.contains("description is \"by hand\" (spec: \"spec\")"), "{report}");
        assert!(report.contains("state is STOPPED (spec: STARTED)"), "{report}");
        assert_eq!(drift_report(&Map::new(), &observed, None), None);
    }
}
