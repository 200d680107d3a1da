//! [`CimiClient`]: discovery from the CloudEntryPoint, collections, and the CIMI operations.
//!
//! The client knows one URL, the CloudEntryPoint's. Everything else is an `href` the provider gave: collection
//! refs in the CEP (relative ones resolved against `baseURI`), the `add` operation of a collection, the `edit`,
//! `delete` and action operations of a resource. It never builds a path. A collection the CEP does not list
//! is [`CimiError::NotSupported`](crate::cimi::error::CimiError::NotSupported) before any request is made.
//!
//! Every href is resolved and checked by [`CimiClient::resolve`] against the provider's
//! [`OriginPolicy`](super::origin::OriginPolicy) before it is requested (the transport checks again), and
//! every listing is bounded in pages, entries and time ([`ReadLimits`](super::transport::ReadLimits)).
//!
//! ```no_run
//! use cimi_operator::cimi::{CimiClient, ClientConfig, query::{Filter, Query}};
//! use cimi_operator::cimi::model::{Machine, MachineImage};
//! # async fn demo() -> Result<(), cimi_operator::cimi::CimiError> {
//! let client = CimiClient::connect(ClientConfig::new("lab", "http://127.0.0.1:8780/cimi/cloudEntryPoint")?).await?;
//! let images = client.list_all::<MachineImage>("machineImages", &Query::new()).await?;
//! let running = client
//!     .list_all::<Machine>("machines", &Query::new().filter(Filter::attr("state")?.eq("STARTED")))
//!     .await?;
//! # let _ = (images, running); Ok(()) }
//! ```
//!
//! The client's files, by purpose:
//! - `core`: the configuration ([`ClientConfig`], [`WaitPolicy`]), the [`CimiClient`] itself, its state and
//!   its construction, and what discovery found ([`Discovery`]);
//! - `discovery`: reading the CloudEntryPoint, and the collection URLs it gives;
//! - `hrefs`: resolving and vetting hrefs (the provider's, a spec's, those of headers and request bodies),
//!   and finding the href of a resource's operation;
//! - `read`: reads of one resource or one page, normalised and typed (typed from the bytes when the document
//!   needs no normalisation);
//! - `listing`: whole collections read page by page within the read bounds ([`Listing`]);
//! - `write`: create, update, delete, and what a write answered ([`Accepted`]);
//! - `actions`: actions, capture, and attaching and detaching volumes;
//! - `bodies`: request bodies: `…Create` bodies from a [`Template`], and the check of a body to write.

mod actions;
mod bodies;
mod core;
mod discovery;
mod hrefs;
mod listing;
mod read;
mod write;

pub use self::core::{CimiClient, ClientConfig, Discovery, WaitPolicy};
pub use bodies::{Template, create_body};
pub(crate) use hrefs::find_operation;
pub use hrefs::id_of;
pub use listing::{Listing, take_entries};
pub use read::{ReadBody, read_body, typed, typed_body};
pub use write::{Accepted, JOB_HEADER};
