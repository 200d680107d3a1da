//! The HTTP face of the simulator: authentication, content negotiation (JSON and XML), query parameters, fault
//! injection, statistics, the profiles' deviations, and the admin API under `/_sim/`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Router};
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::auth::authorized;
use super::config::{Auth, Profile, SimConfig};
use super::error::SimError;
use super::faults::{FaultKind, FaultRule, FaultSet, RequestFacts};
use super::query::{self, QueryError};
use super::request::{check_target, parse_body, read_body};
use super::stats::{RequestRecord, SimStats};
use super::store::{JobFault, Outcome, ReadQuery, Store, Target};
use super::sync::lock;
use crate::cimi::model::{action_name, type_uri, xml_codec};

/// The header naming the Job of an operation.
pub const JOB_HEADER: &str = "CIMI-Job-URI";

/// Dropping this token drops the connection the request came on (commit-then-drop).
#[derive(Clone)]
pub struct ConnDrop(pub CancellationToken);

/// Fault rules with their random source.
pub struct FaultState {
    /// The rules.
    pub set: FaultSet,
    rng: StdRng,
}

impl FaultState {
    /// Rules with a seeded random source.
    pub fn new(rules: Vec<FaultRule>, seed: u64) -> Self {
        FaultState { set: FaultSet { rules }, rng: StdRng::seed_from_u64(seed ^ 0x5eed) }
    }
}

/// The shared state of a running simulator.
pub struct App {
    /// The configuration it started with.
    pub config: SimConfig,
    /// The base URI.
    pub base: String,
    /// The provider state.
    pub store: Mutex<Store>,
    /// Fault rules.
    pub faults: Mutex<FaultState>,
    /// Statistics.
    pub stats: Mutex<SimStats>,
    /// The journal of a persisted simulator (`--state-file`).
    pub journal: Option<super::journal::Journal>,
    /// The `Authorization` header expected (see [`expected_authorization`](super::auth::expected_authorization)).
    pub authorization: Option<Vec<u8>>,
}

impl App {
    /// Journals what changed in the store (locked by the caller); true when a record was written.
    pub fn commit(&self, store: &mut Store) -> bool {
        self.journal.as_ref().is_some_and(|j| j.commit(store))
    }

    /// Makes the journaled changes durable (before answering a request that wrote).
    pub fn sync(&self) {
        if let Some(j) = &self.journal {
            j.sync();
        }
    }
}

/// The router of one simulator.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

fn negotiate(params: &[(String, String)], headers: &HeaderMap) -> Result<Format, SimError> {
    if let Some((_, f)) = params.iter().find(|(k, _)| k == "$format") {
        return match f.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "xml" => Ok(Format::Xml),
            other => Err(SimError::new(400, format!("$format={other} is neither json nor xml"))),
        };
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "application/*" | "*/*" | "" => return Ok(Format::Json),
            "application/xml" | "text/xml" => return Ok(Format::Xml),
            _ => {}
        }
    }
    Err(SimError::new(406, format!("cannot serve {accept}; ask for application/json or application/xml")))
}

fn read_query(params: &[(String, String)]) -> Result<ReadQuery, QueryError> {
    let mut q = ReadQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "$filter" => q.filters.push(query::parse_filter(v)?),
            "$first" => {
                q.first = Some(v.trim().parse().map_err(|_| QueryError(format!("$first={v} is not a number")))?)
            }
            "$last" => q.last = Some(v.trim().parse().map_err(|_| QueryError(format!("$last={v} is not a number")))?),
            "$orderby" => q.orderby.extend(query::parse_orderby(v)?),
            _ => {}
        }
    }
    q.select = names_of(params, "$select")?;
    if params.iter().any(|(k, _)| k == "$expand") {
        q.expand = Some(names_of(params, "$expand")?);
    }
    Ok(q)
}

/// The names of every `$select` (or `$expand`) parameter, their paths checked.
fn names_of(params: &[(String, String)], key: &str) -> Result<Vec<String>, QueryError> {
    let names = query::name_list(params.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()));
    query::check_paths(&names)?;
    Ok(names)
}

/// What the faults decided for one request.
#[derive(Default)]
struct FaultPlan {
    latency: u64,
    respond: Option<(u16, String, Option<u64>)>,
    job: JobFault,
    truncate: Option<usize>,
    drop: bool,
}

fn plan_faults(state: &mut FaultState, facts: &RequestFacts<'_>) -> FaultPlan {
    let mut plan = FaultPlan::default();
    let now = Utc::now();
    let FaultState { set, rng } = state;
    for rule in &mut set.rules {
        if !rule.matches(facts) || rule.times == Some(0) {
            continue;
        }
        if let Some(rate) = rule.rate
            && rng.random::<f64>() >= rate
        {
            continue;
        }
        let fired = match &rule.kind {
            FaultKind::Latency { ms } => {
                plan.latency += ms;
                true
            }
            FaultKind::Error { status } => {
                plan.respond.get_or_insert((*status, format!("injected error {status}"), None));
                true
            }
            FaultKind::Throttle { retry_after } => {
                plan.respond.get_or_insert((429, "too many requests (injected)".into(), Some(*retry_after)));
                true
            }
            FaultKind::Unavailable { seconds } => {
                let start = *rule.window_start.get_or_insert(now);
                let end = start + chrono::Duration::seconds(*seconds as i64);
                if now < end {
                    let left = (end - now).num_milliseconds().max(0) as u64;
                    let retry = left.div_ceil(1000).max(1);
                    plan.respond.get_or_insert((503, "service unavailable (injected)".into(), Some(retry)));
                    true
                } else {
                    false
                }
            }
            FaultKind::JobFails => {
                plan.job.fails = true;
                true
            }
            FaultKind::JobHangs => {
                plan.job.hangs = true;
                true
            }
            FaultKind::Truncate { max } => {
                plan.truncate = Some(*max);
                true
            }
            FaultKind::CommitThenDrop => {
                plan.drop = true;
                true
            }
        };
        if fired && let Some(t) = rule.times.as_mut() {
            *t = t.saturating_sub(1);
        }
    }
    plan
}

/// Rewrites an answer the way 1.x-era providers served it (reference section 7).
fn lenient(v: &mut Value, entry: bool) {
    match v {
        Value::Object(map) => {
            if entry {
                map.remove("resourceURI");
            }
            let is_collection =
                map.get("resourceURI").and_then(Value::as_str).is_some_and(|u| u.ends_with("Collection"));
            for (k, val) in map.iter_mut() {
                match (k.as_str(), &mut *val) {
                    ("count", _) => {}
                    ("created" | "updated" | "timeOfStatusChange" | "timestamp", Value::String(s)) => {
                        if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
                            *s = d.format("%Y-%m-%d %H:%M:%S").to_string();
                        }
                    }
                    ("imageLocation", Value::Object(o)) => {
                        if let Some(h) = o.get("href").cloned() {
                            *val = h;
                        }
                    }
                    (_, Value::Number(n)) => *val = Value::String(n.to_string()),
                    (_, Value::Bool(b)) => *val = Value::String(b.to_string()),
                    (_, Value::Array(items)) if is_collection && k != "operations" => {
                        for item in items {
                            lenient(item, true);
                        }
                    }
                    (_, other) => lenient(other, false),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                lenient(item, false);
            }
        }
        _ => {}
    }
}

fn serialize(fmt: Format, body: &Value, root: &str) -> (Vec<u8>, &'static str) {
    match fmt {
        Format::Json => (serde_json::to_vec(body).unwrap_or_default(), "application/json"),
        Format::Xml => (xml_codec::to_xml(body, root).into_bytes(), "application/xml"),
    }
}

fn base_response(profile: Profile, status: u16) -> axum::http::response::Builder {
    let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if profile == Profile::Lenient1x {
        b = b.header("CIMI-Specification-Version", "1.0");
    }
    b
}

fn error_response(profile: Profile, fmt: Format, err: &SimError, retry_after: Option<u64>, auth: &Auth) -> Response {
    let mut status = err.status;
    if profile == Profile::Lenient1x && status == 405 {
        status = 404;
        return base_response(profile, status)
            .header(header::CONTENT_TYPE, "text/html")
            .body(Body::from(format!("<html><body><h1>Not Found</h1><p>{}</p></body></html>", err.message)))
            .unwrap_or_default();
    }
    let body = if profile == Profile::Lenient1x {
        json!({"code": status, "message": err.message, "error": StatusCode::from_u16(status)
            .ok().and_then(|s| s.canonical_reason()).unwrap_or("error")})
    } else {
        json!({"resourceURI": type_uri("Job"), "id": "", "state": "FAILED", "returnCode": status, "progress": 100,
            "statusMessage": err.message})
    };
    let fmt = if profile == Profile::Lenient1x { Format::Json } else { fmt };
    let (bytes, ctype) = serialize(fmt, &body, "Job");
    let mut b = base_response(profile, status).header(header::CONTENT_TYPE, ctype);
    if let Some(secs) = retry_after {
        b = b.header(header::RETRY_AFTER, secs.to_string());
    }
    if status == 401 {
        let challenge = match auth {
            Auth::Bearer(_) => "Bearer realm=\"cimi-sim\"",
            _ => "Basic realm=\"cimi-sim\"",
        };
        b = b.header(header::WWW_AUTHENTICATE, challenge);
    }
    b.body(Body::from(bytes)).unwrap_or_default()
}

fn outcome_response(profile: Profile, fmt: Format, out: Outcome, root: &str) -> Response {
    let mut b = base_response(profile, out.status);
    if let Some(loc) = &out.location {
        b = b.header(header::LOCATION, loc);
    }
    if profile.jobs()
        && let Some(job) = &out.job
    {
        b = b.header(JOB_HEADER, job);
    }
    if let Some(etag) = &out.etag
        && let Ok(v) = HeaderValue::from_str(etag)
    {
        b = b.header(header::ETAG, v);
    }
    if out.status == 204 {
        return b.body(Body::empty()).unwrap_or_default();
    }
    if let Some(raw) = out.raw {
        return b.header(header::CONTENT_TYPE, "application/json").body(Body::from(raw)).unwrap_or_default();
    }
    match out.body {
        Some(mut body) => {
            if profile == Profile::Lenient1x {
                lenient(&mut body, false);
            }
            let (bytes, ctype) = serialize(fmt, &body, root);
            b.header(header::CONTENT_TYPE, ctype).body(Body::from(bytes)).unwrap_or_default()
        }
        None if profile == Profile::Lenient1x => {
            b.header(header::CONTENT_TYPE, "text/html").body(Body::empty()).unwrap_or_default()
        }
        None => b.body(Body::empty()).unwrap_or_default(),
    }
}

fn json_response(status: u16, v: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_default()
}

async fn admin(app: &App, method: &Method, path: &str, body: &[u8]) -> Response {
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
    let catalog = app.config.catalog.clone().unwrap_or_else(super::catalog::Catalog::primer);
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

async fn handle(State(app): State<Arc<App>>, conn: Option<Extension<ConnDrop>>, req: Request) -> Response {
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
    let body = match parse_body(&headers, &bytes) {
        Ok(b) => b,
        Err(e) => return refuse(&app, at, &method, &path_and_query, "Body.read", fmt, &e),
    };

    // Classify the request.
    let (target, name, mut wrote) = {
        let mut store = lock(&app.store);
        store.advance(at);
        store.sample_for_request(&path, at);
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

#[allow(clippy::too_many_arguments)]
fn execute(
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
                && let Some(out) = store.read_json(path) =>
        {
            Ok(out)
        }
        (Target::Cep | Target::Resource(_) | Target::Collection(_), "GET" | "HEAD") => {
            let mut q = read_query(params).map_err(|e| SimError::new(400, e.0))?;
            q.truncate = plan.truncate;
            q.ignore_paging = profile == Profile::Lenient1x;
            store.read(path, &q)
        }
        (Target::Cep | Target::Resource(_), "PUT") => {
            if_match(store, path, headers)?;
            let select = if params.iter().any(|(k, _)| k == "$select") {
                Some(names_of(params, "$select").map_err(|e| SimError::new(400, e.0))?)
            } else {
                None
            };
            store.update(path, need_body()?, select.as_deref())
        }
        (Target::Resource(_), "DELETE") => {
            if_match(store, path, headers)?;
            let mut out = store.delete(path, plan.job)?;
            if !profile.jobs() && out.status == 202 {
                out.body = None;
            }
            Ok(out)
        }
        (Target::Resource(_), "POST") => {
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

/// Counts a request in the statistics; its method and `path` (already cut by [`logged_target`]) are logged at
/// most a few hundred bytes long, so the log of the last requests stays small whatever they were.
fn record(app: &App, at: chrono::DateTime<Utc>, method: &Method, path: &str, op: String, status: u16, write: bool) {
    let method = method.as_str().chars().take(LOGGED_METHOD_CHARS).collect();
    let rec = RequestRecord { at, method, path: path.to_string(), op, status };
    lock(&app.stats).record(rec, write);
}
