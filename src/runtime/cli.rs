//! The `cimi-operator` command line: `run`, `crd`, `reasons` and `generate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::config::{Config, LeaderElectionConfig, default_identity, detect_operator_namespace};
use super::shard::Shard;
use super::telemetry::LogFormat;

/// A Kubernetes operator for IaaS resources of any DMTF CIMI provider.
#[derive(Debug, Parser)]
#[command(name = "cimi-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator.
    Run(Box<RunArgs>),
    /// Print every CRD as one multi-document YAML stream, or write one file per kind.
    Crd(CrdArgs),
    /// Print the catalogue of condition reasons as Markdown (docs/reasons.md).
    Reasons(ReasonsArgs),
    /// Write every generated file (crds/, the chart's crds/, docs/reasons.md, docs/admission.md) under a directory:
    /// what `make crds` runs.
    Generate(GenerateArgs),
}

/// Arguments of `cimi-operator generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The repository root to write under.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
}

/// Arguments of `cimi-operator crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write `<plural>.cimi.dev.yaml` files into this directory instead of printing.
    #[arg(long)]
    pub write_dir: Option<PathBuf>,
}

/// Arguments of `cimi-operator reasons`.
#[derive(Debug, Args)]
pub struct ReasonsArgs {
    /// Write the Markdown to this file instead of printing it.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// Arguments of `cimi-operator run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, then the in-cluster service account.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// A namespace to watch (repeatable); none means every namespace.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// A label selector applied to every watch, CimiProvider included.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Objects reconciled at the same time, per kind.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
    /// The namespace the operator runs in (CimiProvider Secrets, the Lease); default: `POD_NAMESPACE`,
    /// the service account's namespace, or `cimi-system`.
    #[arg(long, env = "CIMI_OPERATOR_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// A name for this cluster, tagged on provider resources.
    #[arg(long, default_value = "default")]
    pub cluster_name: String,
    /// Where to serve /metrics, /healthz and /readyz; `off` serves nothing.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub admin_addr: String,
    /// Log lines as JSON or text.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The log filter, such as `info` or `info,cimi_operator=debug` (`RUST_LOG` wins when set).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// How long controllers may take to stop on SIGTERM before they are aborted, such as `10s`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Take part in leader election; only the leader reconciles.
    #[command(flatten)]
    pub leader: LeaderArgs,
    /// Observation of provider resources: page size and meter gauges.
    #[command(flatten)]
    pub observe: ObserveArgs,
    /// Shards: several instances sharing the managed objects.
    #[command(flatten)]
    pub shards: ShardArgs,
}

/// Shards: each instance reconciles the objects of its shard (see [`super::shard`]).
#[derive(Debug, clap::Args)]
pub struct ShardArgs {
    /// How many shards share the managed objects (1: this instance reconciles them all).
    #[arg(long, default_value_t = 1)]
    pub shard_count: u32,
    /// The shard this instance reconciles, from 0: the objects labelled `cimi.dev/shard: "<index>"`, and the
    /// unlabelled ones a hash of their namespace and name gives it. Its leader Lease is `<lease-name>-shard-<index>`.
    #[arg(long, default_value_t = 0)]
    pub shard_index: u32,
}

/// How provider resources are observed (state by paged collection reads; meters and events per
/// resource). The cadences are each CimiProvider's `pollInterval`, `meterInterval` and `eventInterval`.
#[derive(Debug, clap::Args)]
pub struct ObserveArgs {
    /// Entries per page when listing a provider collection (state is read as ceil(N / page) lists per poll).
    #[arg(long, default_value_t = 100)]
    pub observe_page_size: u64,
    /// The most `cimi_meter_value` series exported (bounds their cardinality); 0 disables the gauges.
    #[arg(long, default_value_t = 10_000)]
    pub meter_gauges_max: usize,
}

/// Leader election flags.
#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// Take part in leader election; only the leader reconciles.
    #[arg(long)]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "cimi-operator")]
    pub lease_name: String,
    /// The Lease's namespace; default: the operator's namespace.
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// How long the Lease stays valid without renewal, such as `15s`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How often the Lease is renewed or tried, such as `2s`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lease_retry_period: Duration,
    /// This replica's identity; default: `POD_NAME` or the host name, with a random suffix.
    #[arg(long)]
    pub lease_identity: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::common::parse_duration(text)
}

impl RunArgs {
    /// The library configuration these flags describe.
    pub fn to_config(&self) -> Result<Config, String> {
        let operator_namespace = self.operator_namespace.clone().unwrap_or_else(detect_operator_namespace);
        let admin_addr = match self.admin_addr.as_str() {
            "" | "off" | "none" => None,
            text => Some(text.parse::<SocketAddr>().map_err(|e| format!("--admin-addr {text:?}: {e}"))?),
        };
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".to_string());
        }
        if self.leader.lease_retry_period >= self.leader.lease_duration {
            return Err("--lease-retry-period must be shorter than --lease-duration".to_string());
        }
        let shard = Shard::new(self.shards.shard_index, self.shards.shard_count)?;
        let leader_election = self.leader.leader_elect.then(|| LeaderElectionConfig {
            lease_name: shard.lease_name(&self.leader.lease_name),
            lease_namespace: self.leader.lease_namespace.clone().unwrap_or_else(|| operator_namespace.clone()),
            identity: self.leader.lease_identity.clone().unwrap_or_else(default_identity),
            lease_duration: self.leader.lease_duration,
            retry_period: self.leader.lease_retry_period,
        });
        if self.observe.observe_page_size == 0 {
            return Err("--observe-page-size must be at least 1".to_string());
        }
        Ok(Config {
            namespaces: self.namespaces.iter().filter(|n| !n.is_empty()).cloned().collect(),
            label_selector: self.selector.clone().filter(|s| !s.trim().is_empty()),
            concurrency: self.concurrency,
            operator_namespace,
            cluster_name: self.cluster_name.clone(),
            admin_addr,
            leader_election,
            shutdown_grace: self.shutdown_grace,
            observe_page_size: self.observe.observe_page_size,
            meter_gauges_max: self.observe.meter_gauges_max,
            shard,
        })
    }
}

/// Builds a kube client from `--kubeconfig`, or the default chain (KUBECONFIG, ~/.kube/config, in-cluster),
/// whose requests carry the user agent of `shard` ([`with_user_agent`]).
pub async fn kube_client(kubeconfig: Option<&std::path::Path>, shard: Shard) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(with_user_agent(config, shard))?)
}

/// `config` with the user agent of `shard` on every request (`cimi-operator/shard-<index>` when sharded): the
/// API server's audit log then says which shard made each request, where the field manager (`cimi-operator`)
/// is the same for all.
pub fn with_user_agent(mut config: kube::Config, shard: Shard) -> kube::Config {
    let agent = http::HeaderValue::from_str(&shard.user_agent()).expect("a user agent of ASCII letters and digits");
    config.headers.retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, agent));
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("parses")
    }

    #[test]
    fn run_flags_become_a_config() {
        let cli = parse(&[
            "cimi-operator",
            "run",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--selector",
            "team=x",
            "--concurrency",
            "4",
            "--log-format",
            "json",
            "--admin-addr",
            "127.0.0.1:9000",
            "--leader-elect",
            "--lease-duration",
            "10s",
            "--operator-namespace",
            "ops",
            "--lease-identity",
            "me",
        ]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert_eq!(args.log_format, LogFormat::Json);
        let config = args.to_config().expect("config");
        assert_eq!(config.namespaces, ["a", "b"]);
        assert_eq!(config.label_selector.as_deref(), Some("team=x"));
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.admin_addr, Some("127.0.0.1:9000".parse().expect("addr")));
        let leader = config.leader_election.expect("leader election");
        assert_eq!(leader.lease_namespace, "ops");
        assert_eq!(leader.identity, "me");
        assert_eq!(leader.lease_duration, Duration::from_secs(10));
    }

    #[test]
    fn bad_flags_are_refused() {
        let cli = parse(&["cimi-operator", "run", "--admin-addr", "nowhere", "--operator-namespace", "x"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert!(args.to_config().is_err());
        assert!(Cli::try_parse_from(["cimi-operator", "run", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["cimi-operator", "run", "--lease-duration", "soon"]).is_err());
        let cli = parse(&["cimi-operator", "run", "--admin-addr", "off", "--operator-namespace", "x"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert_eq!(args.to_config().expect("config").admin_addr, None);
    }

    #[test]
    fn observation_flags_reach_the_config() {
        let cli = parse(&["cimi-operator", "run", "--observe-page-size", "25", "--meter-gauges-max", "0"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        let config = args.to_config().expect("config");
        assert_eq!((config.observe_page_size, config.meter_gauges_max), (25, 0));
        let cli = parse(&["cimi-operator", "run", "--observe-page-size", "0"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert!(args.to_config().is_err(), "a page of zero entries is refused");
    }

    #[test]
    fn shard_flags_pick_the_shard_and_its_lease() {
        let cli = parse(&["cimi-operator", "run", "--shard-count", "3", "--shard-index", "2", "--leader-elect"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        let config = args.to_config().expect("config");
        assert_eq!((config.shard.index(), config.shard.count()), (2, 3));
        assert_eq!(config.leader_election.expect("leader election").lease_name, "cimi-operator-shard-2");
        let cli = parse(&["cimi-operator", "run", "--shard-count", "2", "--shard-index", "2"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        let error = args.to_config().expect_err("an index past the count");
        assert!(error.contains("--shard-index 2"), "{error}");
        let cli = parse(&["cimi-operator", "run"]);
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert!(!args.to_config().expect("config").shard.is_sharded(), "one shard by default");
    }

    #[test]
    fn crd_and_reasons_subcommands_parse() {
        assert!(matches!(parse(&["cimi-operator", "crd"]).command, Command::Crd(CrdArgs { write_dir: None })));
        assert!(matches!(parse(&["cimi-operator", "reasons", "--write", "x.md"]).command, Command::Reasons(_)));
    }
}
