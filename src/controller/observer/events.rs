//! Provider events mirrored as Kubernetes Events, exactly once: from the resource's EventLog after its cursor
//! (`status.eventCursor`); each Event's name is derived from the object's UID and the provider event's id, so
//! one mirrored before a crash lost the cursor is not created again.

use kube::Resource;
use serde_json::Value;

use super::poll::list_at;
use super::shared::*;
use crate::api::common::EventCursor;
use crate::cimi::query::Filter;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::{ref_href, text};

/// One provider event, as mirrored.
pub(super) struct ProviderEvent {
    id: String,
    timestamp: Option<String>,
    warning: bool,
    action: String,
    note: String,
}

pub(super) fn provider_event(e: &Value, member: Option<&str>) -> Option<ProviderEvent> {
    let id = text(e, "id")?.to_string();
    let type_ = text(e, "type").map(short).unwrap_or_else(|| "event".into());
    let content = e.get("content").cloned().unwrap_or(Value::Null);
    let field = |k: &str| content.get(k).and_then(scalar_text);
    let summary = match type_.as_str() {
        "state" => format!(
            "state {} -> {}",
            field("previous").unwrap_or_else(|| "?".into()),
            field("state").unwrap_or_else(|| "?".into())
        ),
        "model" => format!(
            "{}{}",
            field("change").unwrap_or_else(|| "change".into()),
            field("detail").map(|d| format!(": {d}")).unwrap_or_default()
        ),
        "alarm" => format!(
            "alarm {}{}",
            field("code").unwrap_or_default(),
            field("detail").map(|d| format!(": {d}")).unwrap_or_default()
        ),
        "access" => format!(
            "access {} by {}",
            field("operation").unwrap_or_default(),
            field("initiator").unwrap_or_else(|| "?".into())
        ),
        other => other.to_string(),
    };
    let severity = text(e, "severity").unwrap_or("");
    let outcome = text(e, "outcome").unwrap_or("");
    let timestamp = text(e, "timestamp").map(str::to_string);
    let mut note = match member {
        Some(member) => format!("provider event {id}: {member}: {summary}"),
        None => format!("provider event {id}: {summary}"),
    };
    if !severity.is_empty() {
        note.push_str(&format!(" (severity {severity})"));
    }
    if let Some(t) = &timestamp {
        note.push_str(&format!(" at {t}"));
    }
    Some(ProviderEvent {
        id,
        timestamp,
        warning: matches!(severity, "high" | "critical") || matches!(outcome, "Failure" | "Warning"),
        action: type_,
        note,
    })
}

/// The provider event id a mirrored Event's note carries.
pub fn event_id_of_note(note: &str) -> Option<&str> {
    note.strip_prefix("provider event ")?.split(": ").next()
}

/// The events of a log that come after `cursor` (all of them without one), in the log's order.
pub(super) fn after_cursor(mut events: Vec<Value>, cursor: Option<&EventCursor>) -> Vec<Value> {
    let ts = |v: &Value| text(v, "timestamp").and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    events.sort_by_key(ts);
    let Some(cursor) = cursor else { return events };
    if let Some(i) = events.iter().position(|e| text(e, "id") == Some(cursor.id.as_str())) {
        return events.split_off(i + 1);
    }
    // The cursor's event is gone (the log was trimmed): keep what is strictly newer.
    let since = cursor.timestamp.as_deref().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    events.into_iter().filter(|e| since.is_none() || ts(e) > since).collect()
}

/// Which log a [`mirror_events`] reads, for whom.
pub(super) struct LogRead<'a> {
    /// The in-memory monitoring state's key.
    pub(super) key: &'a str,
    /// The system member the log is of (its notes name it), when the object is a system.
    pub(super) member: Option<&'a str>,
    /// Whether the log's signature is wanted.
    pub(super) signed: bool,
}

/// Mirrors the events of `current`'s EventLog that come after `status_cursor` as Kubernetes Events on `obj`
/// (notes prefixed by `log.member` when the resource is not `obj`'s own), and moves the cursor. `log.key` names
/// the in-memory monitoring state. With `log.signed`, the EventLog itself is read first and its signature
/// ([`log_signature`]) returned, for the batched reads to compare with. Returns whether every event after the
/// cursor was mirrored (not when a pass stopped at its bound or at a failed publish).
pub(super) async fn mirror_events<K>(
    observer: &Observer,
    client: &CimiClient,
    obj: &K,
    log: LogRead<'_>,
    current: &Value,
    status_cursor: &mut Option<EventCursor>,
) -> Result<(bool, Option<String>), CimiError>
where
    K: Resource<DynamicType = ()>,
{
    let LogRead { key, member, signed } = log;
    let inner = &observer.inner;
    let known = lock(&inner.monitors).get(key).and_then(|m| m.events_href.clone());
    let mut signature = None;
    let events_url = match known {
        Some(u) if !signed => u,
        _ => {
            let Some(log) = ref_href(current, "eventLog") else {
                return Ok((true, None));
            };
            let log = client.get_value(&client.resolve(log).await?).await?;
            signature = Some(log_signature(&log));
            let Some(events) = ref_href(&log, "events") else {
                return Ok((true, signature));
            };
            let url = client.resolve(events).await?;
            lock(&inner.monitors).entry(key.to_string()).or_default().events_href = Some(url.clone());
            url
        }
    };
    let remembered = lock(&inner.monitors).get(key).and_then(|m| m.cursor.clone());
    let cursor = remembered.or_else(|| status_cursor.clone());
    let since =
        cursor.as_ref().and_then(|c| c.timestamp.as_deref()).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let filter = match since {
        Some(t) => Some(Filter::attr("timestamp")?.ge(t)),
        None => None,
    };
    let (events, _) = list_at(client, &events_url, "Event", filter, inner.page_size, None).await?;
    let fresh = after_cursor(events, cursor.as_ref());
    if fresh.is_empty() {
        return Ok((true, signature));
    }
    let mut complete = fresh.len() <= MAX_EVENTS_PER_PASS;
    let mut cursor = cursor;
    for e in fresh.iter().take(MAX_EVENTS_PER_PASS) {
        let Some(event) = provider_event(e, member) else { continue };
        // Each provider event stays a Kubernetes Event of its own (its id in the note), never a series, and
        // is published once: one mirrored before a crash lost the cursor is refused by its name.
        let mirrored = crate::runtime::events::Event {
            warning: event.warning,
            reason: PROVIDER_EVENT_REASON.to_string(),
            action: event.action,
            note: event.note,
        };
        let published = observer.inner.recorder.publish_once(&mirrored, &obj.object_ref(&()), &event.id).await;
        if let Err(error) = published {
            tracing::warn!(%error, "cannot publish a provider event; retried at the next pass");
            complete = false;
            break;
        }
        cursor = Some(EventCursor { id: event.id, timestamp: event.timestamp });
        lock(&inner.monitors).entry(key.to_string()).or_default().cursor = cursor.clone();
    }
    *status_cursor = cursor;
    Ok((complete, signature))
}

/// What tells that an EventLog changed: its `updated` (whole seconds, often) and its `summary` (counts by
/// severity, which move with every event).
pub(super) fn log_signature(log: &Value) -> String {
    let updated = text(log, "updated").unwrap_or("");
    let summary = log.get("summary").filter(|s| !s.is_null()).map(Value::to_string).unwrap_or_default();
    format!("{updated}|{summary}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, ts: &str) -> Value {
        json!({"id": id, "timestamp": ts, "type": "http://schemas.dmtf.org/cimi/1/event/state",
            "content": {"state": "STARTED", "previous": "STARTING"}, "severity": "low"})
    }

    #[test]
    fn events_after_the_cursor_in_log_order() {
        let log = vec![
            event("e/1", "2026-01-01T00:00:00Z"),
            event("e/2", "2026-01-01T00:00:01Z"),
            event("e/3", "2026-01-01T00:00:01Z"),
            event("e/4", "2026-01-01T00:00:02Z"),
        ];
        let ids = |v: Vec<Value>| v.iter().map(|e| e["id"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
        assert_eq!(ids(after_cursor(log.clone(), None)), ["e/1", "e/2", "e/3", "e/4"]);
        let at2 = EventCursor { id: "e/2".into(), timestamp: Some("2026-01-01T00:00:01Z".into()) };
        assert_eq!(ids(after_cursor(log.clone(), Some(&at2))), ["e/3", "e/4"], "same second, later in the log");
        let gone = EventCursor { id: "e/0".into(), timestamp: Some("2026-01-01T00:00:01Z".into()) };
        assert_eq!(ids(after_cursor(log, Some(&gone))), ["e/4"], "trimmed cursor: strictly newer only");
    }

    #[test]
    fn provider_event_note_carries_the_id() {
        let e = provider_event(&event("http://p/eventLogs/1/events/7", "2026-01-01T00:00:00Z"), None).expect("event");
        assert_eq!(event_id_of_note(&e.note), Some("http://p/eventLogs/1/events/7"));
        assert!(e.note.contains("state STARTING -> STARTED"), "{}", e.note);
        assert!(!e.warning);
        let alarm = json!({"id": "a", "type": "x/event/alarm", "severity": "critical", "content": {"code": "E1"}});
        assert!(provider_event(&alarm, None).expect("alarm").warning);
        let of_member =
            provider_event(&event("http://p/eventLogs/2/events/9", "2026-01-01T00:00:00Z"), Some("machine web1"))
                .expect("event");
        assert_eq!(event_id_of_note(&of_member.note), Some("http://p/eventLogs/2/events/9"));
        assert!(of_member.note.contains(": machine web1: state STARTING -> STARTED"), "{}", of_member.note);
    }
}
