//! The CIMI client and the shared CIMI resource model.

pub mod error;
pub mod model;
pub mod query;

pub use error::CimiError;
pub mod normalize;
pub mod transport;
pub mod xml;
