//! Each fault kind, set through the admin API or the in-process handle.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use cimi_operator::sim::{FaultKind, FaultRule, SimConfig};

use super::{Api, instant, start};

fn rule(kind: FaultKind) -> FaultRule {
    FaultRule {
        method: None,
        resource_type: None,
        action: None,
        name: None,
        rate: None,
        times: None,
        kind,
        window_start: None,
    }
}

#[tokio::test]
async fn admin_api_sets_faults_and_reports_stats() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let rules = json!({"rules": [{"method": "GET", "resourceType": "MachineCollection", "kind": "error", "status": 500, "times": 1}]});
    let a = api.put("_sim/faults", &rules).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(api.get("_sim/faults").await.json()["rules"][0]["kind"], "error");
    let a = api.get("machines").await;
    assert_eq!(a.status, 500);
    assert_eq!(a.json()["returnCode"], 500);
    assert_eq!(api.get("machines").await.status, 200, "times: 1");
    let stats = api.get("_sim/stats").await.json();
    assert_eq!(stats["requests"]["MachineCollection.read"]["500"], 1);
    assert_eq!(stats["requests"]["MachineCollection.read"]["200"], 1);
    assert!(stats["log"].as_array().is_some_and(|l| l.len() == 2), "admin requests are not counted");
    assert_eq!(api.put("_sim/faults", &json!({"rules": [{"kind": "nonsense"}]})).await.status, 400);
    let mut anonymous = Api::new(&sim);
    anonymous.user = None;
    assert_eq!(anonymous.get("_sim/stats").await.status, 401, "same credentials as the CIMI tree");
    api.create_machine("m", None).await;
    assert_eq!(api.send(Method::POST, "_sim/reset", None).await.status, 200);
    assert_eq!(api.get("machines").await.json()["count"], 0);
    assert_eq!(sim.stats().total, 1);
}

#[tokio::test]
async fn latency_and_name_patterns() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    api.create_machine("web-1", None).await;
    let m = api.get("machines").await.json()["machines"][0]["id"].as_str().expect("id").to_string();
    sim.set_faults(vec![FaultRule {
        name: Some("web-*".into()),
        method: Some("GET".into()),
        ..rule(FaultKind::Latency { ms: 300 })
    }]);
    let t = Instant::now();
    assert_eq!(api.get(&m).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    api.get("machineConfigs/tiny").await;
    assert!(t.elapsed() < Duration::from_millis(300), "the name pattern does not match tiny");
}

#[tokio::test]
async fn throttle_and_unavailable_window_with_retry_after() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    sim.set_faults(vec![FaultRule { times: Some(1), ..rule(FaultKind::Throttle { retry_after: 1 }) }]);
    let a = api.get("machines").await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after").as_deref(), Some("1"));
    assert_eq!(api.get("machines").await.status, 200);
    sim.set_faults(vec![rule(FaultKind::Unavailable { seconds: 1 })]);
    let a = api.get("machines").await;
    assert_eq!(a.status, 503);
    assert!(a.header("retry-after").is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get("machines").await.status, 200, "the window closed");
    let log = sim.stats().log;
    let times: Vec<_> = log.iter().filter(|r| r.op == "MachineCollection.read").map(|r| (r.status, r.at)).collect();
    assert!(times.len() >= 4);
    let last = times[times.len() - 1].1 - times[times.len() - 2].1;
    assert!(last.num_milliseconds() >= 1000, "the log proves the wait");
}

#[tokio::test]
async fn error_rate_is_seeded() {
    let run = |seed| async move {
        let sim = start(SimConfig { seed, ..instant() }).await;
        let api = Api::new(&sim);
        sim.set_faults(vec![FaultRule { rate: Some(0.5), ..rule(FaultKind::Error { status: 503 }) }]);
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(api.get("machineImages").await.status.as_u16());
        }
        statuses
    };
    let a = run(7).await;
    assert_eq!(a, run(7).await, "same seed, same faults");
    assert!(a.contains(&503) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn job_fails_and_job_hangs() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("m", None).await.header("location").expect("m");
    api.wait_state(&m, "STOPPED").await;
    sim.set_faults(vec![FaultRule { action: Some("start".into()), times: Some(1), ..rule(FaultKind::JobFails) }]);
    let a = api.action(&m, "start").await;
    assert_eq!(a.status, 202);
    let job = api.wait_state(&a.header("cimi-job-uri").expect("job"), "FAILED").await;
    assert_ne!(job["returnCode"], 0);
    api.wait_state(&m, "STOPPED").await;
    sim.set_faults(vec![FaultRule { action: Some("start".into()), ..rule(FaultKind::JobHangs) }]);
    let a = api.action(&m, "start").await;
    let job = a.header("cimi-job-uri").expect("job");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(api.get(&job).await.json()["state"], "RUNNING");
    assert_eq!(api.get(&m).await.json()["state"], "STARTING");
    let ops = api.get(&job).await.json()["operations"].to_string();
    assert!(ops.contains("action/stop"));
    assert_eq!(api.action(&job, "stop").await.status, 204);
    assert_eq!(api.get(&job).await.json()["state"], "STOPPED");
    assert_eq!(api.get(&m).await.json()["state"], "STOPPED");
    // A failed create leaves the machine in ERROR.
    sim.set_faults(vec![FaultRule { action: Some("add".into()), ..rule(FaultKind::JobFails) }]);
    let a = api.create_machine("doomed", Some("STARTED")).await;
    let bad = a.header("location").expect("m");
    api.wait_state(&bad, "ERROR").await;
}

#[tokio::test]
async fn truncated_collection_keeps_the_true_count() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    sim.set_faults(vec![rule(FaultKind::Truncate { max: 1 })]);
    let doc = api.get("machineImages").await.json();
    assert_eq!(doc["count"], 3);
    assert_eq!(doc["machineImages"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn commit_then_drop_applies_the_change() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    sim.set_faults(vec![FaultRule { method: Some("POST".into()), times: Some(1), ..rule(FaultKind::CommitThenDrop) }]);
    let body = json!({"name": "ghost", "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/tiny")},
        "machineImage": {"href": api.url("machineImages/Win7")}}});
    let result = api.send_raw(Method::POST, "machines", Some(body.to_string()), None, &[]).await;
    assert!(result.is_err(), "the connection is dropped: {result:?}");
    let doc = api.get("machines?$filter=name='ghost'").await.json();
    assert_eq!(doc["count"], 1, "but the machine exists");
    assert_eq!(sim.stats().count("MachineCollection.add", 0), 1);
    assert!(sim.stats().writes >= 1);
}

/// A snapshot whose Job is stopped, whose image is deleted while the Job hangs, or whose Job fails gives its
/// volume back AVAILABLE, to be snapshotted or deleted again (found by the soak: a volume left CAPTURING for
/// ever after its hung snapshot was stopped).
#[tokio::test]
async fn a_snapshot_that_ends_badly_gives_its_volume_back() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let vol = api
        .post(
            "volumes",
            &json!({"name": "data", "volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")},
            "volumeImage": {"href": api.url("volumeImages/empty")}}}),
        )
        .await
        .header("location")
        .expect("a volume");
    api.wait_state(&vol, "AVAILABLE").await;
    let snapshot = |name: &str| {
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeImage", "name": name,
            "imageLocation": {"href": vol}})
    };
    let on = |name: &str, kind: FaultKind| FaultRule { name: Some(name.into()), times: Some(1), ..rule(kind) };

    // Hung, then stopped by its consumer.
    sim.set_faults(vec![on("stopped", FaultKind::JobHangs)]);
    let s = api.post("volumeImages", &snapshot("stopped")).await;
    assert_eq!(s.status, 202, "{}", s.text);
    let (image, job) = (s.header("location").expect("an image"), s.header("cimi-job-uri").expect("a Job"));
    assert_eq!(api.get(&vol).await.json()["state"], "CAPTURING");
    assert_eq!(api.action(&job, "stop").await.status, 204);
    assert_eq!(api.get(&job).await.json()["state"], "STOPPED");
    assert_eq!(api.get(&image).await.json()["state"], "ERROR");
    assert_eq!(api.get(&vol).await.json()["state"], "AVAILABLE", "a stopped snapshot frees its volume");

    // Hung, and its image deleted.
    sim.set_faults(vec![on("deleted", FaultKind::JobHangs)]);
    let s = api.post("volumeImages", &snapshot("deleted")).await;
    let (image, job) = (s.header("location").expect("an image"), s.header("cimi-job-uri").expect("a Job"));
    assert_eq!(api.get(&vol).await.json()["state"], "CAPTURING");
    assert_eq!(api.delete(&image).await.status, 200);
    assert_eq!(api.get(&image).await.status, 404);
    assert_eq!(api.get(&job).await.json()["state"], "STOPPED", "the Job of a deleted image ends");
    assert_eq!(api.get(&vol).await.json()["state"], "AVAILABLE", "a deleted snapshot frees its volume");

    // Failed.
    sim.set_faults(vec![on("failed", FaultKind::JobFails)]);
    let s = api.post("volumeImages", &snapshot("failed")).await;
    let (image, job) = (s.header("location").expect("an image"), s.header("cimi-job-uri").expect("a Job"));
    api.wait_state(&job, "FAILED").await;
    assert_eq!(api.get(&image).await.json()["state"], "ERROR");
    assert_eq!(api.get(&vol).await.json()["state"], "AVAILABLE");

    // The volume works as before: a snapshot succeeds, and then it can be deleted.
    let s = api.post("volumeImages", &snapshot("fine")).await;
    assert_eq!(s.status, 202, "{}", s.text);
    api.wait_state(&s.header("cimi-job-uri").expect("a Job"), "SUCCESS").await;
    api.wait_state(&s.header("location").expect("an image"), "AVAILABLE").await;
    api.wait_state(&vol, "AVAILABLE").await;
    assert_eq!(api.delete(&vol).await.status, 202, "the volume can be deleted");
    assert_eq!(api.get(&vol).await.json()["state"], "DELETING");
}
