//! Whose a provider resource is. Everything the operator creates carries, in CIMI `properties`, the UID of its
//! object and its identity (cluster, kind, namespace, name): the UID says "this object's", the identity
//! survives a rebuild of the cluster (a UID does not). Before any create, the object's own resource is looked
//! for by both; one carrying its identity and the UID of an object that no longer exists is adopted again.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};

use super::jobs::job_started;
use super::reads::{carries_uid, properties_of};
use crate::api::common::ManagedStatus;
use crate::api::managed::{Managed, provider_tags};
use crate::api::reasons::Reason;
use crate::cimi::query::{Filter, Query};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::context::Context;
use crate::controller::kubeops;
use crate::controller::outcome::Problem;
use crate::controller::resource::reads::text;
use crate::names::{TAG_CLUSTER, TAG_KIND, TAG_NAME, TAG_NAMESPACE, TAG_UID};

/// The provider-side tags of an object in this cluster (see [`provider_tags`]).
pub fn tags<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K) -> BTreeMap<String, String> {
    provider_tags(obj, &ctx.config.cluster_name)
}

/// The resource this object made before, if any: the one carrying its UID tag, else — after a rebuild of the
/// cluster from Git, where every UID is new — the one carrying its identity (cluster, kind, namespace, name)
/// whose UID tag names an object that no longer exists. That one is adopted: retagged with this object's UID
/// (the edit's Job goes into `status`), recorded as `status.id`, and announced by a `Readopted` Event naming
/// the old UID. Two candidates, or one that a live object claims, need a human (`AdoptionConflict`); nothing
/// is adopted then. `None`: nothing to adopt, create.
pub async fn find_own<K>(
    ctx: &Context,
    client: &CimiClient,
    collection: &str,
    noun: &str,
    obj: &K,
    status: &mut ManagedStatus,
) -> Result<Option<Value>, Problem>
where
    K: Managed + crate::controller::stores::Cached,
{
    let uid = obj.uid().unwrap_or_default();
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let cluster = &ctx.config.cluster_name;
    // One listing for both: tagged with our UID, or with our identity.
    let url = client.collection_url(collection).await?;
    let filter = Filter::property(TAG_UID, &uid)?.or(Filter::property(TAG_CLUSTER, cluster)?
        .and(Filter::property(TAG_NAMESPACE, &namespace)?)
        .and(Filter::property(TAG_NAME, &name)?));
    let page_size = client.config().page_size;
    let listing = client.list_values_at(&url, &Query::new().filter(filter), "", None, page_size).await?;
    if let Some(ours) = listing.entries.iter().find(|e| carries_uid(e, &uid)) {
        return Ok(Some(ours.clone()));
    }
    // A truncated answer must never lead to a second create.
    if listing.truncated {
        return Err(CimiError::Protocol {
            href: url.to_string(),
            excerpt: String::new(),
            reason: format!(
                "the provider counts {} {collection} tagged with this object's UID or identity but served {}; \
                 not creating anything until it serves them all",
                listing.count.unwrap_or(0),
                listing.entries.len()
            ),
        }
        .into());
    }
    // The filter is the provider's: check the tags here too (and the kind, where the resource has one).
    let candidates: Vec<Value> = listing.entries.into_iter().filter(|e| carries_identity(ctx, obj, e)).collect();
    let resource = match candidates.as_slice() {
        [] => return Ok(None),
        [one] => one.clone(),
        many => {
            let hrefs: Vec<&str> = many.iter().filter_map(|e| text(e, "id")).take(5).collect();
            return Err(Problem::stalled(
                Reason::AdoptionConflict,
                format!(
                    "{} provider {noun}s carry this object's identity (cluster {cluster}, {namespace}/{name}): {}; \
                     nothing was adopted. Delete the extra ones on the provider, or import the right one by href",
                    many.len(),
                    hrefs.join(", ")
                ),
            ));
        }
    };
    adopt(ctx, client, noun, obj, resource, status).await.map(Some)
}

/// Whether `resource` carries `obj`'s identity tags: this cluster, its namespace and name, and its kind where
/// the resource states one.
pub fn carries_identity<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, resource: &Value) -> bool {
    let p = properties_of(resource);
    p.get(TAG_CLUSTER) == Some(&ctx.config.cluster_name)
        && p.get(TAG_NAMESPACE).map(String::as_str) == obj.namespace().as_deref()
        && p.get(TAG_NAME).map(String::as_str) == Some(obj.name_any().as_str())
        && p.get(TAG_KIND).is_none_or(|k| *k == K::kind(&()))
}

/// Whether `uid` is the UID of a live object of kind `K` that this operator sees.
async fn live<K: crate::controller::stores::Cached>(ctx: &Context, uid: &str) -> Result<bool, Problem> {
    Ok(!uid.is_empty() && ctx.objects::<K>(None).await?.iter().any(|o| o.uid().as_deref() == Some(uid)))
}

/// Adopts `resource`, which carries `obj`'s identity: unless a live object's UID claims it
/// (`AdoptionConflict`), it is retagged with `obj`'s UID (the edit's Job goes into `status`), recorded as
/// `status.id`, and a `Readopted` Event names the UID it carried before.
pub async fn adopt<K>(
    ctx: &Context,
    client: &CimiClient,
    noun: &str,
    obj: &K,
    resource: Value,
    status: &mut ManagedStatus,
) -> Result<Value, Problem>
where
    K: Managed + crate::controller::stores::Cached,
{
    let id = text(&resource, "id").unwrap_or("(no id)").to_string();
    let old_uid = properties_of(&resource).get(TAG_UID).cloned().unwrap_or_default();
    if live::<K>(ctx, &old_uid).await? {
        return Err(Problem::stalled(
            Reason::AdoptionConflict,
            format!(
                "the provider {noun} {id} carries this object's identity but belongs to the live object with UID \
                 {old_uid}; nothing was adopted"
            ),
        ));
    }
    // Retag first: until the resource carries this object's UID, it is not ours.
    let mut properties = properties_of(&resource);
    properties.extend(tags(ctx, obj));
    let mut changes = Map::new();
    changes.insert("properties".into(), json!(properties));
    let accepted = client.update(&resource, &changes, &[]).await?;
    status.id = Some(client.resolve(&id).await?.to_string());
    if let Some(job) = job_started(&accepted, "edit") {
        status.job = Some(job);
    }
    let before = if old_uid.is_empty() { "no UID".to_string() } else { format!("the UID {old_uid}") };
    kubeops::publish(
        &ctx.recorder,
        obj,
        false,
        "Readopted",
        "Adopt",
        format!(
            "adopted the provider {noun} {id} again by its identity (cluster {}, {}/{}); it was tagged with \
             {before}, of an object that no longer exists",
            ctx.config.cluster_name,
            obj.namespace().unwrap_or_default(),
            obj.name_any()
        ),
    )
    .await;
    let mut adopted = resource;
    adopted["properties"] = json!(properties);
    Ok(adopted)
}

/// Fails when the resource carries the UID tag of another live object of kind `K`: it is managed already, and
/// two objects must never fight over one resource. A UID of an object that no longer exists (the resource was
/// released by hand, or its cluster was lost) does not hold it.
pub async fn check_not_claimed<K: crate::controller::stores::Cached>(
    ctx: &Context,
    resource: &Value,
    uid: &str,
    noun: &str,
) -> Result<(), Problem> {
    let props = properties_of(resource);
    let other = props.get(TAG_UID).filter(|o| !o.is_empty() && o.as_str() != uid);
    if let Some(o) = other
        && !live::<K>(ctx, o).await?
    {
        return Ok(());
    }
    claimed_by(resource, uid, noun)
}

/// The conflict of a resource whose UID tag names another object than `uid`.
fn claimed_by(resource: &Value, uid: &str, noun: &str) -> Result<(), Problem> {
    let props = properties_of(resource);
    match props.get(TAG_UID) {
        Some(other) if !other.is_empty() && other != uid => Err(Problem::stalled(
            Reason::ImportConflict,
            format!(
                "the {noun} {} is already managed by {}/{} (its cimi.dev/uid tag is {other}); nothing was adopted",
                text(resource, "id").unwrap_or("(no id)"),
                props.get(TAG_NAMESPACE).map(String::as_str).unwrap_or("?"),
                props.get(TAG_NAME).map(String::as_str).unwrap_or("?"),
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn a_resource_tagged_for_another_object_is_not_adopted() {
        let mine = json!({"id": "m/1", "properties": {"cimi.dev/uid": "u1"}});
        let other =
            json!({"id": "m/2", "properties": {"cimi.dev/uid": "u2", "cimi.dev/namespace": "a", "cimi.dev/name": "b"}});
        assert!(claimed_by(&mine, "u1", "machine").is_ok());
        assert!(claimed_by(&json!({"id": "m/3"}), "u1", "machine").is_ok());
        let problem = claimed_by(&other, "u1", "machine").expect_err("claimed");
        assert_eq!(problem.reason, Reason::ImportConflict);
        assert!(problem.message.contains("a/b") && problem.stalled, "{}", problem.message);
    }
}
