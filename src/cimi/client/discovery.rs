//! Discovery: the CloudEntryPoint read (or re-read) into a [`Discovery`]: its `baseURI` vetted, and the
//! collections it lists as absolute URLs. A collection the CloudEntryPoint does not list is
//! [`CimiError::NotSupported`] before any request is made.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use url::Url;

use super::core::{CimiClient, Discovery};
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::model::CloudEntryPoint;
use crate::cimi::normalize::{ImageLocationForm, normalize_resource};
use crate::cimi::transport::Request;

impl CimiClient {
    /// Read (or re-read) the CloudEntryPoint.
    pub async fn discover(&self) -> Result<Arc<Discovery>, CimiError> {
        let url = self.inner.config.endpoint.clone();
        let href = redact_url(&url);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "discover")).await?;
        let mut body = resp.body.ok_or_else(|| CimiError::protocol(&href, "the CloudEntryPoint has no body", b""))?;
        normalize_resource(&mut body, Some("CloudEntryPoint"), ImageLocationForm::Href);
        let base_raw = body.get("baseURI").and_then(Value::as_str).unwrap_or("");
        // baseURI is mandatory; a provider that leaves it out gets the CEP URL's directory.
        let base = if base_raw.is_empty() { resp.url.join("./") } else { resp.url.join(base_raw) }
            .map_err(|e| CimiError::protocol(&href, format!("baseURI: {e}"), base_raw.as_bytes()))?;
        // Every relative href resolves against baseURI: one on another origin would send them all there.
        self.inner.transport.vet(&base).map_err(|e| match e {
            CimiError::UntrustedHref { href, reason } => {
                CimiError::UntrustedHref { href, reason: format!("the CloudEntryPoint's baseURI: {reason}") }
            }
            other => other,
        })?;
        let mut collections = BTreeMap::new();
        if let Value::Object(obj) = &body {
            for (k, v) in obj {
                if k == "operations" {
                    continue;
                }
                if let Some(h) = v.get("href").and_then(Value::as_str)
                    && let Ok(u) = base.join(h)
                {
                    collections.insert(k.clone(), u);
                }
            }
        }
        let cep: CloudEntryPoint = serde_json::from_value(body.clone())
            .map_err(|e| CimiError::protocol(&href, format!("CloudEntryPoint: {e}"), body.to_string().as_bytes()))?;
        let d = Arc::new(Discovery { cep, base, collections });
        *self.inner.discovery.write().await = Some(d.clone());
        Ok(d)
    }

    /// The discovered CloudEntryPoint (read on first use).
    pub async fn discovery(&self) -> Result<Arc<Discovery>, CimiError> {
        if let Some(d) = self.inner.discovery.read().await.as_ref() {
            return Ok(d.clone());
        }
        self.discover().await
    }

    /// The URL of a CEP collection (`machines`, `machineImages`...), or [`CimiError::NotSupported`].
    pub async fn collection_url(&self, name: &str) -> Result<Url, CimiError> {
        Ok(self.discovery().await?.collection(name)?.clone())
    }
}
