//! The simulated provider's state and the operations of the protocol on it, one room per purpose:
//!
//! - `data`: the [`Store`] itself: resources as JSON documents in their collections, ids, paths, lookups;
//! - `schema`: what it serves, as data: collections, how each type is created, read-only and write-only
//!   attributes, validation against the typed model, ResourceMetadata;
//! - `protocol`: what a request asks ([`ReadQuery`], [`JobFault`]) and what it is answered ([`Outcome`]);
//! - `jobs`: the Job engine: pending transitions with due times, applied lazily, Job states and retention;
//! - `render`: reads: documents, collections, `operations` lists, the query (`$filter`, `$select`,
//!   `$expand`, paging) applied;
//! - `create`: POST to a collection: dispatch by type, templates and references resolved, 201 or 202;
//! - `operations`: PUT, DELETE and actions on existing resources;
//! - `machines`, `volumes` (with attachments, snapshots and captures), `networks` (with addresses, ports
//!   and forwarding groups), `systems` (with their nested Jobs): each kind's own operations;
//! - `monitor`: EventLogs with an Event per change, Meters with their Samples;
//! - [`persist`]: the changes since the last journal record, and their replay.
//!
//! Time advances lazily: every request first applies the transitions that are due. The state machines
//! themselves are pure functions in [`lifecycle`](super::lifecycle).

mod create;
mod data;
mod index;
mod jobs;
mod machines;
mod monitor;
mod networks;
mod operations;
pub mod persist;
mod props;
mod protocol;
mod render;
mod schema;
mod systems;
mod volumes;

pub use crate::sim::error::SimError;
pub use data::{Coll, Pending, Step, Store, Stored, Tracked, trim_hrefs};
pub use protocol::{JobFault, Outcome, ReadQuery, Target};
pub use schema::{COLLECTIONS, validate};
