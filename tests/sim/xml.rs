//! XML answers checked against hand-written golden files, compared as trees (element names, namespace,
//! attributes, text; children in any order), with a small canonicaliser independent of the simulator's own
//! XML code.

use quick_xml::Reader;
use quick_xml::events::Event;
use reqwest::Method;

use super::{Api, instant, start};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Elem>,
}

fn parse(xml: &str) -> Elem {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Elem> = Vec::new();
    let mut root = None;
    let open = |e: &quick_xml::events::BytesStart<'_>| Elem {
        name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
        attrs: {
            let mut a: Vec<(String, String)> = e
                .attributes()
                .filter_map(Result::ok)
                .map(|a| {
                    let v = a.unescape_value().map(|v| v.into_owned()).unwrap_or_default();
                    (String::from_utf8_lossy(a.key.as_ref()).into_owned(), v.trim().to_string())
                })
                .collect();
            a.sort();
            a
        },
        text: String::new(),
        children: Vec::new(),
    };
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => {
                let el = open(&e);
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().expect("balanced");
                el.text = el.text.trim().to_string();
                el.children.sort();
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.decode().expect("utf-8"));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = r.decode().expect("utf-8");
                    top.text.push_str(match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("entity {other}"),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    root.expect("a root element")
}

/// Blanks the text of elements whose golden text is `*`.
fn wildcard(golden: &Elem, actual: &mut Elem) {
    if golden.text == "*" {
        actual.text = "*".into();
    }
    for g in &golden.children {
        for a in actual.children.iter_mut().filter(|a| a.name == g.name) {
            wildcard(g, a);
        }
    }
    actual.children.sort();
}

fn assert_same(golden: &str, actual: &str) {
    let g = parse(golden);
    let mut a = parse(actual);
    wildcard(&g, &mut a);
    assert_eq!(a, g, "\nactual XML:\n{actual}");
}

#[tokio::test]
async fn xml_answers_match_golden_files() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let base = sim.url();

    let golden = include_str!("../fixtures/sim/xml/credential-collection-empty.xml").replace("{base}", &base);
    let a = api.get("credentials?$format=xml").await;
    assert_eq!(a.header("content-type").as_deref(), Some("application/xml"));
    assert_same(&golden, &a.text);

    let golden = include_str!("../fixtures/sim/xml/machine-config-tiny.xml").replace("{base}", &base);
    let a = api
        .send_raw(Method::GET, "machineConfigs/tiny", None, None, &[("Accept", "application/xml")])
        .await
        .expect("answer");
    assert_same(&golden, &a.text);
    // $format beats Accept.
    let a = api
        .send_raw(Method::GET, "machineConfigs/tiny?$format=JSON", None, None, &[("Accept", "application/xml")])
        .await
        .expect("answer");
    assert_eq!(a.json()["name"], "tiny");

    let c = api
        .post(
            "credentials",
            &serde_json::json!({"name": "Default", "description": "My Default User",
            "properties": {"env": "prod", "team": "a & b"},
            "credentialTemplate": {"userID": "JoeSmith", "password": "letmein"}}),
        )
        .await
        .header("location")
        .expect("credential");
    let golden = include_str!("../fixtures/sim/xml/credential.xml").replace("{id}", &c);
    let a = api.send_raw(Method::GET, &c, None, None, &[("Accept", "application/xml")]).await.expect("answer");
    assert_same(&golden, &a.text);
}

#[tokio::test]
async fn xml_requests_are_understood() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let body = include_str!("../fixtures/sim/xml/machine-create.xml").replace("{base}", &sim.url());
    let a = api
        .send_raw(Method::POST, "machines", Some(body), Some("application/xml"), &[("Accept", "application/xml")])
        .await
        .expect("answer");
    assert_eq!(a.status, 201, "{}", a.text);
    let doc = parse(&a.text);
    assert_eq!(doc.name, "Machine");
    assert!(doc.attrs.iter().any(|(k, v)| k == "xmlns" && v == "http://schemas.dmtf.org/cimi/1"));
    let m = api.get(&a.header("location").expect("m")).await.json();
    assert_eq!(m["state"], "STARTED");
    assert_eq!(m["memory"], 8000000);
    assert_eq!(m["properties"]["env"], "test");
    let action = r#"<Action xmlns="http://schemas.dmtf.org/cimi/1"><action>http://schemas.dmtf.org/cimi/1/action/stop</action><force>true</force></Action>"#;
    let a = api
        .send_raw(Method::POST, m["id"].as_str().expect("id"), Some(action.into()), Some("application/xml"), &[])
        .await
        .expect("answer");
    assert_eq!(a.status, 204);
    // Errors in XML are Jobs too.
    let a = api.send_raw(Method::GET, "machines/none?$format=xml", None, None, &[]).await.expect("answer");
    assert_eq!(a.status, 404);
    let e = parse(&a.text);
    assert_eq!(e.name, "Job");
    assert!(e.children.iter().any(|c| c.name == "state" && c.text == "FAILED"));
}
