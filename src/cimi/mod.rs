//! The CIMI client and the shared CIMI resource model.
//!
//! - [`model`]: the shared, strict CIMI 1.x resource model (also used by cimi-sim);
//! - [`client`]: [`CimiClient`], discovery from the CloudEntryPoint and every CIMI operation;
//! - [`jobs`]: following Jobs (nested included) or resource states, with timeouts and cancellation;
//! - [`query`]: the typed `$filter` builder and the other query parameters;
//! - [`transport`]: HTTP with TLS, auth, the per-provider rate budget, safe retries, read bounds, spans and
//!   metrics;
//! - [`origin`]: the origins a provider's client may request (credentials never leave them);
//! - [`normalize`]: the client's tolerance for deviating providers (reference section 7);
//! - [`normal_form`]: whether a JSON document needs that tolerance at all, so that one which does not is typed
//!   straight from its bytes;
//! - [`xml_lenient`]: the client's CIMI XML: a document read into the JSON shape with its text kept as
//!   strings (typed by [`normalize`]), and a JSON-shaped body written as XML;
//! - [`error`]: [`CimiError`], the one error type.
//!
//! What the client tolerates (reference section 7), each with a test: no Jobs (state followed instead);
//! empty or HTML success bodies; operation hrefs unlike the collection URL; detach answering the collection;
//! a 500 on deleting what is gone (re-read); ignored `$first`/`$last` (window applied client-side); an empty
//! collection without its entry array; numbers and booleans as strings; dates that are not `xs:dateTime`;
//! both delete rels; `imageLocation` as a string or `{href}`; entries without `resourceURI`; error bodies as
//! Jobs, `{code, message, error}` or text; a CloudEntryPoint readable without credentials. Not handled:
//! inconsistent capacity units (reported as served) and ids reused after deletion (the operator matches its
//! UID tag).
//!
//! The Primer's walkthrough, through the client:
//!
//! ```no_run
//! use cimi_operator::cimi::{CimiClient, ClientConfig, jobs::WaitOptions, query::Query};
//! use cimi_operator::cimi::model::{MachineConfiguration, MachineImage, Machine};
//! use serde_json::{json, Map};
//! # async fn primer() -> Result<(), cimi_operator::cimi::CimiError> {
//! let client = CimiClient::connect(ClientConfig::new("lab", "http://127.0.0.1:8780/cimi/cloudEntryPoint")?).await?;
//! let image = client.list_all::<MachineImage>("machineImages", &Query::new().last(1)).await?.entries.remove(0);
//! let config = client.list_all::<MachineConfiguration>("machineConfigs", &Query::new()).await?.entries.remove(0);
//! let created = client.create("machines", &json!({
//!     "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "myMachine1",
//!     "machineTemplate": {"machineConfig": {"href": config.id}, "machineImage": {"href": image.id}}})).await?;
//! let machines = client.collection_url("machines").await?;
//! let href = client.created_href(&created, &machines).await?.expect("the provider says where");
//! let wait = WaitOptions::from(client.config().wait);
//! client.settle(&created, Some(&href), &["STOPPED"], &wait).await?;
//! let machine = client.get_value(&href).await?;
//! let started = client.action(&machine, "start", Map::new()).await?;
//! client.settle(&started, Some(&href), &["STARTED"], &wait).await?;
//! let m: Machine = client.get(&href).await?;
//! assert_eq!(m.state.as_deref(), Some("STARTED"));
//! # Ok(()) }
//! ```

pub mod client;
pub mod error;
pub mod jobs;
pub mod model;
pub mod normal_form;
pub mod normalize;
pub mod origin;
pub mod query;
pub mod transport;
pub mod xml_lenient;

pub use client::{Accepted, CimiClient, ClientConfig, Discovery, Listing, Template, WaitPolicy, create_body};
pub use error::CimiError;
pub use origin::{Origin, OriginPolicy};
pub use transport::{Auth, ClientMetrics, Format, Limits, ReadLimits, RetryPolicy, Secret, TransportConfig};
