//! The CIMI 1.x resource model, shared by the client and the simulator.
//!
//! Every resource is a typed struct with the common attributes (`resourceURI`, `id`, `name`, `description`,
//! `created`, `updated`, `properties`, `operations`), its own attributes, and an `extra` map that keeps every
//! attribute this model does not know (provider extensions such as the Primer's Credential `userID`), so that a
//! full PUT can echo them back. The model is strict: it reads what the standard says (numbers as numbers,
//! dates as xsd:dateTime); tolerance for providers that deviate lives in the client, not here.
//!
//! - [`common`]: what every resource shares: the namespace and URIs, [`Ref`], [`Operation`], [`RefOr`],
//!   [`Location`] and the [`Resource`] trait;
//! - [`resources`]: the resource structs (Machine, Volume, Network, Job, ...) and create/action bodies;
//! - [`state`]: the states of Jobs and resources as types ([`JobState`], [`ResourceState`]);
//! - [`collection`]: the generic [`Collection`] whose entry array is named after its item type;
//! - [`xml_codec`]: the strict XML codec of section 1.2 of `shared/cimi-reference.md`, to and from JSON values
//!   (attributes typed as the standard defines them; used by cimi-sim and by the client to write).

pub mod collection;
pub mod common;
pub mod resources;
pub mod state;
pub mod xml_codec;

pub use collection::Collection;
pub use common::*;
pub use resources::*;
pub use state::{JobState, ResourceState};

#[cfg(test)]
mod tests;
