//! The profiles: no-jobs and lenient-1x serve the deviations of reference section 7 over HTTP.

use reqwest::Method;
use serde_json::json;

use cimi_operator::sim::{Profile, SimConfig, Timing};

use super::{Api, start};

#[tokio::test]
async fn no_jobs_profile() {
    let sim = start(SimConfig { profile: Profile::NoJobs, timing: Timing::Fast, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let cep = api.get("").await.json();
    for absent in ["jobs", "meters", "eventLogs"] {
        assert!(cep.get(absent).is_none(), "{absent} is not in the CEP");
    }
    let a = api.create_machine("m", Some("STARTED")).await;
    assert!(a.status == 201 || a.status == 202, "{}", a.text);
    assert!(a.header("cimi-job-uri").is_none());
    let m = a.header("location").expect("Location");
    api.wait_state(&m, "STARTED").await;
    let a = api.action(&m, "stop").await;
    assert_eq!(a.status, 202);
    assert!(a.text.is_empty());
    assert!(a.header("cimi-job-uri").is_none() && a.header("location").is_none());
    api.wait_state(&m, "STOPPED").await;
    assert_eq!(api.get("jobs").await.json()["count"], 0);
    // Errors are still Job-shaped.
    assert_eq!(api.get("machines/none").await.json()["state"], "FAILED");
}

#[tokio::test]
async fn lenient_1x_profile() {
    let sim = start(SimConfig { profile: Profile::Lenient1x, timing: Timing::Instant, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let mut anonymous = Api::new(&sim);
    anonymous.user = None;
    let a = anonymous.get("").await;
    assert_eq!(a.status, 200, "the CEP is readable without credentials");
    assert_eq!(a.header("cimi-specification-version").as_deref(), Some("1.0"));
    assert_eq!(anonymous.get("machines").await.status, 401);

    let configs = api.get("machineConfigs?$first=1&$last=1").await.json();
    let entries = configs["machineConfigurations"].as_array().expect("entries");
    assert_eq!(entries.len(), 3, "$first/$last ignored");
    assert!(entries[0].get("resourceURI").is_none(), "entries without resourceURI");
    assert_eq!(entries[0]["cpu"], "1", "numbers as strings");
    assert_eq!(entries[0]["created"], "2012-01-01 12:00:00", "dates that are not xsd:dateTime");
    assert_eq!(configs["count"], 3);
    let image = api.get("machineImages/Win7").await.json();
    assert!(image["imageLocation"].is_string(), "imageLocation as a string");
    assert!(api.get("credentials").await.json().get("credentials").is_none(), "empty: no entry array");

    let a = api.create_machine("m", Some("STARTED")).await;
    let m = a.header("location").expect("m");
    let doc = api.get(&m).await.json();
    let rels_of = |doc: &serde_json::Value| -> Vec<String> {
        doc["operations"].as_array().into_iter().flatten().filter_map(|o| o["rel"].as_str().map(String::from)).collect()
    };
    // As real 1.x providers do: no delete on a running machine (not offered, and refused if tried).
    assert!(!rels_of(&doc).iter().any(|r| r.ends_with("delete")), "{:?}", rels_of(&doc));
    let refused = api.delete(&m).await;
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(refused.text.contains("deletes only stopped machines"), "{}", refused.text);
    let a = api.action(&m, "stop").await;
    assert_eq!(a.status, 202);
    assert!(a.text.is_empty());
    assert_eq!(a.header("content-type").as_deref(), Some("text/html"));
    assert_eq!(api.get(&m).await.json()["state"], "STOPPED", "changed by the next GET");
    let rels = rels_of(&api.get(&m).await.json());
    assert!(
        rels.iter().any(|r| r == "delete") && rels.iter().any(|r| r == "http://schemas.dmtf.org/cimi/1/action/delete")
    );

    // Attach through an add href that is not the collection URL; detach answers the collection.
    let v = api
        .post(
            "volumes",
            &json!({"name": "d", "volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")}}}),
        )
        .await
        .header("location")
        .expect("volume");
    let vols_href = doc["volumes"]["href"].as_str().expect("volumes").to_string();
    let add = api.get(&vols_href).await.json()["operations"][0]["href"].as_str().expect("add").to_string();
    assert_ne!(add, vols_href);
    let a = api.post(&add, &json!({"initialLocation": "/dev/vdb", "volume": {"href": v}})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = api.delete(&a.header("location").expect("mv")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["count"], "0".parse::<serde_json::Value>().unwrap_or_default());

    // Errors in the provider's own shape; unsupported methods as an HTML 404; a second delete is a 500.
    let e = api.get("machines/none").await.json();
    assert_eq!(e["code"], 404);
    assert!(e["message"].is_string());
    let a = api.send(Method::DELETE, "machines", None).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.header("content-type").as_deref(), Some("text/html"));
    assert_eq!(api.delete(&m).await.status, 200);
    assert_eq!(api.delete(&m).await.status, 500);
}

const XML: &str = "application/xml";
const STOP_XML: &str = r#"<Action xmlns="http://schemas.dmtf.org/cimi/1"><action>http://schemas.dmtf.org/cimi/1/action/stop</action></Action>"#;

/// The lenient-1x profile through XML, as a 1.x XML client sees it: no delete on a running machine (neither in
/// its operations nor when tried, the refusal answered in XML), a stop, then a delete; bodies without the CIMI
/// namespace accepted.
#[tokio::test]
async fn lenient_1x_profile_in_xml() {
    let sim = start(SimConfig { profile: Profile::Lenient1x, timing: Timing::Instant, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let accept = [("Accept", XML)];
    // A machine created from an XML body that declares no namespace: accepted in this profile.
    let create = format!(
        "<MachineCreate><name>x</name><machineTemplate><machineConfig href=\"{}\"/><machineImage href=\"{}\"/>\
         <initialState>STARTED</initialState></machineTemplate></MachineCreate>",
        api.url("machineConfigs/tiny"),
        api.url("machineImages/WinXP-SP2")
    );
    let a = api.send_raw(Method::POST, "machines", Some(create), Some(XML), &accept).await.expect("create");
    assert!(a.status.is_success(), "{} {}", a.status, a.text);
    let m = a.header("location").expect("location");
    let doc = api.send_raw(Method::GET, &m, None, None, &accept).await.expect("read").text;
    assert!(doc.contains("<state>STARTED</state>"), "{doc}");
    assert!(doc.contains("action/stop") && !doc.contains("rel=\"delete\""), "stop offered, delete not: {doc}");

    let refused = api.send_raw(Method::DELETE, &m, None, None, &accept).await.expect("delete");
    assert_eq!(refused.status, 409);
    assert_eq!(refused.header("content-type").as_deref(), Some(XML), "an XML request gets an XML error");
    assert!(refused.text.contains("<code>409</code>"), "{}", refused.text);
    assert!(
        refused.text.contains("<message>") && refused.text.contains("deletes only stopped machines"),
        "{}",
        refused.text
    );
    let missing = api.send_raw(Method::GET, "machines/none", None, None, &accept).await.expect("read");
    assert_eq!(missing.status, 404);
    assert!(missing.text.starts_with("<?xml") && missing.text.contains("<code>404</code>"), "{}", missing.text);

    let stop = api.send_raw(Method::POST, &m, Some(STOP_XML.into()), Some(XML), &accept).await.expect("stop");
    assert_eq!(stop.status, 202, "{}", stop.text);
    let doc = api.send_raw(Method::GET, &m, None, None, &accept).await.expect("read").text;
    assert!(doc.contains("<state>STOPPED</state>") && doc.contains("rel=\"delete\""), "{doc}");
    assert_eq!(api.send_raw(Method::DELETE, &m, None, None, &accept).await.expect("delete").status, 200);
}

/// The one rule for XML bodies outside the CIMI namespace: refused with a 400 that names the namespace in the
/// strict profile (and no-jobs), whether the namespace is missing or another one; a prefixed root bound to the
/// CIMI namespace is fine everywhere.
#[tokio::test]
async fn xml_bodies_must_be_in_the_cimi_namespace_except_in_lenient_1x() {
    for profile in [Profile::Strict, Profile::NoJobs] {
        let sim = start(SimConfig { profile, timing: Timing::Instant, ..SimConfig::default() }).await;
        let api = Api::new(&sim);
        for body in [
            "<Volume><name>x</name></Volume>".to_string(),
            "<Volume xmlns=\"urn:not-cimi\"><name>x</name></Volume>".to_string(),
        ] {
            let a = api.send_raw(Method::PUT, "volumes/none", Some(body), Some(XML), &[]).await.expect("answer");
            assert_eq!(a.status, 400, "{profile:?}: {}", a.text);
            assert!(a.text.contains("http://schemas.dmtf.org/cimi/1"), "names the namespace: {}", a.text);
        }
        let stop_prefixed = r#"<c:Action xmlns:c="http://schemas.dmtf.org/cimi/1"><c:action>http://schemas.dmtf.org/cimi/1/action/stop</c:action></c:Action>"#;
        let m = api.create_machine("p", Some("STARTED")).await.header("location").expect("machine");
        let a = api.send_raw(Method::POST, &m, Some(stop_prefixed.into()), Some(XML), &[]).await.expect("stop");
        assert!(a.status.is_success(), "{profile:?}: {} {}", a.status, a.text);
    }
    let sim = start(SimConfig { profile: Profile::Lenient1x, timing: Timing::Instant, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let m = api.create_machine("q", Some("STARTED")).await.header("location").expect("machine");
    let plain = "<Action><action>http://schemas.dmtf.org/cimi/1/action/stop</action></Action>";
    let a = api.send_raw(Method::POST, &m, Some(plain.into()), Some(XML), &[]).await.expect("stop");
    assert_eq!(a.status, 202, "accepted without a namespace: {}", a.text);
}

/// A `withhold` fault rule: the named operations vanish from the resource's representation (JSON and XML) and
/// are refused when invoked; other resources keep theirs; removing the rule brings them back.
#[tokio::test]
async fn withheld_operations_are_neither_offered_nor_allowed() {
    use cimi_operator::sim::{FaultKind, FaultRule};
    for profile in [Profile::Strict, Profile::Lenient1x] {
        let sim = start(SimConfig { profile, timing: Timing::Instant, ..SimConfig::default() }).await;
        let api = Api::new(&sim);
        let stuck = api.create_machine("stuck-1", Some("STARTED")).await.header("location").expect("machine");
        let free = api.create_machine("free-1", Some("STARTED")).await.header("location").expect("machine");
        sim.set_faults(vec![FaultRule {
            method: None,
            resource_type: Some("Machine".into()),
            action: None,
            name: Some("stuck-*".into()),
            rate: None,
            times: None,
            kind: FaultKind::Withhold { operations: vec!["delete".into(), "stop".into(), "restart".into()] },
            window_start: None,
        }]);
        let rels = |doc: serde_json::Value| -> Vec<String> {
            doc["operations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["rel"].as_str().map(String::from))
                .collect()
        };
        let offered = rels(api.get(&stuck).await.json());
        assert!(
            !offered.iter().any(|r| r == "delete" || r.ends_with("/stop") || r.ends_with("/restart")),
            "{offered:?}"
        );
        assert!(offered.iter().any(|r| r.ends_with("/pause")), "the others stay: {offered:?}");
        let xml = api.send_raw(Method::GET, &stuck, None, None, &[("Accept", XML)]).await.expect("read").text;
        assert!(!xml.contains("action/stop") && xml.contains("action/pause"), "{xml}");
        assert!(rels(api.get(&free).await.json()).iter().any(|r| r.ends_with("/stop")), "another machine keeps stop");
        let a = api.action(&stuck, "stop").await;
        assert_eq!(a.status, 409, "{profile:?}: {}", a.text);
        assert!(a.text.contains("not among the operations"), "{}", a.text);
        assert_eq!(api.delete(&stuck).await.status, 409);
        sim.set_faults(vec![]);
        assert!(api.action(&stuck, "stop").await.status.is_success(), "offered again without the rule");
    }
}
