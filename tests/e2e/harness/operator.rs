//! The operator under test: in process, scoped to a test's namespace and label ([`TestOperator`]), or as the
//! `cimi-operator run` binary in a child process ([`OperatorProcess`]); and its admin server over HTTP.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::control_plane::{client, control_plane, random_suffix};

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

    /// The scope (label) of a test without an in-process operator: for objects that a `cimi-operator run`
    /// process started with `--selector e2e.cimi.dev/test=<value>` reconciles.
    pub fn scope_only(value: &str) -> Self {
        let label = ("e2e.cimi.dev/test".to_string(), value.to_string());
        Self { label, shutdown: tokio_util::sync::CancellationToken::new() }
    }

    /// The selector of [`TestOperator::scope_only`]'s label, for `--selector`.
    pub fn selector(&self) -> String {
        format!("{}={}", self.label.0, self.label.1)
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

/// The `cimi-operator run` binary against the shared control plane, as a child process, its output in a file;
/// killed when dropped. The log file is kept when the test fails, for a reader to see.
pub struct OperatorProcess {
    pub child: Child,
    log: PathBuf,
}

impl OperatorProcess {
    /// Runs `cimi-operator run --kubeconfig <the shared control plane's> ARGS`, with its output in
    /// `<temp dir>/cimi-e2e-<log_name>.log`. `RUST_LOG` is not passed on: the arguments decide the log level.
    pub fn start(log_name: &str, args: &[&str]) -> Self {
        Self::start_with_env(log_name, args, &[])
    }

    /// As [`OperatorProcess::start`], with more environment variables.
    pub fn start_with_env(log_name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(control_plane().kubeconfig_path(), log_name, args, env)
    }

    /// As [`OperatorProcess::start_with_env`], against the control plane of `kubeconfig` (a test's own).
    pub fn start_on(kubeconfig: &std::path::Path, log_name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("cimi-e2e-{log_name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cimi-operator"))
            .args(["run", "--kubeconfig"])
            .arg(kubeconfig)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start the cimi-operator binary");
        Self { child, log }
    }

    /// Everything the binary wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept for a failed test to read; removed otherwise.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
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
