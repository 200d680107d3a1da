//! The local control plane: a real etcd, kube-apiserver and kube-controller-manager on loopback, for tests and
//! demos (feature `devenv`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cimi_operator::devenv::Error> {
//! use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
//! let cp = ControlPlane::start(ControlPlaneConfig::default()).await?;
//! let client = cp.client().await?; // a fresh kube::Client, admin identity
//! println!("kubeconfig: {}", cp.kubeconfig_path().display());
//! cp.stop();
//! # Ok(()) }
//! ```
//!
//! The binaries come from the tool cache that `make tools` fills ([`tools`]); the processes run in one process
//! group that dies with the process that started them ([`supervisor`]).

pub mod apply;
pub mod demo;
pub mod error;
pub mod supervisor;
pub mod tools;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use self::error::Error;
use self::supervisor::Supervisor;
use self::tools::Tool;

/// How to start the control plane.
#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    /// Keep the state (certificates, etcd data, logs, kubeconfig) in this directory instead of a temporary one
    /// removed at stop.
    pub dir: Option<PathBuf>,
    /// Apply every CRD found in these YAML files' directory (default: the crate's `crds/`). `None` applies none.
    pub crds_dir: Option<PathBuf>,
    /// Enable the API server's audit log with this policy file; the log is at [`ControlPlane::audit_log_path`].
    pub audit_policy: Option<PathBuf>,
    /// Start kube-controller-manager (garbage collector, namespace and service-account controllers).
    pub controller_manager: bool,
    /// Serve the API server's `/debug/pprof` (to profile it under a benchmark); off otherwise.
    pub profiling: bool,
    /// How long to wait for the whole control plane to become ready.
    pub ready_timeout: Duration,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        Self {
            dir: None,
            crds_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")),
            audit_policy: None,
            controller_manager: true,
            profiling: false,
            ready_timeout: Duration::from_secs(120),
        }
    }
}

/// The controllers kube-controller-manager runs here: what the operator relies on (owned-object garbage
/// collection, namespace deletion, service accounts and their tokens for impersonation tests).
pub const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,serviceaccount-controller,\
serviceaccount-token-controller,clusterrole-aggregation-controller,root-ca-certificate-publisher-controller";

/// A running control plane. Dropping it (or [`ControlPlane::stop`]) stops every process it started.
pub struct ControlPlane {
    supervisor: Supervisor,
    children: Vec<(&'static str, Child)>,
    /// How each component was started (program and arguments), to start it again in place.
    commands: Vec<(&'static str, PathBuf, Vec<std::ffi::OsString>)>,
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    server: String,
    kubeconfig_path: PathBuf,
    kubeconfig: Kubeconfig,
    audit_log: Option<PathBuf>,
    etcd_url: String,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and (optionally) kube-controller-manager on free loopback ports, waits until the
    /// API server is ready, and applies the CRDs.
    pub async fn start(config: ControlPlaneConfig) -> Result<Self, Error> {
        install_crypto_provider();
        let deadline = Instant::now() + config.ready_timeout;
        let etcd_bin = Tool::Etcd.locate()?;
        let apiserver_bin = Tool::KubeApiserver.locate()?;
        let kcm_bin = if config.controller_manager { Some(Tool::KubeControllerManager.locate()?) } else { None };

        let (temp, dir) = match &config.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Error::Io(d.clone(), e))?;
                (None, d.canonicalize().map_err(|e| Error::Io(d.clone(), e))?)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("cimi-devenv-")
                    .tempdir()
                    .map_err(|e| Error::Io(std::env::temp_dir(), e))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        for sub in ["pki", "etcd", "logs"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::Io(p, e))?;
        }

        let cleanup = if temp.is_some() { Some(dir.as_path()) } else { None };
        let supervisor = Supervisor::start(&dir.display().to_string(), cleanup)?;
        let mut cp = ControlPlane {
            supervisor,
            children: Vec::new(),
            commands: Vec::new(),
            dir: dir.clone(),
            _temp: temp,
            server: String::new(),
            kubeconfig_path: dir.join("kubeconfig"),
            kubeconfig: Kubeconfig::default(),
            audit_log: None,
            etcd_url: String::new(),
        };

        // etcd
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        cp.etcd_url = etcd_url.clone();
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = cp.supervisor.command(&etcd_bin);
        etcd.args([
            "--name=default",
            &format!("--data-dir={}", dir.join("etcd").display()),
            &format!("--listen-client-urls={etcd_url}"),
            &format!("--advertise-client-urls={etcd_url}"),
            &format!("--listen-peer-urls={peer_url}"),
            &format!("--initial-advertise-peer-urls={peer_url}"),
            &format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]);
        cp.spawn("etcd", etcd)?;
        cp.wait_tcp("etcd", etcd_port, deadline).await?;

        // identities and keys
        let token = random_token();
        let tokens = dir.join("pki/tokens.csv");
        write_file(&tokens, format!("{token},cimi-admin,cimi-admin,system:masters\n").as_bytes())?;
        let sa_key = dir.join("pki/service-account.key");
        let sa_pub = dir.join("pki/service-account.pub");
        if !sa_key.exists() || !sa_pub.exists() {
            let key = rcgen::KeyPair::generate().map_err(|e| Error::Other(format!("key generation: {e}")))?;
            write_file(&sa_key, key.serialize_pem().as_bytes())?;
            write_file(&sa_pub, key.public_key_pem().as_bytes())?;
        }

        // kube-apiserver
        let mut api = cp.supervisor.command(&apiserver_bin);
        api.args([
            &format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={api_port}"),
            &format!("--cert-dir={}", dir.join("pki").display()),
            &format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            &format!("--service-account-key-file={}", sa_pub.display()),
            &format!("--service-account-signing-key-file={}", sa_key.display()),
            "--service-cluster-ip-range=10.0.0.0/24",
            "--enable-priority-and-fairness=false",
            "--v=0",
        ]);
        api.arg(format!("--profiling={}", config.profiling));
        if let Some(policy) = &config.audit_policy {
            let log = dir.join("logs/audit.log");
            api.arg(format!("--audit-policy-file={}", policy.display()));
            api.arg(format!("--audit-log-path={}", log.display()));
            api.arg("--audit-log-format=json");
            api.arg("--audit-log-mode=blocking");
            cp.audit_log = Some(log);
        }
        cp.spawn("kube-apiserver", api)?;
        let cert = dir.join("pki/apiserver.crt");
        // The server writes its certificate after creating the file: wait until a whole one can be read (reading
        // as soon as the file exists found it empty now and then).
        let read_ca = || std::fs::read_to_string(&cert).ok().as_deref().and_then(last_pem_certificate);
        cp.wait_for("kube-apiserver", deadline, || async { read_ca().is_some() }).await?;
        let ca = read_ca().ok_or_else(|| Error::Other(format!("no certificate in {}", cert.display())))?;
        cp.server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig_text = kubeconfig_yaml(&cp.server, &ca, &token);
        write_file(&cp.kubeconfig_path, kubeconfig_text.as_bytes())?;
        cp.kubeconfig =
            Kubeconfig::from_yaml(&kubeconfig_text).map_err(|e| Error::Other(format!("kubeconfig: {e}")))?;

        let client = cp.client().await?;
        cp.wait_for("kube-apiserver", deadline, || api_ready(client.clone())).await?;

        // kube-controller-manager
        if let Some(kcm_bin) = kcm_bin {
            let mut kcm = cp.supervisor.command(&kcm_bin);
            kcm.args([
                &format!("--kubeconfig={}", cp.kubeconfig_path.display()),
                &format!("--controllers={CONTROLLERS}"),
                &format!("--service-account-private-key-file={}", sa_key.display()),
                &format!("--root-ca-file={}", dir.join("pki/ca.crt").display()),
                "--leader-elect=false",
                "--secure-port=0",
                "--v=0",
            ]);
            write_file(&dir.join("pki/ca.crt"), ca.as_bytes())?;
            cp.spawn("kube-controller-manager", kcm)?;
            let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
            cp.wait_for("kube-controller-manager", deadline, || {
                let sas = sas.clone();
                async move { sas.get_opt("default").await.is_ok_and(|sa| sa.is_some()) }
            })
            .await?;
        }

        if let Some(crds_dir) = &config.crds_dir {
            cp.install_crds(crds_dir, deadline).await?;
        }
        Ok(cp)
    }

    /// A new client with the admin identity. Each test builds its own: a client made in one tokio runtime dies
    /// with it.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Other(format!("kubeconfig: {e}")))?;
        Ok(kube::Client::try_from(config)?)
    }

    /// The kubeconfig file (admin identity) for kubectl, helm and other processes.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The API server URL.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The client URL of etcd (plain HTTP on loopback): tests use it to plant stored data that the API
    /// server would not admit, as an older schema or a restored backup can leave behind.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The directory holding certificates, data, logs and the kubeconfig.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The audit log, when started with an audit policy.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// The process group of every process of this control plane.
    pub fn process_group(&self) -> i32 {
        self.supervisor.pgid()
    }

    /// Whether every started process is still running.
    pub fn is_running(&mut self) -> bool {
        self.children.iter_mut().all(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }

    /// Applies every CRD in the YAML files of `dir` (server-side apply) and waits until each is established.
    pub async fn install_crds(&self, dir: &Path, deadline: Instant) -> Result<(), Error> {
        install_crds(&self.client().await?, dir, deadline).await
    }

    /// The last lines of a component's log (etcd, kube-apiserver, kube-controller-manager).
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        tail(&self.dir.join("logs").join(format!("{component}.log")), lines)
    }

    /// Stops every process of the control plane and removes a temporary directory.
    pub fn stop(mut self) {
        self.supervisor.shutdown(Duration::from_secs(5));
        for (_, child) in &mut self.children {
            let _ = child.wait();
        }
    }

    fn spawn(&mut self, component: &'static str, mut cmd: std::process::Command) -> Result<(), Error> {
        let log = self.dir.join("logs").join(format!("{component}.log"));
        // Appended to: a component started again in place keeps the log of its earlier life.
        let file =
            std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| Error::Io(log.clone(), e))?;
        let err = file.try_clone().map_err(|e| Error::Io(log.clone(), e))?;
        cmd.stdout(Stdio::from(file)).stderr(Stdio::from(err));
        let program = PathBuf::from(cmd.get_program());
        let args = cmd.get_args().map(std::ffi::OsStr::to_os_string).collect();
        let child = cmd.spawn().map_err(|e| Error::Spawn(component.into(), e))?;
        self.children.retain(|(name, _)| *name != component);
        self.children.push((component, child));
        self.commands.retain(|(name, _, _)| *name != component);
        self.commands.push((component, program, args));
        Ok(())
    }

    /// Kills one component (`etcd`, `kube-apiserver` or `kube-controller-manager`) with SIGKILL and starts it
    /// again in place: the same binary, arguments, ports, data and certificates, as a machine's reboot or an
    /// OOM kill would. Returns once it serves again (etcd: its port; the API server: `/readyz`), within `timeout`.
    /// The clients made before keep working once it is back.
    pub async fn restart(&mut self, component: &str, timeout: Duration) -> Result<(), Error> {
        let (name, program, args) = self
            .commands
            .iter()
            .find(|(name, _, _)| *name == component)
            .cloned()
            .ok_or_else(|| Error::Other(format!("no component {component} in this control plane")))?;
        if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| *n == name) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut cmd = self.supervisor.command(&program);
        cmd.args(&args);
        self.spawn(name, cmd)?;
        let deadline = Instant::now() + timeout;
        match name {
            "etcd" => {
                let port = self.etcd_url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
                self.wait_tcp(name, port, deadline).await
            }
            "kube-apiserver" => {
                let client = self.client().await?;
                self.wait_for(name, deadline, || api_ready(client.clone())).await
            }
            _ => self.check_alive(),
        }
    }

    fn component_error(&self, component: &'static str, what: String) -> Error {
        let log = self.dir.join("logs").join(format!("{component}.log"));
        Error::Component { component, what, tail: tail(&log, 30), log: log.display().to_string() }
    }

    fn check_alive(&mut self) -> Result<(), Error> {
        let mut exited = None;
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some((*name, status));
                break;
            }
        }
        match exited {
            Some((name, status)) => Err(self.component_error(name, format!("exited early ({status})"))),
            None => Ok(()),
        }
    }

    async fn wait_for<F, Fut>(&mut self, component: &'static str, deadline: Instant, mut ready: F) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        loop {
            self.check_alive()?;
            if ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.component_error(component, "did not become ready in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_tcp(&mut self, component: &'static str, port: u16, deadline: Instant) -> Result<(), Error> {
        self.wait_for(component, deadline, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
        })
        .await
    }
}

/// Whether the API server of `client` answers `/readyz` with `ok`.
async fn api_ready(client: kube::Client) -> bool {
    match http::Request::get("/readyz").body(Vec::new()) {
        Ok(req) => client.request_text(req).await.is_ok_and(|t| t.trim() == "ok"),
        Err(_) => false,
    }
}

/// Applies every CRD in the YAML files of `dir` to the cluster of `client` (server-side apply) and waits until each
/// is established.
pub async fn install_crds(client: &kube::Client, dir: &Path, deadline: Instant) -> Result<(), Error> {
    let crds = read_crds(dir)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("cimi-devenv").force();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &Patch::Apply(crd)).await?;
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let established = api.get_opt(&name).await?.and_then(|c| c.status).is_some_and(|s| {
                s.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Other(format!("CRD {name} not established in time")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Installs the process-wide rustls crypto provider (ring) if none is installed yet.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn free_port() -> Result<u16, Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Io("127.0.0.1:0".into(), e))?;
    l.local_addr().map(|a| a.port()).map_err(|e| Error::Io("127.0.0.1:0".into(), e))
}

fn random_token() -> String {
    use rand::Rng as _;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Io(path.to_path_buf(), e))?;
    f.write_all(contents).map_err(|e| Error::Io(path.to_path_buf(), e))
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last certificate of a PEM bundle: the self-signed CA that kube-apiserver writes after its serving cert.
fn last_pem_certificate(pem: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.rfind(BEGIN)?;
    let end = pem[start..].find(END)? + start + END.len();
    Some(format!("{}\n", &pem[start..end]))
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cimi-dev\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: cimi-admin\n  user:\n    token: {token}\ncontexts:\n\
         - name: cimi-dev\n  context:\n    cluster: cimi-dev\n    user: cimi-admin\ncurrent-context: cimi-dev\n"
    )
}

/// Reads every CustomResourceDefinition of the `*.yaml` files in `dir` (multi-document files allowed).
pub fn read_crds(dir: &Path) -> Result<Vec<CustomResourceDefinition>, Error> {
    use serde::Deserialize as _;
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Io(dir.to_path_buf(), e)),
    };
    files.sort();
    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Io(file.clone(), e))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::Crd(file.clone(), e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition =
                serde_yaml::from_value(value).map_err(|e| Error::Crd(file.clone(), e.to_string()))?;
            crds.push(crd);
        }
    }
    Ok(crds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_certificate_of_a_bundle() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n\
                   -----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            last_pem_certificate(pem).as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n")
        );
        assert_eq!(last_pem_certificate("nothing"), None);
    }

    #[test]
    fn kubeconfig_parses() {
        let k = Kubeconfig::from_yaml(&kubeconfig_yaml("https://127.0.0.1:1", "x", "t")).expect("valid kubeconfig");
        assert_eq!(k.current_context.as_deref(), Some("cimi-dev"));
        assert_eq!(k.clusters[0].cluster.as_ref().and_then(|c| c.server.as_deref()), Some("https://127.0.0.1:1"));
    }

    #[test]
    fn missing_tool_names_make_tools() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Tool::KubeApiserver.locate_in(dir.path()).expect_err("nothing is provisioned there");
        assert!(err.to_string().contains("make tools"), "{err}");
    }
}
