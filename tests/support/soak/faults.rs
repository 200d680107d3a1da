//! The soak's fault schedule: seeded episodes, each a window with one or two of cimi-sim's fault classes
//! active and, at its start, possibly a process event (the operator SIGKILLed, kube-apiserver, etcd,
//! kube-controller-manager or cimi-sim restarted). Every class comes once, in a seeded order, before any comes
//! again, so that even a short soak injects them all.

use rand::Rng as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use serde_json::{Value, json};

/// One kind of trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    JobFails,
    JobHangs,
    ServerError,
    Throttle,
    Latency,
    Truncate,
    CommitThenDrop,
    Unavailable,
    KillOperator,
    RestartApiServer,
    RestartEtcd,
    RestartControllerManager,
    RestartSim,
}

impl Class {
    pub const ALL: [Class; 13] = [
        Class::JobFails,
        Class::JobHangs,
        Class::ServerError,
        Class::Throttle,
        Class::Latency,
        Class::Truncate,
        Class::CommitThenDrop,
        Class::Unavailable,
        Class::KillOperator,
        Class::RestartApiServer,
        Class::RestartEtcd,
        Class::RestartControllerManager,
        Class::RestartSim,
    ];

    /// Whether the class is a process event (as opposed to cimi-sim fault rules over a window).
    pub fn is_process(self) -> bool {
        matches!(
            self,
            Class::KillOperator
                | Class::RestartApiServer
                | Class::RestartEtcd
                | Class::RestartControllerManager
                | Class::RestartSim
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::JobFails => "failed Jobs",
            Class::JobHangs => "hung Jobs",
            Class::ServerError => "5xx answers",
            Class::Throttle => "429 with Retry-After",
            Class::Latency => "latency",
            Class::Truncate => "truncated collections",
            Class::CommitThenDrop => "commit-then-drop",
            Class::Unavailable => "503 window",
            Class::KillOperator => "operator SIGKILL",
            Class::RestartApiServer => "kube-apiserver restart",
            Class::RestartEtcd => "etcd restart",
            Class::RestartControllerManager => "kube-controller-manager restart",
            Class::RestartSim => "cimi-sim restart from its state file",
        }
    }

    /// The cimi-sim rules of a fault class over a window of `seconds`, with seeded parameters.
    pub fn rules(self, rng: &mut StdRng, seconds: u64) -> Vec<Value> {
        match self {
            // Creates, actions, edits and deletes alike: a failed delete Job leaves the resource to delete again.
            Class::JobFails => vec![json!({"kind": "jobFails", "rate": rng.random_range(0.2..0.5)})],
            // POSTs only (creates and actions): a hung delete is left to run by design (stopping it would leave
            // the resource behind), and a provider that never ends it is not a fault the operator can mend.
            Class::JobHangs => vec![json!({"kind": "jobHangs", "method": "POST", "rate": rng.random_range(0.1..0.3)})],
            Class::ServerError => {
                let status = [500, 502, 503][rng.random_range(0..3)];
                vec![json!({"kind": "error", "status": status, "rate": rng.random_range(0.2..0.5)})]
            }
            Class::Throttle => vec![json!({"kind": "throttle", "retryAfter": rng.random_range(1..4),
                                           "rate": rng.random_range(0.2..0.5)})],
            Class::Latency => vec![json!({"kind": "latency", "ms": rng.random_range(200..1500),
                                          "rate": rng.random_range(0.3..0.8)})],
            Class::Truncate => vec![json!({"kind": "truncate", "max": rng.random_range(1..10), "method": "GET"})],
            Class::CommitThenDrop => {
                vec![
                    json!({"kind": "commitThenDrop", "rate": rng.random_range(0.1..0.3), "method": "POST"}),
                    json!({"kind": "commitThenDrop", "rate": rng.random_range(0.1..0.3), "method": "PUT"}),
                    json!({"kind": "commitThenDrop", "rate": rng.random_range(0.1..0.3), "method": "DELETE"}),
                ]
            }
            Class::Unavailable => vec![json!({"kind": "unavailable", "seconds": (seconds / 2).max(1)})],
            _ => Vec::new(),
        }
    }
}

/// One episode: a process event at its start (if any), then `sim` classes active for `seconds`.
#[derive(Clone, Debug)]
pub struct Episode {
    pub process: Option<Class>,
    pub sim: Vec<Class>,
    pub seconds: u64,
    /// Which shard to kill, for [`Class::KillOperator`].
    pub shard: u32,
    pub rules: Vec<Value>,
}

/// The seeded sequence of episodes.
pub struct Schedule {
    rng: StdRng,
    bag: Vec<Class>,
    window: (u64, u64),
}

impl Schedule {
    /// Windows last between `window.0` and `window.1` seconds.
    pub fn new(seed: u64, window: (u64, u64)) -> Self {
        Schedule { rng: StdRng::seed_from_u64(seed ^ 0x5eed_fa17), bag: Vec::new(), window }
    }

    fn draw(&mut self) -> Class {
        if self.bag.is_empty() {
            self.bag = Class::ALL.to_vec();
            self.bag.shuffle(&mut self.rng);
        }
        self.bag.pop().expect("a class")
    }

    /// The next episode.
    pub fn next_episode(&mut self, shards: u32) -> Episode {
        let seconds = self.rng.random_range(self.window.0..=self.window.1);
        let first = self.draw();
        let (mut process, mut sim) = if first.is_process() { (Some(first), vec![]) } else { (None, vec![first]) };
        // Half the episodes pile a second class on the first: trouble rarely comes alone.
        if self.rng.random_bool(0.5) {
            let second = self.draw();
            match (second.is_process(), process) {
                (true, None) => process = Some(second),
                (false, _) if !sim.contains(&second) => sim.push(second),
                // Two process events in one episode: the second goes back in the bag.
                _ => self.bag.insert(0, second),
            }
        }
        let shard = self.rng.random_range(0..shards.max(1));
        let mut rules = Vec::new();
        for class in &sim {
            rules.extend(class.rules(&mut self.rng, seconds));
        }
        Episode { process, sim, seconds, shard, rules }
    }
}
