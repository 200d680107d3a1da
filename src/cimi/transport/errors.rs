//! The transport's errors: a redirect that was not followed (to an origin the policy refuses, or too deep),
//! a failed connection, request or read (without the URL reqwest may print), and the status label an error
//! is counted under.

use std::time::Duration;

use http::{HeaderMap, header};
use url::Url;

use super::core::Transport;
use crate::cimi::error::{CimiError, redact_url};

impl Transport {
    /// The error of a redirect that was not followed: to an origin the policy refuses (named), or too deep.
    pub(super) fn refused_redirect(&self, from: &Url, headers: &HeaderMap, href: &str) -> CimiError {
        let target = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).and_then(|l| from.join(l.trim()).ok());
        match target {
            Some(to) => match self.inner.origins.check(&to) {
                Err(e) => {
                    self.count_refusal("untrusted_href");
                    match e {
                        CimiError::UntrustedHref { href: to, reason } => CimiError::UntrustedHref {
                            href: to,
                            reason: format!("{href} redirected there, and {reason}"),
                        },
                        other => other,
                    }
                }
                Ok(()) => CimiError::protocol(href, format!("more than 5 redirects, last to {}", redact_url(&to)), b""),
            },
            None => CimiError::protocol(href, "a redirect without a usable Location", b""),
        }
    }
}

impl CimiError {
    /// The status an error is counted under: the HTTP status it stands for, else its metric label.
    pub(super) fn status_label(&self) -> String {
        match self {
            CimiError::Invalid { status, .. } | CimiError::Unauthorized { status, .. } => status.to_string(),
            CimiError::Unavailable { status: Some(s), .. } => s.to_string(),
            CimiError::NotFound { .. } => "404".into(),
            CimiError::RateLimited { .. } => "429".into(),
            CimiError::NotAllowedNow { .. } => "409".into(),
            CimiError::Conflict { .. } => "412".into(),
            other => other.metric_label().into(),
        }
    }
}

/// A reqwest error as a [`CimiError`]: a timeout, or the provider unavailable with the error's kind and
/// innermost cause.
pub(super) fn transport_error(e: &reqwest::Error, href: &str, timeout: Duration) -> CimiError {
    if e.is_timeout() {
        return CimiError::Timeout { what: format!("request to {href}"), after: timeout };
    }
    // reqwest errors may print the URL; print ours (redacted) and the error's kind only.
    let kind = if e.is_connect() {
        "unreachable"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    CimiError::Unavailable {
        href: href.to_string(),
        status: None,
        message: format!("{kind}: {detail}"),
        retry_after: None,
    }
}
