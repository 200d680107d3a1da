//! The one error type of the CIMI client, and how a provider's answer becomes one.
//!
//! Callers act on the variant: retry ([`CimiError::is_retryable`]), wait for a state change
//! ([`CimiError::NotAllowedNow`]), report to a human ([`CimiError::Invalid`], [`CimiError::Unauthorized`]),
//! or treat the resource as gone ([`CimiError::NotFound`]).
//!
//! Error bodies are read leniently: a CIMI Job (2.0 errors), a provider's own `{code, message, error}`
//! object, an XML Job, or plain text and HTML (1.x providers). URLs in errors never carry user info, so
//! credentials cannot leak through an error message.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use url::Url;

/// The number of characters of a provider body kept in an error.
pub const EXCERPT_CHARS: usize = 200;

/// Everything that can go wrong talking to a CIMI provider.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CimiError {
    /// The resource does not exist (404 or 410).
    #[error("not found: {href}")]
    NotFound {
        /// The href that was asked for.
        href: String,
    },
    /// The operation is not offered in the resource's current state: absent from `operations`,
    /// `available: false`, or answered 409 by the provider.
    #[error("operation {operation} not allowed now on {href}: {message}")]
    NotAllowedNow {
        /// The resource.
        href: String,
        /// The operation rel (or its short name).
        operation: String,
        /// What the provider (or the client) said.
        message: String,
    },
    /// A precondition failed (412, `If-Match`) or another conflicting write.
    #[error("conflict at {href}: {message}")]
    Conflict {
        /// The resource.
        href: String,
        /// The provider's message.
        message: String,
    },
    /// The provider rejected the request itself (400, 422 and other 4xx): a human must change it.
    #[error("invalid request to {href} ({status}): {message}")]
    Invalid {
        /// The href the request went to.
        href: String,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The credentials were refused (401, 403).
    #[error("unauthorized ({status}) at {href}")]
    Unauthorized {
        /// The href the request went to.
        href: String,
        /// The HTTP status.
        status: u16,
    },
    /// The provider asked us to slow down (429).
    #[error("rate limited at {href}{}", retry_after.map_or_else(String::new, |d| format!("; retry after {}s", d.as_secs())))]
    RateLimited {
        /// The href the request went to.
        href: String,
        /// The provider's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The provider is unreachable or failing (5xx, connection refused or reset).
    #[error("provider unavailable at {href} ({}): {message}", status.map_or_else(|| "no answer".to_string(), |s| s.to_string()))]
    Unavailable {
        /// The href the request went to.
        href: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// The provider's message or the transport error.
        message: String,
        /// The provider's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// A request, or the wait for a Job or a state, took too long.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The limit that was reached.
        after: Duration,
    },
    /// The provider answered something the client cannot use.
    #[error("protocol violation at {href}: {reason}; body starts with {excerpt:?}")]
    Protocol {
        /// The href the answer came from.
        href: String,
        /// What was wrong.
        reason: String,
        /// The first characters of the body.
        excerpt: String,
    },
    /// A collection (or an operation) this provider does not offer, known from the CloudEntryPoint or
    /// from a 405/501 answer.
    #[error("{collection} not supported by this provider")]
    NotSupported {
        /// The CloudEntryPoint collection name (`machines`, `volumes`...) or the unsupported operation.
        collection: String,
    },
    /// A Job the client followed ended FAILED or STOPPED.
    #[error("job {href} ended {state}: {message}")]
    JobFailed {
        /// The Job href.
        href: String,
        /// FAILED or STOPPED.
        state: String,
        /// The Job's `returnCode`.
        return_code: Option<i64>,
        /// The Job's `statusMessage`.
        message: String,
    },
    /// The caller cancelled the wait.
    #[error("cancelled while {what}")]
    Cancelled {
        /// What was being waited for.
        what: String,
    },
    /// The client's own configuration is wrong (bad URL, bad CA bundle, bad filter attribute).
    #[error("configuration: {0}")]
    Config(String),
    /// An href (from the provider or from a spec) that the client refused to request: its origin is not the
    /// provider's nor a trusted one, it carries user info, or its scheme is not http(s). No request was made.
    #[error("refused to request {href}: {reason}")]
    UntrustedHref {
        /// The href, without user info.
        href: String,
        /// Why, and what to change.
        reason: String,
    },
    /// A read bound tripped (`spec.readLimits`): a body, a listing's pages, entries or time. What was read
    /// so far is dropped.
    #[error("read limit {limit} reached at {href}: {detail}")]
    ReadLimit {
        /// The href being read.
        href: String,
        /// Which bound.
        limit: ReadLimitKind,
        /// What was seen, and the setting to raise if the provider is right.
        detail: String,
    },
}

/// Which read bound tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimitKind {
    /// A response body larger than `readLimits.maxBodySize`.
    BodySize,
    /// A listing with more pages than `readLimits.maxPages`.
    Pages,
    /// A listing with more entries than `readLimits.maxEntries`.
    Entries,
    /// A listing that took longer than `readLimits.listingTimeout`.
    ListingTime,
    /// A listing whose next page is one already read (a loop).
    RepeatedPage,
}

impl ReadLimitKind {
    /// The label of the bound in metrics.
    pub fn label(self) -> &'static str {
        match self {
            ReadLimitKind::BodySize => "body_size",
            ReadLimitKind::Pages => "pages",
            ReadLimitKind::Entries => "entries",
            ReadLimitKind::ListingTime => "listing_time",
            ReadLimitKind::RepeatedPage => "repeated_page",
        }
    }
}

impl std::fmt::Display for ReadLimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl CimiError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CimiError::RateLimited { .. } | CimiError::Unavailable { .. } | CimiError::Timeout { .. })
    }

    /// The provider's `Retry-After`, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CimiError::RateLimited { retry_after, .. } | CimiError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, stable label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CimiError::NotFound { .. } => "not_found",
            CimiError::NotAllowedNow { .. } => "not_allowed_now",
            CimiError::Conflict { .. } => "conflict",
            CimiError::Invalid { .. } => "invalid",
            CimiError::Unauthorized { .. } => "unauthorized",
            CimiError::RateLimited { .. } => "rate_limited",
            CimiError::Unavailable { .. } => "unavailable",
            CimiError::Timeout { .. } => "timeout",
            CimiError::Protocol { .. } => "protocol",
            CimiError::NotSupported { .. } => "not_supported",
            CimiError::JobFailed { .. } => "job_failed",
            CimiError::Cancelled { .. } => "cancelled",
            CimiError::Config(_) => "config",
            CimiError::UntrustedHref { .. } => "untrusted_href",
            CimiError::ReadLimit { .. } => "read_limit",
        }
    }

    /// A protocol violation with an excerpt of the offending body.
    pub fn protocol(href: &str, reason: impl Into<String>, body: &[u8]) -> Self {
        CimiError::Protocol { href: href.to_string(), reason: reason.into(), excerpt: excerpt(body) }
    }

    /// Classify a non-success answer. `href` must already be redacted (see [`redact_url`]).
    pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8], href: &str, operation: &str) -> Self {
        let href = href.to_string();
        let message = provider_message(body);
        let retry_after = retry_after(headers);
        match status.as_u16() {
            401 | 403 => CimiError::Unauthorized { href, status: status.as_u16() },
            404 | 410 => CimiError::NotFound { href },
            405 | 501 => CimiError::NotSupported { collection: format!("{operation} on {href}") },
            409 => CimiError::NotAllowedNow { href, operation: operation.to_string(), message },
            412 => CimiError::Conflict { href, message },
            406 | 415 => {
                CimiError::Protocol { href, reason: format!("media type refused ({status})"), excerpt: message }
            }
            429 => CimiError::RateLimited { href, retry_after },
            500..=599 => CimiError::Unavailable { href, status: Some(status.as_u16()), message, retry_after },
            s @ 400..=499 => CimiError::Invalid { href, status: s, message },
            _ => CimiError::Protocol { href, reason: format!("unexpected status {status}"), excerpt: message },
        }
    }
}

/// A URL for logs and errors: without user info (the only place a URL can carry credentials).
pub fn redact_url(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.as_str().to_string();
    }
    let mut clean = url.clone();
    // Both setters only fail for URLs that cannot have credentials at all, which then have none.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.as_str().to_string()
}

/// The first [`EXCERPT_CHARS`] characters of a body, lossily decoded, on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(EXCERPT_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// `Retry-After` as a duration: delta-seconds or an HTTP date (a date in the past means now).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(24 * 3600)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(24 * 3600)))
}

/// The human message of an error body, whatever its shape: a CIMI Job (`statusMessage`, `returnCode`), a
/// provider object (`message`, `error`, `code`), an XML Job, or text/HTML. Never panics.
pub fn provider_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return String::new();
    }
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(trimmed)
    {
        let pick = |k: &str| match obj.get(k) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Object(inner)) => inner.get("message").and_then(|m| m.as_str()).map(str::to_string),
            _ => None,
        };
        let message = pick("statusMessage").or_else(|| pick("message")).or_else(|| pick("error"));
        let code = pick("returnCode").or_else(|| pick("code"));
        return match (code, message) {
            (Some(c), Some(m)) => cap(&format!("{m} (code {c})")),
            (None, Some(m)) => cap(&m),
            (Some(c), None) => format!("code {c}"),
            (None, None) => excerpt(trimmed.as_bytes()),
        };
    }
    if trimmed.starts_with('<') {
        // An XML Job or error document: take the statusMessage / message element; else strip the tags.
        for tag in ["statusMessage", "message"] {
            if let Some(m) = xml_element_text(trimmed, tag) {
                return cap(&m);
            }
        }
        return cap(&strip_tags(trimmed));
    }
    excerpt(trimmed.as_bytes())
}

fn cap(s: &str) -> String {
    excerpt(s.as_bytes())
}

fn xml_element_text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc.get(start..)?.find("</")? + start;
    let raw = doc.get(start..end)?;
    quick_xml::escape::unescape(raw).ok().map(|c| c.trim().to_string()).filter(|s| !s.is_empty())
}

fn strip_tags(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len().min(1024));
    let mut in_tag = false;
    for c in doc.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use rand::{Rng, SeedableRng};

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn statuses_map_to_the_cases_callers_act_on() {
        let h = HeaderMap::new();
        assert!(matches!(CimiError::from_status(status(404), &h, b"", "u", "get"), CimiError::NotFound { .. }));
        assert!(matches!(CimiError::from_status(status(410), &h, b"", "u", "get"), CimiError::NotFound { .. }));
        assert!(matches!(
            CimiError::from_status(status(409), &h, b"not now", "u", "start"),
            CimiError::NotAllowedNow { ref message, .. } if message == "not now"
        ));
        assert!(matches!(CimiError::from_status(status(412), &h, b"", "u", "put"), CimiError::Conflict { .. }));
        assert!(matches!(
            CimiError::from_status(status(401), &h, b"", "u", "get"),
            CimiError::Unauthorized { status: 401, .. }
        ));
        assert!(matches!(
            CimiError::from_status(status(403), &h, b"", "u", "get"),
            CimiError::Unauthorized { status: 403, .. }
        ));
        assert!(matches!(
            CimiError::from_status(status(400), &h, b"bad", "u", "post"),
            CimiError::Invalid { status: 400, .. }
        ));
        assert!(matches!(CimiError::from_status(status(501), &h, b"", "u", "post"), CimiError::NotSupported { .. }));
        assert!(matches!(
            CimiError::from_status(status(503), &h, b"", "u", "get"),
            CimiError::Unavailable { status: Some(503), .. }
        ));
        assert!(matches!(CimiError::from_status(status(302), &h, b"", "u", "get"), CimiError::Protocol { .. }));
    }

    #[test]
    fn retryable_cases_are_exactly_the_transient_ones() {
        let h = HeaderMap::new();
        for code in [429u16, 500, 502, 503, 504] {
            assert!(CimiError::from_status(status(code), &h, b"", "u", "get").is_retryable(), "{code}");
        }
        for code in [400u16, 401, 403, 404, 405, 409, 412, 422] {
            assert!(!CimiError::from_status(status(code), &h, b"", "u", "get").is_retryable(), "{code}");
        }
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("2"));
        let e = CimiError::from_status(status(429), &h, b"", "u", "get");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_str(&later.to_rfc2822()).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(25) && d <= Duration::from_secs(30), "{d:?}");
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_bodies_as_job_as_code_message_and_as_text() {
        let job = br#"{"resourceURI":"http://schemas.dmtf.org/cimi/2/Job","id":"","state":"FAILED","returnCode":409,"statusMessage":"machine is STARTED"}"#;
        assert_eq!(provider_message(job), "machine is STARTED (code 409)");
        let own = br#"{"code":"E42","message":"quota exceeded","error":"Forbidden"}"#;
        assert_eq!(provider_message(own), "quota exceeded (code E42)");
        assert_eq!(provider_message(br#"{"error":"boom"}"#), "boom");
        let xml = b"<Job xmlns=\"http://schemas.dmtf.org/cimi/1\"><state>FAILED</state><statusMessage>no &amp; never</statusMessage></Job>";
        assert_eq!(provider_message(xml), "no & never");
        assert_eq!(provider_message(b"<html><body><h1>404</h1> Not Found</body></html>"), "404 Not Found");
        assert_eq!(provider_message(b"  plain text\n"), "plain text");
        assert_eq!(provider_message(b""), "");
        let long = vec![b'x'; 5000];
        assert_eq!(provider_message(&long).chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn urls_lose_their_credentials() {
        let url = Url::parse("https://joe:s3cret@cimi.example.net/machines?x=1").unwrap();
        let shown = redact_url(&url);
        assert_eq!(shown, "https://cimi.example.net/machines?x=1");
        assert!(!shown.contains("s3cret"));
    }

    /// Fuzz-style property: no body, however malformed, makes the error path panic.
    #[test]
    fn malformed_bodies_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let seeds: [&[u8]; 6] = [
            br#"{"statusMessage":"x","returnCode":1}"#,
            b"<Job><statusMessage>a</statusMessage></Job>",
            b"<html><",
            b"{\"message\":{\"message\":3}}",
            "caf\u{e9} \u{1F600}".as_bytes(),
            b"<statusMessage>&bogus;</statusMessage>",
        ];
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("Wed, 99 Foo 2026 99:99:99 GMT"));
        for i in 0..5000 {
            let mut body = seeds[i % seeds.len()].to_vec();
            for _ in 0..rng.random_range(0..8) {
                match rng.random_range(0..3) {
                    0 if !body.is_empty() => {
                        let at = rng.random_range(0..body.len());
                        body[at] = rng.random();
                    }
                    1 if !body.is_empty() => {
                        let at = rng.random_range(0..body.len());
                        body.truncate(at);
                    }
                    _ => body.push(rng.random()),
                }
            }
            let code = rng.random_range(100..600u16);
            let e = CimiError::from_status(status(code), &h, &body, "u", "op");
            let _ = e.to_string();
            assert!(provider_message(&body).chars().count() <= EXCERPT_CHARS + 1);
        }
    }

    #[test]
    fn a_rate_limit_reads_as_a_sentence() {
        let e =
            CimiError::RateLimited { href: "http://p/volumeConfigs".into(), retry_after: Some(Duration::from_secs(2)) };
        assert_eq!(e.to_string(), "rate limited at http://p/volumeConfigs; retry after 2s");
        let e = CimiError::RateLimited { href: "http://p/".into(), retry_after: None };
        assert_eq!(e.to_string(), "rate limited at http://p/");
    }
}
