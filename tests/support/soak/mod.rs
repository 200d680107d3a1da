//! The chaos soak, shared by the short version in the e2e tests (`tests/e2e/soak.rs`) and the long one
//! (`cargo bench --bench soak`): a control plane, cimi-sim with a state file and the operator (one process per
//! shard) of its own ([`lab`]); a seeded churn of every managed kind ([`churn`]); a seeded schedule of cimi-sim
//! faults and process kills and restarts ([`faults`]); the invariants, checked after each fault window and at
//! the end ([`check`]).
//!
//! The run: the objects are created and waited for; then episodes follow until the duration is spent, each a
//! process event and/or fault rules over a window with the churn going on, then the rules cleared, the churn
//! paused and the invariants checked, then a quiet gap with the churn going on. After the last episode the churn
//! stops and every object must converge within 5 poll intervals of the last fault.

#![allow(dead_code)]

pub mod check;
pub mod churn;
pub mod faults;
pub mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cimi_operator::cimi::{Auth, CimiClient, ClientConfig, Secret as CimiSecret};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;

use churn::{Churn, NAMESPACES, PROVIDER};
use faults::{Class, Schedule};
use lab::{Binaries, Lab, RssSample, SIM_USER};

/// What one soak does.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// How long the episodes go on (the fill before and the convergence after come on top).
    pub duration: Duration,
    /// How many objects the churn keeps.
    pub objects: usize,
    pub seed: u64,
    /// The CimiProvider's pollInterval; convergence is due within 5 of them after the last fault.
    pub poll_seconds: u64,
    /// Operator processes (shards).
    pub shards: u32,
    /// Churn operations per second.
    pub ops_per_second: f64,
    /// Fault windows last between these many seconds.
    pub window: (u64, u64),
    /// The quiet time after each window's check.
    pub gap_seconds: u64,
    /// `spec.timeouts` of the objects' create and update (delete: 6 times as long).
    pub timeout_seconds: u64,
    /// Where the state file and the logs go.
    pub dir: PathBuf,
    pub binaries: Binaries,
    /// Print a line per episode to stderr.
    pub progress: bool,
}

/// What a soak did and found.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub seed: u64,
    pub objects: usize,
    pub shards: u32,
    pub fill: Duration,
    pub episodes: u32,
    pub churn_time: Duration,
    pub operations: BTreeMap<&'static str, u64>,
    pub api_errors: u64,
    /// Fault windows and process events by class.
    pub faults: BTreeMap<Class, u32>,
    pub checks: u32,
    pub violations: Vec<String>,
    /// From the end of the last fault to every object converged.
    pub convergence: Option<Duration>,
    pub convergence_bound: Duration,
    pub rss: Vec<RssSample>,
    pub live_at_end: usize,
    pub deleted: usize,
    pub provider_resources_at_end: usize,
    pub actions: BTreeMap<String, u32>,
    /// cimi-sim's answers by HTTP status over the whole run (0: a connection dropped after the change).
    pub answers: BTreeMap<u16, u64>,
    /// The most provider events found mirrored as Events at one check (Events expire after an hour).
    pub provider_events: usize,
}

impl SoakReport {
    fn violation(&mut self, v: String) {
        if !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }

    /// The resident set at the start and the end of the churn (summed over shards), in MiB.
    pub fn rss_start_end(&self) -> (f64, f64) {
        let at = |t: f64| -> f64 {
            let mut by_shard: BTreeMap<u32, u64> = BTreeMap::new();
            for s in self.rss.iter().filter(|s| (s.at - t).abs() < 3.0) {
                by_shard.insert(s.shard, s.kib);
            }
            by_shard.values().sum::<u64>() as f64 / 1024.0
        };
        let first = self.rss.first().map_or(0.0, |s| s.at);
        let last = self.rss.last().map_or(0.0, |s| s.at);
        (at(first), at(last))
    }

    /// The slope of the resident set of the longest-lived process (MiB per hour) and how long it lived
    /// (seconds): a least-squares line through its samples.
    pub fn rss_slope(&self) -> Option<(f64, f64, u32)> {
        let mut runs: BTreeMap<(u32, u32), Vec<(f64, f64)>> = BTreeMap::new();
        for s in &self.rss {
            runs.entry((s.shard, s.incarnation)).or_default().push((s.at, s.kib as f64 / 1024.0));
        }
        let (&(shard, _), points) = runs.iter().max_by(|a, b| {
            let span = |p: &Vec<(f64, f64)>| p.last().map_or(0.0, |l| l.0) - p.first().map_or(0.0, |f| f.0);
            span(a.1).total_cmp(&span(b.1))
        })?;
        // The first two minutes of a process are its warm-up (stores filling), not a trend.
        let start = points.first()?.0 + 120.0;
        let points: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 >= start).collect();
        if points.len() < 3 {
            return None;
        }
        let n = points.len() as f64;
        let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let span = points.last()?.0 - points.first()?.0;
        (sxx > 0.0).then(|| (sxy / sxx * 3600.0, span, shard))
    }

    /// The report as printed (and pasted into BENCHMARKS.md).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "soak: seed {}, {} objects, {} shard(s)", self.seed, self.objects, self.shards);
        let _ = writeln!(
            s,
            "  fill (all Ready): {:.1} s; churn with faults: {:.1} s, {} episodes, {} checks",
            self.fill.as_secs_f64(),
            self.churn_time.as_secs_f64(),
            self.episodes,
            self.checks
        );
        let total: u64 = self.operations.values().sum();
        let _ = writeln!(s, "  operations: {total} ({} API errors while the control plane restarted)", self.api_errors);
        for (op, n) in &self.operations {
            let _ = writeln!(s, "    {op}: {n}");
        }
        let _ = writeln!(s, "  one-shot actions by final phase: {:?}", self.actions);
        let _ = writeln!(s, "  provider events mirrored (most at one check): {}", self.provider_events);
        let total: u64 = self.answers.values().sum();
        let faulty: Vec<String> =
            self.answers.iter().filter(|(s, _)| **s == 0 || **s >= 429).map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(
            s,
            "  provider requests: {total}; answered with a fault status (0 = dropped): {}",
            faulty.join(", ")
        );
        let _ = writeln!(s, "  faults by class (windows and process events):");
        for (class, n) in &self.faults {
            let _ = writeln!(s, "    {}: {n}", class.name());
        }
        let _ = writeln!(
            s,
            "  at the end: {} objects, {} deleted during the run and gone, {} provider resources",
            self.live_at_end, self.deleted, self.provider_resources_at_end
        );
        match self.convergence {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "  convergence after the last fault: {:.1} s (bound {} s)",
                    c.as_secs_f64(),
                    self.convergence_bound.as_secs()
                );
            }
            None => {
                let _ = writeln!(s, "  convergence after the last fault: never");
            }
        }
        let (start, end) = self.rss_start_end();
        let _ = writeln!(s, "  operator RSS (all shards): {start:.1} MiB at the start, {end:.1} MiB at the end");
        if let Some((slope, span, shard)) = self.rss_slope() {
            let _ = writeln!(
                s,
                "  RSS slope of the longest-lived process (shard {shard}, {:.0} min after warm-up): {slope:+.2} MiB/h",
                span / 60.0
            );
        }
        let _ = writeln!(s, "  invariant violations: {}", self.violations.len());
        for v in &self.violations {
            let _ = writeln!(s, "    {v}");
        }
        s
    }
}

async fn put_faults(http: &reqwest::Client, url: &str, canary: &str, rules: &[serde_json::Value]) -> bool {
    let sent = http
        .put(format!("{url}_sim/faults"))
        .basic_auth(SIM_USER, Some(canary))
        .json(&json!({"rules": rules}))
        .send()
        .await;
    matches!(sent, Ok(r) if r.status().is_success())
}

/// cimi-sim's answers by status since it started (its statistics live as long as its process).
async fn sim_answers(http: &reqwest::Client, url: &str, canary: &str) -> BTreeMap<u16, u64> {
    let stats = async {
        let r = http.get(format!("{url}_sim/stats")).basic_auth(SIM_USER, Some(canary)).send().await.ok()?;
        r.json::<cimi_operator::sim::SimStats>().await.ok()
    };
    let mut out = BTreeMap::new();
    for by_status in stats.await.map(|s| s.requests.into_values()).into_iter().flatten() {
        for (status, n) in by_status {
            *out.entry(status).or_default() += n;
        }
    }
    out
}

fn add_answers(total: &mut BTreeMap<u16, u64>, more: BTreeMap<u16, u64>) {
    for (status, n) in more {
        *total.entry(status).or_default() += n;
    }
}

async fn setup(client: &kube::Client, sim_url: &str, canary: &str, poll: u64) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["soak-system"].into_iter().chain(NAMESPACES) {
        let n =
            Namespace { metadata: ObjectMeta { name: Some(ns.into()), ..Default::default() }, ..Default::default() };
        namespaces.create(&PostParams::default(), &n).await.expect("namespace");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "soak-system");
    let secret = Secret {
        metadata: ObjectMeta { name: Some("soak-credentials".into()), ..Default::default() },
        data: Some(BTreeMap::from([
            ("username".to_string(), ByteString(SIM_USER.as_bytes().to_vec())),
            ("password".to_string(), ByteString(canary.as_bytes().to_vec())),
        ])),
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &secret).await.expect("credentials");
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    let provider = serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider", "metadata": {"name": PROVIDER},
        "spec": {"endpoint": sim_url, "credentialSecretRef": {"name": "soak-credentials"}, "allowPlainHTTP": true,
                 "pollInterval": format!("{poll}s"), "eventInterval": format!("{}s", poll * 2),
                 "meterInterval": format!("{}s", poll * 6),
                 "rateLimit": {"requestsPerSecond": 500, "burst": 1000, "maxConcurrent": 32}}
    }))
    .expect("provider");
    providers.create(&PostParams::default(), &provider).await.expect("provider");
}

async fn cimi_client(url: &str, canary: &str) -> CimiClient {
    let mut config = ClientConfig::new("soak", url).expect("config");
    config.transport.auth = Auth::Basic { username: SIM_USER.into(), password: CimiSecret::new(canary) };
    config.transport.allow_plain_http = true;
    CimiClient::connect(config).await.expect("the soak's CIMI client")
}

/// What the checks read with: the soak's own clients, the provider's resources from before the soak (its
/// catalog), and the forms the canary would show as.
struct Checker {
    client: kube::Client,
    cimi: CimiClient,
    baseline: BTreeSet<String>,
    forms: Vec<String>,
    /// Resources that looked leaked at the last check during the run.
    suspects: BTreeSet<String>,
}

impl Checker {
    /// One round of checks, with the churn paused and no fault active; the objects and provider resources read.
    async fn round(
        &mut self,
        lab: &mut Lab,
        churn: &Churn,
        report: &mut SoakReport,
        strict: bool,
    ) -> Option<(check::Objects, check::Provider)> {
        let read_at = chrono::Utc::now();
        let objects = check::read_objects(&self.client).await.ok()?;
        let provider = check::read_provider(&self.cimi).await.ok()?;
        report.checks += 1;
        // The provider is read one collection after another while the operator finishes what the churn asked
        // (a system deleted between the read of its networks and that of the systems leaves its members looking
        // unowned for one read). During the run a leak counts when it is still there at the next check, a
        // minute later; at the end, once all has converged, at once.
        let mut suspects = BTreeSet::new();
        for v in check::provider_violations(&objects, &provider, &churn.hand_made, &self.baseline, read_at, strict) {
            match v.leaked {
                Some(href) if !strict && !self.suspects.contains(&href) => {
                    suspects.insert(href);
                }
                Some(href) => {
                    suspects.insert(href);
                    report.violation(v.message);
                }
                None => report.violation(v.message),
            }
        }
        self.suspects = suspects;
        if let Ok((mirrored, twice)) = check::mirrored_twice(&self.client).await {
            report.provider_events = report.provider_events.max(mirrored);
            twice.into_iter().for_each(|v| report.violation(v));
        }
        let logs = lab.operator_logs();
        if let Ok(leaks) = check::canary_leaks(&self.client, &objects, &self.forms, &logs).await {
            leaks.into_iter().for_each(|v| report.violation(v));
        }
        check::panics(&logs).into_iter().for_each(|v| report.violation(v));
        lab.note_exits();
        for exit in lab.unexpected_exits.clone() {
            report.violation(exit);
        }
        Some((objects, provider))
    }
}

/// Runs the churn for `seconds` at the configured rate, sampling the operators' resident set.
async fn churn_for(
    lab: &Lab,
    churn: &mut Churn,
    cimi: &CimiClient,
    config: &SoakConfig,
    seconds: u64,
    quiet: bool,
    rss: &mut Vec<RssSample>,
) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let tick = Duration::from_secs_f64(1.0 / config.ops_per_second.max(0.01));
    let mut last_rss = Instant::now() - Duration::from_secs(60);
    while Instant::now() < until {
        let started = Instant::now();
        let _ = tokio::time::timeout(Duration::from_secs(30), churn.step(cimi, quiet)).await;
        if last_rss.elapsed() >= Duration::from_secs(5) {
            rss.extend(lab.rss());
            last_rss = Instant::now();
        }
        tokio::time::sleep(tick.saturating_sub(started.elapsed())).await;
    }
}

/// Waits until every object has converged, up to `limit`; how long it took (None: not within the limit), and
/// what was still pending at the bound.
async fn converge(
    client: &kube::Client,
    cimi: &CimiClient,
    churn: &mut Churn,
    since: Instant,
    bound: Duration,
    limit: Duration,
    progress: bool,
) -> (Option<Duration>, Vec<String>) {
    let mut pending_at_bound = Vec::new();
    let mut last_print = Instant::now();
    loop {
        churn.settle().await;
        churn.remove_released(cimi, &BTreeSet::new()).await;
        let objects = check::read_objects(client).await;
        let provider = check::read_provider(cimi).await;
        if let (Ok(objects), Ok(provider)) = (&objects, &provider) {
            let pending = check::convergence(objects, provider, churn);
            if pending.is_empty() {
                return (Some(since.elapsed()), pending_at_bound);
            }
            if progress && last_print.elapsed() > Duration::from_secs(20) {
                last_print = Instant::now();
                eprintln!(
                    "[soak] converging: {} pending, such as {:?}",
                    pending.len(),
                    &pending[..pending.len().min(3)]
                );
            }
            if since.elapsed() > bound && pending_at_bound.is_empty() {
                pending_at_bound = pending;
            }
        }
        if since.elapsed() > limit {
            return (None, pending_at_bound);
        }
        // Every 3 s: each look reads every object and every provider collection (and each system's members).
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Runs a whole soak and returns its report (violations included; the caller asserts or prints).
pub async fn run(config: SoakConfig) -> SoakReport {
    let canary = format!("canary-{:016x}-{:08x}", config.seed, rand::random::<u32>());
    let mut lab = Lab::start(&config.dir, config.binaries.clone(), config.seed, canary.clone()).await;
    let client = lab.control_plane.client().await.expect("client");
    setup(&client, &lab.sim_url, &canary, config.poll_seconds).await;
    lab.start_operators(config.shards);
    let cimi = cimi_client(&lab.sim_url, &canary).await;
    let http = reqwest::Client::new();
    let baseline: BTreeSet<String> =
        check::read_provider(&cimi).await.expect("provider").resources.into_keys().collect();
    let mut checker = Checker {
        client: client.clone(),
        cimi: cimi.clone(),
        baseline,
        forms: check::canary_forms(&canary, SIM_USER),
        suspects: BTreeSet::new(),
    };
    let mut report = SoakReport {
        seed: config.seed,
        objects: config.objects,
        shards: config.shards,
        convergence_bound: Duration::from_secs(5 * config.poll_seconds),
        ..SoakReport::default()
    };
    let begun = Instant::now();
    let progress = |line: String| {
        if config.progress {
            eprintln!("[soak {:>6.0}s] {line}", begun.elapsed().as_secs_f64());
        }
    };

    // The fill: every object created, then waited for (a slow fill is not a violation: no fault yet).
    let mut churn = Churn::new(client.clone(), config.seed, config.objects, config.timeout_seconds);
    let filling = Instant::now();
    churn.fill(&cimi).await;
    let (filled, pending) = converge(
        &client,
        &cimi,
        &mut churn,
        filling,
        Duration::from_secs(3600),
        Duration::from_secs(1800),
        config.progress,
    )
    .await;
    if filled.is_none() {
        report.violation(format!("the fill never converged: {:?}", pending.iter().take(10).collect::<Vec<_>>()));
    }
    report.fill = filling.elapsed();
    progress(format!("filled {} objects in {:.1} s", churn.live.len(), report.fill.as_secs_f64()));

    let mut schedule = Schedule::new(config.seed, config.window);
    let churning = Instant::now();
    let mut rss = lab.rss();
    let mut last_fault_end = Instant::now();
    while churning.elapsed() + Duration::from_secs(config.window.1 + config.gap_seconds) <= config.duration
        || report.episodes == 0
    {
        let episode = schedule.next_episode(lab.shard_count());
        report.episodes += 1;
        progress(format!(
            "episode {}: {:?} + {:?} for {} s ({} objects)",
            report.episodes,
            episode.process.map(Class::name),
            episode.sim.iter().map(|c| c.name()).collect::<Vec<_>>(),
            episode.seconds,
            churn.live.len()
        ));
        if let Some(class) = episode.process {
            *report.faults.entry(class).or_default() += 1;
            let timeout = Duration::from_secs(120);
            match class {
                Class::KillOperator => lab.kill_operator(episode.shard),
                Class::RestartApiServer => lab.control_plane.restart("kube-apiserver", timeout).await.expect("restart"),
                Class::RestartEtcd => lab.control_plane.restart("etcd", timeout).await.expect("restart"),
                Class::RestartControllerManager => {
                    lab.control_plane.restart("kube-controller-manager", timeout).await.expect("restart")
                }
                Class::RestartSim => {
                    add_answers(&mut report.answers, sim_answers(&http, &lab.sim_url, &canary).await);
                    lab.restart_sim().await
                }
                _ => unreachable!("a process class"),
            }
        }
        for class in &episode.sim {
            *report.faults.entry(*class).or_default() += 1;
        }
        if !episode.rules.is_empty() {
            let mut attempts = 0;
            while !put_faults(&http, &lab.sim_url, &canary, &episode.rules).await {
                attempts += 1;
                assert!(attempts < 50, "cimi-sim refused the fault rules {:?}", episode.rules);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        churn_for(&lab, &mut churn, &cimi, &config, episode.seconds, false, &mut rss).await;
        while !put_faults(&http, &lab.sim_url, &canary, &[]).await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last_fault_end = Instant::now();
        let before = report.violations.len();
        checker.round(&mut lab, &churn, &mut report, false).await;
        for v in &report.violations[before..] {
            progress(format!("VIOLATION {v}"));
        }
        if churning.elapsed() + Duration::from_secs(config.window.1 + config.gap_seconds) > config.duration {
            break;
        }
        churn_for(&lab, &mut churn, &cimi, &config, config.gap_seconds, true, &mut rss).await;
    }
    report.churn_time = churning.elapsed();

    // The end: no more churn; every object converges within 5 poll intervals of the last fault.
    let (converged, pending) = converge(
        &client,
        &cimi,
        &mut churn,
        last_fault_end,
        report.convergence_bound,
        report.convergence_bound * 4 + Duration::from_secs(120),
        config.progress,
    )
    .await;
    report.convergence = converged;
    if converged.is_none_or(|c| c > report.convergence_bound) {
        let sample: Vec<&String> = pending.iter().take(12).collect();
        report.violation(format!(
            "not converged within {} s of the last fault ({} pending): {sample:#?}",
            report.convergence_bound.as_secs(),
            pending.len()
        ));
    }
    rss.extend(lab.rss());
    add_answers(&mut report.answers, sim_answers(&http, &lab.sim_url, &canary).await);
    if let Some((objects, provider)) = checker.round(&mut lab, &churn, &mut report, true).await {
        report.live_at_end = objects.len();
        report.provider_resources_at_end = provider.resources.len();
        for o in objects.values() {
            if let Some(phase) = o.data["status"]["lastAction"]["phase"].as_str() {
                *report.actions.entry(phase.to_string()).or_default() += 1;
            }
        }
    } else {
        report.violation("the final check could not read the API server or the provider".into());
    }
    report.operations = churn.ops.clone();
    report.api_errors = churn.api_errors;
    report.deleted = churn.gone.len();
    report.rss = rss;
    lab.stop_processes();
    report
}
