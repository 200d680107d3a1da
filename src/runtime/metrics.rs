//! Prometheus metrics (prometheus-client), every name prefixed `cimi_`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `cimi_reconciles_total` | counter | kind, result (`ok`, `requeue`, `error`) |
//! | `cimi_reconcile_duration_seconds` | histogram | kind |
//! | `cimi_requests_total` | counter | provider, operation, status |
//! | `cimi_request_duration_seconds` | histogram | provider, operation |
//! | `cimi_job_duration_seconds` | histogram | provider, action, state |
//! | `cimi_resources` | gauge | kind, state |
//! | `cimi_watch_decode_errors_total` | counter | kind |
//! | `cimi_leader` | gauge | — (1 while this replica holds the Lease) |
//! | `cimi_meter_value` | gauge | kind, namespace, name, aspect, units (latest provider meter sample; bounded by `--meter-gauges-max`) |

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
    /// `ok`, `requeue` or `error`.
    pub result: String,
}

/// Labels of per-kind metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
}

/// Labels of CIMI request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The CimiProvider's name.
    pub provider: String,
    /// The operation, such as `get`, `list`, `create`, `edit`, `delete` or an action.
    pub operation: String,
    /// The HTTP status code, or `error` when no answer came.
    pub status: String,
}

/// Labels of CIMI request latencies.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The CimiProvider's name.
    pub provider: String,
    /// The operation.
    pub operation: String,
}

/// Labels of Job durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The CimiProvider's name.
    pub provider: String,
    /// The Job's action.
    pub action: String,
    /// The Job's final state.
    pub state: String,
}

/// Labels of the resource gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// CimiMachine, CimiVolume, ...
    pub kind: String,
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

/// Every metric family of the operator. Cheap to clone; clones share the values.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile duration by kind.
    pub reconcile_duration: HistogramFamily<KindLabels>,
    /// CIMI requests by provider, operation and status.
    pub requests: Family<RequestLabels, Counter>,
    /// CIMI request latency by provider and operation.
    pub request_duration: HistogramFamily<OperationLabels>,
    /// CIMI Job durations by provider, action and final state.
    pub job_duration: HistogramFamily<JobLabels>,
    /// Objects by kind and provider state.
    pub resources: Family<ResourceLabels, Gauge>,
    /// Objects a watch could not decode, by kind.
    pub watch_decode_errors: Family<KindLabels, Counter>,
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
        let mut registry = Registry::with_prefix("cimi");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            HistogramFamily::<KindLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            HistogramFamily::<OperationLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let job_duration = HistogramFamily::<JobLabels>::new_with_constructor(job_histogram as fn() -> Histogram);
        let resources = Family::<ResourceLabels, Gauge>::default();
        let watch_decode_errors = Family::<KindLabels, Counter>::default();
        let leader = Gauge::default();
        let meter_values = Family::<MeterLabels, FloatGauge>::default();
        registry.register("reconciles", "Reconciles by kind and result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration by kind", reconcile_duration.clone());
        registry.register("requests", "CIMI requests by provider, operation and status", requests.clone());
        registry.register(
            "request_duration_seconds",
            "CIMI request latency by provider and operation",
            request_duration.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "CIMI Job durations by provider, action and final state",
            job_duration.clone(),
        );
        registry.register("resources", "Objects by kind and provider state", resources.clone());
        registry.register(
            "watch_decode_errors",
            "Objects a watch could not decode, by kind",
            watch_decode_errors.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        registry.register(
            "meter_value",
            "The latest sample of a provider meter, by object and aspect",
            meter_values.clone(),
        );
        Self {
            reconciles,
            reconcile_duration,
            requests,
            request_duration,
            job_duration,
            resources,
            watch_decode_errors,
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

    /// Counts one CIMI request with its status (`"error"` when none came) and latency.
    pub fn observe_request(&self, provider: &str, operation: &str, status: &str, duration: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                provider: provider.into(),
                operation: operation.into(),
                status: status.into(),
            })
            .inc();
        self.request_duration
            .get_or_create(&OperationLabels { provider: provider.into(), operation: operation.into() })
            .observe(duration.as_secs_f64());
    }

    /// Records how long a finished Job took.
    pub fn observe_job(&self, provider: &str, action: &str, state: &str, duration: Duration) {
        self.job_duration
            .get_or_create(&JobLabels { provider: provider.into(), action: action.into(), state: state.into() })
            .observe(duration.as_secs_f64());
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
        metrics.observe_request("lab", "get", "200", Duration::from_millis(3));
        metrics.observe_job("lab", "start", "SUCCESS", Duration::from_secs(2));
        metrics.resources.get_or_create(&ResourceLabels { kind: "CimiMachine".into(), state: "STARTED".into() }).set(3);
        metrics.leader.set(1);
        metrics.watch_decode_errors.get_or_create(&KindLabels { kind: "CimiVolume".into() }).inc();
        let text = metrics.encode();
        for needle in [
            "cimi_reconciles_total{kind=\"CimiMachine\",result=\"ok\"} 1",
            "cimi_reconcile_duration_seconds_count{kind=\"CimiMachine\"} 1",
            "cimi_requests_total{provider=\"lab\",operation=\"get\",status=\"200\"} 1",
            "cimi_request_duration_seconds_bucket",
            "cimi_job_duration_seconds_count{provider=\"lab\",action=\"start\",state=\"SUCCESS\"} 1",
            "cimi_resources{kind=\"CimiMachine\",state=\"STARTED\"} 3",
            "cimi_leader 1",
            "cimi_watch_decode_errors_total{kind=\"CimiVolume\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
