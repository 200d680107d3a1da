//! `kubectl cimi status`: one screen for a namespace (or `-A`): each CimiProvider's health, what is not
//! Ready with its reason and message, what has a provider Job running (action, progress, age), and what is
//! Stalled and needs a human.

use std::process::ExitCode;

use kube::api::{Api, ListParams};
use serde::Serialize;

use super::error::PluginError;
use super::kubeconn::Kube;
use super::objects::ProviderView;
use super::objects::{self, ObjectView};
use super::output::{Cell, Printer, Style, Table, age, or_dash};
use crate::api::conditions::{READY, STALLED};
use crate::api::{CimiNamespacedProvider, CimiProvider};

/// The whole screen, as `-o yaml|json` prints it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The namespace, or `*` for every namespace.
    pub scope: String,
    /// Every CimiProvider, or why they could not be read.
    pub providers: Vec<ProviderHealth>,
    /// Why the providers could not be listed, if they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers_error: Option<String>,
    /// The objects that are not Ready.
    pub not_ready: Vec<Problem>,
    /// The objects with a provider Job running.
    pub jobs: Vec<RunningJob>,
    /// The objects that are Stalled (a human must act).
    pub stalled: Vec<Problem>,
    /// The counts.
    pub summary: Summary,
}

/// One provider's health.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealth {
    /// The CimiProvider's name.
    pub name: String,
    /// Ready: True, False or Unknown (`-` before the first probe).
    pub ready: String,
    /// The Ready reason.
    pub reason: String,
    /// The Ready message.
    pub message: String,
    /// The CIMI version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The latency of the last probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// How many objects reference it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_use_by: Option<i32>,
    /// How long ago the last probe was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probed: Option<String>,
}

/// An object that is not Ready, or Stalled.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The kind.
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The condition's status.
    pub status: String,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
    /// How long the condition has had this status.
    pub since: String,
}

/// An object whose provider Job is running.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningJob {
    /// The kind.
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The Job's action (`add`, `start`, `restart`...).
    pub action: String,
    /// The Job's state.
    pub state: String,
    /// Its progress in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<i32>,
    /// How long ago the operator started it.
    pub age: String,
    /// The Job's href.
    pub href: String,
}

/// The counts of the screen.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Managed objects in scope.
    pub objects: usize,
    /// Those Ready.
    pub ready: usize,
    /// Those not Ready.
    pub not_ready: usize,
    /// Those with a provider Job running.
    pub jobs_running: usize,
    /// Those Stalled.
    pub stalled: usize,
}

/// The health of a provider from its status.
pub fn provider_health(p: &ProviderView) -> ProviderHealth {
    let status = p.status.clone().unwrap_or_default();
    let ready = crate::api::conditions::find(&status.conditions, READY);
    ProviderHealth {
        name: p.key.to_string(),
        ready: ready.map(|c| c.status.clone()).unwrap_or_else(|| "-".into()),
        reason: ready.map(|c| c.reason.clone()).unwrap_or_else(|| "NotProbedYet".into()),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
        version: status.cimi_version,
        latency: status.latency,
        in_use_by: status.in_use_by,
        probed: status.last_probe_time.as_ref().map(age),
    }
}

/// The screen from what was read.
pub fn build(scope: &str, providers: Result<&[ProviderView], String>, objects: &[ObjectView]) -> StatusReport {
    let mut report = StatusReport { scope: scope.to_string(), ..Default::default() };
    match providers {
        Ok(list) => report.providers = list.iter().map(provider_health).collect(),
        Err(e) => report.providers_error = Some(e),
    }
    report.providers.sort_by(|a, b| a.name.cmp(&b.name));
    for o in objects {
        report.summary.objects += 1;
        let problem = |type_: &str| {
            let c = o.condition(type_);
            Problem {
                kind: o.kind.kind_name().to_string(),
                namespace: o.namespace.clone(),
                name: o.name.clone(),
                status: c.map(|c| c.status.clone()).unwrap_or_else(|| "-".into()),
                reason: c.map(|c| c.reason.clone()).unwrap_or_else(|| "NoStatusYet".into()),
                message: c.map(|c| c.message.clone()).unwrap_or_else(|| {
                    "the operator has not written a status yet (is it running for this object?)".into()
                }),
                since: c
                    .map(|c| age(&c.last_transition_time))
                    .or_else(|| o.created.as_ref().map(age))
                    .unwrap_or_default(),
            }
        };
        if o.condition(READY).is_some_and(|c| c.status == "True") {
            report.summary.ready += 1;
        } else {
            report.summary.not_ready += 1;
            report.not_ready.push(problem(READY));
        }
        if o.condition(STALLED).is_some_and(|c| c.status == "True") {
            report.summary.stalled += 1;
            report.stalled.push(problem(STALLED));
        }
        if let Some(job) = o.running_job() {
            report.summary.jobs_running += 1;
            report.jobs.push(RunningJob {
                kind: o.kind.kind_name().to_string(),
                namespace: o.namespace.clone(),
                name: o.name.clone(),
                action: job.action.clone().unwrap_or_else(|| "?".into()),
                state: job.state.clone().unwrap_or_else(|| "QUEUED".into()),
                progress: job.progress,
                age: job.started_at.as_ref().map(age).unwrap_or_else(|| "-".into()),
                href: job.href.clone(),
            });
        }
    }
    report
}

/// The screen as text.
pub fn render(report: &StatusReport, all_namespaces: bool, printer: &Printer) -> String {
    let mut out = String::new();
    let ns_header: &[&str] = if all_namespaces { &["namespace"] } else { &[] };
    let ns_cell = |ns: &str| -> Vec<Cell> { if all_namespaces { vec![Cell::plain(ns)] } else { Vec::new() } };

    out.push_str(&printer.heading("PROVIDERS"));
    out.push('\n');
    match (&report.providers_error, report.providers.is_empty()) {
        (Some(e), _) => out.push_str(&format!("  cannot list CimiProviders: {e}\n")),
        (None, true) => out.push_str("  no CimiProvider\n"),
        (None, false) => {
            let mut t = Table::new(["name", "ready", "reason", "version", "latency", "in use", "probed", "message"]);
            for p in &report.providers {
                t.row(vec![
                    Cell::plain(&p.name),
                    Cell::styled(&p.ready, Style::of_status(&p.ready)),
                    Cell::plain(&p.reason),
                    Cell::plain(or_dash(p.version.as_deref())),
                    Cell::plain(or_dash(p.latency.as_deref())),
                    Cell::plain(p.in_use_by.map_or("-".to_string(), |n| n.to_string())),
                    Cell::plain(or_dash(p.probed.as_deref())),
                    Cell::plain(if p.ready == "True" { String::new() } else { printer.message(&p.message) }),
                ]);
            }
            out.push_str(&t.render(printer.colour));
        }
    }

    let problems = |title: &str, list: &[Problem], out: &mut String| {
        out.push('\n');
        out.push_str(&printer.heading(&format!("{title} ({})", list.len())));
        out.push('\n');
        if list.is_empty() {
            out.push_str("  none\n");
            return;
        }
        let mut headers: Vec<&str> = ns_header.to_vec();
        headers.extend(["object", "status", "reason", "since", "message"]);
        let mut t = Table::new(headers);
        for p in list {
            let mut row = ns_cell(&p.namespace);
            row.extend([
                Cell::plain(format!("{}/{}", p.kind, p.name)),
                Cell::styled(&p.status, Style::of_status(&p.status)),
                Cell::plain(&p.reason),
                Cell::plain(&p.since),
                Cell::plain(printer.message(&p.message)),
            ]);
            t.row(row);
        }
        out.push_str(&t.render(printer.colour));
    };
    problems("NOT READY", &report.not_ready, &mut out);

    out.push('\n');
    out.push_str(&printer.heading(&format!("PROVIDER JOBS RUNNING ({})", report.jobs.len())));
    out.push('\n');
    if report.jobs.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut headers: Vec<&str> = ns_header.to_vec();
        headers.extend(["object", "action", "state", "progress", "age"]);
        if printer.wide() {
            headers.push("job");
        }
        let mut t = Table::new(headers);
        for j in &report.jobs {
            let mut row = ns_cell(&j.namespace);
            row.extend([
                Cell::plain(format!("{}/{}", j.kind, j.name)),
                Cell::plain(&j.action),
                Cell::styled(&j.state, Style::Warn),
                Cell::plain(j.progress.map_or("-".to_string(), |p| format!("{p}%"))),
                Cell::plain(&j.age),
            ]);
            if printer.wide() {
                row.push(Cell::plain(&j.href));
            }
            t.row(row);
        }
        out.push_str(&t.render(printer.colour));
    }

    problems("STALLED, NEEDS A HUMAN", &report.stalled, &mut out);

    let s = &report.summary;
    let scope =
        if all_namespaces { "in every namespace".to_string() } else { format!("in namespace {}", report.scope) };
    out.push_str(&format!(
        "\n{} object{} {scope}: {} Ready, {} not Ready, {} with a provider Job running, {} Stalled.\n",
        s.objects,
        if s.objects == 1 { "" } else { "s" },
        s.ready,
        s.not_ready,
        s.jobs_running,
        s.stalled
    ));
    out
}

/// The CimiProviders, then the CimiNamespacedProviders of the scope (`-n`, or every namespace with `-A`).
async fn list_providers(kube: &Kube) -> Result<Vec<ProviderView>, String> {
    let cluster = Api::<CimiProvider>::all(kube.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| PluginError::kube("list CimiProviders", e).to_string())?;
    let namespaced = match kube.list_namespace() {
        Some(ns) => Api::<CimiNamespacedProvider>::namespaced(kube.client.clone(), ns),
        None => Api::<CimiNamespacedProvider>::all(kube.client.clone()),
    }
    .list(&ListParams::default())
    .await
    .map_err(|e| PluginError::kube("list CimiNamespacedProviders", e).to_string())?;
    Ok(cluster
        .items
        .into_iter()
        .map(|p| ProviderView::cluster(p, &kube.operator_namespace))
        .chain(namespaced.items.into_iter().map(ProviderView::namespaced))
        .collect())
}

/// Runs `status`.
pub async fn run(kube: &Kube, printer: &Printer) -> Result<ExitCode, PluginError> {
    let providers = list_providers(kube).await;
    let objects = objects::list_managed(kube, kube.list_namespace()).await?;
    let scope = if kube.all_namespaces { "*".to_string() } else { kube.namespace.clone() };
    let report = build(&scope, providers.as_deref().map_err(Clone::clone), &objects);
    if printer.is_document() {
        print!("{}", printer.document(&report)?);
    } else {
        print!("{}", render(&report, kube.all_namespaces, printer));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::{JobStatus, ManagedStatus};
    use crate::api::conditions::{ConditionSet, Status};
    use crate::api::reasons::Reason;
    use crate::plugin::objects::Kind;
    use crate::plugin::output::OutputFormat;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::now())
    }

    fn view(kind: Kind, name: &str, set: impl FnOnce(&mut ConditionSet), job: Option<JobStatus>) -> ObjectView {
        let mut conds = ConditionSet::new(&[], Some(1), now());
        set(&mut conds);
        ObjectView {
            kind,
            namespace: "team-a".into(),
            name: name.into(),
            provider: "lab".into(),
            uid: None,
            generation: Some(1),
            created: Some(now()),
            status: ManagedStatus { conditions: conds.build(), job, ..Default::default() },
        }
    }

    #[test]
    fn the_screen_names_what_is_not_ready_running_and_stalled() {
        let objects = vec![
            view(
                Kind::Machine,
                "web-1",
                |c| {
                    c.set(READY, Status::True, Reason::Available, "the machine is STARTED");
                },
                None,
            ),
            view(
                Kind::System,
                "shop",
                |c| {
                    c.set(READY, Status::False, Reason::WaitingForJob, "3/4 members ready");
                },
                Some(JobStatus {
                    href: "http://p/jobs/9".into(),
                    action: Some("start".into()),
                    state: Some("RUNNING".into()),
                    progress: Some(50),
                    started_at: Some(now()),
                    ..Default::default()
                }),
            ),
            view(
                Kind::Machine,
                "bad-1",
                |c| {
                    c.set(READY, Status::False, Reason::CatalogEntryNotFound, "no machineImages entry named \"x\"");
                    c.set(STALLED, Status::True, Reason::CatalogEntryNotFound, "no machineImages entry named \"x\"");
                },
                None,
            ),
            ObjectView { status: ManagedStatus::default(), ..view(Kind::Volume, "new", |_| {}, None) },
        ];
        let report = build("team-a", Ok(&[]), &objects);
        assert_eq!(report.summary.objects, 4);
        assert_eq!(report.summary.ready, 1);
        assert_eq!(report.summary.not_ready, 3);
        assert_eq!(report.summary.jobs_running, 1);
        assert_eq!(report.summary.stalled, 1);
        assert_eq!(report.jobs[0].action, "start");
        assert_eq!(report.stalled[0].name, "bad-1");
        assert!(report.not_ready.iter().any(|p| p.name == "new" && p.reason == "NoStatusYet"));
        let printer = Printer { format: OutputFormat::Table, colour: false };
        let text = render(&report, false, &printer);
        assert!(text.contains("CimiSystem/shop   start    RUNNING   50%"), "{text}");
        assert!(text.contains("STALLED, NEEDS A HUMAN (1)"), "{text}");
        assert!(text.contains("CimiMachine/bad-1   True     CatalogEntryNotFound"), "{text}");
        assert!(text.contains("no CimiProvider"), "{text}");
        assert!(text.contains(
            "4 objects in namespace team-a: 1 Ready, 3 not Ready, 1 with a provider Job running, 1 Stalled."
        ));
        let all = render(&report, true, &printer);
        assert!(all.contains("NAMESPACE") && all.contains("in every namespace"), "{all}");
        let failed = build("team-a", Err("forbidden".into()), &[]);
        assert!(render(&failed, false, &printer).contains("cannot list CimiProviders: forbidden"));
    }
}
