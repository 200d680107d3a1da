//! `CimiProvider.spec.allowedNamespaces`: a namespace label selector that says which namespaces may
//! use a provider. An object elsewhere gets `Ready=False`, reason `NotAllowedNamespace`, and no
//! provider call is made for it.
//!
//! Namespace labels are read with a GET of the one Namespace (which a namespaced RoleBinding can
//! grant) and cached for [`LABELS_TTL`], so a label change is seen within that time at the next
//! reconcile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;

use super::outcome::Problem;
use crate::api::reasons::Reason;

/// How long the labels of a namespace are reused before they are read again.
pub const LABELS_TTL: Duration = Duration::from_secs(10);

/// When a namespace's labels were read, and the labels (`None`: no such namespace).
type Cached = (Instant, Option<BTreeMap<String, String>>);

/// The labels of namespaces, read on demand and cached for [`LABELS_TTL`]. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct NamespaceLabels {
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

impl NamespaceLabels {
    /// The labels of `namespace` (`None` when it does not exist).
    pub async fn get(&self, client: &kube::Client, namespace: &str) -> kube::Result<Option<BTreeMap<String, String>>> {
        if let Some((at, labels)) =
            self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(namespace).cloned()
            && at.elapsed() < LABELS_TTL
        {
            return Ok(labels);
        }
        let api: Api<Namespace> = Api::all(client.clone());
        let labels = api.get_opt(namespace).await?.map(|ns| ns.metadata.labels.unwrap_or_default());
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|_, (at, _)| at.elapsed() < LABELS_TTL);
        cache.insert(namespace.to_string(), (Instant::now(), labels.clone()));
        Ok(labels)
    }
}

/// Whether `labels` match `selector` (matchLabels and matchExpressions, ANDed; an empty selector
/// matches everything). An unknown operator is an error naming it.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let labels_match = selector.match_labels.iter().flatten().all(|(k, v)| labels.get(k).is_some_and(|have| have == v));
    if !labels_match {
        return Ok(false);
    }
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.as_deref().unwrap_or_default();
        let have = labels.get(&expression.key);
        let matched = match expression.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => !have.is_some_and(|v| values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => return Err(format!("unknown operator {other:?} (use In, NotIn, Exists or DoesNotExist)")),
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The selector as a user writes it for kubectl, such as `env=prod,team in (a,b)`.
pub fn selector_text(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector.match_labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            other => format!("{} {other} ({values})", e.key),
        });
    }
    if parts.is_empty() { "(everything)".to_string() } else { parts.join(",") }
}

/// Ok when objects of `namespace` may use `provider`, whose `spec.allowedNamespaces` is `selector`;
/// else the problem to show (`NotAllowedNamespace`, stalled: a human changes labels or the provider).
pub async fn admit(
    labels: &NamespaceLabels,
    client: &kube::Client,
    provider: &str,
    selector: &LabelSelector,
    namespace: &str,
) -> Result<(), Problem> {
    let labels = labels.get(client, namespace).await.map_err(|error| {
        Problem::transient(
            Reason::NotAllowedNamespace,
            format!(
                "cannot read the labels of namespace {namespace} to check CimiProvider {provider}'s \
                 spec.allowedNamespaces (the operator needs get on namespaces): {error}"
            ),
        )
    })?;
    let labels = labels.unwrap_or_default();
    match selector_matches(selector, &labels) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Problem::stalled(
            Reason::NotAllowedNamespace,
            format!(
                "namespace {namespace} may not use CimiProvider {provider}: its labels do not match the provider's \
                 spec.allowedNamespaces ({}); label the namespace to match, or reference another provider",
                selector_text(selector)
            ),
        )),
        Err(message) => Err(Problem::stalled(
            Reason::NotAllowedNamespace,
            format!("CimiProvider {provider} has an invalid spec.allowedNamespaces: {message}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("env", "prod")])),
            match_expressions: Some(vec![
                expression("team", "In", &["a", "b"]),
                expression("frozen", "DoesNotExist", &[]),
            ]),
        };
        assert_eq!(selector_matches(&selector, &labels(&[("env", "prod"), ("team", "a")])), Ok(true));
        assert_eq!(selector_matches(&selector, &labels(&[("env", "dev"), ("team", "a")])), Ok(false));
        assert_eq!(selector_matches(&selector, &labels(&[("env", "prod"), ("team", "c")])), Ok(false));
        assert_eq!(selector_matches(&selector, &labels(&[("env", "prod"), ("team", "b"), ("frozen", "")])), Ok(false));
        assert_eq!(selector_text(&selector), "env=prod,team in (a,b),!frozen");
    }

    #[test]
    fn empty_selector_matches_all_and_unknown_operators_are_named() {
        assert_eq!(selector_matches(&LabelSelector::default(), &labels(&[])), Ok(true));
        let selector = LabelSelector {
            match_expressions: Some(vec![expression("x", "Exists", &[]), expression("y", "NotIn", &["1"])]),
            ..Default::default()
        };
        assert_eq!(selector_matches(&selector, &labels(&[("x", "")])), Ok(true));
        assert_eq!(selector_matches(&selector, &labels(&[("x", ""), ("y", "1")])), Ok(false));
        let bad = LabelSelector { match_expressions: Some(vec![expression("x", "Like", &[])]), ..Default::default() };
        assert!(selector_matches(&bad, &labels(&[])).expect_err("unknown operator").contains("Like"));
    }
}
