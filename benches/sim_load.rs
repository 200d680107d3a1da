//! Load benchmark of cimi-sim (not a test: it prints figures for BENCHMARKS.md).
//!
//! The simulator runs on its own single-threaded-worker tokio runtime (threads named `sim-*`) and the load
//! generator on another (`load-*`), in one process, so the two share the machine's cores; the CPU time of
//! each side is read from `/proc/self/task/*/stat` and printed, so a figure always comes with its CPU share.
//!
//! A first scenario calls the simulator's router directly (no network, no load generator) to show what the
//! request handling itself costs.
//!
//! Run: `cargo bench --bench sim_load` (env: `SIM_BENCH_SECONDS`, default 10; `SIM_BENCH_CONNECTIONS`,
//! default 32; `SIM_BENCH_MACHINES`, default 10000; `SIM_BENCH_MEMORY_RESOURCES`, default 100000;
//! `SIM_BENCH_SCENARIOS`, default `direct,get,filter,page,memory`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cimi_operator::sim::{Sim, SimConfig, SimHandle, Timing};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds used so far by the threads whose name starts with `prefix`.
fn cpu_seconds(prefix: &str) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (utime + stime) / ticks;
    }
    total
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn load(rt: &tokio::runtime::Runtime, url: String, seconds: u64, connections: u64, label: &str) {
    let sim_cpu0 = cpu_seconds("sim-");
    let load_cpu0 = cpu_seconds("load-");
    let started = Instant::now();
    let (count, mut latencies) = rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections as usize).build().expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let client = client.clone();
            let url = url.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = match client.get(&url).basic_auth("demo", Some("demo")).send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        lat.push(t.elapsed().as_micros() as u32);
                    }
                }
                lat
            }));
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        (all.len(), all)
    });
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let sim_cpu = cpu_seconds("sim-") - sim_cpu0;
    let load_cpu = cpu_seconds("load-") - load_cpu0;
    println!(
        "{label}: {:.0} req/s over {wall:.1} s with {connections} keep-alive connections; latency p50 {} µs, p99 {} µs; \
         CPU: simulator {:.0}% of a core, load generator {:.0}% of a core",
        count as f64 / wall,
        pct(0.5),
        pct(0.99),
        100.0 * sim_cpu / wall,
        100.0 * load_cpu / wall,
    );
}

/// Calls the router in a loop on the simulator's runtime: CPU time per request of the handling alone.
fn direct(rt: &tokio::runtime::Runtime, sim: &SimHandle, path: String, seconds: u64) {
    use tower::ServiceExt;
    let router = sim.router();
    let auth = format!("Basic {}", "ZGVtbzpkZW1v"); // demo:demo
    let cpu0 = cpu_seconds("sim-");
    let started = Instant::now();
    let target = path.clone();
    let count = rt.block_on(async move {
        tokio::spawn(async move {
            let path = target;
            let mut n = 0u64;
            let deadline = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < deadline {
                for _ in 0..100 {
                    let req = axum::http::Request::get(&path)
                        .header("authorization", &auth)
                        .body(axum::body::Body::empty())
                        .expect("a request");
                    let Ok(resp) = router.clone().oneshot(req).await;
                    let ok = resp.status().is_success()
                        && axum::body::to_bytes(resp.into_body(), usize::MAX).await.is_ok_and(|b| !b.is_empty());
                    n += u64::from(ok);
                }
            }
            n
        })
        .await
        .unwrap_or(0)
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("sim-") - cpu0;
    println!(
        "GET {path} through the router, no network: {:.0} req/s on one thread; {:.1} µs of CPU per request",
        count as f64 / wall,
        cpu * 1e6 / count.max(1) as f64
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = env("SIM_BENCH_SECONDS", 10);
    let connections = env("SIM_BENCH_CONNECTIONS", 32);
    let machines = env("SIM_BENCH_MACHINES", 10_000) as usize;
    let memory_resources = env("SIM_BENCH_MEMORY_RESOURCES", 100_000) as usize;
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sim-worker")
        .enable_all()
        .build()
        .expect("sim runtime");
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load-worker")
        .enable_all()
        .build()
        .expect("load runtime");
    let config = SimConfig { timing: Timing::Instant, ..SimConfig::default() };
    let sim: SimHandle = sim_rt.block_on(Sim::start(config)).expect("the simulator starts");
    sim.with_store(|s| s.bulk_machines(machines));
    let base = sim.url();
    let one = sim.with_store(|s| {
        s.read("machines", &Default::default())
            .ok()
            .and_then(|o| o.body)
            .and_then(|b| b["machines"][0]["id"].as_str().map(str::to_string))
    });
    let one = one.expect("a machine");
    let scenarios = std::env::var("SIM_BENCH_SCENARIOS").unwrap_or_else(|_| "direct,get,filter,page,memory".into());
    let on = |name: &str| scenarios.split(',').any(|s| s.trim() == name);
    println!("cimi-sim load benchmark: {machines} machines, {seconds} s per scenario");
    if on("direct") {
        direct(&sim_rt, &sim, one.trim_start_matches(base.trim_end_matches('/')).to_string(), seconds);
    }
    if on("get") {
        load(&load_rt, one, seconds, connections, "GET one machine (JSON, Basic auth)");
    }
    if on("filter") {
        load(
            &load_rt,
            format!("{base}machines?$filter=name='bulk{}'", machines / 2),
            seconds,
            connections,
            &format!("GET machines?$filter=name=... over {machines} machines (1 match)"),
        );
    }
    if on("page") {
        load(
            &load_rt,
            format!("{base}machines?$filter=cpu=3 and state='STARTED'&$first=1&$last=20"),
            seconds,
            connections,
            &format!("GET machines?$filter=cpu=3 and state='STARTED'&$first=1&$last=20 over {machines} machines"),
        );
    }
    if !on("memory") {
        return;
    }
    let before = rss_kib();
    sim.with_store(|s| s.bulk_machines(memory_resources));
    let after = rss_kib();
    println!(
        "memory: {} KiB resident with {machines} machines; {} KiB after adding {memory_resources} more ({} bytes per machine)",
        before,
        after,
        (after.saturating_sub(before)) * 1024 / memory_resources.max(1) as u64
    );
    drop(sim);
}
