//! What the managed kinds (machines, volumes, networks) share: the provider-side tags, finding a
//! resource again by its UID tag, deciding "gone", diffing the user-owned attributes, following Jobs
//! and deleting or orphaning on the provider.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};
use serde_json::{Map, Value, json};
use url::Url;

use super::outcome::Problem;
use super::registry::ProviderConnection;
use super::context::Context;
use super::{kubeops};
use crate::api::CimiProvider;
use crate::api::common::{DeletionPolicy, ImportSpec, JobStatus, ManagedStatus, ResourceGonePolicy};
use crate::api::managed::Managed;
use crate::api::reasons::Reason;
use crate::cimi::query::{Filter, Query};
use crate::cimi::{Accepted, CimiClient, CimiError};
use crate::names::{TAG_CLUSTER, TAG_KIND, TAG_NAME, TAG_NAMESPACE, TAG_UID};

/// How soon to look again while something runs on the provider.
pub const ACTIVE_REQUEUE: Duration = Duration::from_millis(500);

/// The provider-side tags of an object: its UID, and its identity (cluster, kind, namespace, name).
pub fn tags<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_UID.to_string(), obj.uid().unwrap_or_default()),
        (TAG_CLUSTER.to_string(), ctx.config.cluster_name.clone()),
        (TAG_KIND.to_string(), K::kind(&()).to_string()),
        (TAG_NAMESPACE.to_string(), obj.namespace().unwrap_or_default()),
        (TAG_NAME.to_string(), obj.name_any()),
    ])
}

/// The properties the provider resource should carry: the user's plus our tags.
pub fn desired_properties(
    user: Option<&BTreeMap<String, String>>,
    tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = user.cloned().unwrap_or_default();
    out.retain(|k, _| !k.starts_with("cimi.dev/"));
    out.extend(tags.clone());
    out
}

/// The properties of a provider resource.
pub fn properties_of(resource: &Value) -> BTreeMap<String, String> {
    resource
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// Whether the resource carries our UID tag (ids get reused: without it, it is not ours).
pub fn carries_uid(resource: &Value, uid: &str) -> bool {
    properties_of(resource).get(TAG_UID).is_some_and(|v| v == uid)
}

/// The partial update that makes name, description and properties what the spec says; empty when
/// nothing differs. Properties are sent whole (a PUT of `properties` replaces the map), tags kept.
pub fn attribute_changes(
    name: &str,
    description: Option<&str>,
    properties: &BTreeMap<String, String>,
    observed: &Value,
) -> Map<String, Value> {
    let mut changes = Map::new();
    if observed.get("name").and_then(Value::as_str) != Some(name) {
        changes.insert("name".into(), json!(name));
    }
    if let Some(d) = description
        && observed.get("description").and_then(Value::as_str) != Some(d)
    {
        changes.insert("description".into(), json!(d));
    }
    if &properties_of(observed) != properties {
        changes.insert("properties".into(), json!(properties));
    }
    changes
}

/// The entries of a collection document: its one array of objects (other than `operations`).
pub fn entries(page: &Value) -> Vec<Value> {
    let Value::Object(doc) = page else { return Vec::new() };
    doc.iter()
        .filter(|(k, _)| k.as_str() != "operations")
        .find_map(|(_, v)| v.as_array().filter(|a| a.iter().all(Value::is_object)).cloned())
        .unwrap_or_default()
}

/// The short names of the operations a resource offers now (`edit`, `delete`, `start`...).
pub fn operations(resource: &Value) -> Vec<String> {
    resource
        .get("operations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o.get("available").and_then(Value::as_bool) != Some(false))
        .filter_map(|o| o.get("rel").and_then(Value::as_str))
        .map(|rel| rel.rsplit('/').next().unwrap_or(rel).to_string())
        .collect()
}

/// The provider connection for an object of `namespace`, or the problem that keeps it from being
/// used: the provider does not exist, does not admit the namespace (`spec.allowedNamespaces`; no
/// provider call is made then), or is not Ready.
pub async fn connection(ctx: &Context, provider: &str, namespace: &str) -> Result<ProviderConnection, Problem> {
    let known = ctx.providers.get(provider);
    let allowed = match &known {
        Some(c) => c.allowed_namespaces.clone(),
        None => {
            let api: kube::Api<CimiProvider> = kube::Api::all(ctx.client.clone());
            match api.get_opt(provider).await {
                Ok(None) => {
                    return Err(Problem::stalled(
                        Reason::ProviderNotFound,
                        format!("no CimiProvider named {provider}"),
                    ));
                }
                Ok(Some(p)) => p.spec.allowed_namespaces,
                Err(_) => None,
            }
        }
    };
    if let Some(selector) = &allowed {
        super::namespaces::admit(ctx, provider, selector, namespace).await?;
    }
    match known {
        Some(c) if c.ready => Ok(c),
        Some(c) => Err(Problem::transient(
            Reason::ProviderNotReady,
            format!("CimiProvider {provider} is not Ready: {}", c.message),
        )),
        None => {
            Err(Problem::transient(Reason::ProviderNotReady, format!("CimiProvider {provider} is not connected yet")))
        }
    }
}

/// Reads the resource at `href`: `None` when it is gone (404/410, or it lacks our UID tag).
pub async fn observe(client: &CimiClient, href: &str, uid: &str) -> Result<Option<Value>, CimiError> {
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(v) if carries_uid(&v, uid) => Ok(Some(v)),
        Ok(_) => Ok(None),
        Err(CimiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks for a resource of `collection` that carries our UID tag (a crash between a POST and the
/// status write leaves one behind), with a `$filter` and a check of the tag on what comes back. It
/// fails rather than answer "none" when the provider served fewer entries than its `count` says: a
/// truncated page must never lead to a second create, nor to a finalizer removed too early.
pub async fn find_by_uid(client: &CimiClient, collection: &str, uid: &str) -> Result<Option<Value>, CimiError> {
    let url = client.collection_url(collection).await?;
    let query = Query::new().filter(Filter::property(TAG_UID, uid)?);
    let page = client.list_page_value(&url, &query, "").await?;
    let found = entries(&page);
    if let Some(hit) = found.iter().find(|e| carries_uid(e, uid)) {
        return Ok(Some(hit.clone()));
    }
    let count = page.get("count").and_then(Value::as_u64).unwrap_or(0);
    if count > found.len() as u64 {
        return Err(CimiError::Protocol {
            href: url.to_string(),
            excerpt: String::new(),
            reason: format!(
                "the provider counts {count} {collection} tagged with this object's UID but served {}; \
                 not creating anything until it serves them all",
                found.len()
            ),
        });
    }
    Ok(None)
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
    K: Managed + super::stores::Cached,
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
            let hrefs: Vec<&str> = many.iter().filter_map(|e| e.get("id").and_then(Value::as_str)).take(5).collect();
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
async fn live<K: super::stores::Cached>(ctx: &Context, uid: &str) -> Result<bool, Problem> {
    Ok(!uid.is_empty() && super::stores::objects::<K>(ctx, None).await?.iter().any(|o| o.uid().as_deref() == Some(uid)))
}

/// Adopts `resource`, which carries `obj`'s identity: unless a live object's UID claims it
/// (`AdoptionConflict`), it is retagged with `obj`'s UID (the edit's Job goes into `status`), recorded as
/// `status.id`, and a `Readopted` Event names the UID it carried before.
async fn adopt<K>(
    ctx: &Context,
    client: &CimiClient,
    noun: &str,
    obj: &K,
    resource: Value,
    status: &mut ManagedStatus,
) -> Result<Value, Problem>
where
    K: Managed + super::stores::Cached,
{
    let id = resource.get("id").and_then(Value::as_str).unwrap_or("(no id)").to_string();
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
        ctx,
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

/// Reads an adopted resource at `href`: `None` when the provider answers 404/410. Unlike [`observe`],
/// it does not require our UID tag (an ObserveOnly import never carries it).
pub async fn read_imported(client: &CimiClient, href: &str) -> Result<Option<Value>, CimiError> {
    let url = client.resolve(href).await?;
    match client.get_value(&url).await {
        Ok(v) => Ok(Some(v)),
        Err(CimiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The provider resource an object already points at (`status.id` = `href`), through the observer: the
/// document, or the outcome the pass ends with when it is not there (still being created by a running Job, or
/// gone: the object must be deleted, or deleted and recreated). An imported resource that another object's UID
/// tag claims is a problem too.
pub async fn observe_known<K>(
    ctx: &Context,
    obj: &K,
    at: &super::observer::Lookup<'_>,
    noun: &str,
    status: &mut ManagedStatus,
) -> Result<Result<Value, (super::outcome::Progress, Duration)>, Problem>
where
    K: Managed + super::stores::Cached,
{
    let creating = job_running(status.job.as_ref());
    let uid = obj.uid().unwrap_or_default();
    let (href, imported) = (at.href, at.imported);
    let observed = super::observer::observe_object(ctx, obj, at).await?;
    // Not ours by UID: a status restored with the object (a backup) or copied keeps the href of the resource
    // the object had under its old UID; one that carries this object's identity is adopted again.
    let observed = match observed {
        None if !imported && !creating => match read_imported(at.client, href).await? {
            Some(v) if carries_identity(ctx, obj, &v) => Some(adopt(ctx, at.client, noun, obj, v, status).await?),
            _ => None,
        },
        other => other,
    };
    match observed {
        Some(v) => {
            if imported {
                check_not_claimed::<K>(ctx, &v, &uid, noun).await?;
            }
            Ok(Ok(v))
        }
        None if !imported && creating => Ok(Err((
            super::outcome::Progress::Working(Reason::Creating, "waiting for the create Job".into()),
            ACTIVE_REQUEUE,
        ))),
        None if imported => Err(Problem::stalled(
            Reason::ResourceGone,
            format!("the imported provider {noun} {href} no longer exists; delete the object"),
        )),
        None if obj.resource_gone_policy() == ResourceGonePolicy::Recreate => {
            let message = format!(
                "the provider {noun} {href} no longer exists; creating it again (resourceGonePolicy: Recreate): what \
                 it held is lost"
            );
            kubeops::publish(ctx, obj, true, "Recreating", "Create", message.clone()).await;
            // Fields another manager wrote (a restore of status) are not removed by leaving them out of an apply.
            kubeops::clear_status(&kubeops::object_api(ctx, obj), &obj.name_any(), &["id", "job", "state"]).await?;
            status.id = None;
            status.job = None;
            status.state = None;
            Ok(Err((super::outcome::Progress::Working(Reason::Creating, message), ACTIVE_REQUEUE)))
        }
        None => Err(Problem::stalled(
            Reason::ResourceGone,
            format!(
                "the provider {noun} {href} no longer exists; delete and recreate the object, or set \
                 spec.resourceGonePolicy: Recreate to have it created again"
            ),
        )),
    }
}

/// Finds the one provider resource that `spec.import` names: by href, or by a `$filter` that must
/// match exactly one resource of `collection`. Zero or several matches, or a resource that carries
/// another object's UID tag, are problems that need a human; nothing is adopted then.
pub async fn find_import<K>(
    ctx: &Context,
    client: &CimiClient,
    collection: &str,
    noun: &str,
    import: &ImportSpec,
    uid: &str,
) -> Result<Value, Problem>
where
    K: super::stores::Cached,
{
    let found = if let Some(href) = &import.href {
        match read_imported(client, href).await {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Err(Problem::stalled(
                    Reason::ImportNotFound,
                    format!(
                        "spec.import.href {href} answers 404: the provider has no such {noun}; correct the href \
                         (spec.import is immutable: recreate the object)"
                    ),
                ));
            }
            Err(e @ CimiError::Config(_)) => {
                return Err(Problem::stalled(Reason::ImportNotFound, format!("spec.import.href {href}: {e}")));
            }
            Err(e) => return Err(e.into()),
        }
    } else if let Some(filter) = &import.filter {
        let mut url = client.collection_url(collection).await?;
        let encoded = percent_encoding::utf8_percent_encode(filter, percent_encoding::NON_ALPHANUMERIC).to_string();
        let query = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&$filter={encoded}"),
            _ => format!("$filter={encoded}"),
        };
        url.set_query(Some(&query));
        let page = match client.list_page_value(&url, &Query::new(), "").await {
            Ok(page) => page,
            Err(CimiError::Invalid { message, .. }) => {
                return Err(Problem::stalled(
                    Reason::ProviderRejected,
                    format!("the provider rejected spec.import.filter {filter:?}: {message}"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let matches = entries(&page);
        let count = page.get("count").and_then(Value::as_u64).unwrap_or(matches.len() as u64).max(matches.len() as u64);
        match (count, matches.as_slice()) {
            (0, _) => {
                return Err(Problem::stalled(
                    Reason::ImportNotFound,
                    format!(
                        "spec.import.filter {filter:?} matches no {noun} of the provider; nothing was adopted. \
                         Correct the filter (spec.import is immutable: recreate the object)"
                    ),
                ));
            }
            (1, [one]) => one.clone(),
            (n, some) => {
                let hrefs: Vec<&str> =
                    some.iter().filter_map(|e| e.get("id").and_then(Value::as_str)).take(5).collect();
                return Err(Problem::stalled(
                    Reason::ImportAmbiguous,
                    format!(
                        "spec.import.filter {filter:?} matches {n} {noun}s ({}); it must match exactly one, so \
                         nothing was adopted. Narrow the filter or import by href",
                        hrefs.join(", ")
                    ),
                ));
            }
        }
    } else {
        return Err(Problem::stalled(Reason::InvalidSpec, "spec.import needs an href or a filter"));
    };
    check_not_claimed::<K>(ctx, &found, uid, noun).await?;
    Ok(found)
}

/// Fails when the resource carries the UID tag of another live object of kind `K`: it is managed already, and
/// two objects must never fight over one resource. A UID of an object that no longer exists (the resource was
/// released by hand, or its cluster was lost) does not hold it.
pub async fn check_not_claimed<K: super::stores::Cached>(
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
                resource.get("id").and_then(Value::as_str).unwrap_or("(no id)"),
                props.get(TAG_NAMESPACE).map(String::as_str).unwrap_or("?"),
                props.get(TAG_NAME).map(String::as_str).unwrap_or("?"),
            ),
        )),
        _ => Ok(()),
    }
}

/// The CIMI name and properties an object wants. An imported resource keeps what the spec leaves
/// unset: its own name, and its own properties (plus our tags, unless it is only observed).
pub fn wanted_attributes(
    spec_name: Option<&str>,
    object_name: &str,
    user: Option<&BTreeMap<String, String>>,
    tags: &BTreeMap<String, String>,
    imported: Option<&Value>,
) -> (String, BTreeMap<String, String>) {
    let name = match (spec_name, imported) {
        (Some(n), _) => n.to_string(),
        (None, Some(current)) => current.get("name").and_then(Value::as_str).unwrap_or(object_name).to_string(),
        (None, None) => object_name.to_string(),
    };
    let properties = match (user, imported) {
        (None, Some(current)) => desired_properties(Some(&properties_of(current)), tags),
        _ => desired_properties(user, tags),
    };
    (name, properties)
}

/// What differs between the spec and an observed resource, for an ObserveOnly object (our tags are
/// never expected on it): `None` when nothing does.
pub fn drift_report(changes: &Map<String, Value>, observed: &Value, power: Option<(&str, &str)>) -> Option<String> {
    let mut parts = Vec::new();
    for (key, wanted) in changes {
        let seen = observed.get(key).cloned().unwrap_or(Value::Null);
        parts.push(format!("{key} is {seen} (spec: {wanted})"));
    }
    if let Some((state, wanted)) = power {
        parts.push(format!("state is {state} (spec: {wanted})"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The spec's limit for the operation a Job stands for: `add` is a create, `delete` a delete,
/// anything else an update or action.
pub fn job_limit<K: Managed>(obj: &K, job: &JobStatus) -> (&'static str, Duration) {
    match job.action.as_deref() {
        Some("add") => ("create", obj.create_timeout()),
        Some("delete") => ("delete", obj.delete_timeout()),
        _ => ("update", obj.update_timeout()),
    }
}

/// A running Job that has run longer than the spec allows: its operation, the limit and how long
/// it has run.
pub fn overdue<K: Managed>(obj: &K, job: &JobStatus) -> Option<(&'static str, Duration, Duration)> {
    if !job_running(Some(job)) {
        return None;
    }
    let started = job.started_at.as_ref()?;
    let (operation, limit) = job_limit(obj, job);
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(started.0);
    let elapsed = Duration::try_from(elapsed).unwrap_or_default();
    (elapsed > limit).then_some((operation, limit, elapsed))
}

/// For a provider without Jobs: the Timeout problem of a resource that has stayed in a transient
/// state (`CREATING`, `STARTING`...) longer than the spec allows, counted from when the object
/// started reconciling. The state says which operation: `CREATING` a create, `DELETING` a delete,
/// any other an update or action.
pub fn transient_overdue<K: Managed>(
    obj: &K,
    noun: &str,
    state: &str,
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<Problem> {
    let since = crate::api::conditions::find(conditions, crate::api::conditions::RECONCILING)
        .filter(|c| c.status == "True")?
        .last_transition_time
        .0;
    let (operation, limit) = match state {
        "CREATING" => ("create", obj.create_timeout()),
        "DELETING" => ("delete", obj.delete_timeout()),
        _ => ("update", obj.update_timeout()),
    };
    let elapsed = Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(since)).unwrap_or_default();
    (elapsed > limit).then(|| {
        Problem::stalled(
            Reason::Timeout,
            format!(
                "the {operation} operation timed out: the {noun} is still {state} after {}s, longer than \
                 spec.timeouts.{operation} ({}s); the provider offers no Job to stop",
                elapsed.as_secs(),
                limit.as_secs_f64()
            ),
        )
    })
}

/// The Timeout message of a delete that runs longer than the spec allows (it is left to run).
pub fn delete_overdue<K: Managed>(obj: &K, job: Option<&JobStatus>) -> Option<String> {
    let job = job?;
    let (operation, limit, elapsed) = overdue(obj, job)?;
    Some(format!(
        "the {operation} operation timed out: provider Job {} still ran after {}s, longer than spec.timeouts.{operation} \
         ({}s); the operator keeps waiting for it",
        job.href,
        elapsed.as_secs(),
        limit.as_secs_f64()
    ))
}

/// When a running Job has run longer than the spec allows: asks the provider to stop it (best
/// effort, when it offers `stop`) and returns the Timeout problem that says which operation timed
/// out after how long. `None` while it is within its limit.
pub async fn enforce_timeout<K: Managed>(client: &CimiClient, obj: &K, job: &JobStatus) -> Option<Problem> {
    let (operation, limit, elapsed) = overdue(obj, job)?;
    let mut stopped = "";
    // A delete is left to run (stopping it would only leave the resource behind); others are stopped.
    if operation != "delete"
        && let Ok(url) = client.resolve(&job.href).await
        && let Ok(current) = client.get_value(&url).await
        && operations(&current).iter().any(|o| o == "stop")
        && client.action(&current, "stop", Map::new()).await.is_ok()
    {
        stopped = "; the operator asked the provider to stop the Job";
    }
    Some(Problem::stalled(
        Reason::Timeout,
        format!(
            "the {operation} operation timed out: provider Job {} ({}) still ran after {}s, longer than \
             spec.timeouts.{operation} ({}s){stopped}",
            job.href,
            job.action.as_deref().unwrap_or("?"),
            elapsed.as_secs(),
            limit.as_secs_f64(),
        ),
    ))
}

/// A create whose Job failed (or was stopped) is retried: after a delay that doubles with each
/// failure in a row (reported as `JobFailed` meanwhile), what the failed create left (a resource in
/// ERROR) is deleted, and once it is gone the record is cleared so that the next pass creates again.
/// `Ok(None)`: nothing to recover, or recovered (go on); `Ok(Some(message))`: working on it.
pub async fn recover_failed_create(
    ctx: &Context,
    client: &CimiClient,
    retry_key: &str,
    noun: &str,
    status: &mut ManagedStatus,
    uid: &str,
    was_running: bool,
) -> Result<Option<String>, Problem> {
    let Some(job) = status.job.clone() else { return Ok(None) };
    if job.action.as_deref() != Some("add") || !matches!(job.state.as_deref(), Some("FAILED" | "STOPPED")) {
        return Ok(None);
    }
    let reported = crate::api::conditions::find(&status.conditions, crate::api::conditions::STALLED)
        .filter(|c| c.status == "True" && matches!(c.reason.as_str(), "JobFailed" | "Timeout"))
        .filter(|c| c.message.contains(&job.href));
    if let Some(c) = reported {
        let delay = super::outcome::retry_delay(ctx.failures(retry_key).max(1));
        let since = k8s_openapi::jiff::Timestamp::now().duration_since(c.last_transition_time.0);
        let since = Duration::try_from(since).unwrap_or_default();
        if since < delay {
            let reason = if c.reason == "Timeout" { Reason::Timeout } else { Reason::JobFailed };
            return Err(Problem { retry_after: Some(delay - since), ..Problem::stalled(reason, c.message.clone()) });
        }
    } else if was_running {
        let failures = ctx.failed(retry_key);
        let delay = super::outcome::retry_delay(failures);
        return Err(Problem {
            retry_after: Some(delay),
            ..Problem::stalled(
                Reason::JobFailed,
                format!(
                    "the create Job {} ended {}: {}; the operator removes what it left and creates the {noun} \
                     again in {}s",
                    job.href,
                    job.state.as_deref().unwrap_or("?"),
                    job.status_message.clone().unwrap_or_default(),
                    delay.as_secs()
                ),
            )
        });
    }
    // The delay is over: remove what the failed create left, then create again.
    let left = match &status.id {
        Some(href) => observe(client, href, uid).await?,
        None => None,
    };
    match left {
        Some(resource) => {
            let state = resource.get("state").and_then(Value::as_str).unwrap_or("");
            match state {
                "ERROR" => match client.delete(&resource).await {
                    Ok(_) | Err(CimiError::NotFound { .. }) => {
                        Ok(Some(format!("removing the {noun} whose create failed, to create it again")))
                    }
                    Err(CimiError::NotAllowedNow { .. }) => Ok(Some(format!("waiting to remove the failed {noun}"))),
                    Err(e) => Err(e.into()),
                },
                "DELETING" => Ok(Some(format!("removing the {noun} whose create failed, to create it again"))),
                // It came up after all: forget the failed Job and go on with it.
                _ => {
                    status.job = None;
                    Ok(None)
                }
            }
        }
        None => {
            status.id = None;
            status.job = None;
            status.state = None;
            Ok(None)
        }
    }
}

/// A Job record for an operation just started.
pub fn job_started(accepted: &Accepted, action: &str) -> Option<JobStatus> {
    accepted.job.as_ref().map(|href| JobStatus {
        href: href.to_string(),
        action: Some(action.to_string()),
        state: Some("QUEUED".into()),
        progress: Some(0),
        status_message: None,
        started_at: Some(Time(k8s_openapi::jiff::Timestamp::now())),
    })
}

/// Whether a recorded Job still runs.
pub fn job_running(job: Option<&JobStatus>) -> bool {
    job.is_some_and(|j| !matches!(j.state.as_deref(), Some("SUCCESS" | "FAILED" | "STOPPED")))
}

/// Reads a Job and updates its record. A Job that is gone counts as done.
pub async fn refresh_job(client: &CimiClient, job: &mut JobStatus) -> Result<(), CimiError> {
    let url = Url::parse(&job.href).or_else(|_| Url::parse("http://invalid/"));
    let url = match url {
        Ok(u) => u,
        Err(_) => return Ok(()),
    };
    match client.get_value(&url).await {
        Ok(j) => {
            job.state = j.get("state").and_then(Value::as_str).map(str::to_string).or(job.state.take());
            job.progress = j.get("progress").and_then(Value::as_i64).map(|p| p as i32).or(job.progress);
            job.status_message = j.get("statusMessage").and_then(Value::as_str).map(str::to_string);
            Ok(())
        }
        Err(CimiError::NotFound { .. }) => {
            job.state = Some("SUCCESS".into());
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// One step of deleting (or orphaning) a provider resource.
#[derive(Debug, PartialEq)]
pub enum Cleanup {
    /// Nothing is left to do on the provider: the finalizer may go.
    Done,
    /// The provider is working on it; look again soon.
    Wait(String),
}

/// Deletes (policy Delete) or untags (policy Orphan) the provider resource of an object, one step
/// per call: the finalizer goes only once a GET says the resource is gone.
pub async fn cleanup(
    client: &CimiClient,
    collection: &str,
    status: &mut ManagedStatus,
    uid: &str,
    policy: DeletionPolicy,
) -> Result<Cleanup, CimiError> {
    if job_running(status.job.as_ref())
        && let Some(job) = status.job.as_mut()
    {
        refresh_job(client, job).await?;
        if job_running(Some(job)) {
            return Ok(Cleanup::Wait(format!("waiting for provider Job {}", job.href)));
        }
    }
    let current = match &status.id {
        Some(href) => observe(client, href, uid).await?,
        None => find_by_uid(client, collection, uid).await?,
    };
    let Some(current) = current else { return Ok(Cleanup::Done) };
    if let Some(id) = current.get("id").and_then(Value::as_str) {
        status.id = Some(client.resolve(id).await?.to_string());
    }
    match policy {
        DeletionPolicy::Orphan => {
            let mut props = properties_of(&current);
            props.retain(|k, _| !k.starts_with("cimi.dev/"));
            let mut changes = Map::new();
            changes.insert("properties".into(), json!(props));
            client.update(&current, &changes, &[]).await?;
            Ok(Cleanup::Done)
        }
        DeletionPolicy::Delete => {
            let state = current.get("state").and_then(Value::as_str).unwrap_or("");
            if state == "DELETING" {
                return Ok(Cleanup::Wait("the provider is deleting the resource".into()));
            }
            match client.delete(&current).await {
                Ok(accepted) => {
                    status.job = job_started(&accepted, "delete").or(status.job.take());
                    Ok(Cleanup::Wait("delete requested; waiting until the provider says it is gone".into()))
                }
                Err(CimiError::NotFound { .. }) => Ok(Cleanup::Done),
                Err(CimiError::NotAllowedNow { message, .. }) => {
                    Ok(Cleanup::Wait(format!("the provider cannot delete it now ({state}): {message}")))
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Publishes the Event of a Ready transition (status or reason changed).
pub async fn ready_transition_event<K>(
    ctx: &Context,
    obj: &K,
    old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    new: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) where
    K: Resource<DynamicType = ()>,
{
    use crate::api::conditions::{READY, find};
    let before = find(old, READY).map(|c| (c.status.clone(), c.reason.clone()));
    if let Some(now) = find(new, READY)
        && before.as_ref() != Some(&(now.status.clone(), now.reason.clone()))
    {
        // Not Ready for a reason other than progress (False, or Unknown when the provider cannot be reached).
        let warning = now.status != "True"
            && !matches!(
                now.reason.as_str(),
                "Creating" | "Updating" | "ChangingPowerState" | "WaitingForJob" | "Deleting" | "WaitingForDependency"
            );
        kubeops::publish(ctx, obj, warning, &now.reason, "Reconcile", now.message.clone()).await;
    }
}

/// The provider's pollInterval (default 30 s).
pub async fn poll_interval(ctx: &Context, provider: &str) -> Duration {
    let api: kube::Api<CimiProvider> = kube::Api::all(ctx.client.clone());
    match api.get_opt(provider).await {
        Ok(Some(p)) => crate::api::common::parse_duration(&p.spec.poll_interval).unwrap_or(Duration::from_secs(30)),
        _ => Duration::from_secs(30),
    }
    .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> BTreeMap<String, String> {
        BTreeMap::from([(TAG_UID.to_string(), "u1".to_string()), (TAG_NAME.to_string(), "web-1".to_string())])
    }

    #[test]
    fn user_properties_cannot_override_tags() {
        let user = BTreeMap::from([("team".to_string(), "a".to_string()), (TAG_UID.to_string(), "x".to_string())]);
        let props = desired_properties(Some(&user), &tags());
        assert_eq!(props[TAG_UID], "u1");
        assert_eq!(props["team"], "a");
    }

    #[test]
    fn only_differing_attributes_are_updated_and_tags_are_kept() {
        let props = desired_properties(Some(&BTreeMap::from([("team".into(), "a".into())])), &tags());
        let observed = json!({"name": "web-1", "description": "old", "properties": props});
        assert!(attribute_changes("web-1", None, &props, &observed).is_empty());
        let changes = attribute_changes("web-1", Some("new"), &props, &observed);
        assert_eq!(changes.keys().collect::<Vec<_>>(), ["description"]);
        let more = desired_properties(Some(&BTreeMap::from([("team".into(), "b".into())])), &tags());
        let changes = attribute_changes("web-1", Some("old"), &more, &observed);
        assert_eq!(changes["properties"]["team"], "b");
        assert_eq!(changes["properties"][TAG_UID], "u1", "a PUT of properties keeps the tags");
    }

    #[test]
    fn an_import_keeps_what_the_spec_leaves_unset() {
        let current = json!({"name": "legacy", "properties": {"owner": "ops"}});
        let (name, props) = wanted_attributes(None, "obj", None, &tags(), Some(&current));
        assert_eq!(name, "legacy", "an imported resource keeps its own name");
        assert_eq!(props["owner"], "ops", "and its own properties");
        assert_eq!(props[TAG_UID], "u1", "plus our tags");
        let user = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let (name, props) = wanted_attributes(Some("web"), "obj", Some(&user), &tags(), Some(&current));
        assert_eq!(name, "web");
        assert!(!props.contains_key("owner"), "a spec that sets properties owns them all");
        let (name, props) = wanted_attributes(None, "obj", None, &BTreeMap::new(), None);
        assert_eq!((name.as_str(), props.len()), ("obj", 0));
    }

    #[test]
    fn drift_is_described_field_by_field() {
        let observed = json!({"description": "by hand"});
        let mut changes = Map::new();
        changes.insert("description".into(), json!("spec"));
        let report = drift_report(&changes, &observed, Some(("STOPPED", "STARTED"))).expect("drift");
        assert!(report.contains("description is \"by hand\" (spec: \"spec\")"), "{report}");
        assert!(report.contains("state is STOPPED (spec: STARTED)"), "{report}");
        assert_eq!(drift_report(&Map::new(), &observed, None), None);
    }

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

    #[test]
    fn timeouts_follow_the_operation_of_the_job() {
        use crate::api::common::Timeouts;
        let mut m = crate::api::CimiMachine::new("m", Default::default());
        m.spec.timeouts = Some(Timeouts { create: Some("1h".into()), update: Some("1s".into()), delete: None });
        let ago = |secs: i64| {
            Some(Time(k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs)))
        };
        let job = |action: &str, state: &str, started_at| JobStatus {
            href: "j/1".into(),
            action: Some(action.into()),
            state: Some(state.into()),
            started_at,
            ..Default::default()
        };
        assert_eq!(overdue(&m, &job("add", "RUNNING", ago(5))), None, "within the create limit");
        let (op, limit, elapsed) = overdue(&m, &job("start", "RUNNING", ago(5))).expect("over the update limit");
        assert_eq!((op, limit), ("update", Duration::from_secs(1)));
        assert!(elapsed >= Duration::from_secs(5));
        assert_eq!(overdue(&m, &job("start", "SUCCESS", ago(5))), None, "a finished Job never times out");
        assert!(delete_overdue(&m, Some(&job("delete", "RUNNING", ago(16 * 60)))).is_some(), "default delete limit");
        assert!(delete_overdue(&m, None).is_none());
    }

    #[test]
    fn a_transient_state_without_a_job_times_out_too() {
        use crate::api::common::Timeouts;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let mut m = crate::api::CimiMachine::new("m", Default::default());
        m.spec.timeouts = Some(Timeouts { update: Some("1s".into()), ..Default::default() });
        let reconciling = |status: &str, secs: i64| {
            vec![Condition {
                type_: "Reconciling".into(),
                status: status.into(),
                reason: "ChangingPowerState".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(
                    k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(secs),
                ),
            }]
        };
        let p = transient_overdue(&m, "machine", "STARTING", &reconciling("True", 5)).expect("overdue");
        assert_eq!(p.reason, Reason::Timeout);
        assert!(p.message.contains("update") && p.message.contains("STARTING"), "{}", p.message);
        assert!(transient_overdue(&m, "machine", "CREATING", &reconciling("True", 5)).is_none(), "create: 15m");
        assert!(transient_overdue(&m, "machine", "STARTING", &reconciling("False", 5)).is_none());
    }

    #[test]
    fn gone_means_without_our_uid() {
        assert!(carries_uid(&json!({"properties": {"cimi.dev/uid": "u1"}}), "u1"));
        assert!(!carries_uid(&json!({"properties": {"cimi.dev/uid": "u2"}}), "u1"));
        assert!(!carries_uid(&json!({"name": "reused id"}), "u1"));
    }

    #[test]
    fn operations_by_short_name() {
        let m = json!({"operations": [
            {"rel": "edit", "href": "m/1"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/start", "href": "m/1/start"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/stop", "href": "m/1/stop", "available": false}
        ]});
        assert_eq!(operations(&m), ["edit", "start"]);
    }

    #[test]
    fn entries_are_the_array_of_objects() {
        let page = json!({"count": 1, "operations": [{"rel": "add"}], "machines": [{"id": "m/1"}]});
        assert_eq!(entries(&page).len(), 1);
        assert!(entries(&json!({"count": 0})).is_empty());
    }
}
