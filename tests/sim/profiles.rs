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
