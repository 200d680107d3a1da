//! `make demo`: the main job on embedded defaults.
//!
//! A local control plane (unless `KUBECONFIG` names a cluster), the CRDs, cimi-sim on `127.0.0.1:8780` (user `demo`,
//! password `demo`), the operator in-process, and `examples/quickstart/` applied; then it waits until every applied
//! object that has a `Ready` condition says `True`, and prints `kubectl get cimi -A` and two `kubectl cimi`
//! commands to try.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use tokio_util::sync::CancellationToken;

use super::apply::{Applied, apply_dir, ready_condition};
use super::{ControlPlane, ControlPlaneConfig, Error, install_crds};
use crate::sim::{Auth, Sim, SimConfig};

/// What the demo runs with.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Exit once everything is Ready (`DEMO_EXIT=1`) instead of running until Ctrl-C.
    pub exit_when_ready: bool,
    /// The manifests to apply.
    pub examples: PathBuf,
    /// The CRDs to install.
    pub crds: PathBuf,
    /// Where cimi-sim listens.
    pub sim_listen: SocketAddr,
    /// The operator's namespace (where the CimiProvider's Secret lives).
    pub operator_namespace: String,
    /// How long to wait for everything to become Ready.
    pub ready_timeout: Duration,
    /// Where the demo writes its kubeconfig (when it starts its own control plane).
    pub state_dir: PathBuf,
}

impl Default for DemoOptions {
    fn default() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Self {
            exit_when_ready: std::env::var("DEMO_EXIT").is_ok_and(|v| v == "1" || v == "true"),
            examples: root.join("examples/quickstart"),
            crds: root.join("crds"),
            sim_listen: SocketAddr::from(([127, 0, 0, 1], 8780)),
            operator_namespace: "cimi-system".into(),
            ready_timeout: Duration::from_secs(300),
            state_dir: root.join("target/demo"),
        }
    }
}

/// Runs the demo. Returns when everything is Ready and `exit_when_ready` is set, or on Ctrl-C / SIGTERM.
pub async fn run_demo(opts: DemoOptions) -> Result<(), Error> {
    super::install_crypto_provider();
    let deadline = Instant::now() + opts.ready_timeout;

    // 1. A cluster.
    let external = std::env::var("KUBECONFIG").ok().filter(|k| !k.trim().is_empty());
    let (control_plane, client, kubeconfig) = match &external {
        Some(path) => {
            say(&format!("using the cluster of KUBECONFIG={path}"));
            let client = kube::Client::try_default().await?;
            (None, client, PathBuf::from(path))
        }
        None => {
            say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)");
            let cp =
                ControlPlane::start(ControlPlaneConfig { crds_dir: None, ..ControlPlaneConfig::default() }).await?;
            let client = cp.client().await?;
            std::fs::create_dir_all(&opts.state_dir).map_err(|e| Error::Io(opts.state_dir.clone(), e))?;
            let kubeconfig = opts.state_dir.join("kubeconfig");
            std::fs::copy(cp.kubeconfig_path(), &kubeconfig).map_err(|e| Error::Io(kubeconfig.clone(), e))?;
            say(&format!("control plane at {}; kubeconfig: {}", cp.server_url(), kubeconfig.display()));
            (Some(cp), client, kubeconfig)
        }
    };

    // 2. The CRDs and the operator's namespace.
    say(&format!("installing the CRDs from {}", opts.crds.display()));
    install_crds(&client, &opts.crds, deadline).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": opts.operator_namespace}});
    namespaces.patch(&opts.operator_namespace, &PatchParams::apply("cimi-demo"), &Patch::Apply(&ns)).await?;

    // 3. The provider.
    let sim_config = SimConfig {
        listen: opts.sim_listen,
        auth: Auth::Basic { user: "demo".into(), password: "demo".into() },
        ..SimConfig::default()
    };
    let sim = Sim::start(sim_config).await.map_err(|e| {
        Error::Other(format!("cimi-sim cannot listen on {}: {e} (is another demo running?)", opts.sim_listen))
    })?;
    say(&format!("cimi-sim serving {} (user demo, password demo)", sim.url()));

    // 4. The operator.
    let shutdown = CancellationToken::new();
    let operator_config = crate::runtime::Config {
        operator_namespace: opts.operator_namespace.clone(),
        ..crate::runtime::Config::default()
    };
    let operator = crate::operator::start(operator_config, client.clone(), shutdown.clone())
        .await
        .map_err(|e| Error::Other(format!("the operator did not start: {e:#}")))?;
    say("operator started");

    // 5. The examples.
    let applied = if opts.examples.is_dir() {
        say(&format!("applying {}", opts.examples.display()));
        apply_dir(&client, &opts.examples, "default").await?
    } else {
        Vec::new()
    };
    let outcome = if applied.is_empty() {
        Err(format!("nothing to apply: {} holds no manifests yet", opts.examples.display()))
    } else {
        wait_ready(&applied, deadline).await
    };
    print_kubectl_get(&kubeconfig);

    let result = match outcome {
        Ok(()) => {
            say("everything is Ready");
            print_plugin_commands(&kubeconfig);
            if !opts.exit_when_ready {
                say("running until Ctrl-C (DEMO_EXIT=1 exits here instead)");
                wait_for_signal().await;
            }
            Ok(())
        }
        Err(missing) => Err(Error::Other(format!("the demo is incomplete: {missing}"))),
    };

    shutdown.cancel();
    let _ = operator.task.await;
    sim.stop().await;
    if let Some(cp) = control_plane {
        cp.stop();
    }
    result
}

/// Waits until every applied object with a status reports `Ready=True`; reports progress as it changes.
async fn wait_ready(applied: &[Applied], deadline: Instant) -> Result<(), String> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut pending = Vec::new();
        for a in applied {
            if !has_status_conditions(&a.gvk.kind) {
                continue;
            }
            let key = format!("{}/{}", a.gvk.kind, a.name);
            let line = match a.api.get_opt(&a.name).await {
                Ok(Some(obj)) => match ready_condition(&obj) {
                    Some((status, _, _)) if status == "True" => None,
                    Some((status, reason, message)) => Some(format!("Ready={status} {reason}: {message}")),
                    None => Some("no Ready condition yet (is the operator reconciling this kind?)".to_string()),
                },
                Ok(None) => Some("deleted".to_string()),
                Err(e) => Some(format!("cannot read: {e}")),
            };
            match line {
                Some(line) => {
                    if last.get(&key) != Some(&line) {
                        say(&format!("  {key}: {line}"));
                        last.insert(key.clone(), line.clone());
                    }
                    pending.push(format!("{key} ({line})"));
                }
                None => {
                    if last.get(&key).map(String::as_str) != Some("Ready") {
                        say(&format!("  {key}: Ready"));
                        last.insert(key, "Ready".into());
                    }
                }
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not Ready in time: {}", pending.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn has_status_conditions(kind: &str) -> bool {
    kind.starts_with("Cimi")
}

fn print_kubectl_get(kubeconfig: &Path) {
    match super::tools::Tool::Kubectl.locate() {
        Ok(kubectl) => {
            say("kubectl get cimi -A");
            let _ = std::process::Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["get", "cimi", "-A"])
                .status();
        }
        Err(e) => say(&format!("(kubectl not available: {e})")),
    }
}

/// Two `kubectl cimi` commands to try, runnable as printed: the plugin built next to this binary put first on
/// `PATH`, kubectl from the tool cache, the demo's kubeconfig.
fn print_plugin_commands(kubeconfig: &Path) {
    let plugin_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("kubectl-cimi").is_file());
    let kubectl = super::tools::Tool::Kubectl.locate().map(|p| p.display().to_string()).unwrap_or("kubectl".into());
    let env = match &plugin_dir {
        Some(dir) => format!("KUBECONFIG={} PATH={}:$PATH", kubeconfig.display(), dir.display()),
        None => format!("KUBECONFIG={}", kubeconfig.display()),
    };
    say("try the kubectl plugin (kubectl cimi --help lists every command):");
    if plugin_dir.is_none() {
        say("  (first: cargo build --bin kubectl-cimi, and put its directory on PATH)");
    }
    say(&format!("  {env} {kubectl} cimi status -A"));
    say(&format!("  {env} {kubectl} cimi tree cimisystem/shop -n default"));
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn say(line: &str) {
    println!("[demo] {line}");
}
