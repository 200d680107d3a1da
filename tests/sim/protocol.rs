//! The protocol: status codes and error bodies, ETags, query parameters, Jobs on every write, auth.

use reqwest::Method;
use serde_json::json;

use cimi_operator::sim::{Auth, SimConfig};

use super::{Api, instant, start};

#[tokio::test]
async fn errors_have_the_right_status_and_a_job_shaped_body() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let mut anonymous = Api::new(&sim);
    anonymous.user = None;
    let a = anonymous.get("").await;
    assert_eq!(a.status, 401);
    assert!(a.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")));
    let mut wrong = Api::new(&sim);
    wrong.user = Some(("demo".into(), "nope".into()));
    assert_eq!(wrong.get("machines").await.status, 401);

    let a = api.get("machines/nope").await;
    assert_eq!(a.status, 404);
    let body = a.json();
    assert_eq!(body["resourceURI"], "http://schemas.dmtf.org/cimi/1/Job");
    assert_eq!(body["state"], "FAILED");
    assert_eq!(body["returnCode"], 404);
    assert!(body["statusMessage"].as_str().is_some_and(|m| !m.is_empty()));

    assert_eq!(api.delete("").await.status, 405);
    assert_eq!(api.send(Method::DELETE, "machines", None).await.status, 405);
    let a = api.send_raw(Method::GET, "machines", None, None, &[("Accept", "text/plain")]).await.expect("answer");
    assert_eq!(a.status, 406);
    let a = api.send_raw(Method::POST, "machines", Some("x".into()), Some("text/plain"), &[]).await.expect("answer");
    assert_eq!(a.status, 415);
    let a = api.send_raw(Method::POST, "machines", Some("{".into()), None, &[]).await.expect("answer");
    assert_eq!(a.status, 400);
    assert_eq!(api.get("machines?$filter=name<'x'").await.status, 400);

    // Unknown attributes are rejected.
    let a =
        api.post("credentials", &json!({"credentialTemplate": {"userID": "u", "password": "p", "shoeSize": 9}})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.json()["statusMessage"].as_str().unwrap_or("").contains("shoeSize"));
    let a = api.post("machineConfigs", &json!({"name": "x", "cpu": 1, "wheels": 4})).await;
    assert_eq!(a.status, 400);
    let a = api.post("machineConfigs", &json!({"name": "x", "cpu": "one"})).await;
    assert_eq!(a.status, 400, "strict types");
}

#[tokio::test]
async fn writes_carry_a_job_and_etags_guard_updates() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let a = api.create_machine("m1", None).await;
    assert_eq!(a.status, 201);
    let m = a.header("location").expect("Location");
    let job = a.header("cimi-job-uri").expect("CIMI-Job-URI on a create");
    let job_doc = api.get(&job).await.json();
    assert_eq!(job_doc["state"], "SUCCESS");
    assert_eq!(job_doc["targetResource"]["href"], api.url("machines"));
    assert!(job_doc["affectedResources"].as_array().is_some_and(|a| a.iter().any(|r| r["href"] == m.as_str())));

    let got = api.get(&m).await;
    let etag = got.header("etag").expect("ETag");
    let body = json!({"name": "m1", "description": "d"});
    let stale =
        api.send_raw(Method::PUT, &m, Some(body.to_string()), None, &[("If-Match", "\"999\"")]).await.expect("answer");
    assert_eq!(stale.status, 412);
    let ok = api.send_raw(Method::PUT, &m, Some(body.to_string()), None, &[("If-Match", &etag)]).await.expect("answer");
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.header("cimi-job-uri").is_some(), "PUT carries CIMI-Job-URI");
    assert_ne!(ok.header("etag"), Some(etag));
    assert_eq!(ok.json()["description"], "d");

    // Partial update: listed but absent attributes are erased; others are an error; id and resourceURI ignored.
    let a = api.put(&format!("{m}?$select=name,description"), &json!({"id": m, "name": "m2"})).await;
    assert_eq!(a.status, 200);
    assert!(api.get(&m).await.json().get("description").is_none());
    let a = api.put(&format!("{m}?$select=name"), &json!({"name": "m3", "description": "x"})).await;
    assert_eq!(a.status, 400);
    // A full PUT without name erases it; read-only attributes in the body are ignored.
    let a = api.put(&m, &json!({"cpu": 64, "state": "STARTED"})).await;
    assert_eq!(a.status, 200);
    let doc = api.get(&m).await.json();
    assert!(doc.get("name").is_none());
    assert_eq!(doc["cpu"], 1);
    assert_eq!(doc["state"], "STOPPED");

    let a = api.action(&m, "start").await;
    assert_eq!(a.status, 204);
    assert!(a.header("cimi-job-uri").is_some());
    let a = api.delete(&m).await;
    assert!(a.status == 200 || a.status == 202);
    assert!(a.header("cimi-job-uri").is_some(), "DELETE carries CIMI-Job-URI");
    assert_eq!(api.get(&m).await.status, 404);
}

#[tokio::test]
async fn query_parameters_over_http() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    for (name, state) in [("web1", "STARTED"), ("web2", "STOPPED"), ("db1", "STARTED")] {
        let a = api.create_machine(name, Some(state)).await;
        assert_eq!(a.status, 201);
    }
    let names = |doc: &serde_json::Value| -> Vec<String> {
        doc["machines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().map(str::to_string))
            .collect()
    };
    let doc = api.get("machines?$filter=state='STARTED'").await.json();
    assert_eq!(doc["count"], 2);
    assert_eq!(names(&doc), ["web1", "db1"]);
    let doc = api.get("machines?$filter=state='STARTED'&$filter=name!='db1'").await.json();
    assert_eq!(names(&doc), ["web1"]);
    let doc = api.get("machines?$orderby=name:desc&$first=2&$last=3").await.json();
    assert_eq!(doc["count"], 3, "count is before paging");
    assert_eq!(names(&doc), ["web1", "db1"]);
    let doc = api.get("machines?$first=3&$last=2").await.json();
    assert_eq!(doc["count"], 3);
    assert!(doc.get("machines").is_none(), "first > last gives no entries");
    let doc = api.get("machines?$orderby=name&$select=name").await.json();
    let first = &doc["machines"][0];
    assert_eq!(first["name"], "db1");
    assert!(first.get("state").is_none());
    assert_eq!(first["resourceURI"], "http://schemas.dmtf.org/cimi/1/Machine");
    let doc = api.get("machines?$filter=name='web1'&$expand=disks").await.json();
    assert_eq!(doc["machines"][0]["disks"]["count"], 1);
    assert_eq!(doc["machines"][0]["disks"]["disks"][0]["capacity"], 50000000);
    // Path notation in $select: into the entries of the collection, then into each inlined disk.
    let doc = api.get("machines?$filter=name='web1'&$expand=disks&$select=machines/name,disks/capacity").await.json();
    let entry = doc["machines"][0].as_object().expect("an entry");
    let mut keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["disks", "name", "resourceURI"], "{entry:?}");
    let disk = doc["machines"][0]["disks"]["disks"][0].as_object().expect("an inlined disk");
    let mut keys: Vec<&str> = disk.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["capacity", "id", "resourceURI"], "{disk:?}");
    let cep = api.get("").await.json();
    let meta = api.get("resourceMetadata/CloudEntryPoint").await.json();
    let caps: Vec<&str> =
        meta["capabilities"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    for p in [
        "FilterParameter",
        "FirstParameter",
        "SelectParameter",
        "ExpandParameter",
        "FormatParameter",
        "OrderByParameter",
        "QueryPathNotation",
    ] {
        assert!(caps.contains(&p), "{p} advertised");
    }
    assert_eq!(cep["baseURI"], sim.url());
    for coll in
        ["machines", "volumes", "networks", "credentials", "jobs", "systemTemplates", "addresses", "networkPorts"]
    {
        assert!(cep[coll]["href"].is_string(), "{coll} in the CEP");
    }
}

#[tokio::test]
async fn bearer_and_no_auth() {
    let sim = start(SimConfig { auth: Auth::Bearer("s3cret".into()), ..instant() }).await;
    let mut api = Api::new(&sim);
    api.user = None;
    assert_eq!(api.get("").await.status, 401);
    let a = api.send_raw(Method::GET, "", None, None, &[("Authorization", "Bearer s3cret")]).await.expect("answer");
    assert_eq!(a.status, 200);
    let open = start(SimConfig { auth: Auth::None, ..instant() }).await;
    let mut api = Api::new(&open);
    api.user = None;
    assert_eq!(api.get("machines").await.status, 200);
}

#[tokio::test]
async fn external_url_is_the_base_of_every_href() {
    let config = SimConfig { external_url: Some("https://cimi.example.net/api".into()), ..instant() };
    let sim = start(config).await;
    assert_eq!(sim.url(), "https://cimi.example.net/api/");
    let mut api = Api::new(&sim);
    api.base = format!("http://{}/", sim.addr());
    let cep = api.get("").await.json();
    assert_eq!(cep["baseURI"], "https://cimi.example.net/api/");
    assert_eq!(cep["machines"]["href"], "https://cimi.example.net/api/machines");
}

#[tokio::test]
async fn a_plain_get_serves_what_a_get_with_select_all_serves() {
    // A plain JSON GET of one resource is serialized straight from the store; the general path must agree.
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("same", Some("STARTED")).await.header("location").expect("m");
    for path in [m.as_str(), "machineConfigs/tiny", "resourceMetadata/Credential", "jobs/1"] {
        let plain = api.get(path).await;
        let general = api.get(&format!("{path}?$select=*")).await;
        assert_eq!(plain.status, general.status, "{path}");
        assert_eq!(plain.json(), general.json(), "{path}");
        assert_eq!(plain.header("etag"), general.header("etag"), "{path}");
        assert_eq!(plain.header("content-type").as_deref(), Some("application/json"));
    }
}
