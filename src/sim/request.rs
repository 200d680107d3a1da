//! Reading a request within its [`Limits`]: the length of its target, the size of its body and the time taken
//! to send it, and how deeply the body nests. Each refusal is a [`SimError`] with its 4xx status, answered
//! with the usual Job-shaped body.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::Value;

use super::config::Limits;
use super::error::SimError;
use crate::cimi::model::xml_codec;

/// How deeply a request body may nest (objects and arrays in JSON, elements in XML). serde_json alone stops at
/// 128; a lower bound leaves room for the envelope of the state file (a stored value sits a few levels deep
/// in the snapshot and journal records, which are read back with the same parser), and is the bound of the
/// XML readers.
pub const MAX_BODY_DEPTH: usize = xml_codec::MAX_DEPTH;

/// 414 when the request target (path and query) is longer than the limit.
pub fn check_target(path_and_query: &str, limits: &Limits) -> Result<(), SimError> {
    if path_and_query.len() > limits.max_uri_bytes {
        return Err(SimError::new(414, format!("the request target is longer than {} bytes", limits.max_uri_bytes)));
    }
    Ok(())
}

/// 413 when the `Content-Length` announces more than the limit.
fn check_length(headers: &HeaderMap, limits: &Limits) -> Result<(), SimError> {
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(n) if n > limits.max_body_bytes as u64 => Err(too_large(limits)),
        _ => Ok(()),
    }
}

fn too_large(limits: &Limits) -> SimError {
    SimError::new(413, format!("the body is larger than {} bytes", limits.max_body_bytes))
}

/// Reads the whole body: 413 when its `Content-Length` announces more than the limit (before a byte of it is
/// read) or as soon as it grows past the limit (a chunked body announces no length), 408 when it takes longer
/// than the body-read timeout, 400 when the client breaks off.
pub async fn read_body(body: Body, headers: &HeaderMap, limits: &Limits) -> Result<Bytes, SimError> {
    check_length(headers, limits)?;
    match tokio::time::timeout(limits.body_read_timeout, collect(body, limits)).await {
        Ok(read) => read,
        Err(_) => Err(SimError::new(
            408,
            format!("the body was not received within {} s", limits.body_read_timeout.as_secs_f64()),
        )),
    }
}

async fn collect(body: Body, limits: &Limits) -> Result<Bytes, SimError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SimError::new(400, format!("the body could not be read: {e}")))?;
        if buf.len().saturating_add(chunk.len()) > limits.max_body_bytes {
            return Err(too_large(limits));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Parses a request body by its `Content-Type` (JSON when there is none); `None` for an empty body. 400 for a
/// body that does not parse or nests deeper than [`MAX_BODY_DEPTH`], 415 for another media type. When
/// `cimi_namespace_required` (every profile but lenient-1x), an XML body whose root element is not in a CIMI
/// namespace is refused with a 400 that names the namespace to use; lenient-1x accepts it, as 1.x providers did.
pub fn parse_body(headers: &HeaderMap, bytes: &[u8], cimi_namespace_required: bool) -> Result<Option<Value>, SimError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_else(|| "application/json".into());
    match ctype.as_str() {
        "application/json" => {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| SimError::new(400, format!("the body is not valid JSON: {e}")))?;
            if depth(&value) > MAX_BODY_DEPTH {
                return Err(SimError::new(400, format!("the body is nested deeper than {MAX_BODY_DEPTH} levels")));
            }
            Ok(Some(value))
        }
        "application/xml" | "text/xml" => {
            let text = std::str::from_utf8(bytes).map_err(|_| SimError::new(400, "the body is not UTF-8"))?;
            let (_, value) = xml_codec::from_xml(text).map_err(|e| SimError::new(400, e.to_string()))?;
            if cimi_namespace_required {
                let ns = xml_codec::root_namespace(text).map_err(|e| SimError::new(400, e.to_string()))?;
                if !ns.as_deref().is_some_and(xml_codec::is_cimi_namespace) {
                    let found = match ns {
                        Some(ns) => format!("it is in the namespace {ns}"),
                        None => "it declares no namespace".to_string(),
                    };
                    return Err(SimError::new(
                        400,
                        format!(
                            "the root element of an XML body must be in the CIMI namespace (xmlns=\"{}\"); {found}",
                            crate::cimi::model::NS
                        ),
                    ));
                }
            }
            Ok(Some(value))
        }
        other => Err(SimError::new(415, format!("cannot read {other}; send application/json or application/xml"))),
    }
}

/// How deeply a JSON value nests (a scalar is 1, `{"a": 1}` is 2), computed without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1usize)];
    while let Some((v, level)) = pending.pop() {
        deepest = deepest.max(level);
        match v {
            Value::Array(items) => pending.extend(items.iter().map(|i| (i, level + 1))),
            Value::Object(map) => pending.extend(map.values().map(|i| (i, level + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h
    }

    #[test]
    fn depth_counts_levels() {
        assert_eq!(depth(&json!(1)), 1);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": 1})), 2);
        assert_eq!(depth(&json!({"a": [1, {"b": [2]}], "c": 3})), 5);
    }

    #[test]
    fn deep_json_is_a_400() {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
        assert!(parse_body(&json_headers(), nested(MAX_BODY_DEPTH).as_bytes(), true).is_ok());
        for levels in [MAX_BODY_DEPTH + 1, 120, 100_000] {
            let err = parse_body(&json_headers(), nested(levels).as_bytes(), true).expect_err("refused");
            assert_eq!(err.status, 400, "{levels}: {}", err.message);
        }
        let err = parse_body(&json_headers(), nested(100).as_bytes(), true).expect_err("refused");
        assert!(err.message.contains("deeper than 64 levels"), "{}", err.message);
    }

    #[test]
    fn targets_and_lengths() {
        let limits = Limits { max_uri_bytes: 10, max_body_bytes: 5, ..Limits::default() };
        assert!(check_target("/machines", &limits).is_ok());
        assert_eq!(check_target("/machines?x", &limits).map_err(|e| e.status), Err(414));
        let mut h = HeaderMap::new();
        assert!(check_length(&h, &limits).is_ok());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert!(check_length(&h, &limits).is_ok());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        assert_eq!(check_length(&h, &limits).map_err(|e| e.status), Err(413));
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        let limits = Limits { max_body_bytes: 5, ..Limits::default() };
        let none = HeaderMap::new();
        let read = read_body(Body::from("12345"), &none, &limits).await;
        assert_eq!(read.map_err(|e| e.status), Ok(Bytes::from("12345")));
        let chunks = futures::stream::iter(["123", "456"].map(Ok::<_, std::io::Error>));
        let read = read_body(Body::from_stream(chunks), &none, &limits).await;
        assert_eq!(read.map_err(|e| e.status), Err(413));
        // A length announced over the limit is refused before the body is polled at all.
        let mut announced = HeaderMap::new();
        announced.insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let read = read_body(Body::from_stream(never), &announced, &limits).await;
        assert_eq!(read.map_err(|e| e.status), Err(413));
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_408() {
        let limits = Limits { body_read_timeout: Duration::from_millis(50), ..Limits::default() };
        let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let read = read_body(Body::from_stream(stalled), &HeaderMap::new(), &limits).await;
        assert_eq!(read.map_err(|e| e.status), Err(408));
    }
}
