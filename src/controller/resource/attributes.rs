//! The user-owned attributes of a provider resource (name, description, properties) as a spec wants them, what
//! differs from what the provider has (a partial update of exactly that), and the drift report of an ObserveOnly
//! object. Pure functions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value, json};

use crate::api::PowerState;
use crate::api::common::DriftedField;

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

/// One field where an observed resource differs from the spec (the shell adds since when, see [`since`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The spec field: `spec.name`, `spec.description`, `spec.properties`, `spec.powerState`.
    pub field: String,
    /// What the spec asks for.
    pub desired: String,
    /// What the provider shows (an excerpt).
    pub observed: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is {} (spec: {})", self.field, self.observed, self.desired)
    }
}

/// The drift of a pass as one line, for the `Synced` condition.
pub fn drift_message(drift: &[Drift]) -> String {
    drift.iter().map(Drift::to_string).collect::<Vec<_>>().join("; ")
}

/// A value as drift shows it: a string as it is, absence as `(unset)`, anything else as compact JSON; at most
/// an excerpt, on one line.
fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(unset)".to_string(),
        Some(Value::String(s)) => crate::cimi::error::excerpt(s.as_bytes()),
        Some(other) => crate::cimi::error::excerpt(other.to_string().as_bytes()),
    }
}

/// What differs between the spec and an observed resource, for an ObserveOnly object (our tags are never
/// expected on it), field by field: the attribute `changes` the spec would make, and the power state when
/// `power` is `(observed state, desired)`. Empty when nothing does.
pub fn drift(changes: &Map<String, Value>, observed: &Value, power: Option<(&str, PowerState)>) -> Vec<Drift> {
    let mut out: Vec<Drift> = changes
        .iter()
        .map(|(key, wanted)| Drift {
            field: format!("spec.{key}"),
            desired: shown(Some(wanted)),
            observed: shown(observed.get(key)),
        })
        .collect();
    if let Some((state, wanted)) = power {
        out.push(Drift {
            field: "spec.powerState".into(),
            desired: wanted.as_str().into(),
            observed: crate::cimi::error::excerpt(state.as_bytes()),
        });
    }
    out
}

/// The drift of status: each field of `now` with the time it was first seen differing, kept from `before`
/// while the same field keeps differing (whatever its values), `at` for a field that starts to differ.
pub fn since(before: &[DriftedField], now: Vec<Drift>, at: &Time) -> Vec<DriftedField> {
    now.into_iter()
        .map(|d| {
            let since = before.iter().find(|b| b.field == d.field).map_or_else(|| at.clone(), |b| b.since.clone());
            DriftedField { field: d.field, desired: d.desired, observed: d.observed, since }
        })
        .collect()
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
        let observed = json!({"description": "by hand", "properties": {"team": "b"}});
        let mut changes = Map::new();
        changes.insert("description".into(), json!("spec"));
        changes.insert("name".into(), json!("web-1"));
        changes.insert("properties".into(), json!({"team": "a"}));
        let drift = drift(&changes, &observed, Some(("STOPPED", PowerState::Started)));
        let by_field = |f: &str| drift.iter().find(|d| d.field == f).cloned().expect(f);
        assert_eq!(
            (by_field("spec.description").desired, by_field("spec.description").observed),
            ("spec".into(), "by hand".into())
        );
        assert_eq!(by_field("spec.name").observed, "(unset)", "an attribute the provider does not have");
        assert_eq!(by_field("spec.properties").desired, r#"{"team":"a"}"#, "maps as JSON");
        assert_eq!(
            (by_field("spec.powerState").desired, by_field("spec.powerState").observed),
            ("Started".into(), "STOPPED".into())
        );
        let message = drift_message(&drift);
        assert!(message.contains("spec.description is by hand (spec: spec)"), "{message}");
        assert!(message.contains("spec.powerState is STOPPED (spec: Started)"), "{message}");
        assert!(super::drift(&Map::new(), &observed, None).is_empty());
    }

    #[test]
    fn provider_text_in_drift_is_an_excerpt_on_one_line() {
        let long = format!("line one\nline two {}", "x".repeat(5000));
        let mut changes = Map::new();
        changes.insert("description".into(), json!("short"));
        let drift = drift(&changes, &json!({"description": long}), None);
        assert!(drift[0].observed.chars().count() <= crate::cimi::error::EXCERPT_CHARS + 1, "bounded");
        assert!(!drift[0].observed.contains('\n'), "one line");
    }

    #[test]
    fn a_field_keeps_the_time_it_started_to_differ() {
        let t = |s: i64| Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("time"));
        let d =
            |field: &str, observed: &str| Drift { field: field.into(), desired: "a".into(), observed: observed.into() };
        let first = since(&[], vec![d("spec.description", "b")], &t(100));
        assert_eq!(first[0].since, t(100));
        let later = since(&first, vec![d("spec.description", "c"), d("spec.powerState", "STOPPED")], &t(200));
        assert_eq!(later[0].since, t(100), "still differing: the first time is kept, whatever the value now");
        assert_eq!(later[1].since, t(200), "a field that starts to differ");
        let healed = since(&later, vec![d("spec.powerState", "STOPPED")], &t(300));
        assert_eq!((healed.len(), healed[0].since.clone()), (1, t(200)));
        let again = since(&healed, vec![d("spec.description", "d"), d("spec.powerState", "STOPPED")], &t(400));
        assert_eq!(again[0].since, t(400), "a field that stopped differing starts again from now");
    }
}
