//! Hostile-provider benchmark (not a test: it prints figures for BENCHMARKS.md): the resident set of a
//! separate `cimi-operator run` process while a provider answers each attack of `tests/support/hostile.rs`
//! with the chart's flags, and the bytes each large body got through before the operator stopped reading.
//!
//! A real control plane (as the e2e tests use), one operator process, and for each attack a hostile provider
//! (a proxy in front of an in-process cimi-sim) behind a CimiProvider of its own, polled every second. The
//! operator's VmRSS is sampled every 100 ms for `HOSTILE_BENCH_SECONDS` (default 20) per attack after it
//! reported the provider's reason; the peak and the last sample are printed, beside the honest baseline.
//!
//! Run: `cargo bench --bench hostile`.

#[path = "../tests/support/hostile.rs"]
mod hostile;

use std::time::{Duration, Instant};

use cimi_operator::api::CimiProvider;
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use hostile::{Hostile, Mode, Recorder};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// A child process killed when dropped (also when the benchmark panics).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn ready_reason(providers: &Api<CimiProvider>, name: &str) -> Option<(String, String)> {
    let p = providers.get(name).await.ok()?;
    let c = p.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
    Some((c.status, c.reason))
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("HOSTILE_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let cp = ControlPlane::start(ControlPlaneConfig::default()).await.expect("control plane");
    let client = cp.client().await.expect("client");
    let ns = "hostile-bench";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace =
        Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
    namespaces.create(&PostParams::default(), &namespace).await.expect("namespace");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = Secret {
        metadata: ObjectMeta { name: Some("creds".into()), ..Default::default() },
        data: Some(
            [("username", hostile::USER), ("password", hostile::PASSWORD)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &secret).await.expect("secret");

    let second = Recorder::start().await;
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let log = std::env::temp_dir().join("cimi-hostile-bench-operator.log");
    println!(
        "| attack | provider Ready reason | bytes of the body read (max of one answer) | RSS before | peak RSS | RSS at the end |"
    );
    println!("|---|---|---|---|---|---|");
    let attacks = [
        (Mode::Honest, "Reachable"),
        (Mode::HugeBody, "ReadLimitExceeded"),
        (Mode::EndlessBody, "ReadLimitExceeded"),
        // With the default limits the catalog read stops at its own cap of 10,000 entries per collection: the
        // provider is Reachable, and this row measures what that cap costs in memory.
        (Mode::EndlessPages, "Reachable"),
        (Mode::ForeignBase, "UntrustedHref"),
        (Mode::Redirect, "UntrustedHref"),
        (Mode::ForeignNextPage, "UntrustedHref"),
    ];
    for (i, (mode, expected)) in attacks.iter().enumerate() {
        // A fresh operator process per attack (so that each row starts from the same memory), with the
        // chart's flags: its own namespace, every namespace watched.
        let log_file = std::fs::File::create(&log).expect("log file");
        let operator = KillOnDrop(
            std::process::Command::new(env!("CARGO_BIN_EXE_cimi-operator"))
                .args(["run", "--kubeconfig"])
                .arg(cp.kubeconfig_path())
                .args(["--operator-namespace", ns, "--cluster-name", "bench", "--log-format", "json"])
                .args(["--admin-addr", "off"])
                .env("RUST_LOG", "warn")
                .stdout(log_file.try_clone().expect("log"))
                .stderr(log_file)
                .spawn()
                .expect("start cimi-operator"),
        );
        let pid = operator.0.id();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let start_rss = rss_kib(pid);
        let h = Hostile::start(*mode, &second).await;
        let name = format!("attack-{i}");
        let provider: CimiProvider = serde_json::from_value(json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider", "metadata": {"name": name},
            "spec": {"endpoint": h.url, "credentialSecretRef": {"name": "creds"},
                     "allowPlainHTTP": true, "pollInterval": "1s"}
        }))
        .expect("provider");
        providers.create(&PostParams::default(), &provider).await.expect("create provider");
        let deadline = Instant::now() + Duration::from_secs(120);
        let reason = loop {
            if let Some((_, reason)) = ready_reason(&providers, &name).await
                && reason == *expected
            {
                break reason;
            }
            assert!(Instant::now() < deadline, "{mode:?}: no {expected} within 120 s; log at {}", log.display());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (mut peak, mut last) = (0u64, 0u64);
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            last = rss_kib(pid);
            peak = peak.max(last);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "| {mode:?} | {reason} | {} | {:.1} MB | {:.1} MB | {:.1} MB |",
            h.bytes_sent(),
            start_rss as f64 / 1024.0,
            peak as f64 / 1024.0,
            last as f64 / 1024.0
        );
        // One attack at a time: the next one starts from this one's provider gone, with a new operator.
        drop(operator);
        let _ = providers.delete(&name, &Default::default()).await;
    }
    println!("requests received by the second origin: {}", second.requests().len());
    println!("load average: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
}
