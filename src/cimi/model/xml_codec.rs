//! The XML form of CIMI 1.x documents, converted to and from the JSON form (a [`serde_json::Value`]), so that
//! the typed structs of this model serve both media types.
//!
//! Rules (section 1.2 of `shared/cimi-reference.md`): the root element is named after the type, in the namespace
//! [`NS`] (`<Machine xmlns="http://schemas.dmtf.org/cimi/1">`); a collection is
//! `<Collection resourceURI="…/MachineCollection">` whose entries are elements named after their type; a
//! reference is an element with an `href` attribute; `properties` become repeated
//! `<property key="k">v</property>`; `operations` become repeated `<operation rel=".." href=".."/>`; every other
//! array repeats its singular element (`disk`, `affectedResource`, `nestedJob`, …); capabilities carry their
//! value as element text. On reading, attribute types the standard defines as integers or booleans are typed
//! back, an empty element means `null` (erase, in a create by reference), and unknown elements that repeat
//! become arrays.

use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

use super::common::NS;

/// Why an XML document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// The document is not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// The document has no root element.
    #[error("the XML document has no root element")]
    NoRoot,
    /// Elements are nested deeper than [`MAX_DEPTH`].
    #[error("XML elements are nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// How deeply XML elements may nest, the root being level 1. CIMI documents need fewer than ten levels; the
/// bound keeps a small hostile document (100,000 nested elements) from exhausting the stack of the recursive
/// conversion (and of dropping the tree). Both XML readers, the simulator's and the client's, enforce it.
pub const MAX_DEPTH: usize = 64;

/// Elements written with XML attributes instead of child elements: name and the attributes that go inline.
const ATTRIBUTE_STYLE: &[(&str, &[&str])] = &[
    ("operation", &["rel", "href"]),
    ("capability", &["name", "uri", "description"]),
    ("attribute", &["name", "namespace", "type", "required"]),
];

/// Attributes typed as integers by the standard.
const INTEGER_FIELDS: &[&str] = &[
    "count",
    "cpu",
    "memory",
    "cpuSpeed",
    "capacity",
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

/// Attributes typed as booleans by the standard.
const BOOLEAN_FIELDS: &[&str] = &[
    "bootable",
    "force",
    "isContinuous",
    "required",
    "providerMandatory",
    "consumerMandatory",
    "mutable",
    "consumerWritable",
    "available",
];

/// Array elements: the singular element, the JSON array name, and the parents where it is an array (empty:
/// everywhere). Parent names compare with the first letter's case ignored (`machineTemplate`, `MachineTemplate`).
const ARRAY_ELEMENTS: &[(&str, &str, &[&str])] = &[
    ("disk", "disks", &["machineConfig", "MachineConfiguration"]),
    ("affectedResource", "affectedResources", &[]),
    ("nestedJob", "nestedJobs", &[]),
    ("attribute", "attributes", &["ResourceMetadata"]),
    ("capability", "capabilities", &["ResourceMetadata"]),
    ("action", "actions", &["ResourceMetadata"]),
    ("volume", "volumes", &["machineTemplate"]),
    ("volumeTemplate", "volumeTemplates", &["machineTemplate"]),
    ("networkInterface", "networkInterfaces", &["machineTemplate"]),
    ("meterTemplate", "meterTemplates", &["machineTemplate", "volumeTemplate", "networkTemplate", "systemTemplate"]),
    ("componentDescriptor", "componentDescriptors", &[]),
    ("associatedTo", "associatedTo", &["meterConfig", "MeterConfiguration"]),
    ("address", "addresses", &["networkInterface"]),
    ("network", "networks", &["forwardingGroupTemplate"]),
];

fn same_name(a: &str, b: &str) -> bool {
    let mut ac = a.chars();
    let mut bc = b.chars();
    match (ac.next(), bc.next()) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(&y) && ac.as_str() == bc.as_str(),
        (None, None) => true,
        _ => false,
    }
}

/// The singular of a JSON array name: `disks` → `disk`, `capabilities` → `capability`, `addresses` → `address`.
pub fn singular(plural: &str) -> String {
    if let Some(stem) = plural.strip_suffix("sses") {
        format!("{stem}ss")
    } else if let Some(stem) = plural.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = plural.strip_suffix('s') {
        stem.to_string()
    } else {
        plural.to_string()
    }
}

/// The JSON array name of a collection's entries, from the entry type: `Machine` → `machines`,
/// `Address` → `addresses`, `ResourceMetadata` → `resourceMetadatas`.
pub fn entries_key(type_name: &str) -> String {
    let mut s = lower_first(type_name);
    if s.ends_with("ss") {
        s.push_str("es");
    } else {
        s.push('s');
    }
    s
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// The root element name of a JSON document, from its `resourceURI` (`…/Machine` → `Machine`); collections
/// give `Collection`. `None` when the document has no usable `resourceURI`.
pub fn root_name(doc: &Value) -> Option<String> {
    let uri = doc.get("resourceURI")?.as_str()?;
    let name = uri.rsplit('/').next()?;
    if name.is_empty() {
        return None;
    }
    if name.ends_with("Collection") { Some("Collection".to_string()) } else { Some(name.to_string()) }
}

/// Writes a JSON document (a resource, collection, create or action body) as CIMI XML.
///
/// The root element comes from `resourceURI` (see [`root_name`]); without one, `fallback_root` is used.
pub fn to_xml(doc: &Value, fallback_root: &str) -> String {
    let root = root_name(doc).unwrap_or_else(|| fallback_root.to_string());
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(out, "<{root} xmlns=\"{NS}\"");
    let is_collection = root == "Collection";
    if is_collection && let Some(uri) = doc.get("resourceURI").and_then(Value::as_str) {
        let _ = write!(out, " resourceURI=\"{}\"", escape(uri));
    }
    out.push('>');
    if let Value::Object(map) = doc {
        write_children(&mut out, map, is_collection);
    }
    let _ = write!(out, "</{root}>");
    out
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn write_children(out: &mut String, map: &Map<String, Value>, is_collection: bool) {
    for (key, value) in map {
        if key == "resourceURI" {
            continue;
        }
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("properties", Value::Object(props)) => {
                for (k, v) in props {
                    let text = scalar_text(v).unwrap_or_default();
                    let _ = write!(out, "<property key=\"{}\">{}</property>", escape(k.as_str()), escape(text));
                }
            }
            (_, Value::Array(items)) => {
                let elem = if is_collection && key != "operations" {
                    // Collection entries are named after their type.
                    items
                        .first()
                        .and_then(root_name)
                        .filter(|n| n != "Collection")
                        .unwrap_or_else(|| upper_first(&singular(key)))
                } else {
                    singular(key)
                };
                for item in items {
                    write_element(out, &elem, item);
                }
            }
            _ => write_element(out, key, value),
        }
    }
}

fn write_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            let inline: &[&str] =
                ATTRIBUTE_STYLE.iter().find(|(n, _)| *n == name).map(|(_, a)| *a).unwrap_or(&["href"]);
            let _ = write!(out, "<{name}");
            let mut rest = Map::new();
            for k in inline {
                if let Some(text) = map.get(*k).and_then(scalar_text) {
                    let _ = write!(out, " {k}=\"{}\"", escape(text));
                }
            }
            for (k, v) in map {
                if k == "resourceURI" || (inline.contains(&k.as_str()) && scalar_text(v).is_some()) {
                    continue;
                }
                rest.insert(k.clone(), v.clone());
            }
            let text_value = if name == "capability" { rest.remove("value") } else { None };
            if rest.is_empty() && text_value.is_none() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            if let Some(t) = text_value.as_ref().and_then(scalar_text) {
                out.push_str(&escape(t));
            }
            write_children(out, &rest, false);
            let _ = write!(out, "</{name}>");
        }
        Value::Array(items) => {
            for item in items {
                write_element(out, name, item);
            }
        }
        other => {
            let text = scalar_text(other).unwrap_or_default();
            let _ = write!(out, "<{name}>{}</{name}>", escape(text));
        }
    }
}

/// The namespace of the root element (its default `xmlns`, or the one bound to its prefix), if it declares one.
/// Reads only up to the root's start tag.
pub fn root_namespace(xml: &str) -> Result<Option<String>, XmlError> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().map_err(|e| XmlError::Malformed(e.to_string()))? {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let wanted = match name.split_once(':') {
                    Some((prefix, _)) => format!("xmlns:{prefix}"),
                    None => "xmlns".to_string(),
                };
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
                    if attr.key.as_ref() == wanted.as_bytes() {
                        let value = attr.unescape_value().map_err(|e| XmlError::Malformed(e.to_string()))?;
                        return Ok(Some(value.trim().to_string()));
                    }
                }
                return Ok(None);
            }
            Event::Eof => return Err(XmlError::NoRoot),
            _ => {}
        }
    }
}

/// Whether `ns` is a CIMI namespace (1.x's [`NS`], or 2.0's).
pub fn is_cimi_namespace(ns: &str) -> bool {
    let ns = ns.trim_end_matches('/');
    ns == NS || ns == "http://schemas.dmtf.org/cimi/2"
}

/// A parsed XML element.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

fn local(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.into_owned(),
    }
}

fn start_node(e: &BytesStart<'_>) -> Result<Node, XmlError> {
    let mut node = Node { name: local(e.name().as_ref()), ..Default::default() };
    for attr in e.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr.unescape_value().map_err(|e| XmlError::Malformed(e.to_string()))?;
        node.attrs.push((local(key.as_bytes()), value.into_owned()));
    }
    Ok(node)
}

/// Refuses an element that would sit deeper than [`MAX_DEPTH`]; `open` is the number of elements open around it.
fn check_depth(open: usize) -> Result<(), XmlError> {
    if open >= MAX_DEPTH { Err(XmlError::TooDeep) } else { Ok(()) }
}

/// Reads the element tree without recursion (an explicit stack of open elements), at most [`MAX_DEPTH`] deep.
fn parse_tree(xml: &str) -> Result<Node, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Start(e) => {
                check_depth(stack.len())?;
                stack.push(start_node(&e)?);
            }
            Event::Empty(e) => {
                check_depth(stack.len())?;
                let node = start_node(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(node) = stack.last_mut() {
                    let text = t.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                    node.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(node) = stack.last_mut() {
                    let text = t.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                    node.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(node) = stack.last_mut() {
                    if let Some(c) = r.resolve_char_ref().map_err(|e| XmlError::Malformed(e.to_string()))? {
                        node.text.push(c);
                    } else {
                        let name = r.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                        let resolved = resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::Malformed(format!("unknown entity &{name};")))?;
                        node.text.push_str(resolved);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    root.ok_or(XmlError::NoRoot)
}

fn typed_scalar(name: &str, text: &str) -> Value {
    let t = text.trim();
    if INTEGER_FIELDS.contains(&name)
        && let Ok(n) = t.parse::<i64>()
    {
        return Value::from(n);
    }
    if BOOLEAN_FIELDS.contains(&name) {
        match t {
            "true" | "1" => return Value::Bool(true),
            "false" | "0" => return Value::Bool(false),
            _ => {}
        }
    }
    Value::String(text.to_string())
}

fn array_key(name: &str, parent: &str) -> Option<&'static str> {
    ARRAY_ELEMENTS.iter().find_map(|(singular, plural, parents)| {
        (*singular == name && (parents.is_empty() || parents.iter().any(|p| same_name(p, parent)))).then_some(*plural)
    })
}

fn node_value(node: &Node) -> Value {
    if node.attrs.is_empty() && node.children.is_empty() {
        if node.text.trim().is_empty() {
            return Value::Null;
        }
        return typed_scalar(&node.name, &node.text);
    }
    let mut map = Map::new();
    for (k, v) in &node.attrs {
        map.insert(k.clone(), typed_scalar(k, v));
    }
    if node.name == "capability" && !node.text.trim().is_empty() {
        map.insert("value".into(), Value::String(node.text.trim().to_string()));
    }
    children_into(node, &mut map, false);
    Value::Object(map)
}

fn children_into(node: &Node, map: &mut Map<String, Value>, is_collection: bool) {
    // Unknown elements that occur more than once become arrays.
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for child in &node.children {
        *seen.entry(child.name.as_str()).or_default() += 1;
    }
    for child in &node.children {
        let name = child.name.as_str();
        if name == "property" {
            let key = child.attrs.iter().find(|(k, _)| k == "key").map(|(_, v)| v.clone()).unwrap_or_default();
            let props = map.entry("properties").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(p) = props {
                p.insert(key, Value::String(child.text.clone()));
            }
            continue;
        }
        if name == "operation" {
            push(map, "operations", node_value(child));
            continue;
        }
        if is_collection && name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            let mut entry = node_value(child);
            if let Value::Object(m) = &mut entry {
                m.insert("resourceURI".into(), Value::String(format!("{NS}/{name}")));
            }
            push(map, &entries_key(name), entry);
            continue;
        }
        if let Some(plural) = array_key(name, &node.name) {
            push(map, plural, node_value(child));
            continue;
        }
        if seen.get(name).copied().unwrap_or(0) > 1 {
            let plural = format!("{name}s");
            push(map, &plural, node_value(child));
            continue;
        }
        map.insert(name.to_string(), node_value(child));
    }
}

fn push(map: &mut Map<String, Value>, key: &str, value: Value) {
    let entry = map.entry(key.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = entry {
        a.push(value);
    }
}

/// Reads a CIMI XML document into its JSON form. The root element gives `resourceURI` (a collection's comes
/// from its `resourceURI` attribute); the root name is returned too.
pub fn from_xml(xml: &str) -> Result<(String, Value), XmlError> {
    let root = parse_tree(xml)?;
    let is_collection = root.name == "Collection";
    let mut map = Map::new();
    for (k, v) in &root.attrs {
        map.insert(k.clone(), typed_scalar(k, v));
    }
    if !map.contains_key("resourceURI") && !is_collection {
        map.insert("resourceURI".into(), Value::String(format!("{NS}/{}", root.name)));
    }
    children_into(&root, &mut map, is_collection);
    Ok((root.name.clone(), Value::Object(map)))
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn the_root_namespace_is_read_from_its_default_or_its_prefix() {
        let ns = |xml: &str| root_namespace(xml).expect("well-formed");
        assert_eq!(ns(r#"<Machine xmlns="http://schemas.dmtf.org/cimi/1"/>"#).as_deref(), Some(NS));
        assert_eq!(
            ns(r#"<?xml version="1.0"?><c:Machine xmlns:c="http://schemas.dmtf.org/cimi/1"><c:name>a</c:name></c:Machine>"#)
                .as_deref(),
            Some(NS)
        );
        assert_eq!(ns("<Machine><name>a</name></Machine>"), None);
        assert_eq!(
            ns(r#"<c:Machine xmlns="http://schemas.dmtf.org/cimi/1" xmlns:c="urn:other"/>"#).as_deref(),
            Some("urn:other")
        );
        assert!(is_cimi_namespace(NS) && is_cimi_namespace("http://schemas.dmtf.org/cimi/2"));
        assert!(!is_cimi_namespace("urn:other"));
        assert!(matches!(root_namespace("   "), Err(XmlError::NoRoot)));
    }

    fn nested(levels: usize) -> String {
        format!("{}{}", "<a>".repeat(levels), "</a>".repeat(levels))
    }

    #[test]
    fn nesting_up_to_the_bound_reads() {
        let (root, doc) = from_xml(&nested(MAX_DEPTH)).expect("64 levels read");
        assert_eq!(root, "a");
        assert!(doc.get("a").is_some(), "{doc}");
        let empty_innermost = format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH - 1), "</a>".repeat(MAX_DEPTH - 1));
        assert!(from_xml(&empty_innermost).is_ok());
    }

    #[test]
    fn deeper_nesting_is_refused_without_exhausting_the_stack() {
        for levels in [MAX_DEPTH + 1, 100_000] {
            let err = from_xml(&nested(levels)).expect_err("refused");
            assert!(matches!(err, XmlError::TooDeep), "{levels}: {err}");
            assert!(err.to_string().contains("64 levels"), "{err}");
        }
        // An empty element one level too deep counts too, and so do unclosed elements.
        let empty_too_deep = format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(matches!(from_xml(&empty_too_deep), Err(XmlError::TooDeep)));
        assert!(matches!(from_xml(&"<a>".repeat(100_000)), Err(XmlError::TooDeep)));
    }
}
