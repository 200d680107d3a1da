//! Systems from SystemTemplates: quantity naming, symbolic references, MIXED state, recursive actions, nested
//! Jobs, deletion of every component.

use serde_json::{Value, json};

use cimi_operator::sim::SimConfig;

use super::{Api, instant, start};

fn hrefs(coll: &Value, key: &str, field: &str) -> Vec<String> {
    coll[key].as_array().into_iter().flatten().filter_map(|e| e[field]["href"].as_str().map(str::to_string)).collect()
}

/// Creates the system `shop` from the catalog's `web-tier` template; its href.
async fn create_shop_from_web_tier(api: &Api) -> String {
    let a = api
        .post(
            "systems",
            &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/SystemCreate", "name": "shop",
            "systemTemplate": {"href": api.url("systemTemplates/web-tier")}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.header("location").expect("system")
}

#[tokio::test]
async fn system_from_the_catalog_template() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let s = create_shop_from_web_tier(&api).await;
    let system = api.get(&s).await.json();
    assert_eq!(system["state"], "STARTED");
    let machines = hrefs(
        &api.get(system["machines"]["href"].as_str().expect("machines")).await.json(),
        "systemMachines",
        "machine",
    );
    assert_eq!(machines.len(), 2);
    let mut names = Vec::new();
    for m in &machines {
        let doc = api.get(m).await.json();
        names.push(doc["name"].as_str().unwrap_or("").to_string());
        let nics = api.get(doc["networkInterfaces"]["href"].as_str().expect("nics")).await.json();
        assert_eq!(nics["count"], 1, "the #net reference became a real network");
    }
    names.sort();
    assert_eq!(names, ["web1", "web2"]);
    let networks = hrefs(
        &api.get(system["networks"]["href"].as_str().expect("networks")).await.json(),
        "systemNetworks",
        "network",
    );
    assert_eq!(networks.len(), 1);
    assert_eq!(api.get(&networks[0]).await.json()["name"], "net");

    // One machine stopped: MIXED; a recursive stop brings the system to STOPPED.
    assert_eq!(api.action(&machines[0], "stop").await.status, 204);
    assert_eq!(api.get(&s).await.json()["state"], "MIXED");
    let a = api.action(&s, "stop").await;
    assert_eq!(a.status, 204, "{}", a.text);
    let job = api.get(&a.header("cimi-job-uri").expect("job")).await.json();
    assert_eq!(job["state"], "SUCCESS");
    assert_eq!(job["nestedJobs"].as_array().map(Vec::len), Some(1), "only the started machine had to stop");
    assert_eq!(api.get(&s).await.json()["state"], "STOPPED");
    assert_eq!(api.action(&s, "stop").await.status, 409);
    assert_eq!(api.action(&s, "start").await.status, 204);
    assert_eq!(api.get(&s).await.json()["state"], "STARTED");

    assert_eq!(api.delete(&s).await.status, 200);
    assert_eq!(api.get(&s).await.status, 404);
    for m in machines.iter().chain(networks.iter()) {
        assert_eq!(api.get(m).await.status, 404, "{m} deleted with its system");
    }
}

#[tokio::test]
async fn system_by_value_with_quantity_and_nested_jobs() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let a = api
        .post(
            "systems",
            &json!({"name": "batch", "systemTemplate": {"componentDescriptors": [
                {"name": "worker", "type": "http://schemas.dmtf.org/cimi/1/Machine", "quantity": 3,
                 "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/tiny")},
                    "machineImage": {"href": api.url("machineImages/Linux-SUSE")}, "initialState": "STARTED"}},
                {"name": "scratch", "type": "http://schemas.dmtf.org/cimi/1/Volume",
                 "volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")}}}
            ]}}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let s = a.header("location").expect("system");
    assert_eq!(api.get(&s).await.json()["state"], "CREATING");
    let job = api.wait_state(&a.header("cimi-job-uri").expect("job"), "SUCCESS").await;
    assert_eq!(job["nestedJobs"].as_array().map(Vec::len), Some(4));
    let nested = api.get(job["nestedJobs"][0]["href"].as_str().expect("nested")).await.json();
    assert_eq!(nested["parentJob"]["href"], job["id"]);
    assert_eq!(api.wait_state(&s, "STARTED").await["name"], "batch");
    let a = api
        .post(
            "systems",
            &json!({"name": "broken", "systemTemplate": {"componentDescriptors": [
            {"name": "m", "machineTemplate": {"machineConfig": {"href": "#nothing"},
                "machineImage": {"href": api.url("machineImages/Win7")}}}]}}),
        )
        .await;
    assert_eq!(a.status, 400, "an unknown symbolic reference");
}

/// Found by the chaos soak: a system delete whose Job failed after removing the machines left the system listing
/// them, and every later delete was refused (409, "machine … is ;") for good. A member that is gone is no longer
/// one: the next delete removes the rest.
#[tokio::test]
async fn a_system_whose_delete_failed_midway_is_deleted_by_the_next_delete() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let s = create_shop_from_web_tier(&api).await;
    let machines = hrefs(
        &api.get(api.get(&s).await.json()["machines"]["href"].as_str().expect("machines")).await.json(),
        "systemMachines",
        "machine",
    );
    assert_eq!(machines.len(), 2);
    let rule = json!({"method": "DELETE", "resourceType": "System", "kind": "jobFails", "times": 1});
    sim.set_faults(vec![serde_json::from_value(rule).expect("rule")]);
    let failed = api.delete(&s).await;
    let job = api.get(&failed.header("cimi-job-uri").expect("a Job")).await.json();
    assert_eq!(job["state"], "FAILED", "{job}");
    for m in &machines {
        assert_eq!(api.get(m).await.status, 404, "the failed delete removed {m} before failing");
    }
    assert_eq!(api.get(&s).await.status, 200, "the system itself is left");

    let again = api.delete(&s).await;
    assert!(again.status.is_success(), "the next delete is taken: {} {}", again.status, again.text);
    assert_eq!(api.get(&s).await.status, 404);
}

/// Found by the chaos soak: a system whose component Job hung could not be stopped: the stop marked only the
/// parent Job, which went back to RUNNING while the nested Job hung, and the system stayed CREATING for ever.
/// Stopping the parent stops its running nested Jobs; the system is left in ERROR, and can be deleted.
#[tokio::test]
async fn stopping_a_system_job_stops_its_nested_jobs() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let rule = json!({"method": "POST", "resourceType": "SystemCollection", "kind": "jobHangs", "times": 1});
    sim.set_faults(vec![serde_json::from_value(rule).expect("rule")]);
    let a = api
        .post(
            "systems",
            &json!({"name": "stuck", "systemTemplate": {"componentDescriptors": [
                {"name": "worker", "type": "http://schemas.dmtf.org/cimi/1/Machine", "quantity": 2,
                 "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/tiny")},
                    "machineImage": {"href": api.url("machineImages/Linux-SUSE")}, "initialState": "STARTED"}}
            ]}}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let (s, job) = (a.header("location").expect("system"), a.header("cimi-job-uri").expect("job"));
    let nested: Vec<String> = api.get(&job).await.json()["nestedJobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["href"].as_str().map(str::to_string))
        .collect();
    assert_eq!(nested.len(), 2);
    // The first component is made; the last one's Job hangs, and so does the system's.
    api.wait_state(&nested[0], "SUCCESS").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(api.get(&nested[1]).await.json()["state"], "RUNNING");
    assert_eq!(api.get(&job).await.json()["state"], "RUNNING");
    assert_eq!(api.get(&s).await.json()["state"], "CREATING");

    let stop = api.action(&job, "stop").await;
    assert_eq!(stop.status, 204, "{}", stop.text);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(api.get(&job).await.json()["state"], "STOPPED", "the parent stays stopped");
    assert_eq!(api.get(&nested[1]).await.json()["state"], "STOPPED", "the hung component Job is stopped");
    assert_eq!(api.get(&s).await.json()["state"], "ERROR", "a stopped create leaves the system in ERROR");

    let gone = api.delete(&s).await;
    assert!(gone.status.is_success(), "{} {}", gone.status, gone.text);
    if let Some(job) = gone.header("cimi-job-uri") {
        api.wait_state(&job, "SUCCESS").await;
    }
    assert_eq!(api.get(&s).await.status, 404);
}
