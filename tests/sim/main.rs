//! cimi-sim integration tests.
