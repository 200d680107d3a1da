//! The deviations of the CIMI reference's section 7 (`dev-...` findings): those seen in what the provider
//! serves (numbers as strings, dates, entries without `resourceURI`, delete rels, image locations, operation
//! hrefs), and those only a write would show, named as not probed with what the operator does if they occur.

use serde_json::Value;

use super::report::{Finding, Report, Verdict};
use super::setup::raw;
use crate::cimi::model::action_uri;
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, Discovery};
use crate::controller::resource::reads::entries;

/// The deviations seen in what the provider serves: typed values, dates, entries, image locations,
/// delete rels, operation hrefs.
pub(super) async fn served_shapes(
    report: &mut Report,
    json: &CimiClient,
    discovery: &Discovery,
    catalog: &Value,
    catalog_name: &str,
) {
    let catalog_entries = entries(catalog);
    let strings = catalog_entries
        .iter()
        .any(|e| ["cpu", "memory", "capacity", "mtu"].iter().any(|k| e.get(*k).is_some_and(Value::is_string)));
    report.push(if strings {
        Finding::new(
            "dev-strings-for-numbers",
            Verdict::Adapted,
            format!("numbers served as strings in {catalog_name} (such as \"cpu\": \"1\")"),
            "read as numbers",
        )
    } else {
        Finding::new("dev-strings-for-numbers", Verdict::Ok, "numbers served as numbers", "")
    });
    let bad_date = |v: &Value| {
        ["created", "updated"].iter().any(|k| {
            v.get(*k).and_then(Value::as_str).is_some_and(|d| chrono::DateTime::parse_from_rfc3339(d).is_err())
        })
    };
    let dates = catalog_entries.iter().any(bad_date);
    report.push(if dates {
        Finding::new(
            "dev-dates",
            Verdict::Adapted,
            "dates that are not xsd:dateTime (such as 2024-01-02 03:04:05)",
            "read leniently; unreadable dates are ignored",
        )
    } else {
        Finding::new("dev-dates", Verdict::Ok, "dates are xsd:dateTime", "")
    });
    let without_uri = catalog_entries.iter().any(|e| e.get("resourceURI").is_none());
    report.push(if without_uri && !catalog_entries.is_empty() {
        Finding::new(
            "dev-entries-without-resource-uri",
            Verdict::Adapted,
            "collection entries without resourceURI",
            "the type is taken from the collection",
        )
    } else if catalog_entries.is_empty() {
        Finding::new("dev-entries-without-resource-uri", Verdict::NotProbed, "no entries to look at", "")
    } else {
        Finding::new("dev-entries-without-resource-uri", Verdict::Ok, "entries carry resourceURI", "")
    });
    let long_delete = action_uri("delete");
    let delete_rels = catalog_entries.iter().any(|e| {
        e.get("operations")
            .and_then(Value::as_array)
            .is_some_and(|ops| ops.iter().any(|o| o.get("rel").and_then(Value::as_str) == Some(long_delete.as_str())))
    });
    report.push(if delete_rels {
        Finding::new(
            "dev-both-delete-rels",
            Verdict::Adapted,
            format!("{long_delete} used as a delete rel"),
            "both rels are read as delete",
        )
    } else {
        Finding::new("dev-both-delete-rels", Verdict::Ok, "delete is the plain delete rel", "")
    });
    if let Some(images) = discovery.collections.get("machineImages") {
        let body = raw(json, images).await.ok().and_then(|r| r.body).unwrap_or(Value::Null);
        let list = entries(&body);
        let as_string = list.iter().any(|e| e.get("imageLocation").is_some_and(Value::is_string));
        report.push(if list.is_empty() {
            Finding::new("dev-image-location", Verdict::NotProbed, "no machine image to look at", "")
        } else if as_string {
            Finding::new("dev-image-location", Verdict::Adapted, "imageLocation served as a string", "read as {href}")
        } else {
            Finding::new("dev-image-location", Verdict::Ok, "imageLocation served as {href}", "")
        });
    }
    // Operation hrefs: the add href of machines (and of a machine's volumes) against the collection URL.
    if let Some(machines) = discovery.collections.get("machines") {
        let body = raw(json, &Query::new().first(1).last(1).apply(machines)).await.ok().and_then(|r| r.body);
        let add = body.as_ref().and_then(|b| crate::cimi::client::find_operation(b, "add").and_then(Result::ok));
        let resolved = match add {
            Some(h) => json.resolve(&h).await.ok(),
            None => None,
        };
        let mut differs = resolved.as_ref().is_some_and(|a| a != machines);
        let mut looked_at_volumes = false;
        if let Some(machine) = body.as_ref().and_then(|b| entries(b).into_iter().next())
            && let Some(volumes) = machine.get("volumes").and_then(|v| v.get("href")).and_then(Value::as_str)
            && let Ok(url) = json.resolve(volumes).await
            && let Ok(resp) = raw(json, &url).await
            && let Some(add) =
                resp.body.as_ref().and_then(|b| crate::cimi::client::find_operation(b, "add").and_then(Result::ok))
        {
            looked_at_volumes = true;
            differs |= json.resolve(&add).await.is_ok_and(|a| a != url);
        }
        report.push(if differs {
            Finding::new(
                "dev-operation-hrefs",
                Verdict::Adapted,
                "operation hrefs differ from the collection URLs",
                "the operator always follows the hrefs it is given",
            )
        } else {
            let seen = if looked_at_volumes { "machines and a machine's volumes" } else { "machines" };
            Finding::new(
                "dev-operation-hrefs",
                Verdict::Ok,
                format!("the add href of {seen} is the collection URL"),
                "",
            )
        });
    }
}

/// The deviations that only a write would show: named, with what the operator does if they occur.
pub(super) fn not_probed(report: &mut Report) {
    for (id, what, operator) in [
        ("dev-html-empty-bodies", "empty 200/202 bodies labelled text/html (needs a write)", "read as no body"),
        (
            "dev-html-404-for-405",
            "unsupported methods answered 404 with an HTML page (needs a write)",
            "a 404 is confirmed by a GET before anything is concluded",
        ),
        (
            "dev-detach-answers-collection",
            "a detach answering 200 with the collection (needs a write)",
            "accepted as done",
        ),
        (
            "dev-delete-500",
            "deleting a deleted resource answering 500 (needs a write)",
            "re-read: a GET that answers 404 means gone",
        ),
        (
            "dev-error-shape",
            "error bodies as a Job, {code, message, error}, or text (needs a failing request)",
            "every shape is read for its message",
        ),
        (
            "dev-capacity-units",
            "capacity units applied inconsistently (cannot be seen from outside)",
            "capacities are reported as served",
        ),
        (
            "dev-ids-reused",
            "ids reused after deletion (cannot be seen from outside)",
            "the operator matches its cimi.dev/uid tag, not only the id",
        ),
    ] {
        report.push(Finding::new(id, Verdict::NotProbed, what, operator));
    }
}
