//! What a request asks for besides its method and path: the media type (`$format`, then `Accept`) and the
//! query parameters of a read (`$filter`, `$select`, `$expand`, `$first`, `$last`, `$orderby`).

use axum::http::{HeaderMap, header};

use crate::sim::error::SimError;
use crate::sim::query::{self, QueryError};
use crate::sim::store::ReadQuery;

/// The media type of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/xml`.
    Xml,
}

/// The format to answer in: `$format`, else the first `Accept` media type served, else JSON (406 if none).
pub fn negotiate(params: &[(String, String)], headers: &HeaderMap) -> Result<Format, SimError> {
    if let Some((_, f)) = params.iter().find(|(k, _)| k == "$format") {
        return match f.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "xml" => Ok(Format::Xml),
            other => Err(SimError::new(400, format!("$format={other} is neither json nor xml"))),
        };
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format::Json);
    };
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "application/*" | "*/*" | "" => return Ok(Format::Json),
            "application/xml" | "text/xml" => return Ok(Format::Xml),
            _ => {}
        }
    }
    Err(SimError::new(406, format!("cannot serve {accept}; ask for application/json or application/xml")))
}

/// The query parameters of a read, parsed and checked.
pub fn read_query(params: &[(String, String)]) -> Result<ReadQuery, QueryError> {
    let mut q = ReadQuery::default();
    for (k, v) in params {
        match k.as_str() {
            "$filter" => q.filters.push(query::parse_filter(v)?),
            "$first" => {
                q.first = Some(v.trim().parse().map_err(|_| QueryError(format!("$first={v} is not a number")))?)
            }
            "$last" => q.last = Some(v.trim().parse().map_err(|_| QueryError(format!("$last={v} is not a number")))?),
            "$orderby" => q.orderby.extend(query::parse_orderby(v)?),
            _ => {}
        }
    }
    q.select = names_of(params, "$select")?;
    if params.iter().any(|(k, _)| k == "$expand") {
        q.expand = Some(names_of(params, "$expand")?);
    }
    Ok(q)
}

/// The names of every `$select` (or `$expand`) parameter, their paths checked.
pub fn names_of(params: &[(String, String)], key: &str) -> Result<Vec<String>, QueryError> {
    let names = query::name_list(params.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()));
    query::check_paths(&names)?;
    Ok(names)
}
