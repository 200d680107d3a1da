//! The Kubernetes side of every controller: status by server-side apply, finalizers, Events, and the
//! Apis of the namespaces this operator instance watches.

use std::fmt::Debug;

use crate::runtime::events::{Event, EventRecorder};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::names::FIELD_MANAGER;
use crate::runtime::Config;

/// One Api per watched namespace (or one for all namespaces), for listing what the operator sees.
pub fn watched_apis<K>(client: &kube::Client, config: &Config) -> Vec<Api<K>>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    if config.namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        config.namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
    }
}

/// The Api of one object's namespace.
pub fn object_api<K>(client: &kube::Client, obj: &K) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default())
}

/// The longest string a status carries: an href is at most 2048 characters; provider text is cut here.
pub const MAX_STATUS_STRING: usize = 2048;
/// The longest Event note the API server accepts is 1 kB; notes are cut to this many bytes.
pub const MAX_EVENT_NOTE_BYTES: usize = 1000;

/// `text` on one line, without control characters, at most `max_chars` characters (cut with `…`).
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 3));
    for (i, c) in text.chars().enumerate() {
        if i == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// `status` with every string cleaned and bounded ([`clean_text`], [`MAX_STATUS_STRING`]): content from a
/// provider reaches status only as a short, clean excerpt (design.md §9.3). Writers compare and write this.
pub fn bounded<S: Serialize + DeserializeOwned + Clone>(status: &S) -> S {
    let Ok(mut value) = serde_json::to_value(status) else { return status.clone() };
    if !clean_strings(&mut value) {
        return status.clone();
    }
    serde_json::from_value(value).unwrap_or_else(|_| status.clone())
}

/// Cleans every string of `value` in place; whether any changed.
fn clean_strings(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    let mut changed = false;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.chars().count() > MAX_STATUS_STRING || s.chars().any(char::is_control) => {
                *s = clean_text(s, MAX_STATUS_STRING);
                changed = true;
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => stack.extend(map.values_mut()),
            _ => {}
        }
    }
    changed
}

/// Writes `status` by server-side apply with the operator's field manager (every string bounded).
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let mut status = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    clean_strings(&mut status);
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Removes `fields` from the object's status with a merge patch: server-side apply removes only fields the
/// operator owns, and a status restored from a backup is owned by whoever restored it.
pub async fn clear_status<K>(api: &Api<K>, name: &str, fields: &[&str]) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let nulls: serde_json::Map<String, serde_json::Value> =
        fields.iter().map(|f| ((*f).to_string(), serde_json::Value::Null)).collect();
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": nulls}))).await?;
    Ok(())
}

/// Whether the object carries `finalizer`.
pub fn has_finalizer<K: Resource>(obj: &K, finalizer: &str) -> bool {
    obj.finalizers().iter().any(|f| f == finalizer)
}

/// Adds `finalizer` (a merge patch guarded by the resourceVersion, so a concurrent change is not lost).
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    if has_finalizer(obj, finalizer) {
        return Ok(());
    }
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(finalizer.to_string());
    patch_finalizers(api, obj, finalizers).await
}

/// Removes `finalizer`.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    if !has_finalizer(obj, finalizer) {
        return Ok(());
    }
    let finalizers: Vec<String> = obj.finalizers().iter().filter(|f| *f != finalizer).cloned().collect();
    match patch_finalizers(api, obj, finalizers).await {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    }
}

async fn patch_finalizers<K>(api: &Api<K>, obj: &K, finalizers: Vec<String>) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

/// The value of an annotation.
pub fn annotation<'a, K: Resource>(obj: &'a K, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

/// Whether an annotation is `"true"`.
pub fn flag<K: Resource>(obj: &K, key: &str) -> bool {
    annotation(obj, key).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Publishes an Event on the object in the background ([`EventRecorder::publish_detached`]: best effort, a
/// failure is logged, never fatal). The note is cleaned and cut to what the API server accepts.
pub async fn publish<K>(recorder: &EventRecorder, obj: &K, warning: bool, reason: &str, action: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let mut note = clean_text(&note, MAX_EVENT_NOTE_BYTES);
    while note.len() > MAX_EVENT_NOTE_BYTES {
        note.pop();
    }
    let event = Event { warning, reason: reason.to_string(), action: action.to_string(), note };
    recorder.publish_detached(event, obj.object_ref(&())).await;
}

/// Publishes the Event of a Ready transition (status or reason changed).
pub async fn ready_transition_event<K>(
    recorder: &EventRecorder,
    obj: &K,
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    new: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) where
    K: Resource<DynamicType = ()>,
{
    use crate::api::conditions::{READY, find};
    use crate::api::reasons::Reason;
    let before = find(old, READY).map(|c| (c.status.clone(), c.reason.clone()));
    let progress = |reason: &str| Reason::from_name(reason).is_some_and(Reason::is_progress);
    if let Some(now) = find(new, READY)
        && before.as_ref() != Some(&(now.status.clone(), now.reason.clone()))
        // Waiting for the Job of an action already announced (Created, ChangingPowerState, Updating...) is the
        // same step: the condition says it, an Event per object would double the Events of a wave.
        && !(now.reason == Reason::WaitingForJob.as_str() && before.as_ref().is_some_and(|(_, r)| progress(r)))
    {
        // Not Ready for a reason other than progress (False, or Unknown when the provider cannot be reached).
        let warning = now.status != "True" && !progress(&now.reason);
        publish(recorder, obj, warning, &now.reason, "Reconcile", now.message.clone()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_one_clean_bounded_line() {
        assert_eq!(clean_text("a\nb\u{1b}[31mc", 100), "a b [31mc");
        assert_eq!(clean_text(&"x".repeat(10), 4), "xxxx…");
        assert_eq!(clean_text("short", 10), "short");
    }

    #[test]
    fn bounded_status_cuts_long_and_control_strings_and_keeps_the_rest() {
        let status = crate::api::common::ManagedStatus {
            id: Some("https://p/machines/1".into()),
            state: Some(format!("STARTED\u{7}{}", "y".repeat(10_000))),
            ..Default::default()
        };
        let b = bounded(&status);
        assert_eq!(b.id, status.id);
        let state = b.state.clone().expect("state");
        assert_eq!(state.chars().count(), MAX_STATUS_STRING + 1);
        assert!(state.starts_with("STARTED ") && !state.contains('\u{7}'));
        assert_eq!(bounded(&b), b, "bounding is idempotent, so a bounded status compares equal to itself");
    }
}
