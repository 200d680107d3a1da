//! The shared control plane and per-test helpers.

use std::sync::OnceLock;
use std::time::Duration;

use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane of this test binary, started on first use. It runs until the binary exits; its supervisor
/// stops every process then.
pub fn control_plane() -> &'static ControlPlane {
    let cp = CONTROL_PLANE.get_or_init(|| {
        // Started on a runtime of its own: the clients made during start-up die with it, the processes do not.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(ControlPlane::start(ControlPlaneConfig::default())).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("control plane start-up panicked".into()))
    });
    match cp {
        Ok(cp) => cp,
        Err(e) => panic!("the control plane did not start: {e}"),
    }
}

/// A new admin client for the current test's runtime.
pub async fn client() -> kube::Client {
    control_plane().client().await.expect("a client for the control plane")
}

/// A namespace of the test's own, deleted when dropped (best effort, in the background).
pub struct TestNamespace {
    pub name: String,
    client: kube::Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn new(client: &kube::Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", random_suffix());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns).await.expect("create test namespace");
        Self { name, client: client.clone() }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

pub fn random_suffix() -> String {
    use rand::Rng as _;
    let n: u32 = rand::rng().random();
    format!("{n:08x}")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An operator instance of one test: scoped to the test's namespace and its own label, with the
/// test's namespace as the operator namespace (where provider Secrets live). Stopped on drop.
pub struct TestOperator {
    /// The label every object of the test carries (`key=value`).
    pub label: (String, String),
    shutdown: tokio_util::sync::CancellationToken,
}

impl TestOperator {
    /// Starts an operator with its own kube::Client.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with_label(namespace, &random_suffix()).await
    }

    /// Starts an operator scoped to the label value `value` (a second instance of a test's operator).
    pub async fn start_with_label(namespace: &str, value: &str) -> Self {
        Self::start_in(&[namespace], value).await
    }

    /// Starts an operator that watches every namespace of `namespaces` (the first is its own, where
    /// provider Secrets live), scoped to the label value `value`.
    pub async fn start_in(namespaces: &[&str], value: &str) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        let label = ("e2e.cimi.dev/test".to_string(), value.to_string());
        let config = cimi_operator::Config {
            namespaces: namespaces.iter().map(|ns| ns.to_string()).collect(),
            label_selector: Some(format!("{}={}", label.0, label.1)),
            operator_namespace: namespaces.first().map(|ns| ns.to_string()).unwrap_or_default(),
            cluster_name: "e2e".to_string(),
            ..Default::default()
        };
        let shutdown = tokio_util::sync::CancellationToken::new();
        cimi_operator::operator::start(config, client().await, shutdown.clone()).await.expect("operator starts");
        Self { label, shutdown }
    }

    /// Starts an operator scoped to the label value `value`, its configuration adjusted by `configure`;
    /// also returns the running instance (admin address, metrics, task).
    pub async fn start_configured(
        namespace: &str,
        value: &str,
        configure: impl FnOnce(&mut cimi_operator::Config),
    ) -> (Self, cimi_operator::operator::Running) {
        let label = ("e2e.cimi.dev/test".to_string(), value.to_string());
        let mut config = cimi_operator::Config {
            namespaces: vec![namespace.to_string()],
            label_selector: Some(format!("{}={}", label.0, label.1)),
            operator_namespace: namespace.to_string(),
            cluster_name: "e2e".to_string(),
            ..Default::default()
        };
        configure(&mut config);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running =
            cimi_operator::operator::start(config, client().await, shutdown.clone()).await.expect("operator starts");
        (Self { label, shutdown }, running)
    }

    /// The label as a map, for an object's metadata.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        [(self.label.0.clone(), self.label.1.clone())].into_iter().collect()
    }
}

impl Drop for TestOperator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A condition of an object's status conditions, as (status, reason).
pub fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String)> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// A client of the shared control plane that impersonates `user` (such as
/// `system:serviceaccount:<ns>:<name>`), optionally with extra groups, for the current test's runtime.
pub async fn client_as(user: &str, groups: &[&str]) -> kube::Client {
    client_of_as(control_plane(), user, groups).await
}

/// A client of `cp` that impersonates `user` with `groups`.
pub async fn client_of_as(cp: &ControlPlane, user: &str, groups: &[&str]) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.kubeconfig_path()).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_string());
    if !groups.is_empty() {
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    kube::Client::try_from(config).expect("impersonating client")
}

/// `GET path` on a loopback HTTP server: the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the admin server");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
/// Runs a tool from the cache (kubectl, helm) with the shared control plane's kubeconfig; returns
/// (success, stdout, stderr).
pub fn run_tool(
    tool: cimi_operator::devenv::tools::Tool,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    run_tool_with(control_plane().kubeconfig_path(), tool, args, stdin)
}

/// Runs a tool from the cache against the cluster of `kubeconfig`.
pub fn run_tool_with(
    kubeconfig: &std::path::Path,
    tool: cimi_operator::devenv::tools::Tool,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let out = run_tool_env(kubeconfig, tool, args, &[], stdin);
    (out.code == Some(0), out.stdout, out.stderr)
}

/// What a tool run left: its exit code (`None` when a signal ended it), stdout and stderr.
pub struct ToolRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a tool from the cache against the cluster of `kubeconfig`, with extra environment variables (such
/// as a `PATH` on which kubectl finds a plugin); returns its exit code and output.
pub fn run_tool_env(
    kubeconfig: &std::path::Path,
    tool: cimi_operator::devenv::tools::Tool,
    args: &[&str],
    env: &[(&str, String)],
    stdin: Option<&str>,
) -> ToolRun {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let program = tool.locate().expect("the tool is provisioned (make tools)");
    let home = std::env::temp_dir().join("cimi-e2e-tool-home");
    let mut child = Command::new(&program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        })
    });
    let out = child.wait_with_output().expect("wait for the tool");
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    ToolRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
