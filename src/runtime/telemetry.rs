//! Logging (JSON or text lines on stderr, filtered by level or `RUST_LOG`) and, when an OTLP endpoint is
//! configured, traces: a span per reconcile (`reconcile`, carrying the object's kind, namespace and name) with a
//! child span per provider request (`cimi_request`), exported over OTLP/HTTP (protobuf).
//!
//! Traces follow the standard OpenTelemetry environment: on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, off with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`;
//! `OTEL_SERVICE_NAME` (default `cimi-operator`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` and the other standard variables apply as the OpenTelemetry SDK
//! reads them. Only the operator's own spans are exported (level info and above).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    #[default]
    Text,
}

/// What [`init`] installed that needs a last word at exit: the trace exporter, flushed by [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn traces(&self) -> bool {
        self.tracer.is_some()
    }

    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing the last traces");
        }
    }
}

/// Whether the environment asks for traces (an OTLP endpoint, and the SDK not disabled).
pub fn traces_configured(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
    let is = |k: &str, v: &str| env(k).is_some_and(|x| x.trim().eq_ignore_ascii_case(v));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// The OTLP trace pipeline the environment configures, or why it cannot be built.
fn tracer_provider() -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_http().build().map_err(|e| format!("OTLP exporter: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
        resource = resource.with_service_name("cimi-operator");
    }
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs the global subscriber: log lines, and traces when the environment configures them. `level` is a
/// filter such as `info` or `info,cimi_operator=debug`; `RUST_LOG`, when set, wins. A second call installs
/// nothing. Keep the returned [`Telemetry`] and shut it down at exit.
pub fn init(format: LogFormat, level: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let (tracer, problem) = if traces_configured(|k| std::env::var(k).ok()) {
        match tracer_provider() {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let otel = tracer.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("cimi-operator"))
            .with_filter(EnvFilter::new("cimi_operator=info"))
    });
    let installed = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel).try_init().is_ok();
    if let Some(problem) = problem {
        tracing::warn!(%problem, "traces are not exported");
    } else if tracer.is_some() && installed {
        tracing::info!("exporting traces over OTLP");
    }
    Telemetry { tracer: if installed { tracer } else { None } }
}

/// Installs the process-wide rustls crypto provider (ring), for kube and reqwest alike. Safe to call
/// more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn traces_need_an_endpoint_and_can_be_switched_off() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(!super::traces_configured(env(&[])));
        assert!(!super::traces_configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(super::traces_configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])));
        assert!(super::traces_configured(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])));
        assert!(!super::traces_configured(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "TRUE")
        ])));
        assert!(!super::traces_configured(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
    }
}
