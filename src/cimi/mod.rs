//! The CIMI client and the shared CIMI resource model.

pub mod model;
