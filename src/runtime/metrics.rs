//! Prometheus metrics (prometheus-client), every name prefixed `cimi_`. No label names an object (except the
//! opt-in `cimi_meter_value`), so cardinality is bounded by kinds, providers, states and reasons.
//!
//! | metric | type | labels | fed by |
//! |---|---|---|---|
//! | `cimi_objects` | gauge | kind, provider, condition (`Ready`, `Stalled`, `Reconciling`, `Pending`), reason | the controllers' stores |
//! | `cimi_resources` | gauge | kind, provider, state | the controllers' stores |
//! | `cimi_queue_depth` | gauge | kind | objects whose latest spec is not acted on yet (generation newer than observedGeneration) |
//! | `cimi_time_to_ready_seconds` | histogram | kind | a spec change (or a creation) until Ready for it |
//! | `cimi_reconciles_total` | counter | kind, result (`ok`, `waiting`, `error`) | every reconcile |
//! | `cimi_reconcile_duration_seconds` | histogram | kind | every reconcile |
//! | `cimi_provider_up` | gauge | provider | each probe: 1 when the CloudEntryPoint and catalog answered |
//! | `cimi_provider_probe_duration_seconds` | gauge | provider | the latest probe's latency |
//! | `cimi_requests_total` | counter | provider, operation, status, outcome | the CIMI client, each attempt |
//! | `cimi_request_duration_seconds` | histogram | provider, operation, status, outcome | the CIMI client |
//! | `cimi_request_retries_total` | counter | provider, operation, status, outcome | the CIMI client |
//! | `cimi_requests_refused_total` | counter | provider, reason | the CIMI client: an href refused before sending (`untrusted_href`, `plain_http`), a read stopped by a bound (`body_size`, `pages`, `entries`, `listing_time`, `repeated_page`) |
//! | `cimi_job_duration_seconds` | histogram | kind, provider, action, state | a Job seen to finish in status |
//! | `cimi_job_failures_total` | counter | kind, provider, action | a Job seen to end FAILED or STOPPED |
//! | `cimi_watch_errors_total` | counter | kind, reason (`decode`, `watch`) | every watch |
//! | `cimi_leader` | gauge | — (1 while this replica holds the Lease) | leader election |
//! | `cimi_process_resident_memory_bytes` | gauge | — | the operator's resident set, at each scrape |
//! | `cimi_memory_limit_bytes` | gauge | — | the container's memory limit (cgroup, or `CIMI_MEMORY_LIMIT`); absent when unlimited |
//! | `cimi_meter_value` | gauge | kind, namespace, name, aspect, units (latest provider meter sample; bounded by `--meter-gauges-max`) |
//!
//! When the operator is sharded (`--shard-count` above 1), every series also carries `cimi_shard`, the instance's
//! shard index.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cimi::ClientMetrics;

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// `ok` (in sync, or nothing to do), `waiting` (the provider or another object is working on it, or the object
    /// is paused) or `error` (a provider or Kubernetes API failure, a failed Job included, or Stalled).
    pub result: String,
}

/// Labels of the object gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// The provider key.
    pub provider: String,
    /// `Ready`, `Stalled`, `Reconciling` (neither yet), or `Pending` (no condition written yet).
    pub condition: String,
    /// The reason of that condition (docs/reasons.md).
    pub reason: String,
}

/// Labels of per-provider metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The provider key.
    pub provider: String,
}

/// Labels of Job failures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobFailureLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// The provider key.
    pub provider: String,
    /// The Job's action.
    pub action: String,
}

/// Labels of per-kind metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
}

/// Labels of Job durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// The provider key.
    pub provider: String,
    /// The Job's action.
    pub action: String,
    /// The Job's final state.
    pub state: String,
}

/// Labels of watch errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchErrorLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// `decode` (an object the operator cannot read) or `watch` (the list or watch call failed).
    pub reason: String,
}

/// Labels of the resource gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// The provider key.
    pub provider: String,
    /// The provider state, such as STARTED.
    pub state: String,
}

/// Labels of the provider meter gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MeterLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The meter's aspect, such as `cpu`.
    pub aspect: String,
    /// The meter's units, such as `percent`.
    pub units: String,
}

/// A gauge of floating-point values.
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn job_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 12))
}

fn ready_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 14))
}

tokio::task_local! {
    /// The result the reconcile pass running on this task reported (see [`report_result`]).
    static PASS_RESULT: std::cell::Cell<&'static str>;
}

/// Reports the result of the reconcile pass running on this task, for `cimi_reconciles_total` (the driver
/// counts it once the pass returns). Outside a pass it does nothing.
pub fn report_result(result: &'static str) {
    let _ = PASS_RESULT.try_with(|r| r.set(result));
}

/// Runs one reconcile pass, returning its output and the result it reported (`ok` unless it reported another).
pub async fn with_result<F: std::future::Future>(pass: F) -> (F::Output, &'static str) {
    PASS_RESULT
        .scope(std::cell::Cell::new("ok"), async move {
            let out = pass.await;
            (out, PASS_RESULT.with(std::cell::Cell::get))
        })
        .await
}

/// The result of a pass from the conditions it leaves: `error` when it failed (Stalled, or Synced False: a
/// failed Job, an unreachable provider, a refused request), `ok` when Ready, else `waiting` (the provider or
/// another object is still working, or the object is paused).
pub fn result_of(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> &'static str {
    use crate::api::conditions::find;
    let is = |t: &str, s: &str| find(conditions, t).is_some_and(|c| c.status == s);
    if is("Stalled", "True") {
        "error"
    } else if is("Ready", "True") {
        "ok"
    } else if find(conditions, "Synced").is_some_and(|c| c.status == "False" && c.reason != "Paused") {
        "error"
    } else {
        "waiting"
    }
}

/// The metric families an exposition declares (its `# TYPE` lines), named as documented: counters with `_total`.
pub fn declared_families(exposition: &str) -> std::collections::BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, kind) = (words.next()?, words.next()?);
            Some(if kind == "counter" { format!("{name}_total") } else { name.to_string() })
        })
        .collect()
}

/// The metrics a Markdown table documents: the first cell of each row that starts with `` | `cimi_ ``.
pub fn documented_families(markdown: &str) -> std::collections::BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("| `cimi_").or_else(|| l.strip_prefix("//! | `cimi_")))
        .filter_map(|l| l.split('`').next().map(|n| format!("cimi_{n}")))
        .collect()
}

/// The operator's memory, read at each scrape: the resident set, and the limit it must stay under.
#[derive(Debug)]
struct MemoryCollector;

impl prometheus_client::collector::Collector for MemoryCollector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::gauge::ConstGauge;
        if let Some(rss) = resident_memory_bytes() {
            let gauge = ConstGauge::new(rss as i64);
            let metric = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "The operator's resident memory",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        if let Some(limit) = memory_limit_bytes() {
            let gauge = ConstGauge::new(limit as i64);
            let metric = encoder.encode_descriptor(
                "memory_limit_bytes",
                "The memory limit of the operator's container (cgroup, else CIMI_MEMORY_LIMIT)",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// The resident set of this process (`VmRSS` of /proc/self/status), where the system reports it.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`), else the
/// `CIMI_MEMORY_LIMIT` environment variable (the chart sets it from the container's limit); `None` when
/// unlimited or unknown.
pub fn memory_limit_bytes() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let cgroup = read("/sys/fs/cgroup/memory.max").or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    // cgroup v1 reports "unlimited" as a number near 2^63.
    cgroup.filter(|l| *l < 1 << 60).or_else(|| std::env::var("CIMI_MEMORY_LIMIT").ok()?.trim().parse().ok())
}

/// Every metric family of the operator. Cheap to clone; clones share the values.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration by kind.
    pub reconcile_duration: HistogramFamily<KindLabels>,
    /// CIMI requests (count, latency, retries) by provider, operation and status; hand it to every
    /// [`crate::cimi::CimiClient`] the operator makes.
    pub client: ClientMetrics,
    /// CIMI Job durations by provider, action and final state.
    pub job_duration: HistogramFamily<JobLabels>,
    /// Objects by kind, provider and provider state.
    pub resources: Family<ResourceLabels, Gauge>,
    /// Objects by kind, provider, standing condition and reason.
    pub objects: Family<ObjectLabels, Gauge>,
    /// Objects whose latest spec is not acted on yet, by kind.
    pub queue_depth: Family<KindLabels, Gauge>,
    /// From a spec change (or a creation) to Ready for it, by kind.
    pub time_to_ready: HistogramFamily<KindLabels>,
    /// Jobs seen to fail, by kind, provider and action.
    pub job_failures: Family<JobFailureLabels, Counter>,
    /// 1 when the provider's last probe succeeded, else 0.
    pub provider_up: Family<ProviderLabels, Gauge>,
    /// The latency of the provider's last probe, in seconds.
    pub provider_probe_duration: Family<ProviderLabels, FloatGauge>,
    /// Watch failures by kind and reason (an undecodable object, a failed list or watch).
    pub watch_errors: Family<WatchErrorLabels, Counter>,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// The latest sample of each provider meter, by object and aspect.
    pub meter_values: Family<MeterLabels, FloatGauge>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered.
    pub fn new() -> Self {
        Self::for_shard(super::shard::Shard::default())
    }

    /// [`Metrics::new`] for one shard: when sharded, every series carries the label `cimi_shard="<index>"`, so
    /// that the shards' series stay apart where Prometheus gathers them (sum them by leaving the label out).
    pub fn for_shard(shard: super::shard::Shard) -> Self {
        let labels = shard.is_sharded().then(|| (Cow::Borrowed("cimi_shard"), Cow::Owned(shard.index().to_string())));
        let mut registry = Registry::with_prefix_and_labels("cimi", labels.into_iter());
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            HistogramFamily::<KindLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let client = ClientMetrics::default();
        let job_duration = HistogramFamily::<JobLabels>::new_with_constructor(job_histogram as fn() -> Histogram);
        let resources = Family::<ResourceLabels, Gauge>::default();
        let objects = Family::<ObjectLabels, Gauge>::default();
        let queue_depth = Family::<KindLabels, Gauge>::default();
        let time_to_ready = HistogramFamily::<KindLabels>::new_with_constructor(ready_histogram as fn() -> Histogram);
        let job_failures = Family::<JobFailureLabels, Counter>::default();
        let provider_up = Family::<ProviderLabels, Gauge>::default();
        let provider_probe_duration = Family::<ProviderLabels, FloatGauge>::default();
        let watch_errors = Family::<WatchErrorLabels, Counter>::default();
        let leader = Gauge::default();
        let meter_values = Family::<MeterLabels, FloatGauge>::default();
        registry.register("reconciles", "Reconciles by kind and result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration by kind", reconcile_duration.clone());
        registry.register(
            "requests",
            "CIMI requests by provider, operation, status and outcome class",
            client.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "CIMI request latency by provider, operation and status",
            client.duration.clone(),
        );
        registry.register(
            "request_retries",
            "CIMI requests retried, by provider, operation and the status that caused it",
            client.retries.clone(),
        );
        registry.register(
            "requests_refused",
            "CIMI requests refused before sending (reason untrusted_href, plain_http) and reads stopped by a bound \
             (body_size, pages, entries, listing_time, repeated_page), by provider",
            client.refused.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "CIMI Job durations by provider, action and final state",
            job_duration.clone(),
        );
        registry.register("resources", "Objects by kind, provider and provider state", resources.clone());
        registry.register(
            "objects",
            "Objects by kind, provider, standing condition (Ready, Stalled, Reconciling, Pending) and its reason",
            objects.clone(),
        );
        registry.register(
            "queue_depth",
            "Objects whose latest spec the operator has not acted on yet, by kind",
            queue_depth.clone(),
        );
        registry.register(
            "time_to_ready_seconds",
            "Time from a spec change (or a creation) until Ready for it, by kind",
            time_to_ready.clone(),
        );
        registry.register(
            "job_failures",
            "CIMI Jobs that ended FAILED or STOPPED, by kind, provider and action",
            job_failures.clone(),
        );
        registry.register(
            "provider_up",
            "1 when the provider's last probe reached its CloudEntryPoint and catalog",
            provider_up.clone(),
        );
        registry.register(
            "provider_probe_duration_seconds",
            "Latency of the provider's last probe",
            provider_probe_duration.clone(),
        );
        registry.register_collector(Box::new(MemoryCollector));
        registry.register("watch_errors", "Watch failures by kind and reason", watch_errors.clone());
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        registry.register(
            "meter_value",
            "The latest sample of a provider meter, by object and aspect",
            meter_values.clone(),
        );
        Self {
            reconciles,
            reconcile_duration,
            client,
            job_duration,
            resources,
            objects,
            queue_depth,
            time_to_ready,
            job_failures,
            provider_up,
            provider_probe_duration,
            watch_errors,
            leader,
            meter_values,
            registry: Arc::new(registry),
        }
    }

    /// Counts one reconcile of a kind with its result and duration.
    pub fn observe_reconcile(&self, kind: &str, result: &str, duration: Duration) {
        self.reconciles.get_or_create(&ReconcileLabels { kind: kind.into(), result: result.into() }).inc();
        self.reconcile_duration.get_or_create(&KindLabels { kind: kind.into() }).observe(duration.as_secs_f64());
    }

    /// Records how long a finished Job of a `kind` took.
    pub fn observe_job(&self, kind: &str, provider: &str, action: &str, state: &str, duration: Duration) {
        let labels =
            JobLabels { kind: kind.into(), provider: provider.into(), action: action.into(), state: state.into() };
        self.job_duration.get_or_create(&labels).observe(duration.as_secs_f64());
    }

    /// Counts a Job of a `kind` that failed.
    pub fn job_failed(&self, kind: &str, provider: &str, action: &str) {
        let labels = JobFailureLabels { kind: kind.into(), provider: provider.into(), action: action.into() };
        self.job_failures.get_or_create(&labels).inc();
    }

    /// Records the time from a spec change until Ready.
    pub fn observe_time_to_ready(&self, kind: &str, took: Duration) {
        self.time_to_ready.get_or_create(&KindLabels { kind: kind.into() }).observe(took.as_secs_f64());
    }

    /// Records a provider probe: whether it succeeded and how long it took.
    pub fn observe_probe(&self, provider: &str, up: bool, latency: Duration) {
        let labels = ProviderLabels { provider: provider.into() };
        self.provider_up.get_or_create(&labels).set(i64::from(up));
        self.provider_probe_duration.get_or_create(&labels).set(latency.as_secs_f64());
    }

    /// Forgets every provider (when this instance stops leading, it stops probing them).
    pub fn forget_providers(&self) {
        self.provider_up.clear();
        self.provider_probe_duration.clear();
    }

    /// Forgets a provider that is gone (its gauges leave the exposition).
    pub fn forget_provider(&self, provider: &str) {
        let labels = ProviderLabels { provider: provider.into() };
        self.provider_up.remove(&labels);
        self.provider_probe_duration.remove(&labels);
    }

    /// Counts one watch failure of `kind` (`decode` or `watch`).
    pub fn watch_error(&self, kind: &str, reason: &str) {
        self.watch_errors.get_or_create(&WatchErrorLabels { kind: kind.into(), reason: reason.into() }).inc();
    }

    /// The text exposition of every metric, as `/metrics` serves it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_prefixed_and_exposed() {
        let metrics = Metrics::new();
        metrics.observe_reconcile("CimiMachine", "ok", Duration::from_millis(12));
        metrics
            .client
            .requests
            .get_or_create(&crate::cimi::transport::RequestLabels::new("lab", "get", "200".into()))
            .inc();
        metrics.observe_job("CimiMachine", "lab", "start", "SUCCESS", Duration::from_secs(2));
        metrics
            .resources
            .get_or_create(&ResourceLabels {
                kind: "CimiMachine".into(),
                provider: "lab".into(),
                state: "STARTED".into(),
            })
            .set(3);
        metrics.observe_probe("lab", true, Duration::from_millis(40));
        metrics.leader.set(1);
        metrics.watch_error("CimiVolume", "decode");
        let text = metrics.encode();
        for needle in [
            "cimi_reconciles_total{kind=\"CimiMachine\",result=\"ok\"} 1",
            "cimi_reconcile_duration_seconds_count{kind=\"CimiMachine\"} 1",
            "cimi_requests_total{provider=\"lab\",operation=\"get\",status=\"200\",outcome=\"ok\"} 1",
            "cimi_job_duration_seconds_count{kind=\"CimiMachine\",provider=\"lab\",action=\"start\",state=\"SUCCESS\"} 1",
            "cimi_resources{kind=\"CimiMachine\",provider=\"lab\",state=\"STARTED\"} 3",
            "cimi_provider_up{provider=\"lab\"} 1",
            "cimi_provider_probe_duration_seconds{provider=\"lab\"} 0.04",
            "cimi_process_resident_memory_bytes ",
            "cimi_leader 1",
            "cimi_watch_errors_total{kind=\"CimiVolume\",reason=\"decode\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn every_documented_family_is_exposed_and_every_exposed_one_documented() {
        let metrics = Metrics::new();
        metrics.observe_reconcile("CimiMachine", "ok", Duration::from_millis(1));
        let labels = crate::cimi::transport::RequestLabels::new("lab", "get", "500".into());
        metrics.client.requests.get_or_create(&labels).inc();
        metrics.client.duration.get_or_create(&labels).observe(0.1);
        metrics.client.retries.get_or_create(&labels).inc();
        let refusal = crate::cimi::transport::RefusalLabels { provider: "lab".into(), reason: "pages".into() };
        metrics.client.refused.get_or_create(&refusal).inc();
        metrics.observe_job("CimiMachine", "lab", "start", "FAILED", Duration::from_secs(1));
        metrics.job_failed("CimiMachine", "lab", "start");
        metrics.observe_time_to_ready("CimiMachine", Duration::from_secs(3));
        metrics.observe_probe("lab", false, Duration::ZERO);
        let kind = KindLabels { kind: "CimiMachine".into() };
        metrics.queue_depth.get_or_create(&kind).set(0);
        metrics
            .resources
            .get_or_create(&ResourceLabels {
                kind: "CimiMachine".into(),
                provider: "lab".into(),
                state: "STARTED".into(),
            })
            .set(1);
        let standing = ObjectLabels {
            kind: "CimiMachine".into(),
            provider: "lab".into(),
            condition: "Ready".into(),
            reason: "Available".into(),
        };
        metrics.objects.get_or_create(&standing).set(1);
        metrics.watch_error("CimiMachine", "decode");
        metrics.leader.set(1);
        let meter = MeterLabels {
            kind: "CimiMachine".into(),
            namespace: "a".into(),
            name: "m".into(),
            aspect: "cpu".into(),
            units: "percent".into(),
        };
        metrics.meter_values.get_or_create(&meter).set(1.0);
        let mut exposed = declared_families(&metrics.encode());
        // The limit is absent where the process has none (no cgroup limit and no CIMI_MEMORY_LIMIT).
        exposed.insert("cimi_memory_limit_bytes".into());
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runtime.md")).expect("docs");
        let documented = documented_families(&doc);
        assert_eq!(exposed, documented, "the exposition against docs/runtime.md");
        let header = documented_families(include_str!("metrics.rs"));
        assert_eq!(header, documented, "this module's table against docs/runtime.md");
    }

    #[tokio::test]
    async fn a_pass_reports_its_result_and_conditions_say_which() {
        let (out, result) = with_result(async {
            report_result("waiting");
            7
        })
        .await;
        assert_eq!((out, result), (7, "waiting"));
        assert_eq!(with_result(async {}).await.1, "ok", "ok unless told otherwise");
        report_result("error"); // outside a pass: nothing happens
        let cond = |t: &str, s: &str, reason: &str| {
            serde_json::from_value(serde_json::json!({"type": t, "status": s, "reason": reason, "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}))
            .expect("condition")
        };
        assert_eq!(result_of(&[cond("Ready", "True", "Available")]), "ok");
        assert_eq!(result_of(&[cond("Ready", "False", "JobFailed"), cond("Synced", "False", "JobFailed")]), "error");
        assert_eq!(result_of(&[cond("Ready", "False", "Creating"), cond("Synced", "True", "Available")]), "waiting");
        assert_eq!(result_of(&[cond("Synced", "False", "Paused")]), "waiting");
        assert_eq!(result_of(&[cond("Ready", "False", "JobFailed"), cond("Stalled", "True", "JobFailed")]), "error");
    }
}
