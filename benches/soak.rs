//! The chaos soak, long version (not a test: it prints a report for BENCHMARKS.md and exits non-zero on a
//! violation). See `tests/support/soak/mod.rs` for what it does and checks; the short version runs in
//! `make test` (`tests/e2e/soak.rs`).
//!
//! Run: `cargo bench --bench soak` (env: `SOAK_MINUTES`, default 60; `SOAK_OBJECTS`, default 1000; `SOAK_SEED`,
//! default 1; `SOAK_POLL_SECONDS`, default 10; `SOAK_SHARDS`, default 2; `SOAK_OPS_PER_SECOND`, default 2;
//! `SOAK_DIR`, default a directory under the temp dir, kept: the operators' and cimi-sim's logs and state).

#[path = "../tests/support/soak/mod.rs"]
mod soak;

use std::time::Duration;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let seed: u64 = env("SOAK_SEED", 1);
    let dir = std::env::var("SOAK_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("cimi-soak-{seed}-{}", std::process::id())));
    let config = soak::SoakConfig {
        duration: Duration::from_secs(env("SOAK_MINUTES", 60u64) * 60),
        objects: env("SOAK_OBJECTS", 1000),
        seed,
        poll_seconds: env("SOAK_POLL_SECONDS", 10),
        shards: env("SOAK_SHARDS", 2),
        ops_per_second: env("SOAK_OPS_PER_SECOND", 2.0),
        window: (20, 45),
        gap_seconds: 20,
        timeout_seconds: 20,
        dir: dir.clone(),
        binaries: soak::lab::Binaries {
            operator: env!("CARGO_BIN_EXE_cimi-operator").into(),
            sim: env!("CARGO_BIN_EXE_cimi-sim").into(),
        },
        progress: true,
    };
    eprintln!("soak: logs and state in {}", dir.display());
    let report = soak::run(config).await;
    println!("{}", report.render());
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}
