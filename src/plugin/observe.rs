//! What the operator observed of an object, beyond its conditions:
//! - `meters KIND/NAME`: the latest provider meter samples (`status.meters`);
//! - `events KIND/NAME`: the provider events mirrored on it as Kubernetes Events (reason `ProviderEvent`),
//!   and with `--all` the operator's own Events of it.
//! - `drift KIND/NAME`: each field where the provider resource differs from the spec (`status.drift`), with
//!   since when.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::error::PluginError;
use super::kubeconn::Kube;
use super::objects::{self, Kind, Target};
use super::output::{Cell, Printer, Style, Table, age, or_dash};
use crate::api::common::{DriftedField, MeterStatus};
use crate::controller::observer::{PROVIDER_EVENT_REASON, event_id_of_note};

/// The meters of an object, as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetersView {
    /// `CimiMachine/web-1`.
    pub object: String,
    /// The latest sample per aspect.
    pub meters: Vec<MeterStatus>,
}

/// The meters as text; when there are none, why there may be none.
pub fn render_meters(view: &MetersView, meter_interval: Option<&str>, printer: &Printer) -> String {
    if view.meters.is_empty() {
        return format!(
            "{} has no meter samples yet: the operator reads meters every meterInterval of its CimiProvider ({}), \
             once the object is Ready; a provider without meters has none\n",
            view.object,
            meter_interval.unwrap_or("5m by default")
        );
    }
    let mut t = Table::new(["aspect", "value", "units", "age", "timestamp"]);
    for m in &view.meters {
        t.row(vec![
            Cell::plain(&m.aspect),
            Cell::plain(or_dash(m.value.as_deref())),
            Cell::plain(or_dash(m.units.as_deref())),
            Cell::plain(m.timestamp.as_ref().map(age).unwrap_or_else(|| "-".into())),
            Cell::plain(m.timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_else(|| "-".into())),
        ]);
    }
    t.render(printer.colour)
}

/// Runs `meters`.
pub async fn meters(kube: &Kube, target: &Target, printer: &Printer) -> Result<ExitCode, PluginError> {
    let view = objects::get_view(kube, target).await?;
    let out = MetersView { object: view.label(), meters: view.meters().to_vec() };
    if printer.is_document() {
        print!("{}", printer.document(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let interval = objects::get_provider(kube, &view.provider).await.ok().map(|p| p.settings.meter_interval);
    print!("{}", render_meters(&out, interval.as_deref(), printer));
    Ok(ExitCode::SUCCESS)
}

/// The drift of an object, as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftView {
    /// `CimiMachine/web-1`.
    pub object: String,
    /// The `Synced` condition's status and reason, such as `False` and `Drifted`.
    pub synced: String,
    /// Each field that differs.
    pub drift: Vec<DriftedField>,
}

/// The drift as text; when there is none, what the operator last said of it.
pub fn render_drift(view: &DriftView, synced_message: Option<&str>, printer: &Printer) -> String {
    if view.drift.is_empty() {
        let said = synced_message.filter(|m| !m.is_empty()).map(|m| format!(" ({m})")).unwrap_or_default();
        return format!(
            "{}: no drift{said}: the provider resource matched the spec when last observed (Managed objects are \
             corrected; ObserveOnly ones are listed here)\n",
            view.object
        );
    }
    let mut t = Table::new(["field", "desired", "observed", "since"]);
    for d in &view.drift {
        t.row(vec![
            Cell::plain(&d.field),
            Cell::plain(printer.message(&d.desired)),
            Cell::styled(printer.message(&d.observed), Style::Bad),
            Cell::plain(age(&d.since)),
        ]);
    }
    format!("{} differs from its spec ({}):\n{}", view.object, view.synced, t.render(printer.colour))
}

/// Runs `drift`.
pub async fn drift(kube: &Kube, target: &Target, printer: &Printer) -> Result<ExitCode, PluginError> {
    if target.kind == Kind::Provider {
        return Err(PluginError::Usage("drift is reported on managed objects, not on a CimiProvider".into()));
    }
    let view = objects::get_view(kube, target).await?;
    let synced = view.condition(crate::api::conditions::SYNCED);
    let out = DriftView {
        object: view.label(),
        synced: synced.map(|c| format!("Synced={} {}", c.status, c.reason)).unwrap_or_else(|| "Synced unknown".into()),
        drift: view.status.drift.clone(),
    };
    if printer.is_document() {
        print!("{}", printer.document(&out)?);
    } else {
        print!("{}", render_drift(&out, synced.map(|c| c.message.as_str()), printer));
    }
    Ok(ExitCode::SUCCESS)
}

/// One Event as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    /// When it happened (the latest time of a series).
    pub time: Option<Time>,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub type_: String,
    /// The reason (`ProviderEvent` for a mirrored provider event).
    pub reason: String,
    /// The action (for a provider event: its CIMI type, such as `state`).
    pub action: String,
    /// The text.
    pub message: String,
    /// How many times it was seen.
    pub count: i32,
}

/// The time an Event is shown at: its latest occurrence.
fn event_time(e: &Event) -> Option<Time> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| Time(t.0))
        .or_else(|| e.event_time.as_ref().map(|t| Time(t.0)))
        .or_else(|| e.last_timestamp.clone())
        .or_else(|| e.first_timestamp.clone())
        .or_else(|| e.metadata.creation_timestamp.clone())
}

/// The lines of a list of Events, oldest first.
pub fn event_lines(events: &[Event]) -> Vec<EventLine> {
    let mut lines: Vec<EventLine> = events
        .iter()
        .map(|e| EventLine {
            time: event_time(e),
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            action: e.action.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1).max(1),
        })
        .collect();
    lines.sort_by(|a, b| a.time.as_ref().map(|t| t.0).cmp(&b.time.as_ref().map(|t| t.0)));
    lines
}

/// The Events as text.
pub fn render_events(object: &str, lines: &[EventLine], all: bool, printer: &Printer) -> String {
    if lines.is_empty() {
        return if all {
            format!("no Events for {object}\n")
        } else {
            format!(
                "no provider events mirrored on {object} yet: the operator reads the provider's EventLog every \
                 eventInterval of its CimiProvider, once the object is Ready (--all also shows the operator's own \
                 Events)\n"
            )
        };
    }
    let mut headers = vec!["age", "type"];
    if all {
        headers.push("reason");
    }
    headers.extend(["action", "message"]);
    if printer.wide() {
        headers.push("provider event");
    }
    let mut t = Table::new(headers);
    for l in lines {
        let mut row = vec![
            Cell::plain(l.time.as_ref().map(age).unwrap_or_else(|| "-".into())),
            Cell::styled(&l.type_, if l.type_ == "Warning" { Style::Bad } else { Style::Plain }),
        ];
        if all {
            row.push(Cell::plain(&l.reason));
        }
        row.push(Cell::plain(&l.action));
        // A mirrored provider event reads `provider event <id>: <what happened>`: the id (a long href) goes
        // to its own column with -o wide.
        let id = event_id_of_note(&l.message).filter(|_| l.reason == PROVIDER_EVENT_REASON);
        let text = match id {
            Some(id) => l.message.strip_prefix(&format!("provider event {id}: ")).unwrap_or(&l.message),
            None => l.message.as_str(),
        };
        let count = if l.count > 1 { format!(" (x{})", l.count) } else { String::new() };
        row.push(Cell::plain(format!("{}{count}", printer.message(text))));
        if printer.wide() {
            row.push(Cell::plain(id.unwrap_or("-")));
        }
        t.row(row);
    }
    t.render(printer.colour)
}

/// Runs `events`.
pub async fn events(kube: &Kube, target: &Target, all: bool, printer: &Printer) -> Result<ExitCode, PluginError> {
    if target.kind == Kind::Provider {
        return Err(PluginError::Usage("events are mirrored on managed objects, not on a CimiProvider".into()));
    }
    let view = objects::get_view(kube, target).await?;
    let uid = view.uid.clone().unwrap_or_default();
    let mut selector = format!("involvedObject.uid={uid}");
    if !all {
        selector.push_str(&format!(",reason={PROVIDER_EVENT_REASON}"));
    }
    let api: Api<Event> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let list = api
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(|e| PluginError::kube(&format!("list the Events of {}", target.display()), e))?;
    let lines = event_lines(&list.items);
    if printer.is_document() {
        print!("{}", printer.document(&serde_json::json!({"object": view.label(), "events": lines}))?);
    } else {
        print!("{}", render_events(&view.label(), &lines, all, printer));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::output::OutputFormat;

    fn event(message: &str, second: i64, type_: &str) -> Event {
        Event {
            message: Some(message.into()),
            reason: Some(PROVIDER_EVENT_REASON.into()),
            action: Some("state".into()),
            type_: Some(type_.into()),
            last_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::from_second(second).expect("ts"))),
            ..Default::default()
        }
    }

    #[test]
    fn events_are_listed_oldest_first() {
        let lines = event_lines(&[
            event("provider event e2: state STARTING -> STARTED", 200, "Normal"),
            event("provider event e1: state CREATING -> STOPPED", 100, "Warning"),
        ]);
        assert!(lines[0].message.contains("e1") && lines[1].message.contains("e2"));
        let p = Printer { format: OutputFormat::Table, colour: false };
        let text = render_events("CimiMachine/web-1", &lines, false, &p);
        assert!(text.starts_with("AGE"), "{text}");
        assert!(text.contains("Warning   state    state CREATING -> STOPPED"), "{text}");
        let wide =
            render_events("CimiMachine/web-1", &lines, false, &Printer { format: OutputFormat::Wide, colour: false });
        assert!(wide.contains("PROVIDER EVENT") && wide.contains("   e1"), "{wide}");
        assert!(render_events("CimiMachine/web-1", &[], false, &p).contains("no provider events mirrored"));
    }

    #[test]
    fn drift_field_by_field_or_what_synced_said() {
        let p = Printer { format: OutputFormat::Table, colour: false };
        let since = Time(k8s_openapi::jiff::Timestamp::now());
        let view = DriftView {
            object: "CimiMachine/legacy".into(),
            synced: "Synced=False Drifted".into(),
            drift: vec![DriftedField {
                field: "spec.description".into(),
                desired: "web".into(),
                observed: "changed by hand".into(),
                since,
            }],
        };
        let text = render_drift(&view, None, &p);
        assert!(text.starts_with("CimiMachine/legacy differs from its spec (Synced=False Drifted):"), "{text}");
        assert!(text.contains("FIELD") && text.contains("spec.description   web       changed by hand"), "{text}");
        let none = DriftView { drift: Vec::new(), synced: "Synced=True Available".into(), ..view };
        let text = render_drift(&none, Some("the provider machine matches the spec"), &p);
        assert!(text.contains("no drift (the provider machine matches the spec)"), "{text}");
    }

    #[test]
    fn meters_or_why_there_are_none() {
        let p = Printer { format: OutputFormat::Table, colour: false };
        let empty = MetersView { object: "CimiMachine/web-1".into(), meters: Vec::new() };
        assert!(render_meters(&empty, Some("2s"), &p).contains("every meterInterval of its CimiProvider (2s)"));
        let full = MetersView {
            object: "CimiMachine/web-1".into(),
            meters: vec![MeterStatus {
                aspect: "cpu".into(),
                units: Some("percent".into()),
                value: Some("12.5".into()),
                timestamp: None,
            }],
        };
        let text = render_meters(&full, None, &p);
        assert!(text.contains("cpu      12.5    percent"), "{text}");
    }
}
