//! Writes: create, update and delete, through the hrefs the provider gives (the `add` operation of a
//! collection, the `edit` and `delete` operations of a resource), and what a write answered ([`Accepted`]):
//! its status, `Location`, Job and body. Also the href of what a create made, read from the Job when the
//! provider says it only there.

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use super::bodies::to_body;
use super::core::CimiClient;
use super::hrefs::{find_operation, id_of};
use crate::cimi::error::{CimiError, redact_url};
use crate::cimi::model;
use crate::cimi::normalize::type_name;
use crate::cimi::query::{Query, select_url};
use crate::cimi::transport::Request;

/// The header naming the Job of an operation.
pub const JOB_HEADER: &str = "CIMI-Job-URI";

/// What a provider answered to a write (create, update, delete, action).
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// 200, 201, 202 or 204.
    pub status: u16,
    /// The `Location` header, absolute.
    pub location: Option<Url>,
    /// The Job: the `CIMI-Job-URI` header, or the id of a Job sent as the body.
    pub job: Option<Url>,
    /// The body, when there was a CIMI document.
    pub body: Option<Value>,
}

impl Accepted {
    /// Whether the provider finished the work before answering (200, 201, 204).
    pub fn is_complete(&self) -> bool {
        self.status != 202
    }
}

impl CimiClient {
    /// The `add` href of the collection at `collection` (read once from the collection's operations).
    pub async fn add_href(&self, collection: &Url) -> Result<Url, CimiError> {
        if let Some(u) = self.inner.add_hrefs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(collection)
        {
            return Ok(u.clone());
        }
        let body = self.list_page_value(collection, &Query::new().first(1).last(1), "").await?;
        let href = match find_operation(&body, model::REL_ADD) {
            Some(Ok(h)) => h,
            _ => {
                return Err(CimiError::NotAllowedNow {
                    href: redact_url(collection),
                    operation: "add".into(),
                    message: "the collection offers no add operation".into(),
                });
            }
        };
        let url = self.resolve(&href).await?;
        self.inner
            .add_hrefs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(collection.clone(), url.clone());
        Ok(url)
    }

    /// Sends a write (its body's hrefs vetted first) and reads what the provider answered.
    pub(super) async fn write(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
        operation: &'static str,
    ) -> Result<Accepted, CimiError> {
        if let Some(b) = &body {
            self.vet_body_hrefs(b).await?;
        }
        let resp = self.inner.transport.execute(&Request { method, url, body, operation }).await?;
        let body = self.normalized(&resp, None);
        // Header URIs, like every CIMI href, resolve against baseURI when relative; one on an origin that is
        // not trusted fails the call (the write happened: the caller finds its result by the UID tag).
        let location = self.header_href(&resp, http::header::LOCATION.as_str()).await?;
        let mut job = self.header_href(&resp, JOB_HEADER).await?;
        if job.is_none()
            && let Some(b) = &body
            && b.get("resourceURI").and_then(Value::as_str).map(type_name) == Some("Job")
            && let Some(id) = id_of(b)
        {
            job = Some(self.resolve(id).await?);
        }
        let status = resp.status.as_u16();
        if !matches!(resp.status, StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED | StatusCode::NO_CONTENT)
        {
            tracing::debug!(status, "unusual success status, treated as done");
        }
        Ok(Accepted { status, location, job, body })
    }
    /// POST a create body (a `…Create`, or a template, config, image or credential by value) to the `add`
    /// href of the CEP collection `collection`.
    pub async fn create(&self, collection: &str, body: &impl Serialize) -> Result<Accepted, CimiError> {
        let url = self.collection_url(collection).await?;
        self.create_at(&url, body).await
    }

    /// POST a create body to the `add` href of the collection at `collection`.
    pub async fn create_at(&self, collection: &Url, body: &impl Serialize) -> Result<Accepted, CimiError> {
        let body = to_body(body)?;
        let add = self.add_href(collection).await?;
        self.write(Method::POST, add, Some(body), "create").await
    }

    /// The href of what a create made: `Location`, else the id in the body, else the Job's affected resources
    /// (other than its target, the collection). Follows the Job when one is needed and running.
    pub async fn created_href(&self, accepted: &Accepted, collection: &Url) -> Result<Option<Url>, CimiError> {
        if let Some(l) = &accepted.location
            && l != collection
        {
            return Ok(Some(l.clone()));
        }
        if let Some(b) = &accepted.body
            && b.get("resourceURI").and_then(Value::as_str).map(type_name) != Some("Job")
            && let Some(id) = id_of(b)
        {
            return Ok(Some(self.resolve(id).await?));
        }
        if let Some(job) = &accepted.job {
            let j = self.get_value_hinted(job, Some("Job"), &Query::new()).await?;
            let target = j.get("targetResource").and_then(|t| t.get("href")).and_then(Value::as_str).unwrap_or("");
            if let Some(list) = j.get("affectedResources").and_then(Value::as_array) {
                for r in list {
                    if let Some(h) = r.get("href").and_then(Value::as_str)
                        && h != target
                    {
                        let u = self.resolve(h).await?;
                        if &u != collection {
                            return Ok(Some(u));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Partial update (`PUT <edit>?$select=…`) of exactly the attributes in `changes`, plus `erase` (listed
    /// and absent from the body, so the provider erases them). `current` is the resource as last read; its
    /// `edit` operation gives the href.
    pub async fn update(
        &self,
        current: &Value,
        changes: &Map<String, Value>,
        erase: &[&str],
    ) -> Result<Accepted, CimiError> {
        let href = self.operation_href(current, model::REL_EDIT).await?;
        let mut select: Vec<&str> = changes.keys().map(String::as_str).collect();
        select.extend(erase.iter().copied().filter(|e| !changes.contains_key(*e)));
        if select.is_empty() {
            return Err(CimiError::Config("an update must change or erase at least one attribute".into()));
        }
        let mut body = changes.clone();
        if let Some(uri) = current.get("resourceURI") {
            body.insert("resourceURI".into(), uri.clone());
        }
        self.write(Method::PUT, select_url(&href, &select), Some(Value::Object(body)), "update").await
    }

    /// Partial update of the resource at `href` (read first for its `edit` operation).
    pub async fn update_href(
        &self,
        href: &Url,
        changes: &Map<String, Value>,
        erase: &[&str],
    ) -> Result<Accepted, CimiError> {
        let current = self.get_value(href).await?;
        self.update(&current, changes, erase).await
    }

    /// Delete through the resource's `delete` operation. A provider that answers 500 or 404 is checked with a
    /// GET: gone is [`CimiError::NotFound`] (which a caller deleting something reads as done).
    pub async fn delete(&self, current: &Value) -> Result<Accepted, CimiError> {
        let href = self.operation_href(current, model::REL_DELETE).await?;
        match self.write(Method::DELETE, href.clone(), None, "delete").await {
            Ok(a) => Ok(a),
            Err(e @ (CimiError::NotFound { .. } | CimiError::Unavailable { status: Some(500), .. })) => {
                // Ref §7: "Deleting an already deleted resource answering 500 instead of 404: re-read before
                // concluding." Design rule 1: a 404 to a DELETE is confirmed by a GET.
                let id = id_of(current).map(str::to_string);
                let check = match id {
                    Some(i) => self.resolve(&i).await?,
                    None => href,
                };
                match self.get_value(&check).await {
                    Err(gone @ CimiError::NotFound { .. }) => Err(gone),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Delete the resource at `href` (read first for its `delete` operation; already gone is NotFound).
    pub async fn delete_href(&self, href: &Url) -> Result<Accepted, CimiError> {
        let current = self.get_value(href).await?;
        self.delete(&current).await
    }
}
