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
//! - [`observe`]: `meters`, `events` and `drift` of an object;
//! - [`import`]: provider resources no object manages, written as ready-to-commit manifests;
//! - [`doctor`]: a CIMI endpoint probed as the operator would use it, as a compatibility report;
//! - [`connect`]: a CIMI client from a CimiProvider and its Secret;
//! - [`cli`]: the command line (every command's arguments);
//! - [`kubeconn`], [`objects`], [`output`], [`error`]: the Kubernetes connection, the kinds and their
//!   common view, tables and documents, exit codes.

pub mod actions;
pub mod catalog;
pub mod cli;
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

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use cli::*;

pub use error::PluginError;
use output::Printer;

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
        Command::Drift(t) => observe::drift(&kube, &objects::Target::parse(&t)?, &printer).await,
        Command::Events(e) => observe::events(&kube, &objects::Target::parse(&e.target)?, e.all, &printer).await,
        Command::Import(i) => import::run(&kube, &i, &printer).await,
        Command::Doctor(d) => doctor::run_provider(&kube, &d, &printer).await,
        Command::Completion { .. } => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::output::OutputFormat;
    use super::*;
    use std::time::Duration;

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
