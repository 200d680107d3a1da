//! The first contact and access: a CloudEntryPoint that cannot be read is the one fatal finding
//! (`entry-point`, `authentication` or `transport`); one that can is described (`entry-point`, with the
//! `dev-spec-version-header` deviation), and the credentials are tried on the CloudEntryPoint and on the
//! machines collection, with and without them (`dev-cep-without-credentials`, `authentication`).

use super::report::{Finding, Report, Verdict};
use super::setup::{client, probe_config, raw};
use crate::cimi::query::Query;
use crate::cimi::{Auth, CimiClient, CimiError, ClientConfig, Discovery};
use crate::plugin::error::PluginError;

/// The fatal finding of a failed first contact.
pub(super) fn first_contact_failure(error: &CimiError) -> Finding {
    match error {
        CimiError::Unauthorized { status, .. } => Finding::new(
            "authentication",
            Verdict::Fatal,
            format!("the CloudEntryPoint refused the credentials ({status})"),
            "every reconcile fails with the provider not Ready (Unauthorized); fix the credentials",
        ),
        CimiError::UntrustedHref { .. } => Finding::new(
            "transport",
            Verdict::Fatal,
            format!("refused before sending: {error}"),
            "the operator refuses it too; use https, or allow plain http (spec.allowPlainHTTP, --allow-plain-http)",
        ),
        CimiError::Unavailable { .. } | CimiError::Timeout { .. } | CimiError::RateLimited { .. } => Finding::new(
            "entry-point",
            Verdict::Fatal,
            format!("unreachable: {error}"),
            "the provider stays not Ready (Unreachable)",
        ),
        other => Finding::new(
            "entry-point",
            Verdict::Fatal,
            format!("not a usable CIMI CloudEntryPoint: {other}"),
            "the provider stays not Ready (NotCIMI)",
        ),
    }
}

/// The entry point as read, and the specification version header on its raw answer.
pub(super) async fn entry_point(report: &mut Report, main: &CimiClient, discovery: &Discovery) {
    let version = match discovery.cep.resource_uri.as_deref() {
        Some(u) if u.contains("/cimi/2") => "2.0",
        _ => "1.x",
    };
    report.push(Finding::new(
        "entry-point",
        Verdict::Ok,
        format!(
            "a CIMI {version} CloudEntryPoint, baseURI {}, {} collections",
            discovery.base,
            discovery.collections.len()
        ),
        "",
    ));
    // The raw CloudEntryPoint: the specification version header and its dates.
    match raw(main, &main.config().endpoint).await {
        Ok(resp) => {
            let header = resp.headers.get("CIMI-Specification-Version").and_then(|v| v.to_str().ok());
            report.push(match header {
                Some(v) => Finding::new(
                    "dev-spec-version-header",
                    Verdict::Adapted,
                    format!("CIMI-Specification-Version: {v} on responses"),
                    "ignored; the operator reads the CloudEntryPoint instead",
                ),
                None => {
                    Finding::new("dev-spec-version-header", Verdict::Ok, "no CIMI-Specification-Version header", "")
                }
            });
        }
        Err(e) => report.push(Finding::new(
            "dev-spec-version-header",
            Verdict::NotProbed,
            format!("the CloudEntryPoint could not be read again: {e}"),
            "",
        )),
    }
}

/// Whether the CloudEntryPoint and the machines collection need credentials, and accept these.
pub(super) async fn authentication(
    report: &mut Report,
    base: &ClientConfig,
    main: &CimiClient,
    discovery: &Discovery,
) -> Result<(), PluginError> {
    let anonymous = client(probe_config(base, base.transport.format, Auth::None))?;
    let has_credentials = base.transport.auth != Auth::None;
    let cep_public = anonymous.discover().await.is_ok();
    report.push(if cep_public && has_credentials {
        Finding::new(
            "dev-cep-without-credentials",
            Verdict::Adapted,
            "the CloudEntryPoint answers without credentials",
            "the operator sends its credentials to every request anyway",
        )
    } else {
        Finding::new("dev-cep-without-credentials", Verdict::Ok, "the CloudEntryPoint needs credentials", "")
    });
    let Some(machines) = discovery.collections.get("machines").cloned() else {
        report.push(Finding::new("authentication", Verdict::NotProbed, "no machines collection to read", ""));
        return Ok(());
    };
    let page = Query::new().first(1).last(1);
    let with = main.list_page_value(&machines, &page, "Machine").await;
    let without = anonymous.list_page_value(&machines, &page, "Machine").await;
    report.push(match (has_credentials, with, without) {
        (_, Err(CimiError::Unauthorized { status, .. }), _) => Finding::new(
            "authentication",
            Verdict::Fatal,
            format!("the machines collection refused the credentials ({status})"),
            "every reconcile fails (provider not Ready, Unauthorized); fix the credentials",
        ),
        (_, Err(e), _) => Finding::new(
            "authentication",
            Verdict::Fatal,
            format!("the machines collection cannot be read: {e}"),
            "machines cannot be observed",
        ),
        (true, Ok(_), Err(CimiError::Unauthorized { .. })) => {
            Finding::new("authentication", Verdict::Ok, "collections need credentials, and these are accepted", "")
        }
        (true, Ok(_), _) => Finding::new(
            "authentication",
            Verdict::Adapted,
            "collections answer without credentials as well",
            "the operator sends its credentials anyway; anyone who reaches the endpoint can read it",
        ),
        (false, Ok(_), _) => Finding::new(
            "authentication",
            Verdict::Adapted,
            "no credentials given, and none needed",
            "a CimiProvider without credentialSecretRef works with this endpoint",
        ),
    });
    Ok(())
}
