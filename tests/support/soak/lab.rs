//! The soak's processes: a control plane of its own, cimi-sim as a separate process with a state file (killed
//! and started again from it), and one `cimi-operator run` process per shard (SIGKILLed and replaced), each
//! with its log kept in the soak's directory and its resident set sampled.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cimi_operator::devenv::supervisor::Supervisor;
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};

/// The sim's user; its password is the canary (see [`Lab::canary`]).
pub const SIM_USER: &str = "soak";

/// Where the binaries are (the caller knows them: `env!("CARGO_BIN_EXE_…")` in a test or bench).
#[derive(Clone, Debug)]
pub struct Binaries {
    pub operator: PathBuf,
    pub sim: PathBuf,
}

/// A child process killed when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One running shard process.
struct ShardProcess {
    child: Owned,
    incarnation: u32,
}

/// A sample of an operator process's resident set.
#[derive(Clone, Copy, Debug)]
pub struct RssSample {
    /// Seconds since the soak started.
    pub at: f64,
    pub shard: u32,
    pub incarnation: u32,
    pub kib: u64,
}

/// Every process of one soak.
pub struct Lab {
    pub dir: PathBuf,
    /// cimi-sim and the operators run in its process group: they die with the soak, even a killed one.
    supervisor: Supervisor,
    pub control_plane: ControlPlane,
    binaries: Binaries,
    sim: Option<Owned>,
    sim_port: u16,
    pub sim_url: String,
    canary: String,
    seed: u64,
    shards: Vec<ShardProcess>,
    incarnations: u32,
    /// Operator processes that exited without being killed by the soak (shard, incarnation, status).
    pub unexpected_exits: Vec<String>,
    pub started: Instant,
}

impl Lab {
    /// Starts the control plane and cimi-sim (not the operator: see [`Lab::start_operators`]).
    pub async fn start(dir: &Path, binaries: Binaries, seed: u64, canary: String) -> Self {
        std::fs::create_dir_all(dir).expect("soak directory");
        let control_plane = ControlPlane::start(ControlPlaneConfig {
            dir: Some(dir.join("control-plane")),
            ..ControlPlaneConfig::default()
        })
        .await
        .expect("the soak's control plane");
        let mut lab = Lab {
            dir: dir.to_path_buf(),
            supervisor: Supervisor::start("soak", None).expect("a supervisor"),
            control_plane,
            binaries,
            sim: None,
            sim_port: 0,
            sim_url: String::new(),
            canary,
            seed,
            shards: Vec::new(),
            incarnations: 0,
            unexpected_exits: Vec::new(),
            started: Instant::now(),
        };
        lab.start_sim();
        lab
    }

    /// The provider's password: a value that must never appear in a log, an Event or a status.
    pub fn canary(&self) -> &str {
        &self.canary
    }

    fn start_sim(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("cimi-sim.log")).expect("sim log");
        let mut child = self
            .supervisor
            .command(&self.binaries.sim)
            .args(["--listen", &format!("127.0.0.1:{}", self.sim_port), "--timing", "fast", "--user", SIM_USER])
            .arg("--seed")
            .arg(self.seed.to_string())
            .arg("--state-file")
            .arg(self.dir.join("cimi-sim-state.json"))
            .env("CIMI_SIM_PASSWORD", &self.canary)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start cimi-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("cimi-sim prints its URL");
        // The rest of its output is drained, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = line.trim().to_string();
        assert!(url.starts_with("http://"), "cimi-sim did not start: {url:?}");
        self.sim_port = url::Url::parse(&url).ok().and_then(|u| u.port()).expect("a port");
        self.sim_url = url;
        self.sim = Some(Owned(child));
    }

    /// Kills cimi-sim with SIGKILL and starts it again on the same port from its state file.
    pub async fn restart_sim(&mut self) {
        drop(self.sim.take());
        for attempt in 0.. {
            let free = std::net::TcpListener::bind(("127.0.0.1", self.sim_port)).is_ok();
            if free || attempt > 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.start_sim();
    }

    /// Starts one operator process per shard.
    pub fn start_operators(&mut self, shards: u32) {
        for shard in 0..shards {
            let process = self.spawn_operator(shard, shards);
            self.shards.push(process);
        }
    }

    /// How many shards run.
    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    fn spawn_operator(&mut self, shard: u32, count: u32) -> ShardProcess {
        self.incarnations += 1;
        let incarnation = self.incarnations;
        let log = std::fs::File::create(self.operator_log(shard, incarnation)).expect("operator log");
        let mut command = self.supervisor.command(&self.binaries.operator);
        command
            .arg("run")
            .arg("--kubeconfig")
            .arg(self.control_plane.kubeconfig_path())
            .args([
                "--admin-addr=off",
                "--log-format=json",
                "--log-level=info",
                "--cluster-name=soak",
                "--operator-namespace=soak-system",
                "--leader-elect",
                "--lease-name=cimi-operator",
                "--lease-duration=4s",
                "--lease-retry-period=1s",
            ])
            .arg(format!("--lease-identity=soak-{shard}-{incarnation}"));
        if count > 1 {
            command.arg(format!("--shard-count={count}")).arg(format!("--shard-index={shard}"));
        }
        let child = command
            .env_remove("RUST_LOG")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start cimi-operator");
        ShardProcess { child: Owned(child), incarnation }
    }

    fn operator_log(&self, shard: u32, incarnation: u32) -> PathBuf {
        self.dir.join(format!("operator-shard-{shard}-{incarnation}.log"))
    }

    /// Every operator log written so far (all incarnations).
    pub fn operator_logs(&self) -> Vec<PathBuf> {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        logs.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("operator-shard-")));
        logs.sort();
        logs
    }

    /// Kills shard `shard`'s process with SIGKILL (as an OOM kill would) and starts a new one.
    pub fn kill_operator(&mut self, shard: u32) {
        let count = self.shard_count();
        let index = shard as usize % self.shards.len();
        self.note_exits();
        let replacement = self.spawn_operator(index as u32, count);
        let old = std::mem::replace(&mut self.shards[index], replacement);
        drop(old);
    }

    /// Records operator processes that exited on their own (a crash or a panic).
    pub fn note_exits(&mut self) {
        for (index, shard) in self.shards.iter_mut().enumerate() {
            if let Ok(Some(status)) = shard.child.0.try_wait() {
                let line =
                    format!("operator shard {index} (incarnation {}) exited on its own: {status}", shard.incarnation);
                if !self.unexpected_exits.contains(&line) {
                    self.unexpected_exits.push(line);
                }
            }
        }
    }

    /// The resident set of every running shard process now.
    pub fn rss(&self) -> Vec<RssSample> {
        let at = self.started.elapsed().as_secs_f64();
        self.shards
            .iter()
            .enumerate()
            .filter_map(|(shard, p)| {
                let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.0.id())).ok()?;
                let kib = status.lines().find_map(|l| {
                    l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                })?;
                Some(RssSample { at, shard: shard as u32, incarnation: p.incarnation, kib })
            })
            .collect()
    }

    /// Stops the operators (SIGKILL; nothing after the soak depends on a clean stop) and cimi-sim.
    pub fn stop_processes(&mut self) {
        self.note_exits();
        self.shards.clear();
        self.sim = None;
    }
}
