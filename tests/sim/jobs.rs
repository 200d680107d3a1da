//! Job retention: finished Jobs are removed after the retention age, and the oldest finished ones beyond the
//! maximum count; running Jobs stay.

use std::time::Duration;

use serde_json::json;

use cimi_operator::sim::{FaultKind, FaultRule, JobRetention, SimConfig};

use super::{Api, instant, start};

#[tokio::test]
async fn the_oldest_finished_jobs_go_beyond_the_maximum() {
    let retention = JobRetention { max_jobs: 5, ..JobRetention::default() };
    let sim = start(SimConfig { job_retention: retention, ..instant() }).await;
    let api = Api::new(&sim);
    let m = api.create_machine("busy", None).await.header("location").expect("m");
    let mut jobs = Vec::new();
    for i in 0..8 {
        jobs.push(api.put(&m, &json!({"name": format!("n{i}")})).await.header("cimi-job-uri").expect("a Job"));
    }
    // Pruning happens at most once a second, on the next request.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let listed = api.get("jobs").await.json();
    assert_eq!(listed["count"], 5, "{listed}");
    for old in &jobs[..3] {
        assert_eq!(api.get(old).await.status, 404, "{old} was among the oldest");
    }
    for new in &jobs[3..] {
        assert_eq!(api.get(new).await.status, 200, "{new} is kept");
    }
}

#[tokio::test]
async fn finished_jobs_expire_and_running_ones_stay() {
    let retention = JobRetention { age: Duration::from_secs(1), ..JobRetention::default() };
    let sim = start(SimConfig { job_retention: retention, ..instant() }).await;
    let api = Api::new(&sim);
    let meta = api.get("resourceMetadata/Job").await.json();
    assert_eq!(meta["capabilities"][0]["name"], "JobRetention");
    assert_eq!(meta["capabilities"][0]["value"], "1", "minutes, rounded up");
    let m = api.create_machine("m", None).await;
    let done = m.header("cimi-job-uri").expect("a Job");
    let m = m.header("location").expect("m");
    sim.set_faults(vec![FaultRule {
        method: None,
        resource_type: Some("Machine".into()),
        action: Some("start".into()),
        name: None,
        rate: None,
        times: None,
        kind: FaultKind::JobHangs,
        window_start: None,
    }]);
    let hanging = api.action(&m, "start").await.header("cimi-job-uri").expect("a Job");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    api.get("").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get(&done).await.status, 404, "expired");
    assert_eq!(api.get(&hanging).await.json()["state"], "RUNNING", "a running Job is kept");
}
