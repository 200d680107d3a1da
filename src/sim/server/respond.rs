//! Answers as HTTP responses: an operation's outcome (status, `Location`, `CIMI-Job-URI`, `ETag`, the body in
//! the negotiated format), errors as Job-shaped documents (with `Retry-After` and `WWW-Authenticate` where they
//! belong), and the lenient profile's rewriting of both (reference section 7).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use quick_xml::escape::escape;
use serde_json::{Value, json};

use super::params::Format;
use crate::cimi::model::{type_uri, xml_codec};
use crate::sim::config::{Auth, Profile};
use crate::sim::error::SimError;
use crate::sim::store::Outcome;

/// The header naming the Job of an operation.
pub const JOB_HEADER: &str = "CIMI-Job-URI";

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

/// A body in the negotiated format, with its content type.
fn serialize(fmt: Format, body: &Value, root: &str) -> (Vec<u8>, &'static str) {
    match fmt {
        Format::Json => (serde_json::to_vec(body).unwrap_or_default(), "application/json"),
        Format::Xml => (xml_codec::to_xml(body, root).into_bytes(), "application/xml"),
    }
}

/// A response with a status (and the lenient profile's version header).
fn base_response(profile: Profile, status: u16) -> axum::http::response::Builder {
    let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if profile == Profile::Lenient1x {
        b = b.header("CIMI-Specification-Version", "1.0");
    }
    b
}

/// An error as served: a Job-shaped body (the lenient profile's `{code, message}`, or `<error>` to an XML request,
/// or HTML 404 instead).
pub fn error_response(
    profile: Profile,
    fmt: Format,
    err: &SimError,
    retry_after: Option<u64>,
    auth: &Auth,
) -> Response {
    let mut status = err.status;
    if profile == Profile::Lenient1x && status == 405 {
        status = 404;
        return base_response(profile, status)
            .header(header::CONTENT_TYPE, "text/html")
            .body(Body::from(format!("<html><body><h1>Not Found</h1><p>{}</p></body></html>", err.message)))
            .unwrap_or_default();
    }
    let reason = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
    let (bytes, ctype) = match (profile, fmt) {
        // 1.x providers answered errors in their own small document, in the format the request asked for.
        (Profile::Lenient1x, Format::Xml) => (
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><error status=\"{status}\"><code>{status}</code>\
                 <kind>{}</kind><message>{}</message></error>",
                escape(reason),
                escape(err.message.as_str())
            )
            .into_bytes(),
            "application/xml",
        ),
        (Profile::Lenient1x, Format::Json) => {
            serialize(Format::Json, &json!({"code": status, "message": err.message, "error": reason}), "error")
        }
        _ => serialize(
            fmt,
            &json!({"resourceURI": type_uri("Job"), "id": "", "state": "FAILED", "returnCode": status,
                "progress": 100, "statusMessage": err.message}),
            "Job",
        ),
    };
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

/// An operation's outcome as served: status, headers and body.
pub fn outcome_response(profile: Profile, fmt: Format, out: Outcome, root: &str) -> Response {
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

/// A JSON answer of the admin API.
pub fn json_response(status: u16, v: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap_or_default()))
        .unwrap_or_default()
}
