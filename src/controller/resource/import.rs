//! `spec.import`: the one provider resource an object adopts instead of creating one, by href or by a
//! `$filter` that must match exactly one. Nothing is adopted (and, without the right, nothing is read) when
//! the provider does not grant the object's namespace the right to import with its management policy
//! (`spec.importRights`), when zero or several resources match, when the resource is tagged for another
//! cluster or namespace, or when a live object's UID tag claims it.

use kube::ResourceExt as _;
use serde_json::Value;

use super::identity::check_not_claimed;
use super::reads::{entries, properties_of, read_imported};
use crate::api::common::ManagementPolicy;
use crate::api::managed::Managed;
use crate::api::provider::ImportRight;
use crate::api::reasons::Reason;
use crate::cimi::CimiError;
use crate::cimi::query::Query;
use crate::controller::context::Context;
use crate::controller::namespaces::{selector_matches, selector_text};
use crate::controller::outcome::Problem;
use crate::controller::registry::ProviderConnection;
use crate::controller::resource::reads::text;
use crate::names::{TAG_CLUSTER, TAG_NAMESPACE};

/// [`find_import`] for a kind the observer polls (machines, volumes, networks): announces the adoption and hands
/// the resource to the observer at once, so that its next listing already covers the import and the object's
/// next pass needs no GET of its own.
pub async fn adopt_import<K>(
    ctx: &Context,
    conn: &ProviderConnection,
    obj: &K,
    collection: &'static str,
    noun: &str,
) -> Result<Value, Problem>
where
    K: Managed + crate::controller::stores::Cached,
{
    let found = find_import(ctx, conn, obj, collection, noun).await?;
    let id = text(&found, "id").unwrap_or("?");
    let note = format!("adopted the provider {noun} {id}");
    crate::controller::kubeops::publish(&ctx.recorder, obj, false, "Imported", "Import", note).await;
    if let Some(id) = text(&found, "id") {
        let href = conn.client.resolve(id).await?.to_string();
        let owner = (obj.namespace().unwrap_or_default(), obj.name_any());
        ctx.observer.adopted(&obj.provider_key(), collection, &href, &found, owner);
    }
    Ok(found)
}

/// Finds the one provider resource that `obj`'s `spec.import` names in `collection`, through `conn`: by href,
/// or by a `$filter` that must match exactly one resource. A missing import right, zero or several matches,
/// or a resource that belongs to another cluster, namespace or live object are problems that need a human;
/// nothing is adopted then.
pub async fn find_import<K>(
    ctx: &Context,
    conn: &ProviderConnection,
    obj: &K,
    collection: &str,
    noun: &str,
) -> Result<Value, Problem>
where
    K: Managed + crate::controller::stores::Cached,
{
    let Some(import) = obj.import_spec() else {
        return Err(Problem::stalled(Reason::InvalidSpec, "spec.import is not set"));
    };
    let namespace = obj.namespace().unwrap_or_default();
    check_import_right(ctx, conn, &obj.provider_key(), &namespace, obj.management_policy()).await?;
    let client = &conn.client;
    let uid = obj.uid().unwrap_or_default();
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
                let hrefs: Vec<&str> = some.iter().filter_map(|e| text(e, "id")).take(5).collect();
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
    check_home(&found, &ctx.config.cluster_name, &namespace, noun)?;
    check_not_claimed::<K>(ctx, &found, &uid, noun).await?;
    Ok(found)
}

/// The rights in force: the provider's `importRights`, else ObserveOnly for every namespace that may use it.
fn rights_in_force(conn: &ProviderConnection) -> Vec<ImportRight> {
    conn.import_rights.clone().unwrap_or_else(|| {
        vec![ImportRight { namespaces: None, management_policies: vec![ManagementPolicy::ObserveOnly] }]
    })
}

/// Ok when some import right of the provider selects `namespace` and allows `policy`; else ImportNotAllowed
/// (stalled: a human grants the right, or changes the object).
pub async fn check_import_right(
    ctx: &Context,
    conn: &ProviderConnection,
    provider: &str,
    namespace: &str,
    policy: ManagementPolicy,
) -> Result<(), Problem> {
    let rights = rights_in_force(conn);
    let mut policies_here = Vec::new();
    for right in &rights {
        let selected = match &right.namespaces {
            None => true,
            Some(selector) => {
                let labels = ctx.namespace_labels.get(&ctx.client, namespace).await.map_err(|e| {
                    Problem::transient(
                        Reason::ImportNotAllowed,
                        format!("cannot read the labels of namespace {namespace} to check the import rights: {e}"),
                    )
                })?;
                selector_matches(selector, &labels.unwrap_or_default()).unwrap_or(false)
            }
        };
        if selected {
            policies_here.extend(right.management_policies.iter().copied());
        }
    }
    if policies_here.contains(&policy) {
        return Ok(());
    }
    let policy_name = |p: ManagementPolicy| match p {
        ManagementPolicy::Managed => "Managed",
        ManagementPolicy::ObserveOnly => "ObserveOnly",
    };
    let granted = if policies_here.is_empty() {
        "no import at all".to_string()
    } else {
        let mut names: Vec<&str> = policies_here.iter().map(|p| policy_name(*p)).collect();
        names.sort();
        names.dedup();
        format!("imports with managementPolicy {} only", names.join(" or "))
    };
    let rules: Vec<String> = rights
        .iter()
        .map(|r| {
            let who = r.namespaces.as_ref().map_or("every namespace".to_string(), selector_text);
            let what: Vec<&str> = r.management_policies.iter().map(|p| policy_name(*p)).collect();
            format!("{who}: {}", what.join(", "))
        })
        .collect();
    Err(Problem::stalled(
        Reason::ImportNotAllowed,
        format!(
            "provider {provider} grants namespace {namespace} {granted} (spec.importRights: {}{}); nothing was \
             read or adopted. Import with a policy it grants, or ask the provider's owner for the right",
            rules.join("; "),
            if conn.import_rights.is_none() { ", the default" } else { "" }
        ),
    ))
}

/// Fails when the resource carries the tags of another cluster or namespace: it belongs to someone else, even
/// when the object that tagged it is gone (only its own cluster and namespace may take it over).
fn check_home(resource: &Value, cluster: &str, namespace: &str, noun: &str) -> Result<(), Problem> {
    let props = properties_of(resource);
    let other_cluster = props.get(TAG_CLUSTER).filter(|c| !c.is_empty() && c.as_str() != cluster);
    let other_namespace = props.get(TAG_NAMESPACE).filter(|n| !n.is_empty() && n.as_str() != namespace);
    if other_cluster.is_none() && other_namespace.is_none() {
        return Ok(());
    }
    Err(Problem::stalled(
        Reason::ImportConflict,
        format!(
            "the {noun} {} belongs to {} (its cimi.dev/cluster and cimi.dev/namespace tags); nothing was adopted. \
             Import a resource of your own, or have its owner release it (delete their object with \
             deletionPolicy Orphan)",
            text(resource, "id").unwrap_or("(no id)"),
            format_args!(
                "cluster {} namespace {}",
                props.get(TAG_CLUSTER).map_or("?", String::as_str),
                props.get(TAG_NAMESPACE).map_or("?", String::as_str)
            ),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_resource_of_another_cluster_or_namespace_is_not_imported() {
        let tagged = |cluster: &str, namespace: &str| json!({"id": "m/1", "properties": {"cimi.dev/cluster": cluster, "cimi.dev/namespace": namespace}});
        assert!(check_home(&tagged("prod", "team-a"), "prod", "team-a", "machine").is_ok());
        assert!(check_home(&json!({"id": "m/2", "properties": {"env": "x"}}), "prod", "team-a", "machine").is_ok());
        let other = check_home(&tagged("prod", "team-b"), "prod", "team-a", "machine").expect_err("another namespace");
        assert_eq!(other.reason, Reason::ImportConflict);
        assert!(other.message.contains("cluster prod namespace team-b"), "{}", other.message);
        let elsewhere = check_home(&tagged("staging", "team-a"), "prod", "team-a", "machine").expect_err("cluster");
        assert!(elsewhere.message.contains("cluster staging"), "{}", elsewhere.message);
    }
}
