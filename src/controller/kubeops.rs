//! The Kubernetes side of every controller: status by server-side apply, finalizers, Events, and the
//! Apis of the namespaces this operator instance watches.

use std::fmt::Debug;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Context;
use crate::FIELD_MANAGER;

/// One Api per watched namespace (or one for all namespaces), for listing what the operator sees.
pub fn watched_apis<K>(ctx: &Context) -> Vec<Api<K>>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    if ctx.config.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.config.namespaces.iter().map(|ns| Api::namespaced(ctx.client.clone(), ns)).collect()
    }
}

/// The Api of one object's namespace.
pub fn object_api<K>(ctx: &Context, obj: &K) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default())
}

/// Writes `status` by server-side apply with the operator's field manager.
pub async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> kube::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
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

/// Publishes an Event on the object (best effort: a failure is logged, never fatal).
pub async fn publish<K>(ctx: &Context, obj: &K, warning: bool, reason: &str, action: &str, note: String)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(%error, reason, "cannot publish an Event");
    }
}
