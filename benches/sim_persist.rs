//! Write latency of a persisted cimi-sim (`--state-file`) against the number of resources it holds (not a test:
//! it prints figures for BENCHMARKS.md).
//!
//! For each size: a simulator with a state file gets `n` machines (created directly in the store), is stopped
//! and started again from its files (the start time is printed: it loads the snapshot and replays the journal),
//! then one client on one keep-alive connection renames one machine `SIM_PERSIST_WRITES` times in a row
//! (`PUT /machines/<id>`, Basic auth, instant timing: each write journals the machine and its Job, and syncs
//! the journal before answering). The same run without a state file is the baseline.
//!
//! Run: `cargo bench --bench sim_persist` (env: `SIM_PERSIST_SIZES`, default `100,10000,100000`;
//! `SIM_PERSIST_WRITES`, default 2000; `SIM_PERSIST_DIR`, default a temporary directory).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cimi_operator::sim::{Sim, SimConfig, Timing};

fn journal_bytes(state: &std::path::Path) -> u64 {
    let name = state.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    std::fs::read_dir(state.parent().unwrap_or(std::path::Path::new(".")))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|f| f.starts_with(&format!("{name}.journal."))))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

async fn writes(url: &str, machine: &str, n: usize) -> Vec<Duration> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let body = serde_json::json!({"name": format!("renamed-{i}")});
        let t = Instant::now();
        let resp = client.put(format!("{url}{machine}")).basic_auth("demo", Some("demo")).json(&body).send().await;
        let ok = match resp {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            lat.push(t.elapsed());
        }
    }
    lat.sort_unstable();
    lat
}

fn report(label: &str, lat: &[Duration], extra: &str) {
    let mean = lat.iter().sum::<Duration>() / lat.len().max(1) as u32;
    println!(
        "{label}: {} writes, mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs, max {:.1} ms{extra}",
        lat.len(),
        mean.as_secs_f64() * 1e6,
        pct(lat, 0.5).as_secs_f64() * 1e6,
        pct(lat, 0.99).as_secs_f64() * 1e6,
        pct(lat, 1.0).as_secs_f64() * 1e3,
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes: Vec<usize> = std::env::var("SIM_PERSIST_SIZES")
        .unwrap_or_else(|_| "100,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let n_writes: usize = std::env::var("SIM_PERSIST_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = std::env::var("SIM_PERSIST_DIR").map(PathBuf::from).unwrap_or_else(|_| tmp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    println!("cimi-sim persistence benchmark: {n_writes} sequential PUTs per size, state in {}", dir.display());
    for n in sizes {
        rt.block_on(async {
            let state = dir.join(format!("state-{n}.json"));
            let config = SimConfig { timing: Timing::Instant, state_file: Some(state.clone()), ..SimConfig::default() };
            let sim = Sim::start(config.clone()).await.expect("the simulator starts");
            sim.with_store(|s| s.bulk_machines(n));
            sim.stop().await;
            let t = Instant::now();
            let sim = Sim::start(config).await.expect("the simulator starts again");
            let start_ms = t.elapsed().as_secs_f64() * 1e3;
            let snapshot = std::fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
            let machine = sim
                .with_store(|s| {
                    s.read("machines", &Default::default())
                        .ok()
                        .and_then(|o| o.body)
                        .and_then(|b| b["machines"][0]["id"].as_str().map(str::to_string))
                })
                .expect("a machine");
            let machine = machine.trim_start_matches(&sim.url()).to_string();
            let before = journal_bytes(&state);
            let lat = writes(&sim.url(), &machine, n_writes).await;
            let after = journal_bytes(&state);
            let per_write = if after > before { (after - before) / lat.len().max(1) as u64 } else { 0 };
            report(
                &format!("{n} machines, state file"),
                &lat,
                &format!(
                    "; restart {start_ms:.0} ms (snapshot {} KiB); ~{per_write} journal bytes per write",
                    snapshot / 1024
                ),
            );
            sim.stop().await;

            let sim = Sim::start(SimConfig { timing: Timing::Instant, ..SimConfig::default() }).await.expect("start");
            sim.with_store(|s| s.bulk_machines(n));
            let machine = sim
                .with_store(|s| {
                    s.read("machines", &Default::default())
                        .ok()
                        .and_then(|o| o.body)
                        .and_then(|b| b["machines"][0]["id"].as_str().map(str::to_string))
                })
                .expect("a machine");
            let machine = machine.trim_start_matches(&sim.url()).to_string();
            let lat = writes(&sim.url(), &machine, n_writes).await;
            report(&format!("{n} machines, in memory"), &lat, "");
            sim.stop().await;
        });
    }
}
