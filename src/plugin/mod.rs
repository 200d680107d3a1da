//! `kubectl cimi`: the companion CLI of the operator (binary `kubectl-cimi`, found by kubectl on `PATH`).
//!
//! One file per command, each with a pure part (what to show, from objects already read) that unit tests
//! cover, and a thin part that reads the cluster or the provider:
//! - [`status`]: one screen of a namespace (or `-A`): provider health, what is not Ready, provider Jobs
//!   running, what is Stalled;
//! - [`tree`]: an object and everything it depends on or owns;
//! - [`actions`]: `start`, `stop`, `pause`, `suspend` (through `spec.powerState`) and `restart`, `capture`
//!   (through the `cimi.dev/action` annotation), with `--wait`;
//! - [`catalog`]: what a provider offers, from its status (or `--live` from the provider);
//! - [`observe`]: `meters` and `events` of an object (the structured `drift` command goes there as well);
//! - [`import`]: provider resources no object manages, written as ready-to-commit manifests;
//! - [`doctor`]: a CIMI endpoint probed as the operator would use it, as a compatibility report;
//! - [`connect`]: a CIMI client from a CimiProvider and its Secret;
//! - [`kubeconn`], [`objects`], [`output`], [`error`]: the Kubernetes connection, the kinds and their
//!   common view, tables and documents, exit codes.

pub mod actions;
pub mod catalog;
pub mod connect;
pub mod doctor;
pub mod error;
pub mod import;
pub mod kubeconn;
pub mod objects;
pub mod observe;
pub mod output;
pub mod status;
pub mod tree;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

pub use error::PluginError;
use output::{OutputFormat, Printer};

/// The exit codes, as `--help` prints them and `docs/kubectl-cimi.md` documents them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (for doctor: the operator can use the endpoint)
  1  error (the Kubernetes API failed, or something unexpected)
  2  usage error, or an action the target does not support
  3  not found (the object, the provider or its Secret)
  4  the action failed or was rejected (the provider's message is printed)
  5  timed out waiting (--wait, --timeout)
  6  forbidden (your Kubernetes permissions do not allow it)
  7  the provider is unreachable or refused the credentials
  8  doctor: the operator cannot use the endpoint (see the report)";

/// `kubectl cimi`: look at, act on, import and diagnose cimi.dev objects and their CIMI providers.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-cimi",
    bin_name = "kubectl cimi",
    version,
    about = "Look at, act on, import and diagnose cimi.dev objects and their CIMI providers",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The options kubectl users expect on every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Every namespace (status, tree of a provider).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file (default: `KUBECONFIG`, else `~/.kube/config`, else in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Act as this user (impersonation, as `kubectl --as`).
    #[arg(long = "as", global = true)]
    pub as_user: Option<String>,
    /// Act as a member of this group (repeatable, as `kubectl --as-group`).
    #[arg(long = "as-group", global = true)]
    pub as_group: Vec<String>,
    /// Output format: table (default), wide, yaml or json.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Never colour the output (colour is used only on a terminal, and never when NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One screen: providers' health, what is not Ready, provider Jobs running, what is Stalled.
    #[command(after_help = "Examples:\n  kubectl cimi status -n team-a\n  kubectl cimi status -A -o yaml")]
    Status,
    /// An object and everything it depends on or owns, with Ready, Synced, state and reason.
    #[command(
        after_help = "Examples:\n  kubectl cimi tree cimisystem/shop -n team-a\n  kubectl cimi tree machine web-1 -o wide"
    )]
    Tree(TargetArgs),
    /// Start a CimiMachine or CimiSystem (sets spec.powerState: Started).
    #[command(after_help = "Example:\n  kubectl cimi start cimimachine/web-1 --wait")]
    Start(ActionArgs),
    /// Stop a CimiMachine or CimiSystem (sets spec.powerState: Stopped).
    #[command(after_help = "Example:\n  kubectl cimi stop cimisystem/shop --wait --timeout 10m")]
    Stop(ActionArgs),
    /// Pause a CimiMachine or CimiSystem (sets spec.powerState: Paused).
    #[command(after_help = "Example:\n  kubectl cimi pause machine/web-1 --wait")]
    Pause(ActionArgs),
    /// Suspend a CimiMachine or CimiSystem (sets spec.powerState: Suspended).
    #[command(after_help = "Example:\n  kubectl cimi suspend machine/web-1 --wait")]
    Suspend(ActionArgs),
    /// Restart a CimiMachine once (the cimi.dev/action annotation, with a fresh nonce).
    #[command(after_help = "Example:\n  kubectl cimi restart cimimachine/web-1 --wait")]
    Restart(ActionArgs),
    /// Capture a CimiMachine into a provider MachineImage once (the cimi.dev/action annotation).
    #[command(after_help = "Example:\n  kubectl cimi capture cimimachine/web-1 --wait")]
    Capture(ActionArgs),
    /// What a provider offers: configurations, images, templates (from its status; --live from the provider).
    #[command(after_help = "Examples:\n  kubectl cimi catalog lab\n  kubectl cimi catalog lab -o yaml\n  \
                            kubectl cimi catalog lab --live --collection machineImages")]
    Catalog(CatalogArgs),
    /// The latest provider meter samples of an object.
    #[command(after_help = "Example:\n  kubectl cimi meters cimimachine/web-1")]
    Meters(TargetArgs),
    /// The provider events mirrored on an object (--all: the operator's own Events too).
    #[command(
        after_help = "Examples:\n  kubectl cimi events cimimachine/web-1\n  kubectl cimi events cimisystem/shop --all"
    )]
    Events(EventsArgs),
    // `drift KIND/NAME` comes here, in observe.rs, once the operator writes a structured drift report.
    /// Provider resources that no object manages; with --all, ready-to-commit manifests that adopt them.
    #[command(after_help = "Examples:\n  kubectl cimi import lab -n team-a\n  \
                            kubectl cimi import lab -n team-a --kind machine --all > machines.yaml\n  \
                            kubectl cimi import lab -n team-a --filter \"name='legacy-db'\" --all --policy Managed")]
    Import(ImportArgs),
    /// Probe a CIMI endpoint as the operator would, and print a compatibility report.
    #[command(after_help = "Examples:\n  kubectl cimi doctor lab\n  \
                            CIMI_USERNAME=me CIMI_PASSWORD=secret kubectl cimi doctor https://cimi.example.net/\n  \
                            kubectl cimi doctor https://cimi.example.net/ --credentials-file creds.yaml -o json")]
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(after_help = "Example:\n  kubectl-cimi completion bash > /etc/bash_completion.d/kubectl-cimi")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// An object: `KIND/NAME`, `KIND NAME`, or a bare `NAME` (a CimiMachine).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// `KIND/NAME` (kinds: machine, volume, network, system, provider, or their cimi.dev names).
    pub target: String,
    /// The name, when the kind is given on its own.
    pub name: Option<String>,
}

/// An action's target and how to wait for it.
#[derive(Debug, Clone, Args)]
pub struct ActionArgs {
    /// The CimiMachine or CimiSystem.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Follow the provider Job until the action ends; exit non-zero with the provider's message on failure.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, such as 90s or 10m.
    #[arg(long, default_value = "5m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// `catalog` options.
#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    /// The CimiProvider.
    pub provider: String,
    /// Read the whole catalog from the provider (with the credentials of its Secret) instead of its status.
    #[arg(long)]
    pub live: bool,
    /// Only this collection, such as machineImages.
    #[arg(long)]
    pub collection: Option<String>,
}

/// `events` options.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// The object.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Also the operator's own Events of the object, not only the mirrored provider events.
    #[arg(long)]
    pub all: bool,
}

/// `import` options.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The CimiProvider to read (with the credentials of its Secret).
    pub provider: String,
    /// Only these kinds (repeatable): machine, volume, network.
    #[arg(long, value_enum)]
    pub kind: Vec<import::ImportKind>,
    /// A CIMI $filter the provider applies, such as "name='legacy-db'".
    #[arg(long)]
    pub filter: Option<String>,
    /// Write a manifest for every resource listed (after --kind and --filter); without it, only list.
    #[arg(long)]
    pub all: bool,
    /// The management policy of the manifests: ObserveOnly (default: adopt and never change) or Managed.
    #[arg(long, value_enum, default_value_t = import::Policy::ObserveOnly)]
    pub policy: import::Policy,
    /// A label for every manifest (repeatable), such as team=a.
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Write one file per manifest into this directory instead of one YAML stream on stdout.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

/// `doctor` options.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// A CimiProvider name, or the CloudEntryPoint URL of an endpoint.
    pub target: String,
    /// For a URL: a YAML or JSON file with `username` and `password`, or `token` (else the environment:
    /// CIMI_USERNAME and CIMI_PASSWORD, or CIMI_TOKEN). Credentials are never taken from the command line.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// For a URL: a PEM CA bundle that signs the endpoint's certificate.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// For a URL: accept any certificate (tests only).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// For an http:// URL: send the credentials over plain http (as a CimiProvider's spec.allowPlainHttp).
    #[arg(long)]
    pub allow_plain_http: bool,
}

/// Parses a Go-style duration (`90s`, `10m`, `1h30m`).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    crate::api::common::parse_duration(text)
}

/// The entry point of the `kubectl-cimi` binary: parses the arguments, runs the command on a tokio
/// runtime, prints errors on stderr and returns the documented exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> Result<ExitCode, PluginError> {
    crate::cimi::transport::install_crypto_provider();
    let printer = Printer::new(cli.global.output, cli.global.no_color);
    if let Command::Completion { shell } = cli.command {
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "kubectl-cimi", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    // Doctor on a URL needs no cluster.
    if let Command::Doctor(args) = &cli.command
        && doctor::is_url(&args.target)
    {
        return doctor::run_url(args, &printer).await;
    }
    let kube = kubeconn::Kube::connect(&cli.global).await?;
    match cli.command {
        Command::Status => status::run(&kube, &printer).await,
        Command::Tree(t) => tree::run(&kube, &objects::Target::parse(&t)?, &printer).await,
        Command::Start(a) => actions::run(&kube, actions::Action::Start, &a, &printer).await,
        Command::Stop(a) => actions::run(&kube, actions::Action::Stop, &a, &printer).await,
        Command::Pause(a) => actions::run(&kube, actions::Action::Pause, &a, &printer).await,
        Command::Suspend(a) => actions::run(&kube, actions::Action::Suspend, &a, &printer).await,
        Command::Restart(a) => actions::run(&kube, actions::Action::Restart, &a, &printer).await,
        Command::Capture(a) => actions::run(&kube, actions::Action::Capture, &a, &printer).await,
        Command::Catalog(c) => catalog::run(&kube, &c, &printer).await,
        Command::Meters(t) => observe::meters(&kube, &objects::Target::parse(&t)?, &printer).await,
        Command::Events(e) => observe::events(&kube, &objects::Target::parse(&e.target)?, e.all, &printer).await,
        Command::Import(i) => import::run(&kube, &i, &printer).await,
        Command::Doctor(d) => doctor::run_provider(&kube, &d, &printer).await,
        Command::Completion { .. } => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_well_formed_and_every_command_has_an_example() {
        Cli::command().debug_assert();
        for sub in Cli::command().get_subcommands() {
            let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains("kubectl"), "{} has no example", sub.get_name());
        }
    }

    #[test]
    fn global_options_parse_anywhere() {
        let cli = Cli::try_parse_from([
            "kubectl-cimi",
            "stop",
            "machine/web-1",
            "-n",
            "team-a",
            "--wait",
            "--timeout",
            "90s",
            "--context",
            "lab",
        ])
        .expect("parses");
        assert_eq!(cli.global.namespace.as_deref(), Some("team-a"));
        assert_eq!(cli.global.context.as_deref(), Some("lab"));
        match cli.command {
            Command::Stop(a) => {
                assert!(a.wait);
                assert_eq!(a.timeout, Duration::from_secs(90));
                assert_eq!(a.target.target, "machine/web-1");
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["kubectl-cimi", "status", "-A", "-o", "json"]).expect("parses");
        assert!(cli.global.all_namespaces);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert!(Cli::try_parse_from(["kubectl-cimi", "status", "-o", "xml"]).is_err());
    }

    #[test]
    fn the_krew_manifest_matches_the_crate() {
        let manifest: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../plugins/krew/cimi.yaml")).expect("the krew manifest parses");
        assert_eq!(manifest["kind"].as_str(), Some("Plugin"));
        assert_eq!(manifest["metadata"]["name"].as_str(), Some("cimi"), "found by kubectl as `kubectl cimi`");
        let version = format!("v{}", env!("CARGO_PKG_VERSION"));
        assert_eq!(manifest["spec"]["version"].as_str(), Some(version.as_str()));
        let platforms = manifest["spec"]["platforms"].as_sequence().expect("platforms");
        assert!(!platforms.is_empty());
        for p in platforms {
            assert_eq!(p["bin"].as_str(), Some("kubectl-cimi"));
            let uri = p["uri"].as_str().expect("uri");
            assert!(uri.contains(&version) && uri.ends_with(".tar.gz"), "{uri}");
            let sha = p["sha256"].as_str().expect("sha256");
            assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha}");
        }
    }

    #[test]
    fn the_documentation_covers_every_command_and_exit_code() {
        let docs = include_str!("../../docs/kubectl-cimi.md");
        for sub in Cli::command().get_subcommands().filter(|s| s.get_name() != "completion") {
            let name = sub.get_name();
            assert!(docs.contains(&format!("$ kubectl cimi {name}")), "docs/kubectl-cimi.md shows no `{name}` run");
        }
        for line in EXIT_CODES.lines().skip(1) {
            let code = line.split_whitespace().next().expect("a code");
            assert!(docs.contains(&format!("| {code} |")), "docs/kubectl-cimi.md lacks exit code {code}");
        }
    }

    #[test]
    fn credentials_are_not_command_line_arguments() {
        let doctor = Cli::command().find_subcommand("doctor").cloned().expect("doctor");
        for arg in doctor.get_arguments() {
            let id = arg.get_id().as_str();
            assert!(!["password", "token", "username"].contains(&id), "doctor takes {id} on the command line");
        }
    }
}
