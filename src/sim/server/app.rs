//! The shared state of a running simulator ([`App`]): its configuration, the provider state, the fault rules
//! with their random source, the statistics and the journal; and the token that lets a fault drop the
//! connection a request came on.

use std::sync::Mutex;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio_util::sync::CancellationToken;

use crate::sim::config::SimConfig;
use crate::sim::faults::{FaultRule, FaultSet};
use crate::sim::journal::Journal;
use crate::sim::stats::SimStats;
use crate::sim::store::Store;

/// Dropping this token drops the connection the request came on (commit-then-drop).
#[derive(Clone)]
pub struct ConnDrop(pub CancellationToken);

/// Fault rules with their random source.
pub struct FaultState {
    /// The rules.
    pub set: FaultSet,
    /// The random source of the rules' rates.
    pub(super) rng: StdRng,
}

impl FaultState {
    /// Rules with a seeded random source.
    pub fn new(rules: Vec<FaultRule>, seed: u64) -> Self {
        FaultState { set: FaultSet { rules }, rng: StdRng::seed_from_u64(seed ^ 0x5eed) }
    }
}

/// The shared state of a running simulator.
pub struct App {
    /// The configuration it started with.
    pub config: SimConfig,
    /// The base URI.
    pub base: String,
    /// The provider state.
    pub store: Mutex<Store>,
    /// Fault rules.
    pub faults: Mutex<FaultState>,
    /// Statistics.
    pub stats: Mutex<SimStats>,
    /// The journal of a persisted simulator (`--state-file`).
    pub journal: Option<Journal>,
    /// The `Authorization` header expected (see [`expected_authorization`](crate::sim::auth::expected_authorization)).
    pub authorization: Option<Vec<u8>>,
}

impl App {
    /// Journals what changed in the store (locked by the caller); true when a record was written.
    pub fn commit(&self, store: &mut Store) -> bool {
        self.journal.as_ref().is_some_and(|j| j.commit(store))
    }

    /// Makes the journaled changes durable (before answering a request that wrote).
    pub fn sync(&self) {
        if let Some(j) = &self.journal {
            j.sync();
        }
    }
}
