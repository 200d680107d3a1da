//! Hrefs: every href is resolved against `baseURI` and checked against the provider's
//! [`OriginPolicy`](crate::cimi::origin::OriginPolicy) by [`CimiClient::resolve`] before it is requested (the
//! transport checks again). This holds for the hrefs a provider gives, those a spec names, those of the
//! `Location` and `CIMI-Job-URI` headers, and those a request body carries. Also here: the operations of a
//! resource, found by rel (an absent or unavailable operation is never guessed).

use serde_json::Value;
use url::Url;

use super::core::CimiClient;
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::transport::Response;

/// Body value of a resource's operation with `rel`, honouring a 2.0 `available: false`.
pub(crate) fn find_operation(resource: &Value, rel: &str) -> Option<Result<String, ()>> {
    operation_in(resource.get("operations")?, rel)
}

/// [`find_operation`] in the `operations` of a resource.
pub(crate) fn operation_in(operations: &Value, rel: &str) -> Option<Result<String, ()>> {
    let ops = operations.as_array()?;
    let op = ops.iter().find(|o| o.get("rel").and_then(Value::as_str) == Some(rel))?;
    if op.get("available").and_then(Value::as_bool) == Some(false) {
        return Some(Err(()));
    }
    op.get("href").and_then(Value::as_str).map(|h| Ok(h.to_string()))
}

/// The `id` of a JSON-shaped resource.
pub fn id_of(resource: &Value) -> Option<&str> {
    resource.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())
}

impl CimiClient {
    /// Resolve an href (the provider's or a spec's) against `baseURI`, and check that it may be requested:
    /// [`CimiError::UntrustedHref`] when its origin is not the provider's nor a trusted one.
    pub async fn resolve(&self, href: &str) -> Result<Url, CimiError> {
        let base = match self.inner.discovery.read().await.as_ref() {
            Some(d) => d.base.clone(),
            None => self.inner.config.endpoint.clone(),
        };
        let url = base.join(href.trim()).map_err(|e| CimiError::Protocol {
            href: redact_url(&base),
            reason: format!("unusable href: {e}"),
            excerpt: crate::cimi::error::excerpt(href.as_bytes()),
        })?;
        self.inner.transport.vet(&url)?;
        Ok(url)
    }

    /// Checks every `href` a request body carries (template, config, image, volume references — often
    /// written by a user in a spec) as if it were requested: the provider would act on it for us. `#name`
    /// references inside a SystemTemplate are symbolic and pass.
    pub(super) async fn vet_body_hrefs(&self, body: &Value) -> Result<(), CimiError> {
        let mut stack = vec![body];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        match child {
                            Value::String(h) if k == "href" && !h.starts_with('#') => {
                                self.resolve(h).await.map_err(|e| match e {
                                    CimiError::UntrustedHref { href, reason } => CimiError::UntrustedHref {
                                        href,
                                        reason: format!("an href of the request body: {reason}"),
                                    },
                                    other => other,
                                })?;
                            }
                            _ => stack.push(child),
                        }
                    }
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        Ok(())
    }

    /// The header `name` as a resolved and vetted href; `None` when it is absent or empty.
    pub(super) async fn header_href(&self, resp: &Response, name: &str) -> Result<Option<Url>, CimiError> {
        let Some(raw) = resp.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim) else {
            return Ok(None);
        };
        if raw.is_empty() {
            return Ok(None);
        }
        match self.resolve(raw).await {
            Ok(u) => Ok(Some(u)),
            Err(CimiError::UntrustedHref { href, reason }) => {
                Err(CimiError::UntrustedHref { href, reason: format!("the {name} header: {reason}") })
            }
            // Not a URL against baseURI: try the request URL, and check that too.
            Err(_) => match resp.header_url(name) {
                Some(u) => self.inner.transport.vet(&u).map(|()| Some(u)),
                None => Ok(None),
            },
        }
    }

    /// The href of the operation `rel` of `current`; both delete rels count as delete (normalised earlier).
    pub async fn operation_href(&self, current: &Value, rel: &str) -> Result<Url, CimiError> {
        let who = id_of(current).unwrap_or("the resource").to_string();
        match find_operation(current, rel) {
            Some(Ok(h)) => self.resolve(&h).await,
            Some(Err(())) => Err(CimiError::NotAllowedNow {
                href: who,
                operation: rel.to_string(),
                message: "the provider lists it as not available now".into(),
            }),
            None => Err(CimiError::NotAllowedNow {
                href: who,
                operation: rel.to_string(),
                message: format!(
                    "not among the operations offered now ({})",
                    current
                        .get("operations")
                        .and_then(Value::as_array)
                        .map(|ops| ops
                            .iter()
                            .filter_map(|o| o.get("rel").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                ),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cimi::client::ClientConfig;
    use serde_json::{Map, json};

    #[test]
    fn operations_are_found_by_rel_and_availability() {
        let m = json!({"operations": [
            {"rel": "edit", "href": "machines/1"},
            {"rel": "http://schemas.dmtf.org/cimi/1/action/start", "href": "machines/1/start", "available": false}
        ]});
        assert_eq!(find_operation(&m, "edit"), Some(Ok("machines/1".into())));
        assert_eq!(find_operation(&m, "http://schemas.dmtf.org/cimi/1/action/start"), Some(Err(())));
        assert_eq!(find_operation(&m, "delete"), None);
        assert_eq!(find_operation(&json!({}), "delete"), None);
    }

    #[tokio::test]
    async fn absent_operations_are_not_allowed_now_and_no_url_is_guessed() {
        let c = CimiClient::new(ClientConfig::new("p", "http://127.0.0.1:9/cep").unwrap()).unwrap();
        let m = json!({"id": "http://127.0.0.1:9/machines/1", "operations": [{"rel": "edit", "href": "machines/1"}]});
        let e = c.action(&m, "start", Map::new()).await.unwrap_err();
        assert!(
            matches!(e, CimiError::NotAllowedNow { ref operation, .. } if operation.ends_with("/action/start")),
            "{e}"
        );
        let e = c.delete(&m).await.unwrap_err();
        assert!(matches!(e, CimiError::NotAllowedNow { .. }), "{e}");
    }
}
