//! The doctor's report: each [`Finding`] with its stable id and [`Verdict`], the whole [`Report`], and the
//! report as text ([`render`]), in sections by verdict.

use serde::Serialize;

use crate::plugin::output::{Cell, Printer, Style, Table};

/// What a finding means for the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Works as the operator expects.
    Ok,
    /// Works, but the operator does it differently.
    Adapted,
    /// A feature that will not work with this endpoint.
    Unsupported,
    /// The operator cannot use the endpoint at all.
    Fatal,
    /// Could not be seen without changing something on the provider.
    NotProbed,
}

/// One finding of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// A stable id, such as `jobs` or `dev-paging-ignored`.
    pub id: String,
    /// What it means.
    pub verdict: Verdict,
    /// What was seen.
    pub detail: String,
    /// What the operator does about it, or what will not work.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub operator: String,
}

impl Finding {
    pub(super) fn new(id: &str, verdict: Verdict, detail: impl Into<String>, operator: impl Into<String>) -> Self {
        Finding { id: id.to_string(), verdict, detail: detail.into(), operator: operator.into() }
    }
}

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The CloudEntryPoint URL (without user info).
    pub endpoint: String,
    /// The CimiProvider, when probed through one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Every finding, in probing order.
    pub findings: Vec<Finding>,
    /// True when no finding is fatal.
    pub usable: bool,
}

impl Report {
    /// The finding with this id.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    pub(super) fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    pub(super) fn count(&self, verdict: Verdict) -> usize {
        self.findings.iter().filter(|f| f.verdict == verdict).count()
    }
}

/// The report as text: what works, what the operator does differently, what will not work, what was not
/// probed, and the verdict.
pub fn render(report: &Report, printer: &Printer) -> String {
    let mut out = format!(
        "CIMI doctor: {}{}\n",
        report.endpoint,
        report.provider.as_deref().map(|p| format!(" (cimiprovider/{p})")).unwrap_or_default()
    );
    let sections: [(Verdict, &str, &str, Style); 5] = [
        (Verdict::Fatal, "THE OPERATOR CANNOT USE IT", "consequence", Style::Bad),
        (Verdict::Ok, "WORKS", "", Style::Good),
        (Verdict::Adapted, "THE OPERATOR WORKS DIFFERENTLY", "what the operator does", Style::Warn),
        (Verdict::Unsupported, "WILL NOT WORK", "consequence", Style::Bad),
        (Verdict::NotProbed, "NOT PROBED (read-only doctor)", "if it happens, the operator", Style::Plain),
    ];
    for (verdict, title, third, style) in sections {
        let list: Vec<&Finding> = report.findings.iter().filter(|f| f.verdict == verdict).collect();
        if list.is_empty() {
            continue;
        }
        out.push('\n');
        out.push_str(&printer.heading(&format!("{title} ({})", list.len())));
        out.push('\n');
        let mut headers = vec!["check", "finding"];
        if !third.is_empty() {
            headers.push(third);
        }
        let mut t = Table::new(headers);
        for f in list {
            let mut row = vec![Cell::styled(&f.id, style), Cell::plain(printer.message(&f.detail))];
            if !third.is_empty() {
                row.push(Cell::plain(printer.message(&f.operator)));
            }
            t.row(row);
        }
        out.push_str(&t.render(printer.colour));
    }
    out.push_str(&format!(
        "\nVerdict: {} ({} work, {} differently, {} will not work, {} not probed).\n",
        if report.usable { "the operator can use this endpoint" } else { "the operator cannot use this endpoint" },
        report.count(Verdict::Ok),
        report.count(Verdict::Adapted),
        report.count(Verdict::Unsupported),
        report.count(Verdict::NotProbed),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cimi::CimiError;
    use crate::plugin::doctor::entry::first_contact_failure;
    use crate::plugin::output::OutputFormat;

    #[test]
    fn the_report_has_sections_and_a_verdict() {
        let report = Report {
            endpoint: "http://p/".into(),
            provider: Some("lab".into()),
            findings: vec![
                Finding::new("entry-point", Verdict::Ok, "a CIMI 1.x CloudEntryPoint", ""),
                Finding::new("jobs", Verdict::Adapted, "no Jobs", "states are followed instead"),
                Finding::new("meters", Verdict::Unsupported, "no meters collection", "status.meters stays empty"),
                Finding::new("dev-delete-500", Verdict::NotProbed, "needs a write", "re-read"),
            ],
            usable: true,
        };
        let text = render(&report, &Printer { format: OutputFormat::Table, colour: false });
        assert!(text.starts_with("CIMI doctor: http://p/ (cimiprovider/lab)"), "{text}");
        for part in ["WORKS (1)", "THE OPERATOR WORKS DIFFERENTLY (1)", "WILL NOT WORK (1)", "NOT PROBED"] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert!(text.contains("jobs    no Jobs   states are followed instead"), "{text}");
        assert!(text.contains("Verdict: the operator can use this endpoint (1 work, 1 differently, 1 will not work"));
        let fatal = first_contact_failure(&CimiError::Unauthorized { href: "h".into(), status: 401 });
        assert_eq!((fatal.id.as_str(), fatal.verdict), ("authentication", Verdict::Fatal));
    }
}
