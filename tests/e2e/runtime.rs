//! The operator runtime on a real API server: leader election between two instances (graceful stop,
//! SIGTERM and SIGKILL of the `cimi-operator` binary), `/healthz`, `/readyz` and `/metrics` as a user
//! scrapes them. Each test has its own namespace, Lease and label selector.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cimi_operator::runtime::metrics::{KindLabels, ResourceLabels};
use cimi_operator::runtime::{self, Config, LeaderElectionConfig, Running};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

use crate::harness::{TestNamespace, client, client_as, control_plane, eventually, http_get, random_suffix};

/// Short timings so the tests run in seconds; the bound under test is `LEASE + RETRY`.
const LEASE: Duration = Duration::from_secs(4);
const RETRY: Duration = Duration::from_secs(1);
/// Scheduling and request latency allowed on top of a protocol bound.
const SLACK: Duration = Duration::from_millis(750);
const LEASE_NAME: &str = "cimi-operator";
const T: Duration = Duration::from_secs(30);

fn instance_config(ns: &str, identity: &str) -> Config {
    Config {
        namespaces: vec![ns.to_string()],
        label_selector: Some(format!("cimi.dev/e2e={ns}")),
        operator_namespace: ns.to_string(),
        admin_addr: Some("127.0.0.1:0".parse().expect("addr")),
        leader_election: Some(LeaderElectionConfig {
            lease_name: LEASE_NAME.to_string(),
            lease_namespace: ns.to_string(),
            identity: identity.to_string(),
            lease_duration: LEASE,
            retry_period: RETRY,
        }),
        ..Config::default()
    }
}

/// One in-process operator with its own client and shutdown token.
struct Instance {
    identity: String,
    shutdown: CancellationToken,
    running: Running,
}

impl Instance {
    async fn start(ns: &str, identity: &str) -> Self {
        let shutdown = CancellationToken::new();
        let running =
            runtime::start(instance_config(ns, identity), client().await, shutdown.clone()).await.expect("start");
        Self { identity: identity.to_string(), shutdown, running }
    }

    fn leads(&self) -> bool {
        *self.running.leading.borrow()
    }

    fn admin(&self) -> SocketAddr {
        self.running.admin_addr.expect("admin server")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn lease_spec(ns: &str) -> Option<LeaseSpec> {
    let leases: Api<Lease> = Api::namespaced(client().await, ns);
    leases.get_opt(LEASE_NAME).await.expect("get Lease").and_then(|l| l.spec)
}

async fn holder(ns: &str) -> Option<String> {
    lease_spec(ns).await.and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn one_of_two_instances_leads_and_a_graceful_stop_hands_over_and_releases_the_lease() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "rt-lead").await;
    let a = Instance::start(&ns.name, "replica-a").await;
    let b = Instance::start(&ns.name, "replica-b").await;

    // Exactly one leads, and the Lease names it.
    let (leader, standby) = eventually("one instance to lead", T, || async {
        match (a.leads(), b.leads()) {
            (true, false) => Some((&a, &b)),
            (false, true) => Some((&b, &a)),
            _ => None,
        }
    })
    .await;
    assert_eq!(holder(&ns.name).await.as_deref(), Some(leader.identity.as_str()));
    // ... and stays the only one over several retry periods (no flapping, no split brain).
    for _ in 0..6 {
        tokio::time::sleep(RETRY / 2).await;
        assert!(leader.leads() && !standby.leads(), "leadership must be stable while the leader renews");
    }
    assert_eq!(holder(&ns.name).await.as_deref(), Some(leader.identity.as_str()));
    let (status, body) = http_get(leader.admin(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("cimi_leader 1"), "the leader reports cimi_leader 1:\n{body}");
    let (_, body) = http_get(standby.admin(), "/metrics").await;
    assert!(body.contains("cimi_leader 0"), "the standby reports cimi_leader 0:\n{body}");
    let transitions_before = lease_spec(&ns.name).await.and_then(|s| s.lease_transitions).unwrap_or(0);

    // A graceful stop releases the Lease, so the standby takes over at its next retry, well inside the bound.
    let stopped_at = Instant::now();
    leader.shutdown.cancel();
    let mut standby_leading = standby.running.leading.clone();
    tokio::time::timeout(LEASE + RETRY, standby_leading.wait_for(|leads| *leads))
        .await
        .expect("the standby leads within leaseDuration + retryPeriod of a graceful stop")
        .expect("standby still running");
    let handover = stopped_at.elapsed();
    assert!(handover <= RETRY + SLACK, "a released Lease is taken at the next retry, took {handover:?}");
    let spec = lease_spec(&ns.name).await.expect("Lease");
    assert_eq!(spec.holder_identity.as_deref(), Some(standby.identity.as_str()));
    assert_eq!(spec.lease_transitions, Some(transitions_before + 1), "the takeover counts as a transition");
    assert!(!leader.leads(), "the stopped instance no longer claims to lead");
    let leader_admin = leader.admin();
    assert!(
        tokio::net::TcpStream::connect(leader_admin).await.is_err() || {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tokio::net::TcpStream::connect(leader_admin).await.is_err()
        },
        "the stopped instance closed its admin server"
    );

    // The last instance's graceful shutdown clears the holder and ends its task.
    standby.shutdown.cancel();
    eventually("the last instance to stop", Duration::from_secs(10), || async {
        standby.running.task.is_finished().then_some(())
    })
    .await;
    let spec = lease_spec(&ns.name).await.expect("Lease");
    assert_eq!(spec.holder_identity, None, "a graceful shutdown clears the Lease holder");
}

/// The `cimi-operator run` binary as a child process, killed when dropped.
struct OperatorProcess {
    child: Child,
    admin: SocketAddr,
    log: std::path::PathBuf,
}

impl OperatorProcess {
    fn start(ns: &str, identity: &str) -> Self {
        let admin = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr")
        };
        let log = std::env::temp_dir().join(format!("cimi-e2e-operator-{identity}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_cimi-operator"))
            .args(["run", "--kubeconfig"])
            .arg(control_plane().kubeconfig_path())
            .args(["--operator-namespace", ns, "--namespace", ns, "--selector", &format!("cimi.dev/e2e={ns}")])
            .args(["--admin-addr", &admin.to_string(), "--leader-elect", "--lease-name", LEASE_NAME])
            .args(["--lease-duration", "4s", "--lease-retry-period", "1s", "--lease-identity", identity])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("start the cimi-operator binary");
        Self { child, admin, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept for a failed test to read; removed otherwise.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Waits until the process holds the Lease; fails with its log when it exits or never gets there.
async fn wait_for_holder(process: &mut OperatorProcess, ns: &str, identity: &str) {
    let deadline = Instant::now() + T;
    loop {
        if holder(ns).await.as_deref() == Some(identity) {
            return;
        }
        if let Some(status) = process.child.try_wait().expect("wait") {
            panic!("the operator exited ({status}) before leading; log:\n{}", process.log());
        }
        assert!(Instant::now() < deadline, "{identity} did not take the Lease in {T:?}; log:\n{}", process.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly_and_releases_the_lease() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "rt-term").await;
    let identity = format!("term-{}", random_suffix());
    let mut process = OperatorProcess::start(&ns.name, &identity);
    wait_for_holder(&mut process, &ns.name, &identity).await;
    let (status, body) = http_get(process.admin, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"), "healthz of the running binary");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(process.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    let status = eventually("the binary to exit after SIGTERM", Duration::from_secs(15), || {
        let exited = process.child.try_wait().expect("wait");
        async move { exited }
    })
    .await;
    assert!(status.success(), "SIGTERM is a clean exit, got {status}; log:\n{}", process.log());
    assert!(process.log().contains("released the leader Lease"), "the log says so:\n{}", process.log());
    assert_eq!(holder(&ns.name).await, None, "the Lease holder is cleared on SIGTERM");
}

#[tokio::test]
async fn a_killed_leader_is_replaced_after_the_lease_expires_within_lease_duration_plus_retry_period() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "rt-kill").await;
    let identity = format!("killed-{}", random_suffix());
    let mut process = OperatorProcess::start(&ns.name, &identity);
    wait_for_holder(&mut process, &ns.name, &identity).await;

    // The standby waits while the binary renews.
    let standby = Instance::start(&ns.name, "standby").await;
    tokio::time::sleep(RETRY * 3).await;
    assert!(!standby.leads(), "a standby never takes a Lease that is being renewed");
    assert_eq!(holder(&ns.name).await.as_deref(), Some(identity.as_str()));

    // SIGKILL: no release, the Lease keeps naming the dead process until it expires.
    process.child.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    process.child.wait().expect("reap");
    let last = lease_spec(&ns.name).await.expect("Lease");
    assert_eq!(last.holder_identity.as_deref(), Some(identity.as_str()), "a killed leader releases nothing");
    let last_renew = last.renew_time.expect("renewTime").0;

    let mut leading = standby.running.leading.clone();
    tokio::time::timeout(LEASE + RETRY + SLACK, leading.wait_for(|leads| *leads))
        .await
        .expect("the standby leads within leaseDuration + retryPeriod of the kill")
        .expect("standby running");
    let wall = killed_at.elapsed();

    // The protocol's bound, read from the Lease itself: taken after expiry, at most one retry later.
    let taken = lease_spec(&ns.name).await.expect("Lease");
    assert_eq!(taken.holder_identity.as_deref(), Some("standby"));
    let acquired = taken.acquire_time.expect("acquireTime").0;
    let gap = Duration::try_from(acquired.duration_since(last_renew)).expect("acquired after the last renewal");
    assert!(gap >= LEASE, "taken over only after the Lease expired: {gap:?} after the last renewal");
    assert!(gap <= LEASE + RETRY + SLACK, "taken over within leaseDuration + retryPeriod: {gap:?}");
    assert!(wall <= LEASE + RETRY + SLACK, "observed handover {wall:?} after the kill");
    assert_eq!(taken.lease_transitions, last.lease_transitions.map(|t| t + 1));
}

#[tokio::test]
async fn readyz_waits_for_the_api_healthz_answers_and_metrics_expose_every_cimi_family() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "rt-ready").await;
    // The operator's own identity: a service account with no rights yet, so it cannot list CimiProviders.
    let user = format!("system:serviceaccount:{}:cimi-operator", ns.name);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let config = Config {
        namespaces: vec![ns.name.clone()],
        label_selector: Some(format!("cimi.dev/e2e={}", ns.name)),
        operator_namespace: ns.name.clone(),
        admin_addr: Some("127.0.0.1:0".parse().expect("addr")),
        ..Config::default()
    };
    let running = runtime::start(config, client_as(&user, &[]).await, shutdown.clone()).await.expect("start");
    let addr = running.admin_addr.expect("admin server");

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"), "live even before it can read the API");
    for _ in 0..3 {
        let (status, body) = http_get(addr, "/readyz").await;
        assert_eq!(status, 503, "not ready while CimiProviders cannot be listed: {body}");
        assert_eq!(body.trim(), "waiting for: api/cimiproviders", "/readyz names what it waits for");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Grant the list and readiness follows, without a restart.
    let name = format!("cimi-e2e-readyz-{}", random_suffix());
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let role = ClusterRole {
        metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["cimi.dev".into()]),
            resources: Some(vec!["cimiproviders".into()]),
            verbs: vec!["list".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    roles.create(&PostParams::default(), &role).await.expect("create ClusterRole");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "cimi-operator".into(),
            namespace: Some(ns.name.clone()),
            ..Subject::default()
        }]),
    };
    bindings.create(&PostParams::default(), &binding).await.expect("create ClusterRoleBinding");
    let body = eventually("/readyz to answer 200", T, || async {
        let (status, body) = http_get(addr, "/readyz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body.trim(), "ok");

    // A family is exposed once it has a sample; record one of each through the operator's own
    // handle, as its controllers and CIMI client do, and scrape them over HTTP.
    let recorded = &running.metrics;
    recorded.observe_reconcile("CimiMachine", "ok", Duration::from_millis(20));
    recorded.observe_request("lab", "get", "200", Duration::from_millis(5));
    recorded.observe_job("lab", "start", "SUCCESS", Duration::from_secs(3));
    recorded.resources.get_or_create(&ResourceLabels { kind: "CimiMachine".into(), state: "STARTED".into() }).set(2);
    recorded.watch_decode_errors.get_or_create(&KindLabels { kind: "CimiVolume".into() }).inc();
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for (family, kind) in [
        ("cimi_reconciles", "counter"),
        ("cimi_reconcile_duration_seconds", "histogram"),
        ("cimi_requests", "counter"),
        ("cimi_request_duration_seconds", "histogram"),
        ("cimi_job_duration_seconds", "histogram"),
        ("cimi_resources", "gauge"),
        ("cimi_watch_decode_errors", "counter"),
        ("cimi_leader", "gauge"),
    ] {
        assert!(metrics.contains(&format!("# TYPE {family} {kind}")), "missing family {family} ({kind}):\n{metrics}");
    }
    for sample in [
        "cimi_reconciles_total{kind=\"CimiMachine\",result=\"ok\"} 1",
        "cimi_reconcile_duration_seconds_count{kind=\"CimiMachine\"} 1",
        "cimi_requests_total{provider=\"lab\",operation=\"get\",status=\"200\"} 1",
        "cimi_request_duration_seconds_count{provider=\"lab\",operation=\"get\"} 1",
        "cimi_job_duration_seconds_count{provider=\"lab\",action=\"start\",state=\"SUCCESS\"} 1",
        "cimi_resources{kind=\"CimiMachine\",state=\"STARTED\"} 2",
        "cimi_watch_decode_errors_total{kind=\"CimiVolume\"} 1",
        // Without leader election the single instance leads.
        "cimi_leader 1",
    ] {
        assert!(metrics.contains(sample), "missing {sample}:\n{metrics}");
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task).await.expect("stops").expect("task").expect("ok");
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
    let _ = roles.delete(&name, &DeleteParams::default()).await;
}
