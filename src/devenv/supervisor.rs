//! Keeps the control plane's processes from outliving the process that started them.
//!
//! Every child (etcd, kube-apiserver, kube-controller-manager) joins the process group of a small `sh` supervisor.
//! The supervisor's stdin is a pipe whose only writer is the owning process; when the owner goes away for any
//! reason (normal exit, panic, abort, `kill -9`), the kernel closes the pipe, the supervisor's `read` returns, and
//! it signals its whole group: SIGTERM, then SIGKILL. A registry of pidfiles lets a later run reap the groups of
//! owners that died while the supervisor itself was killed too; groups whose owner is alive are never touched, so
//! parallel runs are safe.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::error::Error;

const SUPERVISOR_SCRIPT: &str = r#"
trap '' TERM INT HUP
read _unused || true
kill -TERM 0 2>/dev/null
sleep 2
if [ -n "${1:-}" ]; then rm -rf -- "$1"; fi
kill -KILL 0 2>/dev/null
"#;

/// A process group that dies with its owner.
pub struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
    pgid: i32,
    pidfile: PathBuf,
}

impl Supervisor {
    /// Starts the supervisor and records it in the pidfile registry (reaping stale entries first). When
    /// `cleanup_dir` is given, the supervisor removes it after its group is gone (for temporary state that must not
    /// outlive an owner killed without unwinding).
    pub fn start(label: &str, cleanup_dir: Option<&Path>) -> Result<Self, Error> {
        reap_stale();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("cimi-devenv-supervisor")
            .arg(cleanup_dir.map(|d| d.as_os_str().to_owned()).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Spawn("sh (supervisor)".into(), e))?;
        let stdin = child.stdin.take();
        let pgid = i32::try_from(child.id()).map_err(|_| Error::Other("pid out of range".into()))?;
        let dir = registry_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e))?;
        let pidfile = dir.join(format!("{}-{pgid}.pid", std::process::id()));
        let record = format!("owner={}\npgid={pgid}\nlabel={label}\n", std::process::id());
        std::fs::write(&pidfile, record).map_err(|e| Error::Io(pidfile.clone(), e))?;
        Ok(Self { child, stdin, pgid, pidfile })
    }

    /// A command that will run inside this supervisor's process group.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.process_group(self.pgid).stdin(Stdio::null());
        cmd
    }

    /// The process group id.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Stops the whole group now: SIGTERM, a grace period, then SIGKILL.
    pub fn shutdown(&mut self, grace: Duration) {
        let group = Pid::from_raw(self.pgid);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline && group_has_members_besides(self.pgid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        self.stdin.take();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(5));
    }
}

/// The pidfile registry, shared by every run on this machine.
pub fn registry_dir() -> PathBuf {
    std::env::temp_dir().join("cimi-operator-devenv")
}

/// Kills the groups of registry entries whose owner is dead, and removes those entries.
pub fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(registry_dir()) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let field = |name: &str| -> Option<i32> {
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=')?.trim().parse().ok())
        };
        let (Some(owner), Some(pgid)) = (field("owner"), field("pgid")) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if process_alive(owner) {
            continue;
        }
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = std::fs::remove_file(&path);
    }
}

fn process_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes: its pipes are closed already.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Whether any process other than the group leader is still in the group.
fn group_has_members_besides(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { return false };
        if pid == pgid {
            return false;
        }
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
            let fields: Vec<&str> =
                stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
            // fields[0] = state, fields[2] = pgrp
            fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields.first() != Some(&"Z")
        })
    })
}
