//! `cimi-sim`: the CIMI provider simulator. Prints the CloudEntryPoint URL as its first line, then serves until
//! interrupted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use cimi_operator::sim::{Auth, Catalog, FaultSet, JobRetention, Limits, Profile, Sim, SimConfig, Timing, TlsFiles};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

/// A CIMI provider that simulates an IaaS.
#[derive(Debug, Parser)]
#[command(name = "cimi-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
    /// The base URI advertised to consumers (default: the listen URL).
    #[arg(long)]
    external_url: Option<String>,
    /// Basic auth user.
    #[arg(long, env = "CIMI_SIM_USER", default_value = "demo")]
    user: String,
    /// Basic auth password [default: demo]. On the command line it is visible to every user of the machine
    /// (`ps`): prefer --password-file or the environment.
    #[arg(long, env = "CIMI_SIM_PASSWORD", hide_env_values = true, conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the Basic auth password from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Accept `Authorization: Bearer <token>` instead of Basic. On the command line it is visible to every
    /// user of the machine (`ps`): prefer --token-file or the environment.
    #[arg(long, env = "CIMI_SIM_TOKEN", hide_env_values = true, conflicts_with_all = ["no_auth", "token_file"])]
    token: Option<String>,
    /// Read the bearer token from this file (a trailing newline is ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "no_auth")]
    token_file: Option<PathBuf>,
    /// Accept every request.
    #[arg(long)]
    no_auth: bool,
    /// Which reading of the standard to serve.
    #[arg(long, value_enum, default_value_t = Profile::Strict)]
    profile: Profile,
    /// How long state transitions take.
    #[arg(long, value_enum, default_value_t = Timing::Fast)]
    timing: Timing,
    /// Leave these collections out of the CloudEntryPoint (comma-separated, such as `meters,eventLogs`: monitoring
    /// served only per resource).
    #[arg(long, value_delimiter = ',')]
    cep_omit: Vec<String>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A catalog file (YAML or JSON) replacing the Primer's.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// A fault file (`{"rules": [...]}`, YAML or JSON) active from the start.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Persist state to this file (a snapshot, plus FILE.journal.N with every change, synced before each answer).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Finished Jobs are removed after this many minutes (advertised as the JobRetention capability).
    #[arg(long, default_value_t = 60)]
    job_retention_minutes: u64,
    /// At most this many Jobs are kept; beyond it the oldest finished ones are removed.
    #[arg(long, default_value_t = 10_000)]
    max_jobs: usize,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What one request or connection may cost (see `Limits`).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// The largest request body in bytes; larger is answered 413.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// The longest request target (path and query) in bytes; longer is answered 414.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_uri_bytes)]
    max_uri_bytes: usize,
    /// The largest request head (request line and headers) in bytes; larger is answered 431.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Seconds a client may take to send a request head before its connection is closed.
    #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "10")]
    header_read_timeout: Duration,
    /// Seconds a connection may stay idle between requests before it is closed.
    #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "60")]
    idle_timeout: Duration,
    /// Seconds reading one request body may take before the request is answered 408.
    #[arg(long, value_name = "SECONDS", value_parser = seconds, default_value = "30")]
    body_read_timeout: Duration,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_uri_bytes: self.max_uri_bytes,
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_read_timeout,
        }
    }
}

/// A positive number of seconds, decimals allowed (`0.5`).
fn seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{text} is not a positive number of seconds")),
    }
}

/// A password or token kept in a file: its content, without the trailing newline. An empty one is an error.
fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
    Ok(secret.to_string())
}

/// The credentials, from the command line, the environment or a file (`demo`/`demo` by default).
fn auth(args: &Args) -> anyhow::Result<Auth> {
    if args.no_auth {
        return Ok(Auth::None);
    }
    if let Some(token) = &args.token {
        return Ok(Auth::Bearer(token.clone()));
    }
    if let Some(path) = &args.token_file {
        return Ok(Auth::Bearer(read_secret(path)?));
    }
    let password = match (&args.password, &args.password_file) {
        (Some(password), _) => password.clone(),
        (None, Some(path)) => read_secret(path)?,
        (None, None) => "demo".to_string(),
    };
    Ok(Auth::Basic { user: args.user.clone(), password })
}

/// Warns when a secret was given on the command line, where every user of the machine can read it.
fn warn_about_visible_secrets(matches: &ArgMatches) {
    for (arg, instead) in
        [("password", "--password-file or CIMI_SIM_PASSWORD"), ("token", "--token-file or CIMI_SIM_TOKEN")]
    {
        if matches.value_source(arg) == Some(ValueSource::CommandLine) {
            eprintln!("cimi-sim: warning: --{arg} on the command line is visible to other users (ps); use {instead}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    warn_about_visible_secrets(&matches);
    let auth = auth(&args)?;
    let catalog = args.catalog.as_deref().map(Catalog::load).transpose()?;
    let faults = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            serde_yaml::from_str::<FaultSet>(&text).with_context(|| format!("parsing {}", path.display()))?.rules
        }
        None => Vec::new(),
    };
    let config = SimConfig {
        listen: args.listen,
        external_url: args.external_url,
        auth,
        profile: args.profile,
        timing: args.timing,
        seed: args.seed,
        catalog,
        faults,
        state_file: args.state_file,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        job_retention: JobRetention {
            age: std::time::Duration::from_secs(args.job_retention_minutes.saturating_mul(60)),
            max_jobs: args.max_jobs,
        },
        limits: args.limits.limits(),
        cep_omit: args.cep_omit,
    };
    let mut sim = Sim::start(config).await.context("starting the simulator")?;
    println!("{}", sim.url());
    tokio::select! {
        _ = sim.wait() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    sim.stop().await;
    Ok(())
}
