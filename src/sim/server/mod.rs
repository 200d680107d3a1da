//! The HTTP face of the simulator, one room per purpose:
//!
//! - [`app`]: the shared state of a running simulator ([`App`]);
//! - `handler`: the request pipeline, from the target check to the answer counted in the statistics;
//! - `params`: content negotiation and the query parameters of a read;
//! - `fault_plan`: the fault rules applied to one request;
//! - `dispatch`: a classified request run against the store, with the profiles' deviations;
//! - `respond`: outcomes and errors as HTTP responses (JSON or XML, the lenient profile's rewriting);
//! - `admin`: the admin API under `/_sim/` (faults, statistics, reset).

mod admin;
pub mod app;
mod dispatch;
mod fault_plan;
mod handler;
mod params;
mod respond;

use std::sync::Arc;

use axum::Router;

pub use admin::reset;
pub use app::{App, ConnDrop, FaultState};
pub use respond::JOB_HEADER;

/// The router of one simulator.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handler::handle).with_state(app)
}
