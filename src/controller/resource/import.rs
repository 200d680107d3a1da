//! `spec.import`: the one provider resource an object adopts instead of creating one, by href or by a
//! `$filter` that must match exactly one; nothing is adopted when zero or several match, or when a live
//! object's UID tag claims it.

use serde_json::Value;

use super::identity::check_not_claimed;
use super::reads::{entries, read_imported};
use crate::api::common::ImportSpec;
use crate::api::reasons::Reason;
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::context::Context;
use crate::controller::outcome::Problem;
use crate::controller::resource::reads::text;

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
    K: crate::controller::stores::Cached,
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
    check_not_claimed::<K>(ctx, &found, uid, noun).await?;
    Ok(found)
}
