//! The client against the scripted provider: deviations of reference section 7 and the protocol corners
//! that cimi-sim's profiles do not serve, over real HTTP on loopback.

use std::time::Duration;

use cimi_operator::cimi::jobs::WaitOptions;
use cimi_operator::cimi::model::{Credential, Machine, MachineConfiguration, MachineImage};
use cimi_operator::cimi::query::Query;
use cimi_operator::cimi::{Auth, CimiClient, CimiError, ClientConfig, ClientMetrics, Secret};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::scripted::Scripted;

fn config(s: &Scripted, password: &str) -> ClientConfig {
    let mut c = ClientConfig::new("scripted", &s.cep()).expect("config");
    c.transport.auth = Auth::Basic { username: "demo".into(), password: Secret::new(password) };
    c.transport.allow_plain_http = true;
    c.transport.request_timeout = Duration::from_secs(5);
    c.transport.retry.base_delay = Duration::from_millis(10);
    c.wait.poll_initial = Duration::from_millis(10);
    c.wait.poll_max = Duration::from_millis(50);
    c.wait.timeout = Duration::from_secs(5);
    c.page_size = 2;
    c
}

async fn client(s: &Scripted) -> CimiClient {
    CimiClient::connect(config(s, "demo")).await.expect("connect")
}

fn url(s: &Scripted, rel: &str) -> Url {
    Url::parse(&s.base).and_then(|b| b.join(rel)).expect("url")
}

#[tokio::test]
async fn discovery_resolves_relative_hrefs_and_refuses_missing_collections_up_front() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    assert_eq!(c.collection_url("machines").await.expect("machines"), url(&s, "machines"));
    let e = c.collection_url("volumes").await.expect_err("no volumes");
    assert!(matches!(e, CimiError::NotSupported { ref collection } if collection == "volumes"), "{e}");
    let e = c.list_all::<Machine>("networks", &Query::new()).await.expect_err("no networks");
    assert!(matches!(e, CimiError::NotSupported { .. }));
    assert!(s.log().iter().all(|r| !r.path.contains("volumes") && !r.path.contains("networks")), "no request was made");
    assert!(c.discovery().await.expect("d").has_jobs());
}

/// §7: "The CEP readable without credentials while everything else needs Basic auth." Credentials never
/// appear in errors.
#[tokio::test]
async fn wrong_credentials_are_unauthorized_and_never_shown() {
    let s = Scripted::start().await;
    let c = CimiClient::connect(config(&s, "wrong-pass-123")).await.expect("the CEP needs no credentials");
    let e = c.list_all::<Machine>("machines", &Query::new()).await.expect_err("401");
    assert!(matches!(e, CimiError::Unauthorized { status: 401, .. }), "{e}");
    assert!(!e.to_string().contains("wrong-pass-123") && !format!("{e:?}").contains("wrong-pass-123"));
    assert!(!format!("{:?}", c.config()).contains("wrong-pass-123"));
    let mut anonymous = config(&s, "x");
    anonymous.transport.auth = Auth::None;
    let c = CimiClient::connect(anonymous).await.expect("anonymous CEP");
    assert!(matches!(c.list_all::<Machine>("machines", &Query::new()).await, Err(CimiError::Unauthorized { .. })));
}

#[tokio::test]
async fn paging_reads_every_page() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let all = c.list_all::<MachineImage>("machineImages", &Query::new()).await.expect("list");
    assert_eq!(all.count, Some(7));
    assert!(!all.truncated);
    let names: Vec<String> = all.entries.iter().filter_map(|i| i.name.clone()).collect();
    assert_eq!(names, (1..=7).map(|i| format!("image {i}")).collect::<Vec<_>>());
    // §7: "`imageLocation` as a string or as `{"href": ...}`": a string here, read through the model.
    assert_eq!(
        all.entries[0].image_location.as_ref().map(|l| l.uri().to_string()),
        Some("http://images.example/1".into())
    );
    let pages: Vec<String> = s.seen("GET", "machineImages").into_iter().map(|r| r.query).collect();
    assert_eq!(pages, ["$first=1&$last=2", "$first=3&$last=4", "$first=5&$last=6", "$first=7&$last=8"]);
    // A window of the collection: $first/$last are kept.
    let window = c.list_all::<MachineImage>("machineImages", &Query::new().first(2).last(4)).await.expect("window");
    assert_eq!(window.entries.len(), 3);
    assert!(!window.truncated);
}

/// §7: "`$first`/`$last` ignored (the whole collection comes back)"; truncation noticed through `count`.
#[tokio::test]
async fn ignored_paging_and_truncation_are_detected() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let all = c.list_all::<MachineConfiguration>("machineConfigs", &Query::new()).await.expect("list");
    assert_eq!(all.count, Some(5));
    assert_eq!(all.entries.len(), 2);
    assert!(all.truncated, "2 entries of 5");
    assert_eq!(all.entries[1].cpu, Some(2), "numbers as strings are read as numbers");
    assert!(s.seen("GET", "machineConfigs").len() <= 2, "the client stops when paging yields nothing new");
}

/// §7: "an empty collection with `count: 0` and no entry array at all", here also labelled text/html.
#[tokio::test]
async fn empty_collection_without_entry_array() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let all = c.list_all::<Credential>("credentials", &Query::new()).await.expect("list");
    assert!(all.entries.is_empty());
    assert_eq!(all.count, Some(0));
    assert!(!all.truncated);
}

/// A create answered 202 without `Location`: the resource is found through the Job's affected resources; the
/// POST goes to the collection's `add` href, which is not the collection URL (§7: "Operation hrefs that differ
/// from the collection URL"); nested Jobs are followed.
#[tokio::test]
async fn create_202_without_location_resolves_through_the_job() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "m1",
                      "machineTemplate": {"machineConfig": {"href": "machineConfigs/a"}}});
    let accepted = c.create("machines", &body).await.expect("create");
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.location, None);
    assert_eq!(accepted.job, Some(url(&s, "jobs/1")), "lower-case cimi-job-uri, relative, resolved");
    assert_eq!(s.seen("POST", "machine-factory/add").len(), 1);
    let wait = WaitOptions::from(c.config().wait);
    let settled = c.settle(&accepted, None, &[], &wait).await.expect("settle");
    assert_eq!(settled.job.as_ref().and_then(|j| j.state.clone()).as_deref(), Some("SUCCESS"));
    assert_eq!(settled.job.as_ref().and_then(|j| j.progress), Some(100));
    assert!(s.seen("GET", "jobs/1").len() >= 3, "polled until SUCCESS");
    assert_eq!(s.seen("GET", "jobs/2").len(), 1, "the nested Job is checked");
    let machines = c.collection_url("machines").await.expect("machines");
    assert_eq!(c.created_href(&accepted, &machines).await.expect("href"), Some(url(&s, "machines/m1")));
}

/// A POST the provider may have acted on is not repeated after a 502.
#[tokio::test]
async fn a_failed_post_is_not_retried() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "flaky"});
    let e = c.create("machines", &body).await.expect_err("502");
    assert!(matches!(e, CimiError::Unavailable { status: Some(502), .. }), "{e}");
    assert!(e.is_retryable(), "the caller may retry after checking");
    assert_eq!(s.seen("POST", "machine-factory/add").len(), 1);
}

/// §7: numbers as strings, dates that are not xsd:dateTime, entries without `resourceURI`, both delete rels,
/// empty 202 bodies labelled text/html; operations never guessed.
#[tokio::test]
async fn lenient_machine_and_its_operations() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let href = url(&s, "machines/m1");
    let m: Machine = c.get(&href).await.expect("typed machine");
    assert_eq!((m.cpu, m.memory), (Some(1), Some(4_000_000)));
    assert_eq!(m.created.map(|d| d.to_rfc3339()), Some("2012-08-15T12:15:00+00:00".into()));
    let current = c.get_value(&href).await.expect("machine");
    let started = c.action(&current, "start", Map::new()).await.expect("start");
    assert_eq!((started.status, started.job.clone(), started.body.clone()), (202, None, None));
    let posts = s.seen("POST", "machines/m1/start");
    assert_eq!(posts.len(), 1);
    let sent: Value = serde_json::from_str(&posts[0].body).expect("json body");
    assert_eq!(
        sent,
        json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Action", "action": "http://schemas.dmtf.org/cimi/1/action/start"})
    );
    let e = c.action(&current, "capture", Map::new()).await.expect_err("available: false");
    assert!(matches!(e, CimiError::NotAllowedNow { .. }), "{e}");
    let e = c.action(&current, "stop", Map::new()).await.expect_err("absent");
    assert!(matches!(e, CimiError::NotAllowedNow { ref message, .. } if message.contains("start")), "{e}");
    assert_eq!(s.log().iter().filter(|r| r.method == "POST").count(), 1, "no URL was guessed");
}

/// The Primer's partial update: only the listed attributes, the missing one erased.
#[tokio::test]
async fn partial_update_sends_only_what_changes() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let current = c.get_value(&url(&s, "machines/m1")).await.expect("machine");
    let mut changes = Map::new();
    changes.insert("name".into(), json!("Cool Demo #1"));
    let a = c.update(&current, &changes, &["description"]).await.expect("update");
    assert_eq!(a.status, 200);
    let puts = s.seen("PUT", "machines/m1");
    assert_eq!(puts[0].query, "$select=name%2Cdescription");
    let sent: Value = serde_json::from_str(&puts[0].body).expect("json body");
    // This provider left resourceURI out of the machine, so the client has none to repeat.
    assert_eq!(sent, json!({"name": "Cool Demo #1"}));
}

/// §7: "Deleting an already deleted resource answering 500 instead of 404: re-read before concluding", and
/// the non-standard `…/action/delete` rel.
#[tokio::test]
async fn deleting_twice_is_confirmed_gone_by_a_read() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let current = c.get_value(&url(&s, "machines/m1")).await.expect("machine");
    let a = c.delete(&current).await.expect("delete");
    assert_eq!(a.status, 200);
    let e = c.delete(&current).await.expect_err("gone");
    assert!(matches!(e, CimiError::NotFound { .. }), "{e}");
    assert!(s.seen("DELETE", "machines/m1").len() >= 2);
    assert!(s.seen("GET", "machines/m1").len() >= 2, "the 500 was checked with a read");
}

#[tokio::test]
async fn failed_nested_job_reports_the_deepest_message() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let e = c.follow_job(&url(&s, "jobs/3"), &WaitOptions::from(c.config().wait)).await.expect_err("failed");
    match e {
        CimiError::JobFailed { state, message, return_code, .. } => {
            assert_eq!(state, "FAILED");
            assert!(message.contains("provisioning failed") && message.contains("disk full"), "{message}");
            assert_eq!(return_code, Some(1));
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn hung_job_times_out_and_can_be_cancelled() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let job = url(&s, "jobs/5");
    let wait = WaitOptions::from(c.config().wait).with_timeout(Duration::from_millis(300));
    let e = c.follow_job(&job, &wait).await.expect_err("hung");
    assert!(matches!(e, CimiError::Timeout { .. }), "{e}");
    let cancel = CancellationToken::new();
    let wait = WaitOptions::from(c.config().wait).with_timeout(Duration::from_secs(30)).with_cancel(cancel.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let e = c.follow_job(&job, &wait).await.expect_err("cancelled");
    assert!(matches!(e, CimiError::Cancelled { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    canceller.await.expect("canceller");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_read_is_retried() {
    let s = Scripted::start().await;
    let mut cfg = config(&s, "demo");
    cfg.transport.request_timeout = Duration::from_millis(200);
    cfg.transport.retry.max_attempts = 2;
    let c = CimiClient::connect(cfg).await.expect("connect");
    let e = c.get_value(&url(&s, "slow")).await.expect_err("timeout");
    assert!(matches!(e, CimiError::Timeout { .. }), "{e}");
    assert!(e.is_retryable());
    assert_eq!(s.seen("GET", "slow").len(), 2, "the read was tried twice");
}

/// 429 + Retry-After: the wait is shown by the provider's own request times.
#[tokio::test]
async fn retry_after_is_honoured() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let v = c.get_value(&url(&s, "throttled")).await.expect("after the wait");
    assert_eq!(v["id"], "throttled");
    let seen = s.seen("GET", "throttled");
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    assert!(gap >= Duration::from_secs(1), "waited only {gap:?}");
}

#[tokio::test]
async fn malformed_body_is_a_protocol_error_with_an_excerpt() {
    let s = Scripted::start().await;
    let c = client(&s).await;
    let e = c.get_value(&url(&s, "broken")).await.expect_err("broken JSON");
    assert!(matches!(e, CimiError::Protocol { ref excerpt, .. } if excerpt.contains("\"id\"")), "{e}");
    let e = c.get_value(&url(&s, "nowhere")).await.expect_err("404 page");
    assert!(matches!(e, CimiError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn metrics_count_requests_by_provider_operation_and_status() {
    let s = Scripted::start().await;
    let metrics = ClientMetrics::default();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let c = CimiClient::with_metrics(config(&s, "demo"), metrics).expect("client");
    c.discover().await.expect("discover");
    let _ = c.get_value(&url(&s, "nowhere")).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(
            r#"cimi_client_requests_total{provider="scripted",operation="discover",status="200",outcome="ok"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cimi_client_requests_total{provider="scripted",operation="get",status="404",outcome="client_error"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("cimi_client_request_duration_seconds_bucket"));
}
