//! The operator binary: `cimi-operator run | crd | reasons | generate`.

use std::io::Write;

use cimi_operator::operator::shutdown_on_signals;
use cimi_operator::runtime::cli::{Cli, Command, kube_client};
use cimi_operator::runtime::telemetry;
use clap::Parser;

/// jemalloc returns the pages freed by the large, short-lived reads (provider pages, watch lists) to the system
/// within seconds; with glibc's malloc the operator's resident set stayed at about two and a half times its live
/// heap at 10,000 machines (BENCHMARKS.md, issue 18).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => match args.write_dir {
            Some(dir) => {
                for path in cimi_operator::api::write_crds(&dir)? {
                    eprintln!("wrote {}", path.display());
                }
            }
            None => std::io::stdout().write_all(cimi_operator::api::crds_yaml()?.as_bytes())?,
        },
        Command::Reasons(args) => {
            let markdown = cimi_operator::api::reasons::reasons_markdown();
            match args.write {
                Some(path) => std::fs::write(&path, markdown)?,
                None => std::io::stdout().write_all(markdown.as_bytes())?,
            }
        }
        Command::Generate(args) => {
            for path in cimi_operator::api::write_generated(&args.root)? {
                eprintln!("wrote {}", path.display());
            }
        }
        Command::Run(args) => {
            let telemetry = telemetry::init(args.log_format, &args.log_level);
            let config = args.to_config().map_err(anyhow::Error::msg)?;
            let client = kube_client(args.kubeconfig.as_deref(), config.shard).await?;
            let shutdown = shutdown_on_signals();
            let result = cimi_operator::run(config, client, shutdown).await;
            // The exporter's flush blocks: off the async workers.
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            result?;
        }
    }
    Ok(())
}
