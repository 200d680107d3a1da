//! The command line of `kubectl cimi`: every command and its arguments, with an example each and the exit
//! codes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use super::output::OutputFormat;

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
    /// The operator's namespace, which holds the Secrets of the cluster-scoped CimiProviders (the commands
    /// that read a provider read them with your permissions, as the operator does).
    #[arg(long, global = true, env = "CIMI_OPERATOR_NAMESPACE", default_value = "cimi-system")]
    pub operator_namespace: String,
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
    /// Restart a CimiMachine or CimiSystem once (the cimi.dev/action annotation, with a fresh nonce).
    #[command(after_help = "Examples:\n  kubectl cimi restart cimimachine/web-1 --wait\n  \
                            kubectl cimi restart cimisystem/shop --wait")]
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
    /// Each field where the provider resource differs from the spec, as the operator last saw it.
    #[command(after_help = "Examples:\n  kubectl cimi drift cimimachine/legacy-vm\n  \
                            kubectl cimi drift cimisystem/shop -o yaml")]
    Drift(TargetArgs),
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
    pub kind: Vec<ImportKind>,
    /// A CIMI $filter the provider applies, such as "name='legacy-db'".
    #[arg(long)]
    pub filter: Option<String>,
    /// Write a manifest for every resource listed (after --kind and --filter); without it, only list.
    #[arg(long)]
    pub all: bool,
    /// The management policy of the manifests: ObserveOnly (default: adopt and never change) or Managed.
    #[arg(long, value_enum, default_value_t = Policy::ObserveOnly)]
    pub policy: Policy,
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
    /// For an http:// URL: send the credentials over plain http (as a CimiProvider's spec.allowPlainHTTP).
    #[arg(long)]
    pub allow_plain_http: bool,
}

/// Parses a Go-style duration (`90s`, `10m`, `1h30m`).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    crate::api::common::parse_duration(text)
}

/// A kind of provider resource the plugin imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, Serialize)]
pub enum ImportKind {
    /// A Machine, as a CimiMachine.
    Machine,
    /// A Volume, as a CimiVolume.
    Volume,
    /// A Network, as a CimiNetwork.
    Network,
}

impl ImportKind {
    /// Every kind, in listing order.
    pub const ALL: [ImportKind; 3] = [ImportKind::Machine, ImportKind::Volume, ImportKind::Network];

    /// The CloudEntryPoint collection.
    pub fn collection(self) -> &'static str {
        match self {
            ImportKind::Machine => "machines",
            ImportKind::Volume => "volumes",
            ImportKind::Network => "networks",
        }
    }

    /// The Kubernetes kind of the manifest.
    pub fn kind_name(self) -> &'static str {
        match self {
            ImportKind::Machine => "CimiMachine",
            ImportKind::Volume => "CimiVolume",
            ImportKind::Network => "CimiNetwork",
        }
    }

    /// The lower-case word, for file names and messages.
    pub fn word(self) -> &'static str {
        match self {
            ImportKind::Machine => "machine",
            ImportKind::Volume => "volume",
            ImportKind::Network => "network",
        }
    }
}

/// The management policy of the manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Adopt and only observe: the operator never writes to the resource.
    #[value(name = "ObserveOnly", alias = "observe-only", alias = "observeonly")]
    ObserveOnly,
    /// Adopt and manage: the operator tags the resource and keeps it as the spec says.
    #[value(name = "Managed", alias = "managed")]
    Managed,
}
