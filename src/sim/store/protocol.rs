//! What the HTTP side asks of the store and what the store answers: the parameters of a read
//! ([`ReadQuery`]), the fault flags that shape an operation's Job ([`JobFault`]), what a path names
//! ([`Target`]) and what an operation answers ([`Outcome`]: status, body, headers).

use serde_json::Value;

use crate::sim::query::{Filter, OrderKey};

/// Fault flags that shape an operation's Job.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobFault {
    /// The Job fails.
    pub fails: bool,
    /// The Job never finishes.
    pub hangs: bool,
}

/// What an operation answers.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// HTTP status (200, 201, 202, 204).
    pub status: u16,
    /// The body, if any.
    pub body: Option<Value>,
    /// The `Location` header.
    pub location: Option<String>,
    /// The `CIMI-Job-URI` header.
    pub job: Option<String>,
    /// The `ETag` header.
    pub etag: Option<String>,
    /// Whether state changed.
    pub write: bool,
    /// The body already serialized as JSON (the fast path of a plain GET), instead of `body`.
    pub raw: Option<Vec<u8>>,
}

/// The query parameters of a read.
#[derive(Debug, Clone, Default)]
pub struct ReadQuery {
    /// `$filter`s (ANDed).
    pub filters: Vec<Filter>,
    /// `$select` names.
    pub select: Vec<String>,
    /// `$expand` names (`Some(empty)` = all).
    pub expand: Option<Vec<String>>,
    /// `$first`.
    pub first: Option<u64>,
    /// `$last`.
    pub last: Option<u64>,
    /// `$orderby`.
    pub orderby: Vec<OrderKey>,
    /// Serve at most this many entries (fault).
    pub truncate: Option<usize>,
    /// Ignore paging (lenient profile).
    pub ignore_paging: bool,
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The CloudEntryPoint.
    Cep,
    /// A resource of this type.
    Resource(String),
    /// A collection of this item type.
    Collection(String),
    /// Nothing.
    Missing,
}
