//! What every managed kind (machines, volumes, networks, systems) does with its provider resource, one room a
//! purpose:
//!
//! - [`reads`]: properties and our UID tag, entries, operations, "gone", a lookup by UID;
//! - [`identity`]: the tags (UID and identity), finding an object's own resource before a create, re-adoption;
//! - [`import`]: `spec.import` by href or filter;
//! - [`known`]: the resource at `status.id`, through the observer;
//! - [`attributes`]: name, description and properties as the spec wants them; drift;
//! - [`jobs`]: Job records, timeouts, the recovery of a failed create;
//! - [`actions`]: one-shot actions (`cimi.dev/action`): the request, the verdict, the outcome in status;
//! - [`deletion`]: delete or orphan, one step per pass.

pub mod actions;
pub mod attributes;
pub mod deletion;
pub mod identity;
pub mod import;
pub mod jobs;
pub mod known;
pub mod reads;
