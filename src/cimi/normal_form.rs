//! Whether a JSON document is already in the client's normal form: one that
//! [`normalize_resource`](super::normalize::normalize_resource) (with
//! [`ImageLocationForm::Href`](super::normalize::ImageLocationForm::Href)) would leave exactly as it is. Such
//! a document can be typed straight from its bytes; any other one takes the normalising path.
//!
//! [`is_normal`] reads the bytes once, builds nothing, and stops at the first deviation. It errs on one side
//! only: a document it passes is one the normaliser does not change, while a few the normaliser would keep as
//! they are still fail it (any string where a number or a boolean belongs, any `…/action/delete` rel, a
//! missing `resourceURI`, values of odd types where the model wants an object or an array). Those take the slow
//! path, which gives what it always gave.
//!
//! The rules, one per rewrite of [`normalize`](super::normalize), outside `properties` and `parameters`:
//! - no empty string as an attribute value;
//! - no string as the value of an integer or boolean attribute;
//! - dates as RFC 3339 in UTC with `Z`, the fraction in 0, 3, 6 or 9 digits as needed (what the normaliser
//!   writes);
//! - `imageLocation` as `{"href": "…"}` and nothing else;
//! - `operations` as an array of objects, no rel with an upper-case `…/Action/x` part, no `…/action/delete`;
//! - a `resourceURI` on the document (a resource's not naming a collection, a page's naming the collection of
//!   the expected type), a page's entry array under its expected key, each entry an object with a
//!   `resourceURI` not naming a collection.

use std::fmt;

use chrono::DateTime;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::normalize::{BOOLEAN_ATTRS, DATE_ATTRS, INTEGER_ATTRS, OPAQUE_MAPS, entry_key, type_name};

/// What the caller expects the document to be, which decides the rules at its top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// One resource (a `get`; the normaliser would add a missing `resourceURI` from the expected type).
    Resource,
    /// One page of the collection of the named item type (a `list_page`), e.g. `Machine`.
    Collection(&'a str),
}

/// True when `raw` is one JSON object that the client's normalisation would not change, read as `expect`.
/// Invalid JSON is not normal: the slow path reports it.
pub fn is_normal(raw: &[u8], expect: Expect<'_>) -> bool {
    let entries = match expect {
        Expect::Collection(item) => Some(entry_key(item)),
        Expect::Resource => None,
    };
    let top = Top { expect, entries: entries.as_deref() };
    let mut de = serde_json::Deserializer::from_slice(raw);
    ObjectOnly(Role::Top(top)).deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// What the normaliser does not leave as it is; the scan stops there.
fn deviation<E: de::Error>() -> E {
    E::custom("not in the client's normal form")
}

/// The top of the document.
#[derive(Clone, Copy)]
struct Top<'a> {
    expect: Expect<'a>,
    /// The key of a page's entry array, e.g. `machines`.
    entries: Option<&'a str>,
}

/// Which object is read: the rules that hold beyond the common ones.
#[derive(Clone, Copy)]
enum Role<'a> {
    /// The document itself.
    Top(Top<'a>),
    /// An entry of a page.
    Entry,
    /// An element of `operations`.
    Operation,
    /// Any other object.
    Nested,
}

/// What a value must be, by its attribute name and the object it is in.
#[derive(Clone, Copy)]
enum Slot<'a> {
    /// `properties`, `parameters`: not looked into.
    Opaque,
    /// Anything but an empty string; `strings` false for the integer and boolean attributes. Objects are
    /// read as nested objects, arrays as arrays of them.
    Plain { strings: bool },
    /// A date attribute.
    Date,
    /// `imageLocation`.
    ImageLocation,
    /// `operations`.
    Operations,
    /// The `rel` of an operation.
    Rel,
    /// The `resourceURI` of the document or of an entry.
    TypeUri(UriRule<'a>),
    /// A page's entry array.
    Entries,
}

/// What a `resourceURI` must name.
#[derive(Clone, Copy)]
enum UriRule<'a> {
    /// Not a collection.
    NotCollection,
    /// The collection of this item type (`Machine` -> `…/MachineCollection`).
    CollectionOf(&'a str),
}

impl UriRule<'_> {
    fn holds(self, uri: &str) -> bool {
        let name = type_name(uri);
        match self {
            UriRule::NotCollection => !name.ends_with("Collection"),
            UriRule::CollectionOf(item) => name.strip_suffix("Collection") == Some(item),
        }
    }
}

/// The slot of the attribute `key` in an object read as `role`.
fn slot<'a>(key: &str, role: Role<'a>) -> Slot<'a> {
    if OPAQUE_MAPS.contains(&key) {
        return Slot::Opaque;
    }
    match (role, key) {
        (Role::Top(top), "resourceURI") => {
            return Slot::TypeUri(match top.expect {
                Expect::Resource => UriRule::NotCollection,
                Expect::Collection(item) => UriRule::CollectionOf(item),
            });
        }
        (Role::Top(Top { entries: Some(e), .. }), k) if k == e => return Slot::Entries,
        (Role::Entry, "resourceURI") => return Slot::TypeUri(UriRule::NotCollection),
        (Role::Operation, "rel") => return Slot::Rel,
        _ => {}
    }
    if INTEGER_ATTRS.contains(&key) || BOOLEAN_ATTRS.contains(&key) {
        Slot::Plain { strings: false }
    } else if DATE_ATTRS.contains(&key) {
        Slot::Date
    } else if key == "imageLocation" {
        Slot::ImageLocation
    } else if key == "operations" {
        Slot::Operations
    } else {
        Slot::Plain { strings: true }
    }
}

/// A date as the normaliser writes it: `YYYY-MM-DDTHH:MM:SS[.f]Z`, the fraction in 3, 6 or 9 digits, the
/// fewest that hold it, and none when it is zero (chrono's `SecondsFormat::AutoSi`).
fn is_canonical_date(s: &str) -> bool {
    let b = s.as_bytes();
    if !matches!(b.len(), 20 | 24 | 27 | 30) || b[10] != b'T' || b[b.len() - 1] != b'Z' {
        return false;
    }
    let Ok(d) = DateTime::parse_from_rfc3339(s) else { return false };
    let nanos = d.timestamp_subsec_nanos();
    let digits = match nanos {
        // A leap second: left to the normaliser.
        1_000_000_000.. => return false,
        0 => 0,
        n if n % 1_000_000 == 0 => 3,
        n if n % 1_000 == 0 => 6,
        _ => 9,
    };
    b.len() == if digits == 0 { 20 } else { 21 + digits }
}

/// An operation rel the normaliser keeps: not an action of a CIMI namespace with upper case in its
/// `action/x` part, and not the action `delete` (rewritten to `delete` unless a plain one is there too).
fn is_canonical_rel(rel: &str) -> bool {
    let b = rel.as_bytes();
    for ns in [b"http://schemas.dmtf.org/cimi/1/", b"http://schemas.dmtf.org/cimi/2/"] {
        let Some(tail) = b.get(ns.len()..).filter(|_| b[..ns.len()].eq_ignore_ascii_case(ns)) else { continue };
        if tail.len() >= 7 && tail[..7].eq_ignore_ascii_case(b"action/") {
            return !tail.iter().any(u8::is_ascii_uppercase) && !tail.eq_ignore_ascii_case(b"action/delete");
        }
    }
    true
}

/// Reads one value in its slot.
struct Attribute<'a>(Slot<'a>);

impl<'de> DeserializeSeed<'de> for Attribute<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0 {
            Slot::Opaque => d.deserialize_ignored_any(IgnoredAny).map(|_| ()),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Attribute<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CIMI attribute value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        let kept = !s.is_empty()
            && match self.0 {
                Slot::Plain { strings } => strings,
                Slot::Date => is_canonical_date(s),
                Slot::Rel => is_canonical_rel(s),
                Slot::TypeUri(rule) => rule.holds(s),
                Slot::Opaque => true,
                Slot::ImageLocation | Slot::Operations | Slot::Entries => false,
            };
        if kept { Ok(()) } else { Err(deviation()) }
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        match self.0 {
            Slot::Plain { .. } | Slot::Opaque => ObjectOnly(Role::Nested).visit_map(map),
            Slot::ImageLocation => href_only(map),
            _ => Err(deviation()),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let element = match self.0 {
            Slot::Plain { .. } | Slot::Opaque => {
                while seq.next_element_seed(Element)?.is_some() {}
                return Ok(());
            }
            Slot::Operations => Role::Operation,
            Slot::Entries => Role::Entry,
            _ => return Err(deviation()),
        };
        while seq.next_element_seed(ObjectOnly(element))?.is_some() {}
        Ok(())
    }
}

impl Attribute<'_> {
    /// A number, boolean or null: kept where any value is (the normaliser turns strings, not these).
    fn scalar<E: de::Error>(self) -> Result<(), E> {
        match self.0 {
            Slot::Plain { .. } | Slot::Opaque => Ok(()),
            _ => Err(deviation()),
        }
    }
}

/// `{"href": "…"}` and nothing more: the form the normaliser gives `imageLocation`.
fn href_only<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    let Some(key) = map.next_key_seed(Key(Role::Nested))? else { return Err(deviation()) };
    if !key.href {
        return Err(deviation());
    }
    map.next_value_seed(AnyString)?;
    match map.next_key_seed(Key(Role::Nested))? {
        None => Ok(()),
        Some(_) => Err(deviation()),
    }
}

/// Any string (the href of `imageLocation`, which the normaliser copies as it is).
struct AnyString;

impl<'de> DeserializeSeed<'de> for AnyString {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyString {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// An element of an array outside `operations` and the entries: objects are normalised, nested arrays and
/// scalars (empty strings too) are not.
struct Element;

impl<'de> DeserializeSeed<'de> for Element {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array element")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        ObjectOnly(Role::Nested).visit_map(map)
    }
}

/// An object read in its role; anything else is a deviation.
struct ObjectOnly<'a>(Role<'a>);

impl<'de> DeserializeSeed<'de> for ObjectOnly<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectOnly<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut has_uri, mut has_entries) = (false, false);
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            has_uri |= matches!(key.slot, Slot::TypeUri(_));
            has_entries |= matches!(key.slot, Slot::Entries);
            map.next_value_seed(Attribute(key.slot))?;
        }
        let complete = match self.0 {
            Role::Top(top) => has_uri && (top.entries.is_none() || has_entries),
            Role::Entry => has_uri,
            Role::Operation | Role::Nested => true,
        };
        if complete { Ok(()) } else { Err(deviation()) }
    }
}

/// An attribute name, read without a copy into its slot.
struct Key<'a>(Role<'a>);

/// What a key says.
struct KeySlot<'a> {
    slot: Slot<'a>,
    /// The key is `href`.
    href: bool,
}

impl<'a, 'de> DeserializeSeed<'de> for Key<'a> {
    type Value = KeySlot<'a>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeySlot<'a>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'a, 'de> Visitor<'de> for Key<'a> {
    type Value = KeySlot<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<KeySlot<'a>, E> {
        Ok(KeySlot { slot: slot(key, self.0), href: key == "href" })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{Value, json};

    use super::*;
    use crate::cimi::normalize::{ImageLocationForm, normalize_resource};

    const MACHINE: Expect<'static> = Expect::Collection("Machine");

    /// What the client's read does to the document: `list_page` adds the collection's `resourceURI` first,
    /// `get` names the expected type as the hint.
    fn normalized(doc: &Value, expect: Expect<'_>) -> Value {
        let mut v = doc.clone();
        match expect {
            Expect::Collection(item) => {
                if let Value::Object(o) = &mut v
                    && !o.contains_key("resourceURI")
                {
                    o.insert("resourceURI".into(), json!(format!("{}/{item}Collection", crate::cimi::normalize::NS1)));
                }
                normalize_resource(&mut v, None, ImageLocationForm::Href);
            }
            Expect::Resource => normalize_resource(&mut v, Some("Machine"), ImageLocationForm::Href),
        }
        v
    }

    fn normal(doc: &Value, expect: Expect<'_>) -> bool {
        is_normal(&serde_json::to_vec(doc).unwrap(), expect)
    }

    fn machine(i: usize) -> Value {
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "id": format!("http://h/machines/{i}"),
               "name": "m", "created": "2026-11-27T20:00:00Z", "updated": "2026-11-27T20:00:00.250Z",
               "properties": {"cimi.dev/uid": "", "cpu": "2"}, "state": "STARTED", "cpu": 2, "memory": 8_000_000,
               "disks": {"href": "http://h/machines/0/disks"},
               "operations": [{"rel": "edit", "href": "e"}, {"rel": "delete", "href": "d"},
                              {"rel": "http://schemas.dmtf.org/cimi/1/action/stop", "href": "s"}]})
    }

    fn page(entries: Vec<Value>) -> Value {
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "id": "http://h/machines",
               "count": entries.len(), "machines": entries, "operations": [{"rel": "add", "href": "a"}]})
    }

    #[test]
    fn documents_in_normal_form_pass_and_stay_as_they_are() {
        let docs = [
            (machine(1), Expect::Resource),
            (page(vec![machine(1), machine(2)]), MACHINE),
            (page(vec![]), MACHINE),
            // What the normaliser leaves alone: strings in arrays, nested arrays, opaque maps, unknown names.
            (
                json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "name": "42", "tags": ["", "x"],
                       "grid": [[{"cpu": "1"}]], "parameters": {"a": ""}, "nested": {"resourceURI": "x", "count": 3},
                       "timestamp": "2012-08-15T12:15:00.123456789Z", "cpu": null, "bootable": true,
                       "imageLocation": {"href": ""},
                       "operations": [{"rel": "http://schemas.dmtf.org/cimi/2/action/start", "href": "s"},
                                      {"rel": "http://example.com/Action/Delete", "href": "x"}]}),
                Expect::Resource,
            ),
        ];
        for (doc, expect) in docs {
            assert!(normal(&doc, expect), "{doc}");
            assert_eq!(normalized(&doc, expect), doc);
        }
    }

    /// One document per rewrite of the normaliser: each changes under it, so each must fail the check.
    #[test]
    fn every_rewrite_of_the_normaliser_fails_the_check() {
        let with = |k: &str, v: Value| {
            let mut m = machine(1);
            m[k] = v;
            m
        };
        let entry_with = |k: &str, v: Value| page(vec![machine(0), with(k, v)]);
        let mut anonymous = machine(2);
        anonymous.as_object_mut().unwrap().remove("resourceURI");
        let mut untyped = page(vec![machine(1)]);
        untyped.as_object_mut().unwrap().remove("resourceURI");
        let cases = [
            ("integer as a string", with("cpu", json!("2")), Expect::Resource),
            ("integer as a string, nested", with("disks", json!([{"capacity": " 5 "}])), Expect::Resource),
            (
                "boolean as a string",
                with("operations", json!([{"rel": "edit", "href": "e", "available": "false"}])),
                Expect::Resource,
            ),
            ("date with a space", with("created", json!("2012-08-15 12:15:00 UTC")), Expect::Resource),
            ("date with an offset", with("created", json!("2012-08-15T12:15:00+02:00")), Expect::Resource),
            ("date with a short fraction", with("created", json!("2012-08-15T12:15:00.5Z")), Expect::Resource),
            ("date with a long fraction", with("created", json!("2012-08-15T12:15:00.500000Z")), Expect::Resource),
            ("date with zero fraction", with("created", json!("2012-08-15T12:15:00.000Z")), Expect::Resource),
            ("date lower case", with("created", json!("2012-08-15t12:15:00z")), Expect::Resource),
            ("date in epoch seconds", with("updated", json!(1_344_989_700)), Expect::Resource),
            ("unreadable date", with("updated", json!("yesterday")), Expect::Resource),
            ("null date", with("updated", json!(null)), Expect::Resource),
            ("imageLocation as a string", with("imageLocation", json!("http://i")), Expect::Resource),
            ("imageLocation with more", with("imageLocation", json!({"href": "h", "x": 1})), Expect::Resource),
            ("empty string", with("description", json!("")), Expect::Resource),
            ("empty string, nested", with("disks", json!({"href": ""})), Expect::Resource),
            ("operations as one object", with("operations", json!({"rel": "edit", "href": "e"})), Expect::Resource),
            (
                "action delete",
                with("operations", json!([{"rel": "http://schemas.dmtf.org/cimi/1/action/delete", "href": "d"}])),
                Expect::Resource,
            ),
            (
                "capitalised action",
                with("operations", json!([{"rel": "http://schemas.dmtf.org/cimi/1/Action/start", "href": "s"}])),
                Expect::Resource,
            ),
            (
                "capitalised name",
                with("operations", json!([{"rel": "HTTP://schemas.dmtf.org/cimi/2/action/Start", "href": "s"}])),
                Expect::Resource,
            ),
            ("resource without resourceURI", anonymous.clone(), Expect::Resource),
            (
                "resource naming a collection",
                with("resourceURI", json!("http://schemas.dmtf.org/cimi/1/MachineCollection")),
                Expect::Resource,
            ),
            ("page without resourceURI", untyped, MACHINE),
            ("entry without resourceURI", page(vec![machine(0), anonymous]), MACHINE),
            ("entry naming a collection", entry_with("resourceURI", json!("http://x/DiskCollection")), MACHINE),
            ("integer as a string in an entry", entry_with("memory", json!("1")), MACHINE),
            (
                "one entry as an object",
                json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "machines": machine(1)}),
                MACHINE,
            ),
            (
                "page without its entry array",
                json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "count": 0}),
                MACHINE,
            ),
            (
                "count as a string",
                json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "count": "0",
                       "machines": []}),
                MACHINE,
            ),
            (
                "entries under the CEP's name",
                json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineConfigurationCollection",
                       "machineConfigs": []}),
                Expect::Collection("MachineConfiguration"),
            ),
        ];
        for (what, doc, expect) in cases {
            assert_ne!(normalized(&doc, expect), doc, "{what}: the normaliser changes it");
            assert!(!normal(&doc, expect), "{what}: {doc}");
        }
    }

    /// What the check refuses though the normaliser keeps it: the slow path, which gives the same.
    #[test]
    fn the_check_errs_on_the_slow_side_only() {
        let other_page = page(vec![]).to_string().replace("MachineCollection", "VolumeCollection");
        for (raw, expect) in [
            (r#"{"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "cpu": "many"}"#, Expect::Resource),
            (r#"{"resourceURI": 7}"#, Expect::Resource),
            (other_page.as_str(), MACHINE),
            (r#"{"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "operations": 3}"#, Expect::Resource),
            ("[1]", Expect::Resource),
            (r#"{"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine""#, Expect::Resource),
            (r#"{"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine"} x"#, Expect::Resource),
        ] {
            assert!(!is_normal(raw.as_bytes(), expect), "{raw}");
        }
    }

    /// The check of a date agrees with what the normaliser writes, over dates of every shape it reads.
    #[test]
    fn dates_pass_exactly_when_the_normaliser_keeps_them() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut kept = 0;
        for _ in 0..20_000 {
            let fraction = match rng.random_range(0..6) {
                0 => String::new(),
                1 => format!(".{:03}", rng.random_range(0..1000)),
                2 => format!(".{:06}", rng.random_range(0..1_000_000) * [1, 1000][rng.random_range(0..2)] % 1_000_000),
                3 => format!(".{:09}", rng.random_range(0..1_000_000_000u32)),
                4 => format!(".{}", rng.random_range(0..100)),
                _ => ".000".into(),
            };
            let zone = ["Z", "z", "+00:00", "-05:00", " UTC", ""][rng.random_range(0..6)];
            let sep = ["T", "t", " "][rng.random_range(0..3)];
            let s = format!(
                "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{fraction}{zone}",
                rng.random_range(0..10_000),
                rng.random_range(1..13),
                rng.random_range(1..29),
                rng.random_range(0..24),
                rng.random_range(0..60),
                rng.random_range(0..60)
            );
            let doc = json!({"created": s});
            let unchanged = normalized(&doc, Expect::Resource)["created"] == doc["created"];
            assert_eq!(is_canonical_date(&s), unchanged, "{s}");
            kept += usize::from(unchanged);
        }
        assert!(kept > 300, "the generator makes canonical dates too ({kept})");
    }

    /// A random document, normal in most places, with deviations of every kind now and then.
    fn random_doc(rng: &mut StdRng, depth: u32, top: bool) -> Value {
        let odd = |rng: &mut StdRng| rng.random_bool(0.03);
        let mut m = serde_json::Map::new();
        if top || rng.random_bool(0.3) {
            let uri = if odd(rng) { "http://x/DiskCollection" } else { "http://schemas.dmtf.org/cimi/1/Machine" };
            if !odd(rng) {
                m.insert("resourceURI".into(), json!(uri));
            }
        }
        for _ in 0..rng.random_range(0..6) {
            let key = ["cpu", "bootable", "created", "imageLocation", "operations", "name", "properties", "disks", "x"]
                [rng.random_range(0..9)];
            let v = match key {
                "cpu" if odd(rng) => json!("3"),
                "cpu" => json!(rng.random_range(0..64)),
                "bootable" if odd(rng) => json!("yes"),
                "bootable" => json!(rng.random_bool(0.5)),
                "created" if odd(rng) => json!("2012-08-15 12:15:00"),
                "created" => json!("2012-08-15T12:15:00.100Z"),
                "imageLocation" if odd(rng) => json!("u"),
                "imageLocation" => json!({"href": "u"}),
                "operations" if odd(rng) => json!({"rel": "edit", "href": "e"}),
                "operations" => {
                    let rel = ["edit", "delete", "http://schemas.dmtf.org/cimi/1/action/start"][rng.random_range(0..3)];
                    let rel = if odd(rng) { "http://schemas.dmtf.org/cimi/1/Action/delete" } else { rel };
                    json!([{"rel": rel, "href": "h"}])
                }
                "properties" => json!({"k": if odd(rng) { "" } else { "v" }}),
                "name" if odd(rng) => json!(""),
                "name" => json!("n"),
                _ if depth > 0 && rng.random_bool(0.5) => {
                    let inner = random_doc(rng, depth - 1, false);
                    if rng.random_bool(0.5) { json!([inner, 1, [inner]]) } else { inner }
                }
                _ => json!(rng.random_range(0..100)),
            };
            m.insert(key.into(), v);
        }
        Value::Object(m)
    }

    /// Whatever passes the check is a document the normaliser keeps as it is.
    #[test]
    fn random_documents_that_pass_are_kept_as_they_are() {
        let mut rng = StdRng::seed_from_u64(18);
        let (mut passed, mut refused) = (0, 0);
        for _ in 0..5_000 {
            let doc = if rng.random_bool(0.5) {
                random_doc(&mut rng, 3, true)
            } else {
                let n = rng.random_range(0..4);
                page((0..n).map(|_| random_doc(&mut rng, 2, true)).collect())
            };
            let expect = if doc.get("machines").is_some() { MACHINE } else { Expect::Resource };
            if normal(&doc, expect) {
                assert_eq!(normalized(&doc, expect), doc);
                passed += 1;
            } else {
                refused += 1;
            }
        }
        assert!(passed > 500 && refused > 500, "both kinds are exercised ({passed} passed, {refused} refused)");
    }
}
