//! Prometheus metrics (prometheus-client), every name prefixed `cimi_`.
//!
//! | metric | type | labels | fed by |
//! |---|---|---|---|
//! | `cimi_reconciles_total` | counter | kind, result (`ok`, `error`) | every reconcile |
//! | `cimi_reconcile_duration_seconds` | histogram | kind | every reconcile |
//! | `cimi_requests_total` | counter | provider, operation, status | the CIMI client, each attempt |
//! | `cimi_request_duration_seconds` | histogram | provider, operation, status | the CIMI client |
//! | `cimi_request_retries_total` | counter | provider, operation, status | the CIMI client |
//! | `cimi_requests_refused_total` | counter | provider, reason | the CIMI client: an href refused before sending (`untrusted_href`, `plain_http`), a read stopped by a bound (`body_size`, `pages`, `entries`, `listing_time`, `repeated_page`) |
//! | `cimi_job_duration_seconds` | histogram | provider, action, state | a Job seen to finish in status |
//! | `cimi_resources` | gauge | kind, state | the controllers' stores |
//! | `cimi_watch_errors_total` | counter | kind, reason (`decode`, `watch`) | every watch |
//! | `cimi_leader` | gauge | — (1 while this replica holds the Lease) | leader election |
//! | `cimi_meter_value` | gauge | kind, namespace, name, aspect, units (latest provider meter sample; bounded by `--meter-gauges-max`) |

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
    /// `ok`, `requeue` or `error`.
    pub result: String,
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
    /// The CimiProvider's name.
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
    /// CIMI requests (count, latency, retries) by provider, operation and status; hand it to every
    /// [`crate::cimi::CimiClient`] the operator makes.
    pub client: ClientMetrics,
    /// CIMI Job durations by provider, action and final state.
    pub job_duration: HistogramFamily<JobLabels>,
    /// Objects by kind and provider state.
    pub resources: Family<ResourceLabels, Gauge>,
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
        let mut registry = Registry::with_prefix("cimi");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            HistogramFamily::<KindLabels>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let client = ClientMetrics::default();
        let job_duration = HistogramFamily::<JobLabels>::new_with_constructor(job_histogram as fn() -> Histogram);
        let resources = Family::<ResourceLabels, Gauge>::default();
        let watch_errors = Family::<WatchErrorLabels, Counter>::default();
        let leader = Gauge::default();
        let meter_values = Family::<MeterLabels, FloatGauge>::default();
        registry.register("reconciles", "Reconciles by kind and result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration by kind", reconcile_duration.clone());
        registry.register("requests", "CIMI requests by provider, operation and status", client.requests.clone());
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
        registry.register("resources", "Objects by kind and provider state", resources.clone());
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

    /// Records how long a finished Job took.
    pub fn observe_job(&self, provider: &str, action: &str, state: &str, duration: Duration) {
        self.job_duration
            .get_or_create(&JobLabels { provider: provider.into(), action: action.into(), state: state.into() })
            .observe(duration.as_secs_f64());
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
            .get_or_create(&crate::cimi::transport::RequestLabels {
                provider: "lab".into(),
                operation: "get".into(),
                status: "200".into(),
            })
            .inc();
        metrics.observe_job("lab", "start", "SUCCESS", Duration::from_secs(2));
        metrics.resources.get_or_create(&ResourceLabels { kind: "CimiMachine".into(), state: "STARTED".into() }).set(3);
        metrics.leader.set(1);
        metrics.watch_error("CimiVolume", "decode");
        let text = metrics.encode();
        for needle in [
            "cimi_reconciles_total{kind=\"CimiMachine\",result=\"ok\"} 1",
            "cimi_reconcile_duration_seconds_count{kind=\"CimiMachine\"} 1",
            "cimi_requests_total{provider=\"lab\",operation=\"get\",status=\"200\"} 1",
            "cimi_job_duration_seconds_count{provider=\"lab\",action=\"start\",state=\"SUCCESS\"} 1",
            "cimi_resources{kind=\"CimiMachine\",state=\"STARTED\"} 3",
            "cimi_leader 1",
            "cimi_watch_errors_total{kind=\"CimiVolume\",reason=\"decode\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
