//! Operating the operator as an on-call engineer does: a `cimi-operator run` process drives a volume to Ready,
//! one through a failed provider Job, and a provider that cannot be reached; its `/metrics`, scraped over HTTP,
//! move as a user expects (the failed Job is a failure), every documented metric is exposed and every exposed one
//! documented, every alert and dashboard query names metrics and labels the scrape has; traces reach an
//! in-process OTLP receiver, a reconcile span with provider-request children. The alert rules pass Prometheus's
//! own checker and a `promtool test rules` case per alert.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cimi_operator::api::common::ProviderRef;
use cimi_operator::api::{CimiProvider, CimiVolume, CimiVolumeSpec};
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, PostParams};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message as _;
use serde_json::json;

use cimi_operator::runtime::metrics::{declared_families, documented_families};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::operator::{OperatorProcess, TestOperator, http_get};
use crate::harness::sim::{fault, provider_for, ready_provider};
use crate::harness::tools::run_tool;
use crate::harness::wait::{condition, eventually};

const T: Duration = Duration::from_secs(90);

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One span as the receiver got it.
#[derive(Clone, Debug)]
struct Span {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    attributes: BTreeMap<String, String>,
}

/// An OTLP/HTTP trace receiver (protobuf) on a loopback port, keeping every span it is sent.
async fn otlp_receiver() -> (SocketAddr, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
                let mut kept = kept.lock().expect("spans");
                for scope in request.resource_spans.iter().flat_map(|r| &r.scope_spans) {
                    for s in &scope.spans {
                        let attributes = s
                            .attributes
                            .iter()
                            .map(|kv| {
                                let value = kv.value.as_ref().and_then(|v| v.value.as_ref()).map(|v| format!("{v:?}"));
                                (kv.key.clone(), value.unwrap_or_default())
                            })
                            .collect();
                        kept.push(Span {
                            name: s.name.clone(),
                            trace_id: s.trace_id.clone(),
                            span_id: s.span_id.clone(),
                            parent: s.parent_span_id.clone(),
                            attributes,
                        });
                    }
                }
                ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, spans)
}

/// A scrape: each sample's metric name, labels and value.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label=value");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push((name.to_string(), map, value.parse().unwrap_or(f64::NAN)));
    }
    out
}

/// The value of the sample `name` whose labels include every pair of `with` (summed over the others).
fn value(samples: &[(String, BTreeMap<String, String>, f64)], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| n == name && with.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .sum()
}

/// Each PromQL query of the chart's alert rules and dashboard, with where it comes from.
fn queries() -> Vec<(String, String)> {
    let rules: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("charts/cimi-operator/files/prometheus-rules.yaml")).expect("rules"),
    )
    .expect("rules YAML");
    let mut out = Vec::new();
    for rule in
        rules["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array().into_iter().flatten())
    {
        out.push((format!("alert {}", rule["alert"]), rule["expr"].as_str().expect("expr").to_string()));
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("charts/cimi-operator/files/dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push((format!("panel {}", panel["title"]), target["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

/// The metric names a query reads, and the label names it uses (in matchers and in `by (...)`).
fn names_and_labels(query: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let metric = regex::Regex::new(r"\b(cimi_[a-z_]+)(\{([^}]*)\})?").expect("regex");
    let grouping = regex::Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").expect("regex");
    let matcher = regex::Regex::new(r"([a-z_]+)\s*(=~|!~|!=|=)").expect("regex");
    let (mut names, mut labels) = (BTreeSet::new(), BTreeSet::new());
    // Label names that start with `cimi_` (`cimi_shard`) are not metrics: look for names outside groupings.
    let ungrouped = grouping.replace_all(query, "");
    for c in metric.captures_iter(&ungrouped) {
        names.insert(c[1].to_string());
        if let Some(m) = c.get(3) {
            labels.extend(matcher.captures_iter(m.as_str()).map(|l| l[1].to_string()));
        }
    }
    for c in grouping.captures_iter(query) {
        labels.extend(c[1].split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
    }
    (names, labels)
}

#[tokio::test]
async fn metrics_and_traces_follow_ready_a_failed_job_and_an_unreachable_provider() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "telemetry").await;
    let scope = TestOperator::scope_only(&random_suffix());
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let (otlp, spans) = otlp_receiver().await;
    let admin: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr")
    };
    let (selector, admin_arg, endpoint) = (scope.selector(), admin.to_string(), format!("http://{otlp}"));
    let args = ["--namespace", &ns.name, "--operator-namespace", &ns.name, "--selector", &selector];
    let args = [args.as_slice(), &["--admin-addr", &admin_arg, "--cluster-name", "e2e"]].concat();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_SERVICE_NAME", "cimi-e2e"),
        ("CIMI_MEMORY_LIMIT", "268435456"),
    ];
    let process = OperatorProcess::start_with_env(&format!("telemetry-{}", scope.label.1), &args, &env);

    // A provider that answers, and one that cannot be reached.
    let provider = ready_provider(&client, &scope, &ns.name, &sim).await;
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let down = format!("down-{}", random_suffix());
    providers
        .create(
            &PostParams::default(),
            &provider_for(&scope, &down, "http://127.0.0.1:9/cimi/cloudEntryPoint", "creds"),
        )
        .await
        .expect("the unreachable provider");

    // A volume whose create Job fails, then one that becomes Ready.
    sim.set_faults(vec![fault(json!({"method": "POST", "resourceType": "VolumeCollection", "name": "bad",
        "kind": "jobFails"}))]);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let volume = |name: &str| {
        let mut v = CimiVolume::new(
            name,
            CimiVolumeSpec {
                provider_ref: ProviderRef::cluster(provider.clone()),
                capacity: Some(Quantity("1Gi".into())),
                ..Default::default()
            },
        );
        v.metadata.labels = Some(scope.labels());
        v
    };
    volumes.create(&PostParams::default(), &volume("bad")).await.expect("bad volume");
    eventually("bad to report its failed Job", T, || async {
        let v = volumes.get("bad").await.ok()?;
        let conds = v.status?.common.conditions;
        (condition(&conds, "Ready").map(|c| c.1).as_deref() == Some("JobFailed")).then_some(())
    })
    .await;
    volumes.create(&PostParams::default(), &volume("good")).await.expect("good volume");
    eventually("good to be Ready", T, || async {
        let v = volumes.get("good").await.ok()?;
        (condition(&v.status?.common.conditions, "Ready") == Some(("True".into(), "Available".into()))).then_some(())
    })
    .await;

    // The scrape says so.
    let scraped = eventually("the scrape to show Ready, the failed Job and the provider down", T, || async {
        let (status, text) = http_get(admin, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        let s = samples(&text);
        let ready =
            value(&s, "cimi_objects", &[("kind", "CimiVolume"), ("provider", &provider), ("condition", "Ready")]);
        let failed_jobs = value(&s, "cimi_job_failures_total", &[("kind", "CimiVolume"), ("provider", &provider)]);
        let errors = value(&s, "cimi_reconciles_total", &[("kind", "CimiVolume"), ("result", "error")]);
        let up = value(&s, "cimi_provider_up", &[("provider", &provider)]);
        let is_down =
            s.iter().any(|(n, l, v)| n == "cimi_provider_up" && l.get("provider") == Some(&down) && *v == 0.0);
        (ready >= 1.0 && failed_jobs >= 1.0 && errors >= 1.0 && up == 1.0 && is_down).then_some(text)
    })
    .await;
    let s = samples(&scraped);
    assert!(
        value(
            &s,
            "cimi_objects",
            &[("kind", "CimiVolume"), ("provider", &provider), ("condition", "Stalled"), ("reason", "JobFailed")]
        ) >= 1.0,
        "the volume whose Job failed is counted Stalled with its reason:\n{scraped}"
    );
    assert!(value(&s, "cimi_time_to_ready_seconds_count", &[("kind", "CimiVolume")]) >= 1.0, "{scraped}");
    assert!(value(&s, "cimi_requests_total", &[("provider", &provider), ("outcome", "ok")]) >= 1.0);
    assert!(value(&s, "cimi_requests_total", &[("provider", &down), ("outcome", "unreachable")]) >= 1.0, "{scraped}");
    assert_eq!(value(&s, "cimi_leader", &[]), 1.0);
    assert!(value(&s, "cimi_process_resident_memory_bytes", &[]) > 1e6);
    assert_eq!(value(&s, "cimi_memory_limit_bytes", &[]), 268435456.0);
    assert!(value(&s, "cimi_job_duration_seconds_count", &[("kind", "CimiVolume"), ("state", "SUCCESS")]) >= 1.0);

    // Every exposed metric is documented, and every documented one is exposed here but those that only an
    // incident makes (the unit test runtime::metrics::every_documented_family_is_exposed covers them too).
    let doc = std::fs::read_to_string(repo("docs/runtime.md")).expect("docs/runtime.md");
    let (docs, exposed) = (documented_families(&doc), declared_families(&scraped));
    let undocumented: Vec<&String> = exposed.difference(&docs).collect();
    assert!(undocumented.is_empty(), "exposed but not in docs/runtime.md: {undocumented:?}");
    let incidents = ["cimi_meter_value", "cimi_requests_refused_total", "cimi_watch_errors_total"];
    let missing: Vec<&String> = docs.difference(&exposed).filter(|n| !incidents.contains(&n.as_str())).collect();
    assert!(missing.is_empty(), "documented but not exposed: {missing:?}");

    // Every alert and dashboard query reads metrics and labels that the scrape has.
    let mut labels_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, labels, _) in &s {
        labels_of.entry(name.clone()).or_default().extend(labels.keys().cloned());
    }
    for (source, query) in queries() {
        let (names, labels) = names_and_labels(&query);
        assert!(!names.is_empty(), "{source} reads no cimi_ metric: {query}");
        for name in &names {
            assert!(labels_of.contains_key(name), "{source} reads {name}, which the scrape does not have: {query}");
        }
        // Every series of a sharded operator carries `cimi_shard` (the registry's label), which this unsharded scrape
        // cannot show; the shards test reads it from a shard's scrape.
        for label in labels.iter().filter(|l| *l != "cimi_shard") {
            assert!(
                names.iter().any(|n| labels_of[n].contains(label)),
                "{source} uses the label {label}, which none of {names:?} has: {query}"
            );
        }
    }

    // Traces: a reconcile span naming its object, with provider-request children in the same trace.
    let (reconcile, children) = eventually("a reconcile span with provider-request children", T, || async {
        let spans = spans.lock().expect("spans").clone();
        spans
            .iter()
            .filter(|s| s.name == "reconcile" && s.attributes.get("name").is_some_and(|n| n.contains("good")))
            .find_map(|r| {
                let children: Vec<Span> = spans
                    .iter()
                    .filter(|c| c.name == "cimi_request" && c.parent == r.span_id && c.trace_id == r.trace_id)
                    .cloned()
                    .collect();
                (!children.is_empty()).then(|| (r.clone(), children))
            })
    })
    .await;
    assert!(reconcile.attributes.get("kind").is_some_and(|k| k.contains("CimiVolume")), "{reconcile:?}");
    assert!(reconcile.attributes.get("namespace").is_some_and(|n| n.contains(&ns.name)), "{reconcile:?}");
    assert!(children.iter().all(|c| c.attributes.contains_key("href") && c.attributes.contains_key("method")));
    assert!(children.iter().any(|c| c.attributes.get("provider").is_some_and(|p| p.contains(&provider))));
    drop(process);
}

/// The chart's alert rules pass `promtool check rules`, each alert has a `promtool test rules` case that fires
/// it, and a runbook section in docs/alerts.md that its runbook_url points to.
#[test]
fn promtool_checks_the_rules_and_tests_each_alert() {
    let rules = repo("charts/cimi-operator/files/prometheus-rules.yaml");
    let tests = repo("tests/alerts/prometheus-rules.test.yaml");
    let rules_arg = rules.to_string_lossy().to_string();
    let (ok, out, err) = run_tool(Tool::Promtool, &["check", "rules", &rules_arg], None);
    assert!(ok, "promtool check rules:\n{out}{err}");
    let tests_arg = tests.to_string_lossy().to_string();
    let (ok, out, err) = run_tool(Tool::Promtool, &["test", "rules", &tests_arg], None);
    assert!(ok, "promtool test rules:\n{out}{err}");

    let parsed: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&rules).expect("rules")).expect("rules YAML");
    let cases: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&tests).expect("tests")).expect("tests YAML");
    let runbooks = std::fs::read_to_string(repo("docs/alerts.md")).expect("docs/alerts.md");
    let alerts: Vec<&serde_json::Value> = parsed["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert!(alerts.len() >= 6, "the six on-call alerts at least");
    for rule in alerts {
        let name = rule["alert"].as_str().expect("an alert");
        let fired = cases["tests"].as_array().into_iter().flatten().any(|t| {
            t["alert_rule_test"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["alertname"] == name && a["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()))
        });
        assert!(fired, "{name} has no promtool case where it fires");
        assert!(runbooks.contains(&format!("## {name}")), "docs/alerts.md has no runbook section for {name}");
        let url = rule["annotations"]["runbook_url"].as_str().unwrap_or_default();
        assert!(url.ends_with(&format!("docs/alerts.md#{}", name.to_lowercase())), "{name}: runbook_url {url}");
    }
}
