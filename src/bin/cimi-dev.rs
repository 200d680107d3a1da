//! `cimi-dev`: the local control plane for people (`make dev-up`, `make dev-down`) and the demo (`make demo`).
//!
//! - `cimi-dev up --dir target/dev` starts etcd, kube-apiserver and kube-controller-manager in the background and
//!   writes `target/dev/kubeconfig`;
//! - `cimi-dev down --dir target/dev` stops them and leaves nothing running;
//! - `cimi-dev demo` runs the main job on embedded defaults (see [`cimi_operator::devenv::demo`]).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Local control plane and demo for cimi-operator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a throwaway control plane in the background; its kubeconfig is DIR/kubeconfig.
    Up {
        /// State directory.
        #[arg(long, default_value = "target/dev")]
        dir: PathBuf,
    },
    /// Stop the control plane started by `up`.
    Down {
        /// State directory.
        #[arg(long, default_value = "target/dev")]
        dir: PathBuf,
    },
    /// The main job on embedded defaults: control plane, CRDs, cimi-sim, the operator and examples/quickstart.
    Demo,
    /// Run the control plane in the foreground until SIGTERM or Ctrl-C (what `up` starts in the background).
    Serve {
        /// State directory.
        #[arg(long, default_value = "target/dev")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up { dir } => up(&dir),
        Cmd::Down { dir } => down(&dir),
        Cmd::Serve { dir } => serve(&dir),
        Cmd::Demo => demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("serve.pid")
}

fn running_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file(dir)).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn up(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let kubeconfig = dir.join("kubeconfig");
    if let Some(pid) = running_pid(dir) {
        println!("already running (pid {pid}); kubeconfig: {}", kubeconfig.display());
        return Ok(());
    }
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the control plane in the background")?;
    let deadline = Instant::now() + Duration::from_secs(180);
    while !ready.exists() {
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the control plane exited ({status}):\n{text}");
        }
        if Instant::now() > deadline {
            bail!("the control plane did not become ready in time; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("control plane ready (pid {}); use:\n  export KUBECONFIG={}", child.id(), kubeconfig.display());
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let Some(pid) = running_pid(dir) else {
        println!("not running");
        let _ = std::fs::remove_file(pid_file(dir));
        return Ok(());
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).context("signalling the control plane")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        // Its supervisor still stops the group once the serve process is gone.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file(dir));
    let _ = std::fs::remove_file(dir.join("ready"));
    println!("control plane stopped");
    Ok(())
}

fn demo() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(cimi_operator::devenv::demo::run_demo(cimi_operator::devenv::demo::DemoOptions::default()))?;
    Ok(())
}

fn serve(dir: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let config = ControlPlaneConfig { dir: Some(dir.to_path_buf()), ..ControlPlaneConfig::default() };
        let cp = ControlPlane::start(config).await?;
        std::fs::write(pid_file(dir), std::process::id().to_string())?;
        std::fs::write(dir.join("ready"), cp.server_url())?;
        println!("control plane ready at {}; kubeconfig {}", cp.server_url(), cp.kubeconfig_path().display());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        println!("stopping");
        cp.stop();
        let _ = std::fs::remove_file(pid_file(dir));
        let _ = std::fs::remove_file(dir.join("ready"));
        Ok(())
    })
}
