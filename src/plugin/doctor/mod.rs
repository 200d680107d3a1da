//! `kubectl cimi doctor PROVIDER|URL`: probes a CIMI endpoint as the operator would use it and prints a
//! compatibility report: what works, what the operator will do differently, what will not work, and what
//! could not be probed without changing anything on the provider.
//!
//! The doctor only reads, and speaks CIMI only: the CloudEntryPoint and the hrefs it gives, with query
//! parameters (never a simulator's own API). Every request goes through
//! [`CimiClient`](crate::cimi::CimiClient) (its transport gives the raw answers the deviation checks need), so
//! the client's origin pinning and read bounds apply.
//! Credentials come from a CimiProvider's Secret, from `--credentials-file`, or from the environment
//! (`CIMI_USERNAME` and `CIMI_PASSWORD`, or `CIMI_TOKEN`), never from the command line.
//!
//! Each finding has a stable id (the e2e tests and scripts match on them): the entry point and
//! authentication (`entry-point`, `authentication`), formats (`format-json`, `format-xml`), collections
//! (`machines`, `machine-templates`, `volumes`, `networks`, `systems`, `credentials`, `jobs`, `meters`,
//! `event-logs`, `resource-metadata`), queries (`filter`, `property-filter`, `select`, `orderby`) and one per
//! deviation of the CIMI reference's section 7 (`dev-...`; its "no Jobs at all" is the `jobs` finding).
//!
//! The doctor's files, by check family:
//! - `entry`: the first contact, the entry point and authentication;
//! - `capabilities`: the formats served and the collections the operator's kinds need;
//! - `queries`: the query parameters the operator relies on (`$filter`, `property[...]`, `$first`/`$last`,
//!   `$select`, `$orderby`);
//! - `deviations`: the deviations seen in what the provider serves, and those only a write would show;
//! - `report`: the findings, the report and its text;
//! - `setup`: what the doctor is given (a URL or a CimiProvider, credentials) and the probing clients.

mod capabilities;
mod deviations;
mod entry;
mod queries;
mod report;
mod setup;

use std::process::ExitCode;

use super::cli::DoctorArgs;
use super::error::PluginError;
use super::kubeconn::Kube;
use super::output::Printer;
use crate::cimi::ClientConfig;
use crate::cimi::error::redact_url;

use capabilities::{collections, formats};
use entry::{authentication, entry_point, first_contact_failure};
use queries::queries_and_deviations;
pub use report::{Finding, Report, Verdict, render};
pub use setup::{auth_from_env, auth_from_file, is_url};
use setup::{client, probe_config};

/// Probes the endpoint of `base` (its format is the one the operator would speak).
pub async fn probe(base: &ClientConfig) -> Result<Report, PluginError> {
    let mut report = Report { endpoint: redact_url(&base.endpoint), ..Default::default() };
    let configured = base.transport.format;
    let main = client(probe_config(base, configured, base.transport.auth.clone()))?;
    let discovery = match main.discover().await {
        Ok(d) => d,
        Err(e) => {
            report.push(first_contact_failure(&e));
            report.usable = false;
            return Ok(report);
        }
    };
    entry_point(&mut report, &main, &discovery).await;
    authentication(&mut report, base, &main, &discovery).await?;
    formats(&mut report, base, configured).await?;
    collections(&mut report, &discovery);
    queries_and_deviations(&mut report, base, &discovery).await?;
    report.usable = report.count(Verdict::Fatal) == 0;
    Ok(report)
}

fn finish(report: &Report, printer: &Printer) -> Result<ExitCode, PluginError> {
    if printer.is_document() {
        print!("{}", printer.document(report)?);
    } else {
        print!("{}", render(report, printer));
    }
    if report.usable {
        return Ok(ExitCode::SUCCESS);
    }
    let fatal: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.verdict == Verdict::Fatal)
        .map(|f| format!("{}: {}", f.id, f.detail))
        .collect();
    Err(PluginError::Incompatible(format!("the operator cannot use {}: {}", report.endpoint, fatal.join("; "))))
}

/// `doctor URL`: credentials from `--credentials-file` or the environment.
pub async fn run_url(args: &DoctorArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    let mut config = ClientConfig::new("doctor", &args.target).map_err(|e| PluginError::Usage(e.to_string()))?;
    config.transport.auth = match &args.credentials_file {
        Some(path) => auth_from_file(path)?,
        None => auth_from_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
    };
    if let Some(ca) = &args.ca_file {
        config.transport.ca_bundle_pem =
            Some(std::fs::read(ca).map_err(|e| PluginError::Usage(format!("cannot read {}: {e}", ca.display())))?);
    }
    config.transport.insecure_skip_tls_verify = args.insecure_skip_tls_verify;
    config.transport.allow_plain_http = args.allow_plain_http;
    let report = probe(&config).await?;
    finish(&report, printer)
}

/// `doctor PROVIDER`: the CimiProvider's endpoint, format, TLS settings and Secret.
pub async fn run_provider(kube: &Kube, args: &DoctorArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    if args.credentials_file.is_some()
        || args.ca_file.is_some()
        || args.insecure_skip_tls_verify
        || args.allow_plain_http
    {
        return Err(PluginError::Usage(
            "--credentials-file, --ca-file, --insecure-skip-tls-verify and --allow-plain-http apply to a URL; a \
             CimiProvider brings its own settings"
                .into(),
        ));
    }
    let provider = super::objects::get_provider(kube, &args.target).await?;
    let config = super::connect::config_for(&kube.client, &provider).await?;
    let mut report = probe(&config).await?;
    report.provider = Some(args.target.clone());
    finish(&report, printer)
}
