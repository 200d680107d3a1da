//! Scale benchmark of the operator (not a test: it prints figures for BENCHMARKS.md).
//!
//! A real control plane (etcd + kube-apiserver + kube-controller-manager from the tool cache, as the e2e tests
//! use), cimi-sim as a separate process (fast timing) and the operator as a separate process. It applies N
//! CimiMachines at once and prints:
//! - the time until all are Ready, and that time divided by cimi-sim's own create-Job time (measured first
//!   with a direct CIMI client) and by the floor: the larger of the time a bare Kubernetes client takes, at the
//!   operator's concurrency, to make the writes a correct reconcile cannot avoid per object (finalizer,
//!   write-ahead status, Ready status, one Event) and N / cimi-sim's create throughput; beside it, the writes per
//!   machine the operator really made (the API server's `apiserver_request_total`);
//! - provider requests per machine until all are Ready;
//! - steady-state provider requests per poll interval, split into state (collection reads), machine
//!   sub-collections, meters, events, the CimiProvider controller's probe (CEP and catalog) and the rest;
//! - the operator's resident set, with all Ready and in the steady state: the operator is a separate
//!   `cimi-operator run` process started with the chart's flags (its values.yaml defaults: JSON logs at info,
//!   leader election, concurrency 8), its log in the temp directory.
//!
//! Run: `cargo bench --bench operator_scale` (env: `OPERATOR_BENCH_MACHINES`, default 1000;
//! `OPERATOR_BENCH_POLL_SECONDS`, default 10; `OPERATOR_BENCH_WINDOW_POLLS`, default 12 (one meterInterval);
//! `OPERATOR_BENCH_PAGE`, default 100; `OPERATOR_BENCH_CONCURRENCY`, default 8 (the chart's);
//! `OPERATOR_BENCH_READY_TIMEOUT_SECONDS`, default 1800; `OPERATOR_BENCH_SHARDS`, default 1: that many operator
//! processes, one per shard (`--shard-count`/`--shard-index`), RSS reported per shard;
//! `OPERATOR_BENCH_APISERVER_PROFILE=S`: a CPU profile of the API server over the first S seconds of the wave
//! (`go tool pprof -top <file>`); `OPERATOR_BENCH_WRAP`, a profiler to run the operator
//! under, such as `heaptrack -o /tmp/operator`; `OPERATOR_BENCH_AUDIT=1` turns on the API server's audit log and
//! prints the operator's writes by resource, sub-resource and verb, and those of one machine in order).

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use cimi_operator::api::{CimiMachine, CimiProvider};
use cimi_operator::cimi::{Auth, CimiClient, ClientConfig, Secret as CimiSecret};
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use cimi_operator::sim::SimStats;
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The resident set of process `pid` and its peak so far (`VmRSS`, `VmHWM`), in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A child process killed when dropped (also when the benchmark panics).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the cimi-sim binary on a free port; returns the child and its URL.
fn start_sim() -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
        .args(["--listen", "127.0.0.1:0", "--timing", "fast"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start cimi-sim");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("cimi-sim prints its URL");
    (child, line.trim().to_string())
}

async fn sim_stats(http: &reqwest::Client, url: &str) -> SimStats {
    http.get(format!("{}/_sim/stats", url.trim_end_matches('/')))
        .basic_auth("demo", Some("demo"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json")
}

/// Requests by operation between two snapshots.
fn delta(before: &SimStats, after: &SimStats) -> BTreeMap<String, u64> {
    let sum = |s: &SimStats, op: &str| s.requests.get(op).map_or(0, |m| m.values().sum::<u64>());
    after.requests.keys().map(|op| (op.clone(), sum(after, op) - sum(before, op))).filter(|(_, n)| *n > 0).collect()
}

/// The class of a request in the steady state, from its path when known: the machine listing that inlines
/// sub-collections (`$expand`) is their batched read.
fn class_of(op: &str, path: &str) -> &'static str {
    if op == "MachineCollection.read" && path.contains("$expand") {
        return "sub-collections";
    }
    class(op)
}

/// The class of a request in the steady state.
fn class(op: &str) -> &'static str {
    match op {
        "MachineCollection.read" | "VolumeCollection.read" | "NetworkCollection.read" => "state",
        "Machine.read" | "Volume.read" | "Network.read" => "state-confirm",
        "MachineNetworkInterfaceCollection.read"
        | "MachineNetworkInterfaceAddressCollection.read"
        | "MachineVolumeCollection.read"
        | "Address.read" => "sub-collections",
        "MeterCollection.read" | "SampleCollection.read" | "Meter.read" => "meters",
        "EventCollection.read" | "EventLog.read" | "EventLogCollection.read" => "events",
        "CloudEntryPoint.read" => "provider-probe",
        op if op.ends_with("ConfigurationCollection.read")
            || op.ends_with("TemplateCollection.read")
            || op.ends_with("ImageCollection.read") =>
        {
            "provider-probe"
        }
        _ => "other",
    }
}

/// A CIMI client of cimi-sim at `url` with the rate budget `limits`, and the hrefs of the first machine config
/// and image of its catalog.
async fn sim_client(
    url: &str,
    limits: cimi_operator::cimi::Limits,
) -> (CimiClient, serde_json::Value, serde_json::Value) {
    let mut config = ClientConfig::new("bench", url).expect("config");
    config.transport.auth = Auth::Basic { username: "demo".into(), password: CimiSecret::new("demo") };
    config.transport.allow_plain_http = true;
    config.transport.limits = limits;
    let cimi = CimiClient::connect(config).await.expect("connect");
    let configs = cimi.collection_url("machineConfigs").await.expect("configs");
    let images = cimi.collection_url("machineImages").await.expect("images");
    let config_href =
        cimi.list_page_value(&configs, &Default::default(), "").await.expect("list")["machineConfigurations"][0]["id"]
            .clone();
    let image_href =
        cimi.list_page_value(&images, &Default::default(), "").await.expect("list")["machineImages"][0]["id"].clone();
    (cimi, config_href, image_href)
}

/// Applies `n` CimiMachines named `<prefix>-00000`… (32 creates in flight).
async fn apply_machines(machines: &Api<CimiMachine>, prefix: &str, n: usize) {
    futures::stream::iter(0..n)
        .map(|i| {
            let machines = machines.clone();
            async move {
                let m: CimiMachine = serde_json::from_value(json!({
                    "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine",
                    "metadata": {"name": format!("{prefix}-{i:05}")},
                    "spec": {"providerRef": {"name": "bench"},
                             "template": {"machineConfig": {"name": "small"}, "machineImage": {"name": "Linux SUSE"}}}
                }))
                .expect("machine");
                machines.create(&PostParams::default(), &m).await.expect("create machine");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// The mean duration of cimi-sim's own create Job, over `n` machines created directly.
async fn sim_job_time(url: &str, n: usize) -> Duration {
    let (cimi, config_href, image_href) = sim_client(url, Default::default()).await;
    let mut total = Duration::ZERO;
    for i in 0..n {
        let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": format!("probe-{i}"),
            "machineTemplate": {"machineConfig": {"href": config_href}, "machineImage": {"href": image_href},
                                "initialState": "STARTED"}});
        let started = Instant::now();
        let accepted = cimi.create("machines", &body).await.expect("create");
        let job = accepted.job.clone().expect("a Job");
        loop {
            let j = cimi.get_value(&job).await.expect("job");
            if matches!(j["state"].as_str(), Some("SUCCESS" | "FAILED" | "STOPPED")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        total += started.elapsed();
        let location = cimi.created_href(&accepted, &cimi.collection_url("machines").await.expect("machines")).await;
        if let Ok(Some(href)) = location {
            let m = cimi.get_value(&href).await.expect("machine");
            let _ = cimi.delete(&m).await;
        }
    }
    total / n as u32
}

/// The API server's count of writes (POST, PUT, PATCH, APPLY, DELETE) to CimiMachines (and their status) and to
/// Events, from its `apiserver_request_total`.
async fn apiserver_writes(client: &kube::Client) -> (u64, u64) {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.unwrap_or_default();
    let (mut machines, mut events) = (0, 0);
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let write = ["POST", "PUT", "PATCH", "APPLY", "DELETE"].iter().any(|v| line.contains(&format!("verb=\"{v}\"")));
        let value: u64 = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        if write && line.contains("resource=\"cimimachines\"") {
            machines += value;
        } else if write && line.contains("resource=\"events\"") {
            events += value;
        }
    }
    (machines, events)
}

/// The Kubernetes side of the floor: for `n` CimiMachines in namespace `ns` (which no operator watches), at
/// `concurrency`, the writes a correct reconcile cannot avoid per object (the finalizer, the write-ahead status
/// with href and Job, the final Ready status, one Event), made by a bare client. Returns how long they took.
async fn kubernetes_floor(client: &kube::Client, ns: &str, n: usize, concurrency: usize) -> Duration {
    use k8s_openapi::api::core::v1::Event;
    use kube::api::{Patch, PatchParams};
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), ns);
    apply_machines(&machines, "f", n).await;
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (machines, events) = (machines.clone(), events.clone());
            async move {
                let name = format!("f-{i:05}");
                let pp = PatchParams::default();
                let fin = json!({"metadata": {"finalizers": ["cimi.dev/finalizer"]}});
                let m = machines.patch(&name, &pp, &Patch::Merge(&fin)).await.expect("finalizer");
                let href = format!("http://sim/machines/{i}");
                let ahead = json!({"status": {"id": href, "observedGeneration": 1,
                    "job": {"href": format!("http://sim/jobs/{i}"), "action": "add", "state": "RUNNING"}}});
                machines.patch_status(&name, &pp, &Patch::Merge(&ahead)).await.expect("write-ahead status");
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                let ready = json!({"status": {"state": "STARTED", "job": null, "conditions": [{"type": "Ready",
                    "status": "True", "reason": "Available", "message": "the machine is STARTED",
                    "observedGeneration": 1, "lastTransitionTime": now}]}});
                machines.patch_status(&name, &pp, &Patch::Merge(&ready)).await.expect("Ready status");
                let event: Event = serde_json::from_value(json!({
                    "metadata": {"generateName": format!("{name}.")},
                    "involvedObject": {"apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine", "namespace": ns,
                                       "name": name, "uid": m.metadata.uid},
                    "reason": "Created", "message": "created on the provider", "type": "Normal",
                    "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                    "source": {"component": "cimi-operator"}
                }))
                .expect("event");
                events.create(&PostParams::default(), &event).await.expect("event");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

/// cimi-sim's create throughput: `n` machines created by a direct client at `concurrency`, each until its Job
/// ends, then deleted (with the rate budget the benchmark's CimiProvider gives the operator). Returns machines per
/// second.
async fn sim_throughput(url: &str, n: usize, concurrency: usize) -> f64 {
    let budget = cimi_operator::cimi::Limits { requests_per_second: 1000.0, burst: 2000, max_concurrent: 64 };
    let (cimi, config_href, image_href) = sim_client(url, budget).await;
    let started = Instant::now();
    let created: Vec<Option<url::Url>> = futures::stream::iter(0..n)
        .map(|i| {
            let (cimi, config_href, image_href) = (cimi.clone(), config_href.clone(), image_href.clone());
            async move {
                let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate",
                    "name": format!("rate-{i}"), "machineTemplate": {"machineConfig": {"href": config_href},
                    "machineImage": {"href": image_href}, "initialState": "STARTED"}});
                let accepted = cimi.create("machines", &body).await.expect("create");
                let job = accepted.job.clone().expect("a Job");
                loop {
                    let j = cimi.get_value(&job).await.expect("job");
                    if matches!(j["state"].as_str(), Some("SUCCESS" | "FAILED" | "STOPPED")) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let machines = cimi.collection_url("machines").await.expect("machines");
                cimi.created_href(&accepted, &machines).await.ok().flatten()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    for href in created.into_iter().flatten() {
        if let Ok(m) = cimi.get_value(&href).await {
            let _ = cimi.delete(&m).await;
        }
    }
    rate
}

/// Writes to CimiMachines (with their bodies) and Events, nothing else.
const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Request
  verbs: [create, update, patch]
  resources:
  - group: cimi.dev
    resources: [cimimachines, cimimachines/status]
- level: Metadata
  verbs: [create, update, patch]
  resources:
  - group: ''
    resources: [events]
  - group: events.k8s.io
    resources: [events]
- level: None
";

/// Prints the operator's writes by kind, sub-resource and verb (per machine), and those of one machine in order.
fn audit_report(log: &std::path::Path, ns: &str, n: usize) {
    let Ok(file) = std::fs::File::open(log) else { return };
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let sample = "m-00007";
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if e["stage"] != "ResponseComplete" || e["objectRef"]["namespace"] != ns {
            continue;
        }
        // The benchmark's own writes there are the creates of the CimiMachines; everything else is the operator's.
        if e["verb"] == "create" && e["objectRef"]["resource"] == "cimimachines" {
            continue;
        }
        let key = format!(
            "{} {}{} {}",
            e["objectRef"]["apiGroup"].as_str().unwrap_or("core"),
            e["objectRef"]["resource"].as_str().unwrap_or(""),
            e["objectRef"]["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default(),
            e["verb"].as_str().unwrap_or("")
        );
        *by_kind.entry(key.clone()).or_default() += 1;
        let name = e["objectRef"]["name"].as_str().unwrap_or("");
        let of_sample = name == sample || name.starts_with(&format!("{sample}."));
        if of_sample {
            let body = e["requestObject"].to_string();
            lines.push(format!(
                "  {} {key} {name} {}",
                e["stageTimestamp"].as_str().unwrap_or(""),
                &body[..body.len().min(600)]
            ));
        }
    }
    println!("operator writes by resource (audit log), per machine:");
    for (key, count) in &by_kind {
        println!("  {key:>40}: {count:>7} = {:.2} per machine", *count as f64 / n as f64);
    }
    println!("the operator's writes for {sample}, in order:");
    for l in lines {
        println!("{l}");
    }
}

/// Starts shard `index` of `shards` as a `cimi-operator run` process with the chart's flags, for `n` machines in
/// `ns`; returns its pid, the process (killed when dropped) and its log.
fn start_operator(
    kubeconfig: &std::path::Path,
    (index, shards): (u64, u64),
    (ns, n, concurrency, page): (&str, usize, u16, u64),
) -> (u32, KillOnDrop, std::path::PathBuf) {
    let log_path = std::env::temp_dir().join(format!("cimi-operator-scale-{n}-shard-{index}.log"));
    let log = std::fs::File::create(&log_path).expect("operator log file");
    let admin = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    // `OPERATOR_BENCH_WRAP`, such as `heaptrack -o /tmp/operator`, runs the operator under a profiler (the RSS
    // figures are then the wrapper's, not the operator's).
    let wrap: Vec<String> =
        std::env::var("OPERATOR_BENCH_WRAP").unwrap_or_default().split_whitespace().map(str::to_string).collect();
    let mut command = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_cimi-operator"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_cimi-operator")),
    };
    let operator = command
        .arg("run")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            format!("--admin-addr={admin}"),
            "--log-format=json".into(),
            "--log-level=info".into(),
            format!("--concurrency={concurrency}"),
            "--cluster-name=bench".into(),
            format!("--namespace={ns}"),
            format!("--operator-namespace={ns}"),
            "--leader-elect".into(),
            "--lease-name=cimi-operator".into(),
            "--lease-duration=15s".into(),
            "--lease-retry-period=2s".into(),
            format!("--observe-page-size={page}"),
        ])
        // As the chart: the shard flags only when sharded.
        .args(if shards > 1 {
            vec![format!("--shard-count={shards}"), format!("--shard-index={index}")]
        } else {
            vec![]
        })
        .env_remove("RUST_LOG")
        .env("POD_NAME", format!("cimi-operator-bench-{index}"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start the cimi-operator binary");
    (operator.id(), KillOnDrop(operator), log_path)
}

/// A CPU profile of the API server over the `seconds` from now (its `/debug/pprof/profile`, served with
/// `OPERATOR_BENCH_APISERVER_PROFILE`), written to the temp directory for `go tool pprof`.
async fn apiserver_profile(client: kube::Client, seconds: u64, n: usize) -> Result<std::path::PathBuf, String> {
    use futures::AsyncReadExt as _;
    let request = http::Request::get(format!("/debug/pprof/profile?seconds={seconds}"))
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let mut body = client.request_stream(request).await.map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).await.map_err(|e| e.to_string())?;
    let path = std::env::temp_dir().join(format!("kube-apiserver-{n}.pprof"));
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    Ok(path)
}

fn main() {
    let n = env("OPERATOR_BENCH_MACHINES", 1000) as usize;
    let poll = env("OPERATOR_BENCH_POLL_SECONDS", 10);
    let window_polls = env("OPERATOR_BENCH_WINDOW_POLLS", 12);
    let page = env("OPERATOR_BENCH_PAGE", 100);
    let concurrency = env("OPERATOR_BENCH_CONCURRENCY", 8) as u16;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(n, poll, window_polls, page, concurrency));
}

async fn run(n: usize, poll: u64, window_polls: u64, page: u64, concurrency: u16) {
    cimi_operator::runtime::telemetry::install_crypto_provider();
    println!("operator_scale: {n} machines, pollInterval {poll}s, page {page}, concurrency {concurrency}");
    println!("load average at start: {}", load_average());
    let (sim, url) = start_sim();
    let mut sim = KillOnDrop(sim);
    let http = reqwest::Client::new();
    let job_time = sim_job_time(&url, 5).await;
    println!("cimi-sim create Job (mean of 5, direct client): {:.0} ms", job_time.as_secs_f64() * 1000.0);

    // `OPERATOR_BENCH_AUDIT=1`: the API server's audit log records every write (its request body for the
    // CimiMachines), and the writes the operator made for one machine are printed in order at the end.
    let audit = std::env::var("OPERATOR_BENCH_AUDIT").is_ok_and(|v| v == "1");
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let mut config = ControlPlaneConfig::default();
    if audit {
        let policy = audit_dir.path().join("policy.yaml");
        std::fs::write(&policy, AUDIT_POLICY).expect("audit policy");
        config.audit_policy = Some(policy);
    }
    let profile_seconds = env("OPERATOR_BENCH_APISERVER_PROFILE", 0);
    config.profiling = profile_seconds > 0;
    let cp = ControlPlane::start(config).await.expect("control plane");
    let client = cp.client().await.expect("client");
    let ns = "bench";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() },
        )
        .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = Secret {
        metadata: ObjectMeta { name: Some("creds".into()), ..Default::default() },
        data: Some(
            [("username", "demo"), ("password", "demo")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    let _ = secrets.create(&PostParams::default(), &secret).await;
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let provider: CimiProvider = serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider", "metadata": {"name": "bench"},
        "spec": {"endpoint": url, "credentialSecretRef": {"name": "creds"}, "allowPlainHTTP": true,
                 "pollInterval": format!("{poll}s"), "meterInterval": format!("{}s", poll * 12),
                 "eventInterval": format!("{}s", poll * 6),
                 "rateLimit": {"requestsPerSecond": 1000, "burst": 2000, "maxConcurrent": 64}}
    }))
    .expect("provider");
    providers.create(&PostParams::default(), &provider).await.expect("create provider");

    // The floor: the unavoidable Kubernetes writes by a bare client, and cimi-sim's own create throughput.
    let floor_ns = "floor";
    let _ = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta { name: Some(floor_ns.into()), ..Default::default() },
                ..Default::default()
            },
        )
        .await;
    let k8s_floor = kubernetes_floor(&client, floor_ns, n, concurrency as usize).await;
    let rate = sim_throughput(&url, n.min(300), concurrency as usize).await;
    let sim_floor = Duration::from_secs_f64(n as f64 / rate);
    let floor = k8s_floor.max(sim_floor);
    println!(
        "floor: {:.1} s = max(Kubernetes writes by a bare client at concurrency {concurrency}: {:.1} s, {n} machines at \
         cimi-sim's create throughput of {rate:.0}/s: {:.1} s)",
        floor.as_secs_f64(),
        k8s_floor.as_secs_f64(),
        sim_floor.as_secs_f64()
    );
    let writes0 = apiserver_writes(&client).await;

    // The operator: a separate `cimi-operator run` process with the chart's flags (values.yaml defaults), so its
    // resident set is its own; with `OPERATOR_BENCH_SHARDS`, one such process per shard.
    let shards = env("OPERATOR_BENCH_SHARDS", 1).max(1);
    let mut operators: Vec<(u32, KillOnDrop)> = Vec::new();
    for index in 0..shards {
        let (pid, child, log_path) = start_operator(cp.kubeconfig_path(), (index, shards), (ns, n, concurrency, page));
        println!("operator: cimi-operator run (shard {index} of {shards}, pid {pid}, log {})", log_path.display());
        operators.push((pid, child));
    }
    // Wait for the provider to be Ready.
    loop {
        let p = providers.get("bench").await.expect("provider");
        if p.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), ns);
    let stats0 = sim_stats(&http, &url).await;
    let profile = (profile_seconds > 0).then(|| tokio::spawn(apiserver_profile(client.clone(), profile_seconds, n)));
    let started = Instant::now();
    apply_machines(&machines, "m", n).await;
    let applied = started.elapsed();
    println!("applied {n} CimiMachines in {:.1} s", applied.as_secs_f64());
    let mut last_report = Instant::now();
    let ready_timeout = Duration::from_secs(env("OPERATOR_BENCH_READY_TIMEOUT_SECONDS", 1800));
    // The machines are counted from a watch-fed store: listing every machine every few seconds would itself
    // load the API server (at 10,000 machines, a list of tens of megabytes every 2.5 s).
    let (store, writer) = kube::runtime::reflector::store::<CimiMachine>();
    let feed = kube::runtime::reflector(writer, kube::runtime::watcher(machines.clone(), Default::default()));
    let feed = tokio::spawn(feed.for_each(|_| futures::future::ready(())));
    let all_ready = loop {
        let list = store.state();
        let ready = list
            .iter()
            .filter(|m| {
                m.status.as_ref().is_some_and(|s| {
                    s.common.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        && s.common.state.as_deref() == Some("STARTED")
                })
            })
            .count();
        if ready == n {
            break started.elapsed();
        }
        if last_report.elapsed() > Duration::from_secs(15) || started.elapsed() > ready_timeout {
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for m in &list {
                let reason = m
                    .status
                    .as_ref()
                    .and_then(|s| s.common.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map_or_else(|| "(no status)".to_string(), |c| c.reason.clone());
                *reasons.entry(reason).or_default() += 1;
            }
            println!("  {ready}/{n} Ready after {:.0} s; Ready reasons {reasons:?}", started.elapsed().as_secs_f64());
            last_report = Instant::now();
            if started.elapsed() > ready_timeout {
                println!("gave up after {ready_timeout:?} (OPERATOR_BENCH_READY_TIMEOUT_SECONDS)");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    feed.abort();
    if let Some(profile) = profile {
        match profile.await {
            Ok(Ok(path)) => {
                println!("API server CPU profile of the wave's first {profile_seconds} s: {}", path.display())
            }
            Ok(Err(error)) => println!("no API server profile: {error}"),
            Err(error) => println!("no API server profile: {error}"),
        }
    }
    let stats1 = sim_stats(&http, &url).await;
    let create_ops = delta(&stats0, &stats1);
    let create_requests: u64 = create_ops.values().sum();
    println!(
        "all {n} Ready after {:.1} s = {:.0} x cimi-sim's own create Job time = {:.2} x the floor",
        all_ready.as_secs_f64(),
        all_ready.as_secs_f64() / job_time.as_secs_f64(),
        all_ready.as_secs_f64() / floor.as_secs_f64()
    );
    let writes1 = apiserver_writes(&client).await;
    println!(
        "Kubernetes writes by the operator until all Ready (apiserver_request_total): {:.1} per machine to \
         CimiMachines (status included; the applies: 1), {:.1} Events per machine; the floor makes 3 and 1",
        (writes1.0 - writes0.0) as f64 / n as f64,
        (writes1.1 - writes0.1) as f64 / n as f64
    );
    println!(
        "provider requests until all Ready: {create_requests} = {:.1} per machine",
        create_requests as f64 / n as f64
    );
    println!("  by operation until all Ready: {create_ops:?}");
    let ready_rss: Vec<u64> = operators.iter().map(|(pid, _)| rss_kib(*pid).0).collect();
    println!("operator RSS with {n} machines Ready: {ready_rss:?} KiB (one figure per shard)");
    if let Some(log) = cp.audit_log_path() {
        audit_report(log, ns, n);
    }

    // Steady state: settle, then count requests over whole poll intervals.
    // One meter interval and a poll first: every object has had its first readings of its own, and the batched
    // reads that follow know every object.
    tokio::time::sleep(Duration::from_secs(poll * 13)).await;
    let s0 = sim_stats(&http, &url).await;
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(poll * window_polls)).await;
    let s1 = sim_stats(&http, &url).await;
    let seconds = w0.elapsed().as_secs_f64();
    let intervals = seconds / poll as f64;
    let mut by_class: BTreeMap<&str, u64> = BTreeMap::new();
    let d = delta(&s0, &s1);
    let new = (s1.total - s0.total) as usize;
    if new <= s1.log.len() {
        // The log holds every request of the window: classify each by its path too.
        for r in s1.log.iter().skip(s1.log.len() - new) {
            *by_class.entry(class_of(&r.op, &r.path)).or_default() += 1;
        }
    } else {
        for (op, count) in &d {
            *by_class.entry(class(op)).or_default() += count;
        }
    }
    println!(
        "steady state over {seconds:.0} s ({intervals:.1} poll intervals; meters every {}s, events every {}s):",
        poll * 12,
        poll * 6
    );
    for (class, count) in &by_class {
        println!("  {class:>16}: {count:>7} requests = {:>8.1} per poll interval", *count as f64 / intervals);
    }
    let total: u64 = by_class.values().sum();
    println!("  {:>16}: {total:>7} requests = {:>8.1} per poll interval", "all", total as f64 / intervals);
    println!("  target for state: ceil({n} / {page}) = {} list requests per poll interval", n.div_ceil(page as usize));
    println!("  by operation: {d:?}");
    let (steady_rss, peak_rss): (Vec<u64>, Vec<u64>) = operators.iter().map(|(pid, _)| rss_kib(*pid)).unzip();
    println!("operator RSS in the steady state: {steady_rss:?} KiB (peak {peak_rss:?} KiB; one figure per shard)");
    println!(
        "operator RSS per machine: {:.1} KiB Ready, {:.1} KiB steady (whole resident set of every shard / {n})",
        ready_rss.iter().sum::<u64>() as f64 / n as f64,
        steady_rss.iter().sum::<u64>() as f64 / n as f64
    );
    println!("load average at the end: {}", load_average());

    // SIGTERM to its process group (a profiler wrapping it writes its data), then waited for.
    for (pid, operator) in &mut operators {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*pid as i32), nix::sys::signal::Signal::SIGTERM);
        let _ = operator.0.wait();
    }
    let _ = sim.0.kill();
    let _ = sim.0.wait();
    drop(cp);
}
