//! Monitoring, due by the provider's cadences: meters (the latest sample per aspect, into status and the
//! `cimi_meter_value` gauge) and, through [`super::events`], provider events — of an object, and of a system's
//! members.

use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::batch::BatchedMeters;
use super::events::{LogRead, mirror_events};
use super::poll::{latest_sample, list_at, timing};
use super::shared::*;
use crate::api::common::{EventCursor, ManagedStatus, MeterStatus};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::{ref_href, text};
use crate::runtime::metrics::MeterLabels;

/// Reads meters and mirrors events of `obj`'s provider resource `current` when they are due; returns
/// how long until the next is due. Failures are logged and retried at the next pass: they never fail
/// the reconcile.
pub async fn monitor<K>(
    observer: &Observer,
    provider: &str,
    client: &CimiClient,
    obj: &K,
    current: &Value,
    common: &mut ManagedStatus,
) -> Duration
where
    K: Resource<DynamicType = ()>,
{
    let inner = &observer.inner;
    super::batch::batch(inner, provider);
    let every = timing(inner, provider).await;
    let Some(href) = common.id.clone() else { return every.events.min(every.meters) };
    let (meters_due, first_meters, events_due) = {
        let mut monitors = lock(&inner.monitors);
        let m = monitors.entry(href.clone()).or_default();
        let due = |at: Option<Instant>, every: Duration| at.is_none_or(|t| t.elapsed() >= every);
        (due(m.meters_read, every.meters), m.meters_read.is_none(), due(m.events_read, every.events))
    };
    if meters_due {
        let reading = match super::batch::batched_meters(inner, provider, &href, every.meters) {
            BatchedMeters::Read(meters) => Ok(Some(meters).filter(|m| !m.is_empty())),
            // A resource new since the last batched read: the next one (within a meter interval) reads its
            // meters with everyone else's, instead of about five requests of its own now; it reads them itself
            // only if that one does not show it either.
            BatchedMeters::NotYet if first_meters => Ok(None),
            BatchedMeters::NotYet | BatchedMeters::Unknown => read_meters(inner, client, &href, current).await,
        };
        match reading {
            Ok(Some(meters)) => {
                export_gauges(inner, &K::kind(&()), &obj.namespace().unwrap_or_default(), &obj.name_any(), &meters);
                common.meters = meters;
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, href, "observer: meters not read"),
        }
        lock(&inner.monitors).entry(href.clone()).or_default().meters_read = Some(Instant::now());
    }
    if let Some(signed) = super::batch::events_plan(inner, provider, &href, &href, every.events, events_due) {
        let started = Instant::now();
        let cursor = &mut common.event_cursor;
        let log = LogRead { key: &href, member: None, signed };
        match mirror_events(observer, client, obj, log, current, cursor).await {
            Ok((complete, signature)) => {
                let mut monitors = lock(&inner.monitors);
                let m = monitors.entry(href.clone()).or_default();
                if complete {
                    m.events_direct = Some(started);
                    m.events_seen = signature;
                }
            }
            Err(error) => tracing::debug!(%error, href, "observer: events not read"),
        }
        lock(&inner.monitors).entry(href.clone()).or_default().events_read = Some(Instant::now());
    } else if events_due {
        lock(&inner.monitors).entry(href.clone()).or_default().events_read = Some(Instant::now());
    }
    // While the batched event-log reads cover this log (batched, fresh, and read by the object since its last
    // change), a change of it wakes the object: its own next pass is for its meters only (at 10,000 objects a
    // pass each per event interval would fill the workers, and new objects would wait behind them). Should the
    // batched reads stop, that pass finds them stale and reads the log itself.
    let covered = super::batch::events_plan(inner, provider, &href, &href, every.events, true).is_none();
    let monitors = lock(&inner.monitors);
    let m = monitors.get(&href);
    let left = |at: Option<Instant>, every: Duration| at.map_or(Duration::ZERO, |t| every.saturating_sub(t.elapsed()));
    let meters = left(m.and_then(|m| m.meters_read), every.meters);
    let next = if covered { meters } else { meters.min(left(m.and_then(|m| m.events_read), every.events)) };
    next.max(Duration::from_millis(100))
}

/// One member of a system whose provider events are mirrored onto the system object.
pub struct Member<'a> {
    /// The member's provider href.
    pub href: &'a str,
    /// How notes name it, e.g. `machine web1`.
    pub label: String,
    /// The member's provider document (for its EventLog).
    pub doc: &'a Value,
    /// The last of its events mirrored (from status; moved on by [`monitor_members`]).
    pub cursor: Option<EventCursor>,
}

/// Mirrors the provider events of a system's members onto the system object `obj` when they are due (each
/// member on the provider's `eventInterval`), each note naming the member, and moves each member's cursor.
/// Failures are logged and retried at the next pass; returns how long until the next
/// member is due.
pub async fn monitor_members<K>(
    observer: &Observer,
    provider: &str,
    client: &CimiClient,
    obj: &K,
    system_href: &str,
    members: &mut [Member<'_>],
) -> Duration
where
    K: Resource<DynamicType = ()>,
{
    let inner = &observer.inner;
    super::batch::batch(inner, provider);
    let every = timing(inner, provider).await.events;
    let mut next = every;
    for member in members.iter_mut() {
        let key = member_key(system_href, member.href);
        let last = lock(&inner.monitors).get(&key).and_then(|m| m.events_read);
        let interval_due = last.is_none_or(|at| at.elapsed() >= every);
        let Some(signed) = super::batch::events_plan(inner, provider, &key, member.href, every, interval_due) else {
            if interval_due {
                lock(&inner.monitors).entry(key).or_default().events_read = Some(Instant::now());
            } else if let Some(at) = last {
                next = next.min(every.saturating_sub(at.elapsed()));
            }
            continue;
        };
        let label = Some(member.label.as_str());
        let started = Instant::now();
        let log = LogRead { key: &key, member: label, signed };
        match mirror_events(observer, client, obj, log, member.doc, &mut member.cursor).await {
            Ok((complete, signature)) => {
                if complete {
                    let mut monitors = lock(&inner.monitors);
                    let m = monitors.entry(key.clone()).or_default();
                    m.events_direct = Some(started);
                    m.events_seen = signature;
                }
            }
            Err(error) => tracing::debug!(%error, member = member.href, "observer: member events not read"),
        }
        lock(&inner.monitors).entry(key).or_default().events_read = Some(Instant::now());
    }
    next.max(Duration::from_millis(100))
}

/// The latest sample of each of the resource's meters; `None` when it has none.
pub(super) async fn read_meters(
    inner: &Inner,
    client: &CimiClient,
    href: &str,
    current: &Value,
) -> Result<Option<Vec<MeterStatus>>, CimiError> {
    let known = lock(&inner.monitors).get(href).and_then(|m| m.meters.clone());
    let meters = match known {
        Some(m) => m,
        None => {
            let Some(list) = ref_href(current, "meters") else {
                return Ok(None);
            };
            let url = client.resolve(list).await?;
            let (listing, _) = list_at(client, &url, "Meter", None, inner.page_size, None).await?;
            let mut out = Vec::new();
            for m in listing {
                let Some(samples) = ref_href(&m, "samples") else {
                    continue;
                };
                out.push(MeterRef {
                    aspect: text(&m, "aspect").map(short).unwrap_or_default(),
                    units: text(&m, "units").map(str::to_string),
                    samples: client.resolve(samples).await?,
                });
            }
            lock(&inner.monitors).entry(href.to_string()).or_default().meters = Some(out.clone());
            out
        }
    };
    if meters.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for meter in meters {
        let sample = latest_sample(client, &meter.samples).await?;
        out.push(MeterStatus {
            aspect: meter.aspect.clone(),
            units: meter.units.clone(),
            value: sample.as_ref().and_then(|s| s.get("value")).and_then(scalar_text),
            timestamp: sample.as_ref().and_then(|s| s.get("timestamp")).and_then(Value::as_str).and_then(parse_time),
        });
    }
    out.sort_by(|a, b| a.aspect.cmp(&b.aspect));
    Ok(Some(out))
}

pub(super) fn export_gauges(inner: &Inner, kind: &str, namespace: &str, name: &str, meters: &[MeterStatus]) {
    if inner.gauges_max == 0 {
        return;
    }
    let series: Vec<(MeterLabels, Option<f64>)> = meters
        .iter()
        .map(|m| {
            let labels = MeterLabels {
                kind: kind.to_string(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                aspect: m.aspect.clone(),
                units: m.units.clone().unwrap_or_default(),
            };
            (labels, m.value.as_deref().and_then(|v| v.trim().parse::<f64>().ok()))
        })
        .collect();
    let mut gauges = lock(&inner.gauges);
    // An object's meters are admitted together (whether or not each has a sample yet), so the bound keeps
    // whole objects: the first ones seen, all their aspects.
    let new: Vec<&MeterLabels> = series.iter().map(|(l, _)| l).filter(|l| !gauges.live.contains(*l)).collect();
    if !new.is_empty() {
        if gauges.live.len() + new.len() <= inner.gauges_max {
            for labels in new {
                gauges.live.insert(labels.clone());
            }
        } else if !gauges.warned {
            gauges.warned = true;
            tracing::warn!(max = inner.gauges_max, "--meter-gauges-max reached: further meters are only in status");
        }
    }
    for (labels, value) in series {
        if let Some(value) = value
            && gauges.live.contains(&labels)
        {
            inner.metrics.meter_values.get_or_create(&labels).set(value);
        }
    }
}
