//! The client's metrics ([`ClientMetrics`], prefixed `cimi_client_` once registered): requests sent, their
//! duration, retries, and requests refused or reads stopped by a bound, by provider.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The provider name.
    pub provider: String,
    /// The client operation (`get`, `list`, `create`, `update`, `delete`, `action`, `job`...).
    pub operation: String,
    /// The HTTP status, or `timeout` / `unreachable` / `error` when there was none.
    pub status: String,
    /// The class of the status ([`outcome_of`]): `ok`, `client_error`, `throttled`, `server_error`, `timeout`,
    /// `unreachable` or `error`.
    pub outcome: String,
}

impl RequestLabels {
    /// The labels of a request to `provider` for `operation` that ended with `status`.
    pub fn new(provider: &str, operation: &str, status: String) -> Self {
        let outcome = outcome_of(&status).to_string();
        RequestLabels { provider: provider.to_string(), operation: operation.to_string(), status, outcome }
    }
}

/// The class of a request's status label: `ok` (1xx-3xx), `throttled` (429, 503), `client_error` (other 4xx),
/// `server_error` (other 5xx), or the label itself when there was no status (`timeout`, `unreachable`), else
/// `error`.
pub fn outcome_of(status: &str) -> &'static str {
    match status.parse::<u16>() {
        Ok(100..=399) => "ok",
        Ok(429 | 503) => "throttled",
        Ok(400..=499) => "client_error",
        Ok(500..=599) => "server_error",
        Ok(_) => "error",
        Err(_) => match status {
            "timeout" => "timeout",
            "unreachable" => "unreachable",
            _ => "error",
        },
    }
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Labels of a refused request or a tripped read bound.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The provider name.
    pub provider: String,
    /// `untrusted_href`, `plain_http`, or the read bound: `body_size`, `pages`, `entries`, `listing_time`,
    /// `repeated_page`.
    pub reason: String,
}

/// The client's metrics (all prefixed `cimi_client_` once registered).
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    /// Requests sent (each attempt counts).
    pub requests: Family<RequestLabels, Counter>,
    /// Request duration in seconds.
    pub duration: HistogramFamily,
    /// Attempts that were retried.
    pub retries: Family<RequestLabels, Counter>,
    /// Requests refused before they were sent, and reads stopped by a bound.
    pub refused: Family<RefusalLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for ClientMetrics {
    fn default() -> Self {
        ClientMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            retries: Family::default(),
            refused: Family::default(),
        }
    }
}

impl ClientMetrics {
    /// Register the metrics in `registry` under the `cimi_client` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("cimi_client");
        sub.register("requests", "CIMI requests sent, by provider, operation and status", self.requests.clone());
        sub.register("request_duration_seconds", "CIMI request duration", self.duration.clone());
        sub.register("retries", "CIMI requests retried, by the status that caused it", self.retries.clone());
        sub.register(
            "refused",
            "CIMI requests refused before sending (untrusted href, plain http) and reads stopped by a bound",
            self.refused.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses_fall_into_outcome_classes() {
        for (status, outcome) in [
            ("200", "ok"),
            ("204", "ok"),
            ("304", "ok"),
            ("404", "client_error"),
            ("429", "throttled"),
            ("503", "throttled"),
            ("500", "server_error"),
            ("timeout", "timeout"),
            ("unreachable", "unreachable"),
            ("error", "error"),
            ("999", "error"),
        ] {
            assert_eq!(super::outcome_of(status), outcome, "{status}");
        }
    }
}
