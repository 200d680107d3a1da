//! The request pipeline: the target checked, credentials, the body read within its limits, the format
//! negotiated and the body parsed; the transitions that are due applied; the request classified (resource type
//! and operation, for faults and statistics); the faults planned; the store operation run and journaled (made
//! durable before the answer); the answer written and counted.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use chrono::Utc;
use serde_json::Value;

use super::admin::admin;
use super::app::{App, ConnDrop};
use super::dispatch::execute;
use super::fault_plan::plan_faults;
use super::params::{Format, negotiate};
use super::respond::{error_response, outcome_response};
use crate::cimi::model::action_name;
use crate::sim::auth::authorized;
use crate::sim::config::Profile;
use crate::sim::error::SimError;
use crate::sim::faults::RequestFacts;
use crate::sim::request::{check_target, parse_body, read_body};
use crate::sim::stats::RequestRecord;
use crate::sim::store::Target;
use crate::sim::sync::lock;

/// The longest request target kept in the statistics' log (the rest is cut, so the log's memory is bounded).
const LOGGED_TARGET_CHARS: usize = 512;

/// The longest method kept in the statistics' log (an extension method may be as long as a request head).
const LOGGED_METHOD_CHARS: usize = 32;

/// A request target as the statistics' log keeps it: at most [`LOGGED_TARGET_CHARS`] characters.
fn logged_target(path_and_query: &str) -> String {
    match path_and_query.char_indices().nth(LOGGED_TARGET_CHARS) {
        Some((cut, _)) => format!("{}…", &path_and_query[..cut]),
        None => path_and_query.to_string(),
    }
}

/// Answers a request refused before it was classified, counted under `label` (admin requests are not counted).
fn refuse(
    app: &App,
    at: chrono::DateTime<Utc>,
    method: &Method,
    target: &str,
    label: &str,
    fmt: Format,
    err: &SimError,
) -> Response {
    if !target.starts_with("/_sim") {
        record(app, at, method, target, label.to_string(), err.status, false);
    }
    error_response(app.config.profile, fmt, err, None, &app.config.auth)
}

/// Answers one request (every path: the router has only this fallback).
pub async fn handle(State(app): State<Arc<App>>, conn: Option<Extension<ConnDrop>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let profile = app.config.profile;
    let limits = app.config.limits;
    let method = parts.method.clone();
    let at = Utc::now();
    let full_target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let path_and_query = logged_target(full_target);
    // What may be refused before anything else is done: a long target, then missing credentials (before a byte
    // of the body is read), then a body too large, too slow or broken.
    if let Err(e) = check_target(full_target, &limits) {
        return refuse(&app, at, &method, &path_and_query, "Target.read", Format::Json, &e);
    }
    let path = parts.uri.path().trim_start_matches('/').trim_end_matches('/').to_string();
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let headers = parts.headers;

    let public_cep = profile == Profile::Lenient1x && path.is_empty() && method == Method::GET;
    if !public_cep && !authorized(&app.config.auth, app.authorization.as_deref(), &headers) {
        let fmt = negotiate(&params, &headers).unwrap_or(Format::Json);
        let err = SimError::new(401, "authentication required");
        return refuse(&app, at, &method, &path_and_query, "Unauthenticated.read", fmt, &err);
    }
    let bytes = match read_body(body, &headers, &limits).await {
        Ok(b) => b,
        Err(e) => {
            let fmt = negotiate(&params, &headers).unwrap_or(Format::Json);
            return refuse(&app, at, &method, &path_and_query, "Body.read", fmt, &e);
        }
    };
    if path.starts_with("_sim/") {
        return admin(&app, &method, &path, &bytes).await;
    }

    let fmt = match negotiate(&params, &headers) {
        Ok(f) => f,
        Err(e) => return refuse(&app, at, &method, &path_and_query, "Negotiation.read", Format::Json, &e),
    };
    let body = match parse_body(&headers, &bytes, profile != Profile::Lenient1x) {
        Ok(b) => b,
        Err(e) => return refuse(&app, at, &method, &path_and_query, "Body.read", fmt, &e),
    };

    // Classify the request.
    let (target, name, mut wrote) = {
        let mut store = lock(&app.store);
        store.advance(at);
        store.sample_for_request(&path, at);
        // A read that inlines samples sees them as of now.
        let inlines_samples = params.iter().any(|(k, v)| {
            k == "$expand" && (v.trim().is_empty() || v.split(',').any(|n| matches!(n.trim(), "*" | "samples")))
        });
        if inlines_samples && method == "GET" {
            // Only the meters a page serves need their samples (a provider that pages samples the page): the
            // whole collection only when a filter, an order or a profile that ignores paging decides which.
            let page = super::params::read_query(&params)
                .ok()
                .filter(|q| q.filters.is_empty() && q.orderby.is_empty() && profile != Profile::Lenient1x)
                .map(|q| (q.first, q.last));
            store.sample_collection(&path, at, page);
        }
        let wrote = app.commit(&mut store);
        let target = store.target(&path);
        let name = store.name_of(&path);
        (target, name, wrote)
    };
    let (type_label, op) = match (&target, method.as_str()) {
        (Target::Cep, "PUT") => ("CloudEntryPoint".to_string(), "edit".to_string()),
        (Target::Cep, _) => ("CloudEntryPoint".to_string(), "read".to_string()),
        (Target::Resource(t), "PUT") => (t.clone(), "edit".into()),
        (Target::Resource(t), "DELETE") => (t.clone(), "delete".into()),
        (Target::Resource(t), "POST") => {
            let action = body
                .as_ref()
                .and_then(|b| b.get("action"))
                .and_then(Value::as_str)
                .and_then(|a| action_name(a.trim()))
                .filter(|a| is_label(a))
                .unwrap_or("action")
                .to_string();
            (t.clone(), action)
        }
        (Target::Resource(t), _) => (t.clone(), "read".into()),
        (Target::Collection(t), "POST") => (format!("{t}Collection"), "add".into()),
        (Target::Collection(t), _) => (format!("{t}Collection"), "read".into()),
        (Target::Missing, m) if is_label(m) => ("Unknown".to_string(), m.to_ascii_lowercase()),
        (Target::Missing, _) => ("Unknown".to_string(), "other".to_string()),
    };
    let subject_name = if op == "add" {
        body.as_ref().and_then(|b| b.get("name")).and_then(Value::as_str).map(str::to_string)
    } else {
        name
    };
    let facts = RequestFacts {
        method: method.as_str(),
        resource_type: &type_label,
        action: &op,
        name: subject_name.as_deref(),
    };
    let plan = plan_faults(&mut lock(&app.faults), &facts);
    let label = format!("{type_label}.{op}");
    if plan.latency > 0 {
        tokio::time::sleep(Duration::from_millis(plan.latency)).await;
    }
    if let Some((status, message, retry)) = plan.respond {
        record(&app, at, &method, &path_and_query, label, status, false);
        return error_response(profile, fmt, &SimError::new(status, message), retry, &app.config.auth);
    }

    let result = {
        let mut store = lock(&app.store);
        store.refresh_index();
        let json = fmt == Format::Json;
        let result = execute(&app, &mut store, json, &method, &path, &target, body.as_ref(), &params, &headers, &plan);
        wrote |= app.commit(&mut store);
        result
    };
    if wrote {
        app.sync();
    }
    match result {
        Ok(out) => {
            let write = out.write;
            if plan.drop
                && let Some(Extension(ConnDrop(token))) = conn
            {
                record(&app, at, &method, &path_and_query, label, 0, write);
                token.cancel();
                return std::future::pending::<Response>().await;
            }
            record(&app, at, &method, &path_and_query, label, out.status, write);
            let root = match &target {
                Target::Resource(t) => t.clone(),
                Target::Cep => "CloudEntryPoint".into(),
                _ => "Collection".into(),
            };
            outcome_response(profile, fmt, out, &root)
        }
        Err(err) => {
            record(&app, at, &method, &path_and_query, label, err.status, false);
            error_response(profile, fmt, &err, None, &app.config.auth)
        }
    }
}

/// Whether a word from the request (an action name, a method) may become part of an operation label: short and
/// plain. The statistics count by label, so a label made of arbitrary request text would let requests grow
/// them without bound.
fn is_label(word: &str) -> bool {
    (1..=32).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Counts a request in the statistics; its method and `path` (already cut by [`logged_target`]) are logged at
/// most a few hundred bytes long, so the log of the last requests stays small whatever they were.
fn record(app: &App, at: chrono::DateTime<Utc>, method: &Method, path: &str, op: String, status: u16, write: bool) {
    let method = method.as_str().chars().take(LOGGED_METHOD_CHARS).collect();
    let rec = RequestRecord { at, method, path: path.to_string(), op, status };
    lock(&app.stats).record(rec, write);
}
