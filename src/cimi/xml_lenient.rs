//! CIMI XML on the client side: a document read into the same JSON shape the JSON serialization has, and a
//! JSON-shaped body written as CIMI XML.
//!
//! Working on one shape means one normalisation step and one typed model for both formats. The mapping is
//! the one of reference section 1.2: the root element is the type (`<Machine xmlns="…/cimi/1">`), a ref is
//! an element with an `href` attribute, a map is repeated `<property key="k">v</property>`, an array repeats
//! the singular item element (`operation`, `disk`, `affectedResource`, `nestedJob`…), and a collection is
//! `<Collection resourceURI="…/MachineCollection">` with one element per entry named after the item type.
//! Text is kept as strings here; the normalisation step turns known numeric and boolean attributes back
//! into numbers and booleans.

use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

use super::model::xml_codec::MAX_DEPTH;
use super::normalize::{NS1, entry_key, type_name};

/// Item elements that always form an array, with the attribute name of the array.
const ARRAY_ITEMS: &[(&str, &str)] = &[
    ("operation", "operations"),
    ("disk", "disks"),
    ("affectedResource", "affectedResources"),
    ("nestedJob", "nestedJobs"),
    ("attribute", "attributes"),
    ("capability", "capabilities"),
    ("componentDescriptor", "componentDescriptors"),
    ("sample", "samples"),
    ("event", "events"),
    ("constraint", "constraints"),
    ("vscope", "vscopes"),
];
/// Item elements that form an array inside templates (elsewhere the same name is a single ref).
const TEMPLATE_ARRAY_ITEMS: &[(&str, &str)] = &[
    ("volume", "volumes"),
    ("volumeTemplate", "volumeTemplates"),
    ("networkInterface", "networkInterfaces"),
    ("meterTemplate", "meterTemplates"),
    ("network", "networks"),
    ("address", "addresses"),
];

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
    text: String,
}

/// Read a CIMI XML document into its JSON shape. Errors are short descriptions for a protocol error.
pub fn parse(doc: &[u8]) -> Result<Value, String> {
    let root = read_tree(doc)?;
    let mut obj = Map::new();
    let ns = root
        .attrs
        .iter()
        .find(|(k, _)| k == "xmlns")
        .map(|(_, v)| v.trim_end_matches('/').to_string())
        .unwrap_or_else(|| NS1.to_string());
    let is_collection = root.name == "Collection" || root.name.ends_with("Collection");
    for (k, v) in &root.attrs {
        if !k.starts_with("xmlns") {
            obj.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if !obj.contains_key("resourceURI") {
        obj.insert("resourceURI".into(), Value::String(format!("{ns}/{}", root.name)));
    }
    let item_type = obj
        .get("resourceURI")
        .and_then(Value::as_str)
        .map(|u| type_name(u).trim_end_matches("Collection").to_string())
        .unwrap_or_default();
    for child in &root.children {
        if is_collection && child.name.starts_with(|c: char| c.is_ascii_uppercase()) {
            // An entry: `<Machine>` in a MachineCollection.
            let mut entry = element_value(child, &child.name);
            if let Value::Object(e) = &mut entry
                && !e.contains_key("resourceURI")
            {
                e.insert("resourceURI".into(), Value::String(format!("{ns}/{}", child.name)));
            }
            let key = if item_type.is_empty() { entry_key(&child.name) } else { entry_key(&item_type) };
            push_array(&mut obj, &key, entry);
            continue;
        }
        add_child(&mut obj, &root.name, child);
    }
    Ok(Value::Object(obj))
}

fn push_array(obj: &mut Map<String, Value>, key: &str, v: Value) {
    match obj.entry(key.to_string()).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(a) => a.push(v),
        other => {
            let first = other.take();
            *other = Value::Array(vec![first, v]);
        }
    }
}

fn array_key(parent: &str, child: &str) -> Option<&'static str> {
    if let Some((_, k)) = ARRAY_ITEMS.iter().find(|(c, _)| *c == child) {
        return Some(k);
    }
    if parent == "ResourceMetadata" && child == "action" {
        return Some("actions");
    }
    let in_template = parent.to_ascii_lowercase().contains("template") || parent == "networkInterface";
    if in_template && let Some((_, k)) = TEMPLATE_ARRAY_ITEMS.iter().find(|(c, _)| *c == child) {
        return Some(k);
    }
    None
}

fn add_child(obj: &mut Map<String, Value>, parent: &str, child: &Node) {
    if child.name == "property" {
        let key = child.attrs.iter().find(|(k, _)| k == "key").map(|(_, v)| v.clone()).unwrap_or_default();
        if let Value::Object(m) = obj.entry("properties").or_insert_with(|| Value::Object(Map::new())) {
            m.insert(key, Value::String(child.text.trim().to_string()));
        }
        return;
    }
    let value = element_value(child, &child.name);
    if let Some(key) = array_key(parent, &child.name) {
        push_array(obj, key, value);
    } else if obj.contains_key(&child.name) {
        // Repeated without being a known array item: keep every occurrence.
        push_array(obj, &child.name, value);
    } else {
        obj.insert(child.name.clone(), value);
    }
}

fn element_value(node: &Node, name: &str) -> Value {
    if node.children.is_empty() && node.attrs.iter().all(|(k, _)| k.starts_with("xmlns")) {
        return Value::String(node.text.trim().to_string());
    }
    let mut obj = Map::new();
    for (k, v) in &node.attrs {
        if !k.starts_with("xmlns") {
            obj.insert(k.clone(), Value::String(v.clone()));
        }
    }
    for c in &node.children {
        add_child(&mut obj, name, c);
    }
    let text = node.text.trim();
    if !text.is_empty() {
        obj.insert("value".into(), Value::String(text.to_string()));
    }
    Value::Object(obj)
}

fn local_name(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    match s.rsplit_once(':') {
        Some((prefix, local)) if prefix != "xmlns" => local.to_string(),
        _ => s.into_owned(),
    }
}

fn start_node(e: &BytesStart<'_>) -> Result<Node, String> {
    let mut node = Node { name: local_name(e.name().as_ref()), ..Node::default() };
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let value = a.unescape_value().map_err(|e| format!("bad attribute value: {e}"))?.into_owned();
        node.attrs.push((local_name(a.key.as_ref()), value));
    }
    Ok(node)
}

/// Refuses an element that would sit deeper than [`MAX_DEPTH`] (the bound the simulator's reader keeps too);
/// `open` is the number of elements open around it. A hostile provider's deeply nested answer must not
/// exhaust the operator's stack in the recursive conversion below (or in dropping the tree).
fn check_depth(open: usize) -> Result<(), String> {
    if open >= MAX_DEPTH { Err(format!("XML elements are nested deeper than {MAX_DEPTH} levels")) } else { Ok(()) }
}

/// Reads the element tree without recursion (an explicit stack of open elements), at most [`MAX_DEPTH`] deep.
fn read_tree(doc: &[u8]) -> Result<Node, String> {
    let mut reader = quick_xml::Reader::from_reader(doc);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev =
            reader.read_event_into(&mut buf).map_err(|e| format!("XML error at {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) => {
                check_depth(stack.len())?;
                stack.push(start_node(&e)?);
            }
            Event::Empty(e) => {
                check_depth(stack.len())?;
                let node = start_node(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let raw = String::from_utf8_lossy(t.as_ref()).into_owned();
                    let text = quick_xml::escape::unescape(&raw).map_err(|e| format!("bad text: {e}"))?;
                    top.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity).map_err(|e| format!("bad entity: {e}"))?;
                    top.text.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(t.as_ref()));
                }
            }
            Event::Eof => return Err("XML document ended early or is empty".into()),
            _ => {}
        }
        buf.clear();
    }
}

/// Write a JSON-shaped body (with its `resourceURI`) as a CIMI XML document. The shared model's writer is
/// used, so that what the client sends is exactly what cimi-sim reads; the golden test below holds it to
/// hand-written documents.
pub fn write(body: &Value) -> Result<Vec<u8>, String> {
    if body.get("resourceURI").and_then(Value::as_str).is_none() {
        return Err("an XML body needs a resourceURI".into());
    }
    Ok(crate::cimi::model::xml_codec::to_xml(body, "Resource").into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Golden fixtures written by hand from reference section 1.2 and the 1.x XSD, not by our writer.
    use super::*;
    use crate::cimi::normalize::{ImageLocationForm, normalize_resource};
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/client/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn parsed(name: &str) -> Value {
        let mut v = parse(&fixture(name)).unwrap();
        normalize_resource(&mut v, None, ImageLocationForm::Href);
        v
    }

    #[test]
    fn machine_golden() {
        let v = parsed("machine.xml");
        assert_eq!(v["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/Machine"));
        assert_eq!(v["id"], json!("http://example.com/machines/843752"));
        assert_eq!(v["state"], json!("STOPPED"));
        assert_eq!(v["cpu"], json!(1));
        assert_eq!(v["memory"], json!(4_000_000));
        assert_eq!(v["disks"], json!({"href": "http://example.com/machines/843752/disks"}));
        assert_eq!(v["properties"], json!({"cimi.dev/uid": "u-1", "env": "a & b"}));
        assert_eq!(v["operations"].as_array().unwrap().len(), 3);
        assert_eq!(v["operations"][2]["rel"], json!("http://schemas.dmtf.org/cimi/1/action/start"));
        assert_eq!(v["created"], json!("2012-08-15T12:15:00Z"));
    }

    #[test]
    fn collection_golden() {
        let v = parsed("machine-configs.xml");
        assert_eq!(v["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/MachineConfigurationCollection"));
        assert_eq!(v["count"], json!(2));
        let entries = v["machineConfigurations"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/MachineConfiguration"));
        assert_eq!(
            entries[1]["disks"],
            json!([{"capacity": 1_000_000_000, "format": "ext4"}, {"capacity": 1_000_000_000, "format": "ext4"}])
        );
        assert_eq!(
            entries[0]["disks"],
            json!([{"capacity": 50_000_000, "format": "ext4"}]),
            "one disk is still an array"
        );
        assert_eq!(v["operations"], json!([{"rel": "add", "href": "http://example.com/machineConfigs"}]));
    }

    #[test]
    fn job_golden() {
        let v = parsed("job.xml");
        assert_eq!(v["state"], json!("RUNNING"));
        assert_eq!(v["progress"], json!(40));
        assert_eq!(v["targetResource"], json!({"href": "http://example.com/machines"}));
        assert_eq!(
            v["affectedResources"],
            json!([{"href": "http://example.com/machines"}, {"href": "http://example.com/machines/1"}])
        );
        assert_eq!(v["nestedJobs"], json!([{"href": "http://example.com/jobs/8"}]));
        assert_eq!(v["action"], json!("add"));
    }

    #[test]
    fn resource_metadata_golden() {
        let v = parsed("resource-metadata.xml");
        assert_eq!(v["typeURI"], json!("http://schemas.dmtf.org/cimi/1/Credential"));
        assert_eq!(
            v["attributes"][0],
            json!({"name": "userID", "namespace": "http://example.com", "type": "string", "required": true})
        );
        assert_eq!(v["capabilities"][0]["value"], json!("STARTED"));
        assert_eq!(v["actions"][0]["name"], json!("start"));
    }

    #[test]
    fn empty_collection_golden() {
        let v = parsed("empty-credentials.xml");
        assert_eq!(v["credentials"], json!([]));
        assert_eq!(v["count"], json!(0));
    }

    /// Writing: the Primer's MachineCreate and a stop Action, compared with hand-written documents.
    #[test]
    fn writes_match_golden_documents() {
        let create = json!({
            "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate",
            "name": "myMachine1",
            "description": "My very first machine",
            "machineTemplate": {
                "machineConfig": {"href": "http://example.com/configs/tiny"},
                "machineImage": {"href": "http://example.com/images/WinXP-SP2"},
                "credential": {"href": "http://example.com/creds/12345"},
                "volumes": [{"href": "http://example.com/volumes/v1", "initialLocation": "/dev/vdb"}]
            },
            "properties": {"cimi.dev/uid": "u<1>"}
        });
        let written = String::from_utf8(write(&create).unwrap()).unwrap();
        // Attribute order is free in CIMI XML; the golden document and ours must say the same thing...
        let mut golden = parse(&fixture("machine-create.xml")).unwrap();
        normalize_resource(&mut golden, None, ImageLocationForm::Href);
        assert_eq!(golden, create, "the golden document reads as the body");
        // ...with the same elements, written the way the golden document writes them.
        for piece in [
            "<MachineCreate xmlns=\"http://schemas.dmtf.org/cimi/1\">",
            "<machineConfig href=\"http://example.com/configs/tiny\"/>",
            "<volume href=\"http://example.com/volumes/v1\"><initialLocation>/dev/vdb</initialLocation></volume>",
            "<property key=\"cimi.dev/uid\">u&lt;1&gt;</property>",
            "<name>myMachine1</name>",
        ] {
            assert!(written.contains(piece), "{piece} missing from {written}");
        }
        let action = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Action", "action": "http://schemas.dmtf.org/cimi/1/action/stop", "force": true});
        let action_xml = String::from_utf8(write(&action).unwrap()).unwrap();
        assert!(
            action_xml.ends_with("<Action xmlns=\"http://schemas.dmtf.org/cimi/1\"><action>http://schemas.dmtf.org/cimi/1/action/stop</action><force>true</force></Action>"),
            "{action_xml}"
        );
        // And what we write reads back to the same shape.
        let mut back = parse(written.as_bytes()).unwrap();
        normalize_resource(&mut back, None, ImageLocationForm::Href);
        assert_eq!(back, create);
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in
            ["", "<", "<Machine>", "<a></b>", "<Machine><cpu>1</cpu>", "text only", "<x a=\"1></x>", "<x>&nope;</x>"]
        {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let mut deep = String::new();
        for _ in 0..100 {
            deep.push_str("<a>");
        }
        assert!(parse(deep.as_bytes()).is_err());
    }

    /// A hostile provider's answer of 100,000 nested elements is an error, not a stack overflow.
    #[test]
    fn deep_nesting_is_refused() {
        let nested = |levels: usize| format!("{}{}", "<a>".repeat(levels), "</a>".repeat(levels));
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok(), "64 levels read");
        for levels in [MAX_DEPTH + 1, 100_000] {
            let err = parse(nested(levels).as_bytes()).unwrap_err();
            assert!(err.contains("nested deeper than 64 levels"), "{levels}: {err}");
        }
        let empty_too_deep = format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(empty_too_deep.as_bytes()).is_err());
    }
}
