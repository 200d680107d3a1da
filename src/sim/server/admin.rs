//! The admin API outside the CIMI tree, behind the same credentials: `GET/PUT /_sim/faults`,
//! `GET /_sim/stats`, `POST /_sim/reset`.

use axum::http::Method;
use axum::response::Response;
use serde_json::json;

use super::app::{App, FaultState};
use super::respond::json_response;
use crate::sim::catalog::Catalog;
use crate::sim::faults::FaultSet;
use crate::sim::stats::SimStats;
use crate::sim::store::Store;
use crate::sim::sync::lock;

/// Answers a request under `/_sim/`.
pub async fn admin(app: &App, method: &Method, path: &str, body: &[u8]) -> Response {
    match (method.as_str(), path) {
        ("GET", "_sim/faults") => json_response(200, &json!(lock(&app.faults).set)),
        ("PUT", "_sim/faults") => match serde_json::from_slice::<FaultSet>(body) {
            Ok(set) => {
                lock(&app.faults).set = set;
                json_response(200, &json!(lock(&app.faults).set))
            }
            Err(e) => json_response(400, &json!({"message": format!("invalid fault set: {e}")})),
        },
        ("GET", "_sim/stats") => json_response(200, &json!(*lock(&app.stats))),
        ("POST", "_sim/reset") => {
            reset(app);
            json_response(200, &json!({"reset": true}))
        }
        _ => json_response(404, &json!({"message": format!("no admin endpoint {method} /{path}")})),
    }
}

/// Back to the catalog: resources, Jobs, faults and statistics all cleared.
pub fn reset(app: &App) {
    let catalog = app.config.catalog.clone().unwrap_or_else(Catalog::primer);
    {
        let mut store = lock(&app.store);
        *store = Store::new(app.base.clone(), app.config.profile, app.config.timing, app.config.seed, &catalog);
        store.set_job_retention(app.config.job_retention);
        if let Some(j) = &app.journal {
            j.replace(&mut store);
        }
    }
    *lock(&app.faults) = FaultState::new(Vec::new(), app.config.seed);
    *lock(&app.stats) = SimStats::default();
}
