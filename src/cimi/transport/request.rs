//! A request to send ([`Request`]) and a successful answer ([`Response`]), its body already decoded into
//! the JSON shape.

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use url::Url;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL (from an href the provider gave).
    pub url: Url,
    /// The JSON-shaped body, written in the provider's format.
    pub body: Option<Value>,
    /// The client operation, a metrics label.
    pub operation: &'static str,
}

impl Request {
    /// A GET.
    pub fn get(url: Url, operation: &'static str) -> Self {
        Request { method: Method::GET, url, body: None, operation }
    }
    /// Whether repeating the request cannot do more than sending it once.
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS)
    }
}

/// A successful (2xx) answer; its body decoded by [`decode_body`](super::decode_body) unless the request was
/// sent with [`Transport::execute_with`](super::Transport::execute_with) and a decoder of its own.
#[derive(Debug, Clone)]
pub struct Response<B = Option<Value>> {
    /// The status.
    pub status: StatusCode,
    /// The headers (look-ups are case-insensitive).
    pub headers: HeaderMap,
    /// The body in JSON shape (parsed from JSON or XML), `None` when empty or not a CIMI document.
    pub body: B,
    /// The URL that answered.
    pub url: Url,
}

impl<B> Response<B> {
    /// A header as an absolute URL, resolved against the request URL when relative.
    pub fn header_url(&self, name: &str) -> Option<Url> {
        let raw = self.headers.get(name)?.to_str().ok()?.trim();
        if raw.is_empty() {
            return None;
        }
        self.url.join(raw).ok()
    }
}
