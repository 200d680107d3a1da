//! The Primer's "Creating a New Machine" walkthrough, replayed from a fixture transcribed by hand from the seed.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;

use super::{Api, instant, start};

const FIXTURE: &str = include_str!("../fixtures/sim/primer/create-machine.json");

fn rewrite(v: &Value, rules: &[(String, String)], vars: &HashMap<String, String>) -> Value {
    match v {
        Value::String(s) => Value::String(rewrite_str(s, rules, vars)),
        Value::Array(a) => Value::Array(a.iter().map(|x| rewrite(x, rules, vars)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), rewrite(x, rules, vars))).collect()),
        other => other.clone(),
    }
}

fn rewrite_str(s: &str, rules: &[(String, String)], vars: &HashMap<String, String>) -> String {
    let mut out = s.to_string();
    for (from, to) in rules {
        if out.contains(from.as_str()) {
            out = out.replacen(from.as_str(), to, 1);
            break;
        }
    }
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Whether `actual` carries everything `expected` shows: objects by key, arrays by containment, `"*"` = any.
fn subset(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::String(s), a) if s == "*" => {
            if a.is_null() {
                Err(format!("{at}: missing"))
            } else {
                Ok(())
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a.get(k).ok_or_else(|| format!("{at}.{k}: missing in {}", Value::Object(a.clone())))?;
                subset(ev, av, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, ev) in e.iter().enumerate() {
                if !a.iter().any(|av| subset(ev, av, at).is_ok()) {
                    return Err(format!("{at}[{i}]: {ev} not found in {actual}"));
                }
            }
            Ok(())
        }
        // The Primer writes some booleans as strings ("required": "true").
        (Value::String(s), Value::Bool(b)) if *s == b.to_string() => Ok(()),
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{at}: expected {e}, got {a}")),
    }
}

#[tokio::test]
async fn primer_create_a_machine_replays() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let rules: Vec<(String, String)> = serde_json::from_value(fixture["rewrites"].clone()).expect("rewrites");
    let mut vars = HashMap::from([("base".to_string(), sim.url())]);
    let steps = fixture["steps"].as_array().expect("steps");
    assert!(steps.len() >= 14);
    for step in steps {
        let title = step["title"].as_str().unwrap_or("?");
        let req = &step["request"];
        let url = rewrite_str(req["url"].as_str().expect("url"), &rules, &vars);
        let method = Method::from_bytes(req["method"].as_str().expect("method").as_bytes()).expect("method");
        let body = req.get("body").map(|b| rewrite(b, &rules, &vars).to_string());
        let ctype = req["contentType"].as_str();
        let answer = api.send_raw(method, &url, body, ctype, &[]).await.expect("an answer");
        let expected = &step["response"];
        assert_eq!(
            answer.status.as_u16() as u64,
            expected["status"].as_u64().expect("status"),
            "{title}: {}",
            answer.text
        );
        if let Some(ct) = expected["contentType"].as_str() {
            assert_eq!(answer.header("content-type").as_deref(), Some(ct), "{title}");
        }
        if let Some(capture) = expected["capture"].as_object() {
            for (var, header) in capture {
                let value =
                    answer.header(header.as_str().unwrap_or("")).unwrap_or_else(|| panic!("{title}: no {header}"));
                assert!(value.starts_with(&sim.url()), "{title}: {value} is under the base URI");
                vars.insert(var.clone(), value);
            }
        }
        let doc = answer.json();
        if let Some(body) = expected.get("body") {
            let body = rewrite(body, &rules, &vars);
            if let Err(e) = subset(&body, &doc, "$") {
                panic!("{title}: {e}");
            }
        }
        if let Some(entries) = expected["entries"].as_object() {
            for (key, n) in entries {
                assert_eq!(
                    doc[key].as_array().map(Vec::len) as Option<usize>,
                    n.as_u64().map(|n| n as usize),
                    "{title}"
                );
            }
        }
        for rel in expected["absentOperations"].as_array().into_iter().flatten() {
            let ops = doc["operations"].as_array().cloned().unwrap_or_default();
            assert!(!ops.iter().any(|o| &o["rel"] == rel), "{title}: {rel} should not be offered");
        }
        for attr in expected["absentAttributes"].as_array().into_iter().flatten() {
            let attr = attr.as_str().unwrap_or("");
            assert!(doc.get(attr).is_none(), "{title}: {attr} should be absent");
        }
    }
    // The credential's password is write-only.
    let cred = api.get(&vars["cred"]).await.json();
    assert_eq!(cred["userID"], "JoeSmith");
    assert!(cred.get("password").is_none(), "the password is never served");
    // Every write answered a CIMI-Job-URI of a completed Job.
    let stats = sim.stats();
    assert_eq!(stats.count("Machine.start", 204), 1);
    assert_eq!(stats.count("MachineCollection.add", 201), 1);
    assert!(stats.writes >= 5, "{stats:?}");
}

#[test]
fn the_comparison_can_fail() {
    let e: Value = serde_json::json!({"a": [{"b": 1}], "c": "*"});
    assert!(subset(&e, &serde_json::json!({"a": [{"b": 1, "x": 2}], "c": 0}), "$").is_ok());
    assert!(subset(&e, &serde_json::json!({"a": [{"b": 2}], "c": 0}), "$").is_err());
    assert!(subset(&e, &serde_json::json!({"a": [{"b": 1}]}), "$").is_err());
}
