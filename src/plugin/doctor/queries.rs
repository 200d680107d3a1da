//! The query parameters the operator relies on, tried on raw JSON answers of a catalog collection (and of
//! machines): `$filter` on an attribute and on a property, `$first`/`$last`, `$select` and `$orderby`; then
//! the served shapes and the write-only deviations (see `deviations`).

use serde_json::Value;
use url::Url;

use super::deviations::{not_probed, served_shapes};
use super::report::{Finding, Report, Verdict};
use super::setup::{client, probe_config, raw};
use crate::cimi::query::Query;
use crate::cimi::{ClientConfig, Discovery, Format};
use crate::controller::resource::reads::entries;
use crate::plugin::error::PluginError;

/// The first collection of `names` the endpoint offers.
fn first_of(discovery: &Discovery, names: &[&str]) -> Option<(String, Url)> {
    names.iter().find_map(|n| discovery.collections.get(*n).map(|u| (n.to_string(), u.clone())))
}

/// The query checks, then the deviations, all in JSON (a provider that does not serve JSON is not probed).
pub(super) async fn queries_and_deviations(
    report: &mut Report,
    base: &ClientConfig,
    discovery: &Discovery,
) -> Result<(), PluginError> {
    // Raw JSON answers: the deviation checks look at what was served, before the client's tolerance.
    let json = client(probe_config(base, Format::Json, base.transport.auth.clone()))?;
    if json.discover().await.is_err() {
        for id in ["filter", "property-filter", "dev-paging-ignored", "select", "orderby"] {
            report.push(Finding::new(id, Verdict::NotProbed, "JSON is not served; probed in JSON only", ""));
        }
        return Ok(());
    }
    let catalog = first_of(discovery, &["machineConfigs", "machineImages", "volumeConfigs", "networkConfigs"]);
    let Some((catalog_name, catalog_url)) = catalog else {
        report.push(Finding::new("filter", Verdict::NotProbed, "no catalog collection to query", ""));
        return Ok(());
    };
    let whole = raw(&json, &catalog_url).await.ok().and_then(|r| r.body).unwrap_or(Value::Null);
    let all_entries = entries(&whole);
    let total = whole.get("count").and_then(count_of).unwrap_or(all_entries.len() as u64);

    // $filter on an attribute: nothing should match a name nobody uses.
    let nobody = "kubectl-cimi-doctor-no-such-name";
    let url = with_query(&catalog_url, &format!("$filter={}", enc(&format!("name='{nobody}'"))));
    match raw(&json, &url).await {
        Ok(resp) => {
            let body = resp.body.unwrap_or(Value::Null);
            let served = entries(&body).len();
            let count = body.get("count").and_then(count_of).unwrap_or(served as u64);
            report.push(if served == 0 && count == 0 {
                Finding::new("filter", Verdict::Ok, format!("$filter honoured on {catalog_name}"), "")
            } else {
                Finding::new(
                    "filter",
                    Verdict::Unsupported,
                    format!("$filter ignored on {catalog_name}: {served} entries for a name nobody uses"),
                    "spec.import.filter and catalog references by name cannot be trusted; use hrefs",
                )
            });
            // CIMI omits empty arrays, so an empty answer without its entry array is allowed; the client reads
            // both forms as an empty collection.
            let form = if served == 0 && !has_entry_array(&body) {
                "an empty answer has count 0 and no entry array; read as empty"
            } else {
                "an empty answer keeps its entry array"
            };
            report.push(Finding::new("dev-empty-collection-without-array", Verdict::Ok, form, ""));
        }
        Err(e) => {
            report.push(Finding::new(
                "filter",
                Verdict::Unsupported,
                format!("$filter refused on {catalog_name}: {e}"),
                "spec.import.filter and catalog references by name will not work; use hrefs",
            ));
            report.push(Finding::new(
                "dev-empty-collection-without-array",
                Verdict::NotProbed,
                "no empty answer seen",
                "",
            ));
        }
    }

    // $filter on a property: the observer lists only the operator's own resources with it.
    if let Some(machines) = discovery.collections.get("machines") {
        let url = with_query(machines, &format!("$filter={}", enc(&format!("property['cimi.dev/doctor']='{nobody}'"))));
        report.push(match raw(&json, &url).await {
            Ok(resp) if entries(&resp.body.clone().unwrap_or(Value::Null)).is_empty() => {
                Finding::new("property-filter", Verdict::Ok, "property[...] filters honoured", "")
            }
            Ok(_) => Finding::new(
                "property-filter",
                Verdict::Adapted,
                "property[...] filters ignored",
                "the observer lists every machine of the provider, not only the operator's (more reads)",
            ),
            Err(e) => Finding::new(
                "property-filter",
                Verdict::Adapted,
                format!("property[...] filters refused: {e}"),
                "the observer lists every machine of the provider unfiltered (more reads)",
            ),
        });
    }

    // $first/$last.
    if all_entries.len() >= 2 {
        let url = Query::new().first(1).last(1).apply(&catalog_url);
        let served = match raw(&json, &url).await {
            Ok(resp) => entries(&resp.body.unwrap_or(Value::Null)).len(),
            Err(_) => usize::MAX,
        };
        let (verdict, detail) = if served <= 1 {
            (Verdict::Ok, format!("$first/$last honoured on {catalog_name}"))
        } else {
            (Verdict::Adapted, format!("$first/$last ignored: {served} entries for $first=1&$last=1"))
        };
        let operator = if verdict == Verdict::Ok {
            ""
        } else {
            "each listing reads the whole collection and the client keeps the page it asked for"
        };
        report.push(Finding::new("dev-paging-ignored", verdict, detail, operator));
    } else {
        let why = format!("{catalog_name} has fewer than 2 entries ({total})");
        report.push(Finding::new("dev-paging-ignored", Verdict::NotProbed, why, ""));
    }

    // $select.
    let url = with_query(&catalog_url, "$select=name");
    report.push(match raw(&json, &url).await {
        Ok(resp) => {
            let body = resp.body.unwrap_or(Value::Null);
            let extra = entries(&body).iter().any(|e| {
                e.as_object()
                    .is_some_and(|o| o.keys().any(|k| !matches!(k.as_str(), "name" | "id" | "href" | "resourceURI")))
            });
            if extra {
                Finding::new(
                    "select",
                    Verdict::Adapted,
                    "$select ignored on reads",
                    "whole documents are read; updates still send only what differs",
                )
            } else {
                Finding::new("select", Verdict::Ok, "$select honoured", "")
            }
        }
        Err(e) => Finding::new("select", Verdict::Adapted, format!("$select refused: {e}"), "whole documents are read"),
    });

    // $orderby (meters: the latest sample is asked for with $orderby=timestamp:desc).
    let names: Vec<String> =
        all_entries.iter().filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_string)).collect();
    let distinct = names.iter().collect::<std::collections::BTreeSet<_>>().len();
    if distinct >= 2 {
        let first_name = |order: &'static str| {
            let url = with_query(&catalog_url, &format!("$orderby={}", enc(&format!("name:{order}"))));
            let json = json.clone();
            async move {
                raw(&json, &url).await.ok().and_then(|r| r.body).and_then(|b| {
                    entries(&b).first().and_then(|e| e.get("name").and_then(Value::as_str).map(str::to_string))
                })
            }
        };
        let (asc, desc) = (first_name("asc").await, first_name("desc").await);
        report.push(if asc.is_some() && asc != desc {
            Finding::new("orderby", Verdict::Ok, "$orderby honoured", "")
        } else {
            Finding::new(
                "orderby",
                Verdict::Adapted,
                "$orderby ignored or refused",
                "the latest meter sample is found among all samples served",
            )
        });
    } else {
        report.push(Finding::new("orderby", Verdict::NotProbed, format!("{catalog_name} has fewer than 2 names"), ""));
    }

    served_shapes(report, &json, discovery, &whole, &catalog_name).await;
    not_probed(report);
    Ok(())
}

fn count_of(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn has_entry_array(body: &Value) -> bool {
    body.as_object().is_some_and(|o| o.iter().any(|(k, v)| k != "operations" && v.is_array()))
}

fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn with_query(url: &Url, query: &str) -> Url {
    let mut out = url.clone();
    let q = match url.query() {
        Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
        _ => query.to_string(),
    };
    out.set_query(Some(&q));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_appended() {
        let url = Url::parse("http://p/machines?a=1").expect("url");
        assert_eq!(with_query(&url, "$select=name").as_str(), "http://p/machines?a=1&$select=name");
        assert_eq!(enc("name='x'"), "name%3D%27x%27");
        assert!(has_entry_array(&serde_json::json!({"count": 0, "machines": []})));
        assert!(!has_entry_array(&serde_json::json!({"count": 0, "operations": []})));
        assert_eq!(count_of(&serde_json::json!("3")), Some(3));
    }
}
