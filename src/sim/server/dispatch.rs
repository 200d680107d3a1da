//! One classified request to the store: the method and what the path names select the operation (read, PUT,
//! DELETE, action, create), with `If-Match` checked, and the profiles' deviations (no Jobs: 202 without a body;
//! lenient: 500 on a second DELETE, paging ignored).

use axum::http::{HeaderMap, Method, header};
use serde_json::Value;

use super::app::App;
use super::fault_plan::FaultPlan;
use super::params::{names_of, read_query};
use crate::cimi::model::{REL_DELETE, REL_EDIT, action_name};
use crate::sim::config::Profile;
use crate::sim::error::SimError;
use crate::sim::store::{Outcome, Store, Target};

/// Refuses a write whose `If-Match` names neither `*` nor the current ETag (412).
fn if_match(store: &Store, path: &str, headers: &HeaderMap) -> Result<(), SimError> {
    let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let current = store.etag(path).unwrap_or_default();
    if wanted.split(',').any(|t| t.trim() == "*" || t.trim() == current) {
        Ok(())
    } else {
        Err(SimError::new(412, format!("If-Match {wanted} does not match the current ETag {current}")))
    }
}

/// Whether the operation of `rel` (`delete`, `edit`, or an action URI) is withheld by a fault rule.
fn withheld(plan: &FaultPlan, rel: &str) -> bool {
    let name = action_name(rel).unwrap_or(rel);
    plan.withhold.iter().any(|w| w == name)
}

/// Refuses (409) an operation the resource does not offer now because a fault rule withholds it.
fn offered(plan: &FaultPlan, rel: &str) -> Result<(), SimError> {
    if withheld(plan, rel) {
        let name = action_name(rel).unwrap_or(rel);
        return Err(SimError::new(409, format!("{name} is not among the operations this resource offers now")));
    }
    Ok(())
}

/// Runs a classified request against the (locked) store: `json` when the answer is JSON (the fast path of a
/// plain GET), `plan` the faults that shape its Job or its listing.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    app: &App,
    store: &mut Store,
    json: bool,
    method: &Method,
    path: &str,
    target: &Target,
    body: Option<&Value>,
    params: &[(String, String)],
    headers: &HeaderMap,
    plan: &FaultPlan,
) -> Result<Outcome, SimError> {
    let profile = app.config.profile;
    let need_body = || body.ok_or_else(|| SimError::new(400, "this operation needs a body"));
    match (target, method.as_str()) {
        (Target::Missing, "DELETE") if profile == Profile::Lenient1x && store.was_deleted(path) => {
            Err(SimError::new(500, "internal error"))
        }
        (Target::Missing, _) => Err(SimError::new(404, format!("no resource at /{path}"))),
        // The common request: one resource in JSON, as stored.
        (Target::Resource(_), "GET" | "HEAD")
            if json
                && profile != Profile::Lenient1x
                && !params.iter().any(|(k, _)| k == "$select" || k == "$expand")
                && plan.withhold.is_empty()
                && let Some(out) = store.read_json(path) =>
        {
            Ok(out)
        }
        (Target::Cep | Target::Resource(_) | Target::Collection(_), "GET" | "HEAD") => {
            let mut q = read_query(params).map_err(|e| SimError::new(400, e.0))?;
            q.truncate = plan.truncate;
            q.ignore_paging = profile == Profile::Lenient1x;
            let mut out = store.read(path, &q)?;
            if matches!(target, Target::Resource(_))
                && !plan.withhold.is_empty()
                && let Some(ops) = out.body.as_mut().and_then(|b| b.get_mut("operations")).and_then(Value::as_array_mut)
            {
                ops.retain(|op| !withheld(plan, op.get("rel").and_then(Value::as_str).unwrap_or_default()));
            }
            Ok(out)
        }
        (Target::Cep | Target::Resource(_), "PUT") => {
            offered(plan, REL_EDIT)?;
            if_match(store, path, headers)?;
            let select = if params.iter().any(|(k, _)| k == "$select") {
                Some(names_of(params, "$select").map_err(|e| SimError::new(400, e.0))?)
            } else {
                None
            };
            store.update(path, need_body()?, select.as_deref())
        }
        (Target::Resource(_), "DELETE") => {
            offered(plan, REL_DELETE)?;
            if_match(store, path, headers)?;
            let mut out = store.delete(path, plan.job)?;
            if !profile.jobs() && out.status == 202 {
                out.body = None;
            }
            Ok(out)
        }
        (Target::Resource(_), "POST") => {
            let action = body.and_then(|b| b.get("action")).and_then(Value::as_str).unwrap_or_default();
            offered(plan, action.trim())?;
            if_match(store, path, headers)?;
            let mut out = store.action(path, need_body()?, plan.job)?;
            if !profile.jobs() {
                out.status = 202;
                out.body = None;
                out.location = None;
            }
            Ok(out)
        }
        (Target::Collection(_), "POST") => store.create(path, need_body()?, plan.job),
        (_, m) => Err(SimError::new(405, format!("{m} is not supported on /{path}"))),
    }
}
