//! Request statistics: counts by operation and status, the total of writes, and a log of recent requests with
//! their times (so a test can prove that a client waited as long as `Retry-After` asked).

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many requests the log keeps.
pub const LOG_CAPACITY: usize = 10_000;

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Operation label, `<Type>.<op>` (e.g. `Machine.start`, `MachineCollection.add`).
    pub op: String,
    /// The status answered (0 when the connection was dropped).
    pub status: u16,
}

/// The document of `GET /_sim/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests by operation label, then by status.
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Requests that changed state (successful or committed POST, PUT, DELETE).
    pub writes: u64,
    /// Every CIMI request (admin requests excluded).
    pub total: u64,
    /// The most recent requests, oldest first.
    pub log: VecDeque<RequestRecord>,
}

impl SimStats {
    /// Counts one request.
    pub fn record(&mut self, record: RequestRecord, write: bool) {
        match self.requests.get_mut(&record.op) {
            Some(by_status) => *by_status.entry(record.status).or_default() += 1,
            None => {
                self.requests.entry(record.op.clone()).or_default().insert(record.status, 1);
            }
        }
        self.total += 1;
        if write {
            self.writes += 1;
        }
        if self.log.len() >= LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    /// How many requests of this operation got this status.
    pub fn count(&self, op: &str, status: u16) -> u64 {
        self.requests.get(op).and_then(|s| s.get(&status)).copied().unwrap_or(0)
    }
}
