//! The client against cimi-sim with faults on: 429 + Retry-After (the wait shown by cimi-sim's own request
//! times), 5xx, latency beyond the timeout, dropped connections after a commit, truncated collections,
//! failed and hung Jobs; and the remaining operations (volumes attach/detach, auth) in JSON and XML.

use std::time::Duration;

use cimi_operator::cimi::jobs::WaitOptions;
use cimi_operator::cimi::model::{Machine, MachineConfiguration, MachineImage, MachineVolume, Volume, type_uri};
use cimi_operator::cimi::query::{Filter, Query};
use cimi_operator::cimi::{Auth, CimiClient, CimiError, Format, Secret};
use cimi_operator::sim::{FaultRule, Profile, SimHandle};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::primer::{config, sim};

fn rule(v: Value) -> FaultRule {
    serde_json::from_value(v).expect("fault rule")
}

async fn client(s: &SimHandle, format: Format) -> CimiClient {
    CimiClient::connect(config(s, format)).await.expect("connect")
}

/// A machine made from the Primer's catalog (tiny, WinXP SP2), settled in STOPPED.
async fn machine(c: &CimiClient, name: &str) -> Url {
    let by_name = |n: &str| Query::new().filter(Filter::attr("name").expect("attr").eq(n));
    let config = c.list_all::<MachineConfiguration>("machineConfigs", &by_name("tiny")).await.expect("config").entries;
    let config_id = config[0].id.clone();
    let image = c.list_all::<MachineImage>("machineImages", &by_name("WinXP SP2")).await.expect("image").entries;
    let body = json!({"resourceURI": type_uri("MachineCreate"), "name": name,
        "machineTemplate": {"machineConfig": {"href": config_id}, "machineImage": {"href": image[0].id}}});
    let accepted = c.create("machines", &body).await.expect("create");
    let machines = c.collection_url("machines").await.expect("machines");
    let href = c.created_href(&accepted, &machines).await.expect("href").expect("where");
    c.settle(&accepted, Some(&href), &["STOPPED"], &WaitOptions::from(c.config().wait)).await.expect("settled");
    href
}

#[tokio::test]
async fn retry_after_is_honoured_as_cimi_sim_recorded_it() {
    let s = sim(Profile::Strict).await;
    let c = client(&s, Format::Json).await;
    s.set_faults(vec![rule(json!({"method": "GET", "resourceType": "MachineImageCollection", "times": 1,
                                  "kind": "throttle", "retryAfter": 1}))]);
    let images = c.list_all::<MachineImage>("machineImages", &Query::new()).await.expect("after the wait");
    assert_eq!(images.entries.len(), 3);
    let log: Vec<_> = s.stats().log.into_iter().filter(|r| r.op == "MachineImageCollection.read").collect();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    let gap = log[1].at - log[0].at;
    assert!(gap >= chrono::Duration::seconds(1), "the client came back after {gap}");
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_only() {
    let s = sim(Profile::Strict).await;
    let c = client(&s, Format::Json).await;
    let href = machine(&c, "m5xx").await;
    s.set_faults(vec![rule(
        json!({"method": "GET", "resourceType": "Machine", "times": 2, "kind": "error", "status": 500}),
    )]);
    let m: Machine = c.get(&href).await.expect("third time lucky");
    assert_eq!(m.name.as_deref(), Some("m5xx"));
    assert_eq!(s.stats().count("Machine.read", 500), 2);
    s.set_faults(vec![rule(
        json!({"method": "POST", "resourceType": "MachineCollection", "kind": "error", "status": 500}),
    )]);
    let body = json!({"resourceURI": type_uri("MachineCreate"), "name": "never"});
    let e = c.create("machines", &body).await.expect_err("500");
    assert!(matches!(e, CimiError::Unavailable { status: Some(500), .. }), "{e}");
    assert_eq!(s.stats().count("MachineCollection.add", 500), 1, "a create is never repeated blindly");
}

#[tokio::test]
async fn latency_beyond_the_timeout() {
    let s = sim(Profile::Strict).await;
    let mut cfg = config(&s, Format::Json);
    cfg.transport.request_timeout = Duration::from_millis(300);
    cfg.transport.retry.max_attempts = 1;
    let c = CimiClient::connect(cfg).await.expect("connect");
    s.set_faults(vec![rule(json!({"resourceType": "MachineImageCollection", "kind": "latency", "ms": 1500}))]);
    let e = c.list_all::<MachineImage>("machineImages", &Query::new()).await.expect_err("too slow");
    assert!(matches!(e, CimiError::Timeout { .. }), "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_not_sent_twice() {
    let s = sim(Profile::Strict).await;
    let c = client(&s, Format::Json).await;
    s.set_faults(vec![rule(
        json!({"method": "POST", "resourceType": "MachineCollection", "times": 1, "kind": "commitThenDrop"}),
    )]);
    let by_name = |n: &str| Query::new().filter(Filter::attr("name").expect("attr").eq(n));
    let config = c.list_all::<MachineConfiguration>("machineConfigs", &by_name("tiny")).await.expect("config").entries;
    let image = c.list_all::<MachineImage>("machineImages", &by_name("Windows 7")).await.expect("image").entries;
    let body = json!({"resourceURI": type_uri("MachineCreate"), "name": "dropped",
        "machineTemplate": {"machineConfig": {"href": config[0].id}, "machineImage": {"href": image[0].id}}});
    let e = c.create("machines", &body).await.expect_err("the connection dropped");
    assert!(matches!(e, CimiError::Unavailable { status: None, .. }), "{e}");
    let adds: u64 = s.stats().requests.get("MachineCollection.add").map(|m| m.values().sum()).unwrap_or(0);
    assert_eq!(adds, 1, "the POST was not repeated");
    // It was made, though: a caller finds it again (design rule 2) instead of creating a second one.
    let found = c.list_all::<Machine>("machines", &by_name("dropped")).await.expect("machines");
    assert_eq!(found.entries.len(), 1);
}

#[tokio::test]
async fn truncated_collections_are_paged_around_or_reported() {
    let s = sim(Profile::Strict).await;
    let c = client(&s, Format::Json).await;
    s.set_faults(vec![rule(json!({"resourceType": "MachineImageCollection", "kind": "truncate", "max": 2}))]);
    let all = c.list_all::<MachineImage>("machineImages", &Query::new()).await.expect("list");
    assert_eq!(all.count, Some(3));
    assert_eq!(all.entries.len(), 3, "the client asked for the rest");
    assert!(!all.truncated);
    // A provider that also ignores paging cannot be paged around: the truncation is reported.
    let s = sim(Profile::Lenient1x).await;
    let c = client(&s, Format::Json).await;
    s.set_faults(vec![rule(json!({"resourceType": "MachineImageCollection", "kind": "truncate", "max": 2}))]);
    let all = c.list_all::<MachineImage>("machineImages", &Query::new()).await.expect("list");
    assert_eq!((all.count, all.entries.len(), all.truncated), (Some(3), 2, true));
}

#[tokio::test]
async fn a_failed_job_is_an_error_with_its_message() {
    let s = sim(Profile::Strict).await;
    let c = client(&s, Format::Json).await;
    let href = machine(&c, "doomed").await;
    s.set_faults(vec![rule(
        json!({"method": "POST", "resourceType": "Machine", "action": "start", "kind": "jobFails"}),
    )]);
    let current = c.get_value(&href).await.expect("machine");
    let accepted = c.action(&current, "start", Map::new()).await.expect("accepted");
    assert!(accepted.job.is_some(), "strict cimi-sim names the Job");
    let e =
        c.settle(&accepted, Some(&href), &["STARTED"], &WaitOptions::from(c.config().wait)).await.expect_err("failed");
    assert!(matches!(e, CimiError::JobFailed { ref state, .. } if state == "FAILED"), "{e}");
}

#[tokio::test]
async fn a_hung_job_times_out_or_is_cancelled() {
    let s = sim(Profile::Strict).await;
    let c = client(&s, Format::Xml).await;
    let href = machine(&c, "stuck").await;
    s.set_faults(vec![rule(
        json!({"method": "POST", "resourceType": "Machine", "action": "start", "kind": "jobHangs"}),
    )]);
    let current = c.get_value(&href).await.expect("machine");
    let accepted = c.action(&current, "start", Map::new()).await.expect("accepted");
    let job = accepted.job.clone().expect("job");
    let wait = WaitOptions::from(c.config().wait).with_timeout(Duration::from_millis(500));
    let e = c.follow_job(&job, &wait).await.expect_err("hung");
    assert!(matches!(e, CimiError::Timeout { .. }), "{e}");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let wait = WaitOptions::from(c.config().wait).with_cancel(cancel);
    assert!(matches!(c.follow_job(&job, &wait).await, Err(CimiError::Cancelled { .. })));
    // The hung Job can be stopped through its own operations.
    let j = c.get_value(&job).await.expect("job");
    if let Ok(stop) = c.action(&j, "stop", Map::new()).await {
        let e = c.settle(&stop, None, &[], &WaitOptions::from(c.config().wait)).await;
        assert!(e.is_ok() || matches!(e, Err(CimiError::JobFailed { .. })));
        let j = c.get_value(&job).await.expect("job");
        assert!(matches!(j["state"].as_str(), Some("STOPPING" | "STOPPED")), "{j}");
    }
}

async fn attach_and_detach(format: Format, profile: Profile) {
    let s = sim(profile).await;
    let c = client(&s, format).await;
    let wait = WaitOptions::from(c.config().wait);
    let href = machine(&c, "with-data").await;
    let vconfigs = c.collection_url("volumeConfigs").await.expect("volumeConfigs");
    let v = c
        .list_page_value(
            &vconfigs,
            &Query::new().filter(Filter::attr("name").expect("a").eq("10g")),
            "VolumeConfiguration",
        )
        .await
        .expect("configs");
    let vconfig = v["volumeConfigurations"][0]["id"].as_str().expect("10g").to_string();
    let accepted = c
        .create(
            "volumes",
            &json!({"resourceURI": type_uri("VolumeCreate"), "name": "data",
            "volumeTemplate": {"volumeConfig": {"href": vconfig}}}),
        )
        .await
        .expect("volume");
    let volumes = c.collection_url("volumes").await.expect("volumes");
    let vol_href = c.created_href(&accepted, &volumes).await.expect("href").expect("where");
    c.settle(&accepted, Some(&vol_href), &["AVAILABLE"], &wait).await.expect("available");
    let vol: Volume = c.get(&vol_href).await.expect("volume");
    assert_eq!(vol.capacity, Some(10_000_000), "{format:?} {profile:?}");

    let m = c.get_value(&href).await.expect("machine");
    let attached = c.attach_volume(&m, &vol_href, "/dev/vdb").await.expect("attach");
    let mv_coll = c.resolve(m["volumes"]["href"].as_str().expect("volumes href")).await.expect("url");
    c.settle(&attached, None, &[], &wait).await.expect("attached");
    let list = c.list_all_at::<MachineVolume>(&mv_coll, &Query::new()).await.expect("machine volumes");
    assert_eq!(list.entries.len(), 1, "{format:?} {profile:?}");
    assert_eq!(list.entries[0].initial_location.as_deref(), Some("/dev/vdb"));
    let entry_href = c.resolve(list.entries[0].id.as_deref().expect("entry id")).await.expect("url");
    let entry = c.get_value(&entry_href).await.expect("entry");
    let detached = c.detach_volume(&entry).await.expect("detach");
    c.settle(&detached, Some(&entry_href), &["DELETED"], &wait).await.expect("detached");
    let list = c.list_all_at::<MachineVolume>(&mv_coll, &Query::new()).await.expect("machine volumes");
    assert!(list.entries.is_empty(), "{format:?} {profile:?}");
}

#[tokio::test]
async fn attach_and_detach_a_volume_in_json() {
    attach_and_detach(Format::Json, Profile::Strict).await;
}

#[tokio::test]
async fn attach_and_detach_a_volume_in_xml() {
    attach_and_detach(Format::Xml, Profile::Strict).await;
}

#[tokio::test]
async fn attach_and_detach_a_volume_on_a_lenient_provider() {
    attach_and_detach(Format::Json, Profile::Lenient1x).await;
}

#[tokio::test]
async fn wrong_credentials_against_cimi_sim() {
    let s = sim(Profile::Strict).await;
    let mut cfg = config(&s, Format::Xml);
    cfg.transport.auth = Auth::Basic { username: "demo".into(), password: Secret::new("not-the-password") };
    let e = CimiClient::connect(cfg).await.expect_err("401");
    assert!(matches!(e, CimiError::Unauthorized { status: 401, .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("not-the-password"));
}
