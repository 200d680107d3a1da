//! The configuration of a simulator: where it listens, who may call it, how it behaves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::faults::FaultRule;

/// How a consumer authenticates. Its `Debug` form hides the password and the token.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// Every request is accepted.
    None,
    /// HTTP Basic with this user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => f.debug_struct("Basic").field("user", user).field("password", &"***").finish(),
            Auth::Bearer(_) => f.debug_tuple("Bearer").field(&"***").finish(),
        }
    }
}

/// Which reading of the standard the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Our reading of the standard: Jobs, strict types, Job-shaped errors.
    #[default]
    Strict,
    /// No Jobs: actions answer 202 with an empty body and no `CIMI-Job-URI`; no jobs/meters/eventLogs in the
    /// CloudEntryPoint.
    NoJobs,
    /// The deviations of `cimi-reference.md` section 7, as 1.x-era providers served them (no Jobs either).
    #[value(name = "lenient-1x")]
    #[serde(rename = "lenient-1x")]
    Lenient1x,
}

impl Profile {
    /// Whether Jobs are exposed.
    pub fn jobs(self) -> bool {
        self == Profile::Strict
    }
}

/// How long state transitions take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// Everything completes within the request: creates answer 201, actions 204 with a completed Job.
    Instant,
    /// Transitions take tens of milliseconds: 202 + Job.
    #[default]
    Fast,
    /// Transitions take seconds, like a real IaaS.
    Realistic,
}

impl Timing {
    /// The range of one transition's duration, in milliseconds.
    pub fn step_millis(self) -> (u64, u64) {
        match self {
            Timing::Instant => (0, 0),
            Timing::Fast => (20, 80),
            Timing::Realistic => (1500, 5000),
        }
    }
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one (see [`SimHandle::url`](super::SimHandle::url)).
    pub listen: SocketAddr,
    /// The base URI advertised in the CloudEntryPoint and in every href (default: the listen URL).
    pub external_url: Option<String>,
    /// Authentication.
    pub auth: Auth,
    /// Profile.
    pub profile: Profile,
    /// Timing of state transitions.
    pub timing: Timing,
    /// Seed of every random choice (durations, fault rates, MAC addresses), for repeatable runs.
    pub seed: u64,
    /// The catalog (configs, images, templates); `None` is the Primer's default catalog.
    pub catalog: Option<Catalog>,
    /// Fault rules active from the start.
    pub faults: Vec<FaultRule>,
    /// Where to persist state (a snapshot plus an append-only journal, see [`journal`](super::journal)); `None`
    /// keeps it in memory.
    pub state_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain and PEM private key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// How long and how many finished Jobs are kept.
    pub job_retention: JobRetention,
    /// What one request or connection may cost: sizes and timeouts.
    pub limits: Limits,
    /// Collections left out of the CloudEntryPoint (such as `meters` and `eventLogs`: a provider that serves
    /// monitoring only per resource, so a client cannot read it in batches).
    pub cep_omit: Vec<String>,
}

/// What one request or one connection may cost the simulator, so that no request can crash it or hold it:
/// beyond a size the request gets a 4xx, beyond a time its connection is closed (see the "Hardening" section
/// of `docs/cimi-sim.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes: a larger `Content-Length` is answered 413 before the body is read,
    /// and a body without a length (chunked) is answered 413 once it grows past it.
    pub max_body_bytes: usize,
    /// The longest request target (path and query), in bytes; longer is answered 414.
    pub max_uri_bytes: usize,
    /// The largest request head (request line and headers), in bytes; larger is answered 431 (HTTP/1.1) or
    /// refused by HTTP/2. At least 8 KiB is used.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request head, from the first byte of a request (or from the
    /// connection's opening, TLS handshake included); then the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a connection may stay idle between requests (no request in flight, not one byte received);
    /// then it is closed.
    pub idle_timeout: Duration,
    /// How long reading one request body may take; then the request is answered 408.
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    /// 1 MiB bodies, 16 KiB targets, 64 KiB heads; 10 s for a head, 60 s idle, 30 s for a body.
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_uri_bytes: 16 * 1024,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Which finished Jobs are kept: those younger than `age` (advertised, in minutes, as the `JobRetention`
/// capability), and at most `max_jobs` Jobs in all (the oldest finished ones go first). Jobs still running are
/// always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRetention {
    /// How long a finished Job is kept.
    pub age: std::time::Duration,
    /// How many Jobs are kept at most.
    pub max_jobs: usize,
}

impl Default for JobRetention {
    /// One hour, 10,000 Jobs.
    fn default() -> Self {
        JobRetention { age: std::time::Duration::from_secs(3600), max_jobs: 10_000 }
    }
}

/// The PEM files of a TLS server identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl Default for SimConfig {
    /// Loopback on a free port, Basic `demo`/`demo`, strict profile, fast timing, seed 0, default catalog,
    /// default [`Limits`].
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            external_url: None,
            auth: Auth::Basic { user: "demo".into(), password: "demo".into() },
            profile: Profile::Strict,
            timing: Timing::Fast,
            seed: 0,
            catalog: None,
            faults: Vec::new(),
            state_file: None,
            tls: None,
            job_retention: JobRetention::default(),
            limits: Limits::default(),
            cep_omit: Vec::new(),
        }
    }
}
