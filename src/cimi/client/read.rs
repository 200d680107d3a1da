//! Reads: one resource or one page of a collection, normalised (the provider's deviations tolerated, see
//! [`normalize`](crate::cimi::normalize)) and typed into the model; the ResourceMetadata of a type.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use url::Url;

use super::core::CimiClient;
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::model::{self, Collection, Resource};
use crate::cimi::normalize::{ImageLocationForm, normalize_resource};
use crate::cimi::query::Query;
use crate::cimi::transport::{Request, Response};

impl CimiClient {
    /// The body of `resp`, normalised, when it has one.
    pub(super) fn normalized(&self, resp: &Response, hint: Option<&str>) -> Option<Value> {
        let mut body = resp.body.clone()?;
        normalize_resource(&mut body, hint, ImageLocationForm::Href);
        Some(body)
    }

    /// GET a resource as a normalised JSON value.
    pub async fn get_value(&self, href: &Url) -> Result<Value, CimiError> {
        self.get_value_hinted(href, None, &Query::new()).await
    }

    /// GET a resource as normalised JSON, with `query` applied; `hint` names its type for the normalisation
    /// when the document does not.
    pub(super) async fn get_value_hinted(
        &self,
        href: &Url,
        hint: Option<&str>,
        query: &Query,
    ) -> Result<Value, CimiError> {
        let url = query.apply(href);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "get")).await?;
        self.normalized(&resp, hint)
            .ok_or_else(|| CimiError::protocol(&redact_url(&url), "a read answered without a document", b""))
    }

    /// GET a resource as a model type.
    pub async fn get<T: Resource + DeserializeOwned>(&self, href: &Url) -> Result<T, CimiError> {
        let v = self.get_value_hinted(href, Some(T::TYPE_NAME), &Query::new()).await?;
        typed(v, href)
    }

    /// GET a resource with query parameters (`$select`, `$expand`).
    pub async fn get_with<T: Resource + DeserializeOwned>(&self, href: &Url, query: &Query) -> Result<T, CimiError> {
        let v = self.get_value_hinted(href, Some(T::TYPE_NAME), query).await?;
        typed(v, href)
    }

    /// One page (or the whole, if the provider ignores paging) of a collection at `href`, as JSON.
    pub async fn list_page_value(&self, href: &Url, query: &Query, item_type: &str) -> Result<Value, CimiError> {
        let url = query.apply(href);
        let resp = self.inner.transport.execute(&Request::get(url.clone(), "list")).await?;
        let mut body = resp.body.unwrap_or_else(|| Value::Object(Map::new()));
        if let Value::Object(o) = &mut body
            && !o.contains_key("resourceURI")
        {
            o.insert("resourceURI".into(), Value::String(model::type_uri(&format!("{item_type}Collection"))));
        }
        normalize_resource(&mut body, None, ImageLocationForm::Href);
        Ok(body)
    }

    /// One page of a collection at `href`, typed.
    pub async fn list_page<T: Resource + DeserializeOwned>(
        &self,
        href: &Url,
        query: &Query,
    ) -> Result<Collection<T>, CimiError> {
        let v = self.list_page_value(href, query, T::TYPE_NAME).await?;
        typed(v, href)
    }

    /// The ResourceMetadata describing `type_uri` (e.g. the Credential's extension attributes), if any.
    pub async fn resource_metadata(&self, type_uri: &str) -> Result<Option<model::ResourceMetadata>, CimiError> {
        let all = self.list_all::<model::ResourceMetadata>("resourceMetadata", &Query::new()).await?;
        Ok(all.entries.into_iter().find(|m| m.type_uri.as_deref() == Some(type_uri)))
    }
}

/// A JSON value as a model type, or a protocol error naming what did not fit.
pub fn typed<T: DeserializeOwned>(v: Value, href: &Url) -> Result<T, CimiError> {
    T::deserialize(&v).map_err(|e| {
        CimiError::protocol(&redact_url(href), format!("does not match the model: {e}"), v.to_string().as_bytes())
    })
}
