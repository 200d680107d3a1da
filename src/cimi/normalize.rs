//! The client's leniency: what real 1.x providers send, turned into what the shared (strict) model reads.
//!
//! Every tolerated deviation is in reference section 7 (`shared/cimi-reference.md`) and has a fixture test
//! below that quotes its line. The step works on `serde_json::Value`, after JSON or XML parsing and before
//! typed deserialization, so the strict model in `cimi::model` and cimi-sim stay strict.
//!
//! What it does:
//! - numbers and booleans sent as strings become numbers and booleans (known attribute names only);
//! - dates that are not `xs:dateTime` are rewritten as RFC 3339 when they can be read, dropped otherwise;
//! - `imageLocation` given as a string or as `{href}` is brought to one form ([`ImageLocationForm`]);
//! - resources and collection entries without `resourceURI` get the one their position implies;
//! - an empty collection without its entry array gets an empty array;
//! - `operations` rels: `…/action/delete` and capitalised `…/Action/x` are read as `delete` and `…/action/x`;
//! - empty strings (which CIMI omits) are removed.
//!
//! [`normal_form`](super::normal_form) tells, from the bytes, whether a document would come out of this step
//! unchanged: every rewrite added here needs its rule there.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// The CIMI 1.x namespace.
pub const NS1: &str = "http://schemas.dmtf.org/cimi/1";

/// Attributes whose values are integers in every CIMI resource that has them.
pub(crate) const INTEGER_ATTRS: &[&str] = &[
    "cpu",
    "memory",
    "cpuSpeed",
    "capacity",
    "count",
    "progress",
    "returnCode",
    "mtu",
    "sampleInterval",
    "quantity",
    "low",
    "medium",
    "high",
    "critical",
];
/// Attributes whose values are booleans.
pub(crate) const BOOLEAN_ATTRS: &[&str] = &[
    "bootable",
    "available",
    "isContinuous",
    "required",
    "force",
    "providerMandatory",
    "consumerMandatory",
    "mutable",
    "consumerWritable",
];
/// Attributes whose values are `xs:dateTime`.
pub(crate) const DATE_ATTRS: &[&str] =
    &["created", "updated", "timeOfStatusChange", "timestamp", "stopTime", "expiresTime"];
/// Maps whose values are strings to keep as they are.
pub(crate) const OPAQUE_MAPS: &[&str] = &["properties", "parameters"];

/// The shape the model expects for `imageLocation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLocationForm {
    /// `"imageLocation": {"href": "…"}` (the Primer's form).
    Href,
    /// `"imageLocation": "…"` (the 1.x XSD's form).
    Uri,
}

/// The type name of a `resourceURI` (`…/cimi/1/MachineCollection` -> `MachineCollection`).
pub fn type_name(resource_uri: &str) -> &str {
    resource_uri.rsplit('/').next().unwrap_or(resource_uri)
}

/// The lowerCamel plural a collection uses for its entries (`MachineConfiguration` -> `machineConfigurations`).
pub fn entry_key(item_type: &str) -> String {
    let mut chars = item_type.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => return String::new(),
    };
    if out.ends_with('s') {
        out.push_str("es");
    } else {
        out.push('s');
    }
    out
}

/// Normalise one resource (or a create/action response body) in place. `type_hint` is the type the caller
/// expected (`Machine`), used when the provider left out `resourceURI`.
pub fn normalize_resource(v: &mut Value, type_hint: Option<&str>, images: ImageLocationForm) {
    let Value::Object(obj) = v else { return };
    if !obj.contains_key("resourceURI")
        && let Some(t) = type_hint
    {
        obj.insert("resourceURI".into(), Value::String(format!("{NS1}/{t}")));
    }
    normalize_object(obj, images);
    if let Some(uri) = obj.get("resourceURI").and_then(Value::as_str).map(str::to_string)
        && type_name(&uri).ends_with("Collection")
    {
        let item = type_name(&uri).trim_end_matches("Collection").to_string();
        normalize_collection_entries(obj, &item, images);
    }
}

/// Normalise a collection's entries: add a missing (empty) entry array and each entry's `resourceURI`.
fn normalize_collection_entries(obj: &mut Map<String, Value>, item_type: &str, images: ImageLocationForm) {
    let key = entry_key(item_type);
    // Some providers name MachineConfiguration entries after the CEP attribute instead.
    let alias = match item_type {
        "MachineConfiguration" => Some("machineConfigs"),
        "VolumeConfiguration" => Some("volumeConfigs"),
        "NetworkConfiguration" => Some("networkConfigs"),
        _ => None,
    };
    if !obj.contains_key(&key)
        && let Some(a) = alias
        && let Some(entries) = obj.remove(a)
    {
        obj.insert(key.clone(), entries);
    }
    let entries = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Object(_) = entries {
        // One entry sent as an object instead of an array of one.
        *entries = Value::Array(vec![entries.take()]);
    }
    if let Value::Array(items) = entries {
        for e in items {
            normalize_resource(e, Some(item_type), images);
        }
    }
}

fn normalize_object(obj: &mut Map<String, Value>, images: ImageLocationForm) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        let Some(v) = obj.get_mut(&k) else { continue };
        if OPAQUE_MAPS.contains(&k.as_str()) {
            continue;
        }
        if matches!(v, Value::String(s) if s.is_empty()) {
            obj.remove(&k);
            continue;
        }
        if INTEGER_ATTRS.contains(&k.as_str()) {
            coerce_integer(v);
        } else if BOOLEAN_ATTRS.contains(&k.as_str()) {
            coerce_bool(v);
        } else if DATE_ATTRS.contains(&k.as_str()) {
            if !coerce_date(v) {
                tracing::debug!(attribute = %k, "dropping a date the client cannot read");
                obj.remove(&k);
            }
            continue;
        } else if k == "imageLocation" {
            coerce_image_location(v, images);
            continue;
        } else if k == "operations" {
            normalize_operations(v);
        }
        match v {
            Value::Object(inner) => normalize_object(inner, images),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(inner) = item {
                        normalize_object(inner, images);
                    }
                }
            }
            _ => {}
        }
    }
}

fn coerce_integer(v: &mut Value) {
    if let Value::String(s) = v {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            *v = Value::from(n);
        } else if let Ok(f) = t.parse::<f64>()
            && f.fract() == 0.0
            && f.abs() < 9.0e15
        {
            #[allow(clippy::cast_possible_truncation)]
            let n = f as i64;
            *v = Value::from(n);
        }
    }
}

fn coerce_bool(v: &mut Value) {
    if let Value::String(s) = v {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => *v = Value::Bool(true),
            "false" | "no" | "0" => *v = Value::Bool(false),
            _ => {}
        }
    }
}

/// Read a date in the shapes providers used; write it as RFC 3339. False when it cannot be read.
fn coerce_date(v: &mut Value) -> bool {
    let parsed = match v {
        Value::String(s) => parse_lenient_date(s.trim()),
        Value::Number(n) => n.as_i64().and_then(|secs| {
            // Epoch seconds, or milliseconds when too large to be seconds.
            if secs > 100_000_000_000 {
                Utc.timestamp_millis_opt(secs).single()
            } else {
                Utc.timestamp_opt(secs, 0).single()
            }
        }),
        _ => None,
    };
    match parsed {
        Some(d) => {
            *v = Value::String(d.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            true
        }
        None => false,
    }
}

fn parse_lenient_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f %z", "%Y-%m-%d %H:%M:%S %z", "%a %b %d %H:%M:%S %z %Y"]
    {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    // Without an offset: read as UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S UTC"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc());
        }
    }
    None
}

fn coerce_image_location(v: &mut Value, form: ImageLocationForm) {
    let href = match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("href").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    if let Some(h) = href {
        *v = match form {
            ImageLocationForm::Href => serde_json::json!({ "href": h }),
            ImageLocationForm::Uri => Value::String(h),
        };
    }
}

fn normalize_operations(v: &mut Value) {
    if let Value::Object(_) = v {
        *v = Value::Array(vec![v.take()]);
    }
    let Value::Array(ops) = v else { return };
    let has_plain_delete = ops.iter().any(|o| o.get("rel").and_then(Value::as_str) == Some("delete"));
    for op in ops.iter_mut() {
        let Some(rel) = op.get("rel").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let new_rel = canonical_rel(&rel, has_plain_delete);
        if new_rel != rel
            && let Value::Object(o) = op
        {
            o.insert("rel".into(), Value::String(new_rel));
        }
    }
}

/// The rel a provider meant: `…/action/delete` is `delete` (unless a plain one is also there), and action
/// URIs of the CIMI namespaces are lower-cased in their `action/x` part (`…/Action/start`).
pub fn canonical_rel(rel: &str, has_plain_delete: bool) -> String {
    let lower = rel.to_ascii_lowercase();
    for ns in ["http://schemas.dmtf.org/cimi/1/", "http://schemas.dmtf.org/cimi/2/"] {
        if let Some(rest) = lower.strip_prefix(ns)
            && let Some(name) = rest.strip_prefix("action/")
        {
            if name == "delete" && !has_plain_delete {
                return "delete".to_string();
            }
            return format!("{}action/{name}", &rel[..ns.len()]);
        }
    }
    rel.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! One fixture per tolerated deviation; each quotes its line of `cimi-reference.md` section 7.
    use super::*;
    use serde_json::json;

    fn norm(mut v: Value, hint: Option<&str>) -> Value {
        normalize_resource(&mut v, hint, ImageLocationForm::Href);
        v
    }

    /// §7: "Numbers and booleans as strings (`"cpu": "1"`, `"bootable": "false"`)".
    #[test]
    fn numbers_and_booleans_as_strings() {
        let v = norm(
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineConfiguration", "cpu": "1", "memory": " 4000000 ",
                   "disks": [{"capacity": "50000000", "format": "ext4"}], "properties": {"cpu": "2"}}),
            None,
        );
        assert_eq!(v["cpu"], json!(1));
        assert_eq!(v["memory"], json!(4_000_000));
        assert_eq!(v["disks"][0]["capacity"], json!(50_000_000));
        assert_eq!(v["properties"]["cpu"], json!("2"), "property values stay strings");
        let v = norm(json!({"bootable": "false", "capacity": "1.0E7", "name": "42"}), Some("Volume"));
        assert_eq!(v["bootable"], json!(false));
        assert_eq!(v["capacity"], json!(10_000_000));
        assert_eq!(v["name"], json!("42"), "only known attributes change type");
        let v = norm(json!({"operations": [{"rel": "edit", "href": "x", "available": "false"}]}), Some("Machine"));
        assert_eq!(v["operations"][0]["available"], json!(false));
    }

    /// §7: "dates that are not xsd:dateTime".
    #[test]
    fn dates_that_are_not_xsd_datetime() {
        let v = norm(
            json!({"created": "2012-08-15 12:15:00 UTC", "updated": "Wed, 15 Aug 2012 12:15:00 +0200",
                   "timeOfStatusChange": 1344989700, "timestamp": "yesterday-ish"}),
            Some("Job"),
        );
        assert_eq!(v["created"], json!("2012-08-15T12:15:00Z"));
        assert_eq!(v["updated"], json!("2012-08-15T10:15:00Z"));
        assert_eq!(v["timeOfStatusChange"], json!("2012-08-15T00:15:00Z"));
        assert!(v.get("timestamp").is_none(), "an unreadable date is dropped, not fatal");
        let v = norm(json!({"created": "2012-08-15T12:15:00-05:00"}), Some("Machine"));
        assert_eq!(v["created"], json!("2012-08-15T17:15:00Z"));
    }

    /// §7: "`imageLocation` as a string or as `{"href": ...}`".
    #[test]
    fn image_location_as_string_or_href() {
        let a = norm(json!({"imageLocation": "http://example.com/data/8934322"}), Some("MachineImage"));
        let b = norm(json!({"imageLocation": {"href": "http://example.com/data/8934322"}}), Some("MachineImage"));
        assert_eq!(a, b);
        assert_eq!(a["imageLocation"]["href"], json!("http://example.com/data/8934322"));
        let mut c = json!({"imageLocation": {"href": "u"}});
        normalize_resource(&mut c, None, ImageLocationForm::Uri);
        assert_eq!(c["imageLocation"], json!("u"));
    }

    /// §7: "collection entries without `resourceURI`".
    #[test]
    fn collection_entries_without_resource_uri() {
        let v = norm(
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImageCollection", "count": 1,
                   "machineImages": [{"id": "http://example.com/images/WinXP-SP2", "name": "WinXP SP2"}]}),
            None,
        );
        assert_eq!(v["machineImages"][0]["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/MachineImage"));
        let v = norm(json!({"id": "m"}), Some("Machine"));
        assert_eq!(v["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/Machine"));
    }

    /// §7: "an empty collection with `count: 0` and no entry array at all".
    #[test]
    fn empty_collection_without_entry_array() {
        let v = norm(
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/CredentialCollection", "id": "c", "count": 0}),
            None,
        );
        assert_eq!(v["credentials"], json!([]));
        let v = norm(json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/AddressCollection", "count": "0"}), None);
        assert_eq!(v["addresses"], json!([]));
        assert_eq!(v["count"], json!(0));
    }

    /// §7: "Both plain `delete` and `http://schemas.dmtf.org/cimi/1/action/delete` as the delete rel."
    #[test]
    fn both_delete_rels() {
        let v = norm(
            json!({"operations": [{"rel": "http://schemas.dmtf.org/cimi/1/action/delete", "href": "d"},
                                  {"rel": "http://schemas.dmtf.org/cimi/1/Action/start", "href": "s"}]}),
            Some("Machine"),
        );
        assert_eq!(v["operations"][0]["rel"], json!("delete"));
        assert_eq!(v["operations"][1]["rel"], json!("http://schemas.dmtf.org/cimi/1/action/start"));
        let v = norm(
            json!({"operations": [{"rel": "delete", "href": "d"}, {"rel": "http://schemas.dmtf.org/cimi/1/action/delete", "href": "d2"}]}),
            Some("Machine"),
        );
        assert_eq!(v["operations"][1]["rel"], json!("http://schemas.dmtf.org/cimi/1/action/delete"));
    }

    #[test]
    fn entry_keys_are_lower_camel_plurals() {
        assert_eq!(entry_key("Machine"), "machines");
        assert_eq!(entry_key("MachineConfiguration"), "machineConfigurations");
        assert_eq!(entry_key("ResourceMetadata"), "resourceMetadatas");
        assert_eq!(entry_key("Address"), "addresses");
        assert_eq!(entry_key("MachineNetworkInterfaceAddress"), "machineNetworkInterfaceAddresses");
    }

    #[test]
    fn odd_shapes_never_panic() {
        for v in [
            json!(null),
            json!(3),
            json!([1, 2]),
            json!({"operations": 3}),
            json!({"resourceURI": 5}),
            json!({"resourceURI": "MachineCollection", "machines": 7}),
            json!({"created": [1]}),
            json!({"cpu": {"x": 1}}),
        ] {
            let _ = norm(v, Some("Machine"));
        }
    }
}
