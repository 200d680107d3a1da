//! Bodies: read as a stream within a bound (for a success,
//! [`ReadLimits::max_body_bytes`](super::limits::ReadLimits::max_body_bytes); for an error, a fixed cap, since
//! only an excerpt is kept), then decoded from JSON or XML by label or by sniffing ([`decode_body`]). An empty
//! or HTML success body is no body.

use bytes::Bytes;
use http::{HeaderMap, header};
use serde_json::Value;

use super::core::Transport;
use super::errors::transport_error;
use crate::cimi::error::{CimiError, ReadLimitKind, excerpt};
use crate::cimi::xml_lenient;

impl Transport {
    /// Reads a body of at most `cap` bytes as it streams in. Past the cap, a success body is refused with
    /// [`CimiError::ReadLimit`] (a `Content-Length` over the cap before a byte is read), and an error body
    /// (`refuse` false) is cut, since only its excerpt is kept. The connection is dropped either way.
    pub(super) async fn read_body(
        &self,
        mut resp: reqwest::Response,
        cap: u64,
        href: &str,
        refuse: bool,
    ) -> Result<Bytes, CimiError> {
        let timeout = self.inner.config.request_timeout;
        let too_large = |seen: String| {
            self.count_refusal(ReadLimitKind::BodySize.label());
            CimiError::ReadLimit {
                href: href.to_string(),
                limit: ReadLimitKind::BodySize,
                detail: format!(
                    "the provider sent {seen}, over the limit of {cap} bytes; raise spec.readLimits.maxBodySize if \
                     it is right"
                ),
            }
        };
        if refuse && let Some(len) = resp.content_length().filter(|l| *l > cap) {
            return Err(too_large(format!("a body of {len} bytes (Content-Length)")));
        }
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(&e, href, timeout))? {
            let room = usize::try_from(cap).unwrap_or(usize::MAX).saturating_sub(buf.len());
            if chunk.len() > room {
                if refuse {
                    return Err(too_large(format!("more than {cap} bytes")));
                }
                buf.extend_from_slice(&chunk[..room]);
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

/// Parse a success body: JSON or XML by `Content-Type`, sniffed when the label is missing or wrong. Empty
/// bodies, and HTML pages sent with a success status (ref §7: "Empty 200/202 bodies labelled
/// `text/html`"), are no body.
pub fn decode_body(headers: &HeaderMap, raw: &Bytes, href: &str) -> Result<Option<Value>, CimiError> {
    let text = raw.as_ref();
    let first = text.iter().copied().find(|b| !b.is_ascii_whitespace());
    let Some(first) = first else { return Ok(None) };
    let ctype = content_type(headers);
    let looks_html = ctype.contains("html")
        || text.len() > 5
            && text[..text.len().min(64)].to_ascii_lowercase().windows(5).any(|w| w == b"<html" || w == b"<!doc");
    if is_json(first, &ctype) {
        let v: Value =
            serde_json::from_slice(text).map_err(|e| CimiError::protocol(href, format!("invalid JSON: {e}"), text))?;
        return match v {
            Value::Object(_) => Ok(Some(v)),
            _ => Err(CimiError::protocol(href, "a CIMI JSON document must be an object", text)),
        };
    }
    if first == b'<' {
        if looks_html {
            tracing::debug!(href, "ignoring an HTML body on a success answer");
            return Ok(None);
        }
        return xml_lenient::parse(text).map(Some).map_err(|e| CimiError::protocol(href, e, text));
    }
    if ctype.contains("html") || ctype.starts_with("text/plain") {
        return Ok(None);
    }
    Err(CimiError::Protocol {
        href: href.to_string(),
        reason: "a success body that is neither JSON nor XML".into(),
        excerpt: excerpt(text),
    })
}

/// Whether [`decode_body`] reads this body as JSON.
pub fn reads_as_json(headers: &HeaderMap, raw: &[u8]) -> bool {
    raw.iter().copied().find(|b| !b.is_ascii_whitespace()).is_some_and(|first| is_json(first, &content_type(headers)))
}

/// JSON by its first byte, or by its label unless it starts as XML.
fn is_json(first: u8, ctype: &str) -> bool {
    first == b'{' || (ctype.contains("json") && first != b'<')
}

/// The `Content-Type`, lower-cased (empty when missing).
fn content_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(ct: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        m
    }

    /// §7: "Empty 200/202 bodies labelled `text/html`".
    #[test]
    fn empty_and_html_success_bodies_are_no_body() {
        assert_eq!(decode_body(&h("text/html"), &Bytes::from_static(b""), "u").unwrap(), None);
        assert_eq!(decode_body(&h("text/html"), &Bytes::from_static(b"  \n"), "u").unwrap(), None);
        assert_eq!(
            decode_body(&h("text/html"), &Bytes::from_static(b"<html><body>OK</body></html>"), "u").unwrap(),
            None
        );
        assert_eq!(
            decode_body(&HeaderMap::new(), &Bytes::from_static(b"<!DOCTYPE html><html></html>"), "u").unwrap(),
            None
        );
    }

    #[test]
    fn bodies_are_read_by_label_or_by_sniffing() {
        let json = Bytes::from_static(br#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/Machine","id":"m"}"#);
        assert_eq!(decode_body(&h("text/plain"), &json, "u").unwrap().unwrap()["id"], "m");
        let xml = Bytes::from_static(b"<Machine xmlns=\"http://schemas.dmtf.org/cimi/1\"><id>m</id></Machine>");
        assert_eq!(decode_body(&h("application/json"), &xml, "u").unwrap().unwrap()["id"], "m");
        assert!(matches!(
            decode_body(&h("application/json"), &Bytes::from_static(b"{\"a\":"), "u"),
            Err(CimiError::Protocol { .. })
        ));
        assert!(matches!(
            decode_body(&h("application/json"), &Bytes::from_static(b"[1]"), "u"),
            Err(CimiError::Protocol { .. })
        ));
    }

    /// Fuzz-style property: whatever bytes a provider sends with whatever label, decoding, normalising and
    /// typing them returns a value or an error and never panics.
    #[test]
    fn malformed_provider_output_never_panics() {
        use crate::cimi::model::{Collection, Job, Machine, MachineImage};
        use crate::cimi::normalize::{ImageLocationForm, normalize_resource};
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let dir = format!("{}/tests/fixtures/client", env!("CARGO_MANIFEST_DIR"));
        let mut seeds: Vec<Vec<u8>> =
            std::fs::read_dir(&dir).unwrap().filter_map(|e| std::fs::read(e.unwrap().path()).ok()).collect();
        seeds.push(br#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/MachineCollection","count":"2","machines":[{"id":"m","cpu":"x","created":"2012-13-45","operations":[{"rel":5}]},{"imageLocation":[]}]}"#.to_vec());
        seeds.push(br#"{"resourceURI":"http://schemas.dmtf.org/cimi/1/Job","state":"FAILED","progress":"1e400","nestedJobs":{"href":3}}"#.to_vec());
        let labels = ["application/json", "application/xml", "text/html", "text/plain", ""];
        let mut rng = StdRng::seed_from_u64(0xF022);
        for i in 0..4000 {
            let mut body = seeds[i % seeds.len()].clone();
            for _ in 0..rng.random_range(0..6) {
                let len = body.len().max(1);
                match rng.random_range(0..4) {
                    0 if !body.is_empty() => {
                        let at = rng.random_range(0..body.len());
                        body[at] = b"<>{}[]\"',:&;=/ 0a\x00\xff"[rng.random_range(0..17)];
                    }
                    1 => body.truncate(rng.random_range(0..len)),
                    2 if !body.is_empty() => {
                        let at = rng.random_range(0..body.len());
                        let end = (at + rng.random_range(0..16)).min(body.len());
                        let chunk = body[at..end].to_vec();
                        body.splice(at..at, chunk);
                    }
                    _ => body.push(rng.random()),
                }
            }
            let headers = h(labels[i % labels.len()]);
            let Ok(Some(mut v)) = decode_body(&headers, &Bytes::from(body), "u") else {
                continue;
            };
            normalize_resource(&mut v, Some("Machine"), ImageLocationForm::Href);
            let _ = serde_json::from_value::<Machine>(v.clone());
            let _ = serde_json::from_value::<Job>(v.clone());
            let _ = serde_json::from_value::<Collection<Machine>>(v.clone());
            let _ = serde_json::from_value::<Collection<MachineImage>>(v);
        }
    }
}
