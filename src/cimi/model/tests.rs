//! Round trips of the model through JSON and XML, from documents written by hand after the Primer.

use serde_json::{Value, json};

use super::xml_codec::{entries_key, from_xml, singular, to_xml};
use super::*;

#[test]
fn primer_machine_image_collection_reads() {
    let doc = json!({ "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImageCollection",
        "id": "http://example.com/machineImages", "count": 1,
        "machineImages": [{ "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage",
            "id": "http://example.com/images/WinXP-SP2", "name": "WinXP SP2",
            "description": "Windows XP with Service Pack 2",
            "created": "2012-01-01T12:00:00Z", "updated": "2012-01-01T12:00:00Z",
            "imageLocation": { "href": "http://example.com/data/8934322" } }] });
    let coll: Collection<MachineImage> = serde_json::from_value(doc.clone()).expect("parses");
    assert_eq!(coll.count, Some(1));
    assert_eq!(coll.entries.len(), 1);
    let image = &coll.entries[0];
    assert_eq!(image.name.as_deref(), Some("WinXP SP2"));
    assert_eq!(image.image_location.as_ref().map(Location::uri), Some("http://example.com/data/8934322"));
    let back = serde_json::to_value(&coll).expect("serializes");
    let again: Collection<MachineImage> = serde_json::from_value(back).expect("parses again");
    assert_eq!(again, coll);
}

#[test]
fn unknown_attributes_are_kept_for_echo() {
    let doc = json!({ "resourceURI": "http://schemas.dmtf.org/cimi/1/Credential",
        "id": "http://example.com/creds/1", "name": "Default", "userID": "JoeSmith",
        "vendorThing": {"a": 1} });
    let cred: Credential = serde_json::from_value(doc.clone()).expect("parses");
    assert_eq!(cred.extra.get("userID"), Some(&json!("JoeSmith")));
    assert_eq!(serde_json::to_value(&cred).expect("serializes"), doc);
}

#[test]
fn machine_create_by_value_and_by_reference() {
    let by_value = json!({ "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate",
        "name": "myMachine1", "machineTemplate": {
            "machineConfig": { "href": "http://example.com/configs/tiny" },
            "machineImage": { "cpu": 1 } } });
    let create: MachineCreate = serde_json::from_value(by_value).expect("parses");
    match create.machine_template {
        Some(RefOr::Value(t)) => {
            assert!(matches!(t.machine_config, Some(RefOr::Ref(ref r)) if r.href.ends_with("tiny")));
        }
        other => panic!("expected a template by value, got {other:?}"),
    }
    let by_ref = json!({ "machineTemplate": { "href": "http://example.com/mt/1", "initialState": "STARTED",
        "userData": null } });
    let create: MachineCreate = serde_json::from_value(by_ref).expect("parses");
    match create.machine_template {
        Some(RefOr::Ref(r)) => {
            assert_eq!(r.href, "http://example.com/mt/1");
            assert_eq!(r.extra.get("initialState"), Some(&json!("STARTED")));
            assert_eq!(r.extra.get("userData"), Some(&Value::Null));
        }
        other => panic!("expected a template by reference, got {other:?}"),
    }
}

#[test]
fn strict_types_are_enforced() {
    let doc = json!({ "cpu": "1" });
    assert!(serde_json::from_value::<Machine>(doc).is_err(), "a number as a string is not strict CIMI");
    let doc = json!({ "created": "15/08/2012" });
    assert!(serde_json::from_value::<Machine>(doc).is_err(), "dates are xsd:dateTime");
}

#[test]
fn dates_keep_their_offset() {
    let doc = json!({ "created": "2012-05-25T13:30:15-05:00" });
    let m: Machine = serde_json::from_value(doc).expect("parses");
    let created = m.created.expect("created");
    assert_eq!(created.offset().local_minus_utc(), -5 * 3600);
}

#[test]
fn names_of_arrays() {
    assert_eq!(singular("disks"), "disk");
    assert_eq!(singular("capabilities"), "capability");
    assert_eq!(singular("addresses"), "address");
    assert_eq!(singular("affectedResources"), "affectedResource");
    assert_eq!(entries_key("Machine"), "machines");
    assert_eq!(entries_key("Address"), "addresses");
    assert_eq!(entries_key("ResourceMetadata"), "resourceMetadatas");
    assert_eq!(
        entries_key("MachineConfiguration"),
        Machine::COLLECTION_KEY.replace("machines", "machineConfigurations")
    );
}

#[test]
fn xml_machine_matches_hand_written_form() {
    let doc = json!({ "resourceURI": "http://schemas.dmtf.org/cimi/1/Machine",
        "id": "http://example.com/machines/1", "name": "a&b", "cpu": 2,
        "properties": {"env": "prod"},
        "disks": {"href": "http://example.com/machines/1/disks"},
        "operations": [ {"rel": "edit", "href": "http://example.com/machines/1"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/start", "href": "http://example.com/machines/1"} ] });
    let xml = to_xml(&doc, "Machine");
    let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <Machine xmlns=\"http://schemas.dmtf.org/cimi/1\"><id>http://example.com/machines/1</id>\
        <name>a&amp;b</name><cpu>2</cpu><property key=\"env\">prod</property>\
        <disks href=\"http://example.com/machines/1/disks\"/>\
        <operation rel=\"edit\" href=\"http://example.com/machines/1\"/>\
        <operation rel=\"http://schemas.dmtf.org/cimi/1/action/start\" href=\"http://example.com/machines/1\"/>\
        </Machine>";
    // serde_json keeps keys sorted; compare semantically through the reader as well as by text.
    let (root, back) = from_xml(&xml).expect("reads");
    assert_eq!(root, "Machine");
    assert_eq!(back, doc);
    let (_, from_expected) = from_xml(expected).expect("reads the hand-written form");
    assert_eq!(from_expected, doc);
}

#[test]
fn xml_collection_and_create() {
    let xml = r#"<Collection xmlns="http://schemas.dmtf.org/cimi/1"
        resourceURI="http://schemas.dmtf.org/cimi/1/MachineConfigurationCollection">
        <id>http://example.com/machineConfigs</id><count>1</count>
        <MachineConfiguration><id>http://example.com/configs/tiny</id><name>tiny</name><cpu>1</cpu>
          <memory>4000000</memory><disk><capacity>50000000</capacity><format>ext4</format></disk>
        </MachineConfiguration>
        <operation rel="add" href="http://example.com/machineConfigs"/>
        </Collection>"#;
    let (_, doc) = from_xml(xml).expect("reads");
    let coll: Collection<MachineConfiguration> = serde_json::from_value(doc.clone()).expect("typed");
    assert_eq!(coll.count, Some(1));
    let tiny = &coll.entries[0];
    assert_eq!(tiny.memory, Some(4_000_000));
    assert_eq!(tiny.disks.as_ref().map(|d| d[0].capacity), Some(50_000_000));
    assert_eq!(coll.operations, vec![Operation::new("add", "http://example.com/machineConfigs")]);
    let (_, again) = from_xml(&to_xml(&doc, "Collection")).expect("round trip");
    assert_eq!(again, doc);

    let create = r#"<MachineCreate xmlns="http://schemas.dmtf.org/cimi/1"><name>m</name>
        <machineTemplate href="http://example.com/mt/1"><initialState>STARTED</initialState><userData/>
        <volume href="http://example.com/volumes/1"><initialLocation>/dev/vdb</initialLocation></volume>
        </machineTemplate></MachineCreate>"#;
    let (_, doc) = from_xml(create).expect("reads");
    assert_eq!(doc["resourceURI"], json!("http://schemas.dmtf.org/cimi/1/MachineCreate"));
    assert_eq!(doc["machineTemplate"]["userData"], Value::Null);
    assert_eq!(doc["machineTemplate"]["volumes"][0]["initialLocation"], json!("/dev/vdb"));
    let parsed: MachineCreate = serde_json::from_value(doc).expect("typed");
    assert!(matches!(parsed.machine_template, Some(RefOr::Ref(_))));
}

#[test]
fn xml_action_and_metadata() {
    let (_, doc) = from_xml(
        r#"<Action xmlns="http://schemas.dmtf.org/cimi/1"><action>http://schemas.dmtf.org/cimi/1/action/stop</action><force>true</force></Action>"#,
    )
    .expect("reads");
    let action: Action = serde_json::from_value(doc).expect("typed");
    assert_eq!(action.force, Some(true));
    assert_eq!(action.action.as_deref().and_then(action_name), Some("stop"));

    let md = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/ResourceMetadata",
        "typeURI": "http://schemas.dmtf.org/cimi/1/Credential", "name": "Credential",
        "attributes": [{"name": "userID", "type": "string", "required": true}],
        "capabilities": [{"name": "CredentialTemplateByValue",
            "uri": "http://schemas.dmtf.org/cimi/1/capability/Credential/CredentialTemplateByValue", "value": "true"}]});
    let xml = to_xml(&md, "ResourceMetadata");
    assert!(xml.contains("<attribute name=\"userID\" type=\"string\" required=\"true\"/>"), "{xml}");
    assert!(xml.contains(">true</capability>"), "{xml}");
    let (_, back) = from_xml(&xml).expect("reads");
    assert_eq!(back, md);
}
