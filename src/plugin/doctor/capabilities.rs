//! What the endpoint offers: each format (`format-json`, `format-xml`), and the collections the operator's
//! kinds and features need (`machines`, `machine-templates`, `credentials`, `volumes`, `networks`,
//! `systems`, `jobs`, `meters`, `event-logs`, `resource-metadata`).

use super::report::{Finding, Report, Verdict};
use super::setup::{client, probe_config};
use crate::cimi::query::Query;
use crate::cimi::{ClientConfig, Discovery, Format};
use crate::plugin::error::PluginError;

/// Each format read from the CloudEntryPoint and one page of a collection; the configured one must work.
pub(super) async fn formats(report: &mut Report, base: &ClientConfig, configured: Format) -> Result<(), PluginError> {
    for (id, format) in [("format-json", Format::Json), ("format-xml", Format::Xml)] {
        let c = client(probe_config(base, format, base.transport.auth.clone()))?;
        let outcome = match c.discover().await {
            Ok(d) => match d.collections.get("machineConfigs").or_else(|| d.collections.get("machines")) {
                Some(url) => c.list_page_value(url, &Query::new().first(1).last(1), "").await.map(|_| ()),
                None => Ok(()),
            },
            Err(e) => Err(e),
        };
        let name = format.media_type();
        report.push(match (outcome, format == configured) {
            (Ok(()), _) => Finding::new(id, Verdict::Ok, format!("{name} is served"), ""),
            (Err(e), true) => Finding::new(
                id,
                Verdict::Fatal,
                format!("{name} is the format configured, and it fails: {e}"),
                "set spec.format to the other format",
            ),
            (Err(e), false) => Finding::new(
                id,
                Verdict::Unsupported,
                format!("{name} fails: {e}"),
                format!("spec.format {} will not work", if format == Format::Xml { "xml" } else { "json" }),
            ),
        });
    }
    Ok(())
}

/// The collections the CloudEntryPoint lists, against what each kind and feature needs.
pub(super) fn collections(report: &mut Report, discovery: &Discovery) {
    let has = |c: &str| discovery.supports(c);
    let need = |report: &mut Report, id: &str, names: &[&str], what: &str| {
        let missing: Vec<&str> = names.iter().copied().filter(|c| !has(c)).collect();
        report.push(if missing.is_empty() {
            Finding::new(id, Verdict::Ok, format!("{} offered", names.join(", ")), "")
        } else {
            Finding::new(id, Verdict::Unsupported, format!("no {} in the CloudEntryPoint", missing.join(", ")), what)
        });
    };
    need(report, "machines", &["machines", "machineConfigs", "machineImages"], "CimiMachine will not work");
    need(report, "machine-templates", &["machineTemplates"], "CimiMachine spec.machineTemplate will not work");
    need(report, "credentials", &["credentials"], "CimiMachine spec.template.credentialSecretRef will not work");
    need(report, "volumes", &["volumes"], "CimiVolume will not work");
    need(report, "networks", &["networks"], "CimiNetwork will not work");
    need(report, "systems", &["systems", "systemTemplates"], "CimiSystem will not work");
    report.push(if has("jobs") {
        Finding::new("jobs", Verdict::Ok, "Jobs offered", "the operator follows each operation's Job (status.job)")
    } else {
        Finding::new(
            "jobs",
            Verdict::Adapted,
            "no Jobs",
            "the operator follows the resources' states instead; status.job stays empty and timeouts bound \
             transient states",
        )
    });
    report.push(if has("meters") {
        Finding::new("meters", Verdict::Ok, "Meters offered", "")
    } else {
        Finding::new("meters", Verdict::Unsupported, "no meters collection", "status.meters stays empty (no meters)")
    });
    report.push(if has("eventLogs") {
        Finding::new("event-logs", Verdict::Ok, "EventLogs offered", "")
    } else {
        Finding::new(
            "event-logs",
            Verdict::Unsupported,
            "no eventLogs collection",
            "no provider events are mirrored as Kubernetes Events",
        )
    });
    report.push(if has("resourceMetadata") {
        Finding::new("resource-metadata", Verdict::Ok, "ResourceMetadata offered", "")
    } else {
        Finding::new(
            "resource-metadata",
            Verdict::Adapted,
            "no resourceMetadata collection",
            "capabilities are unknown: the operator tries operations and reads what the provider answers",
        )
    });
}
