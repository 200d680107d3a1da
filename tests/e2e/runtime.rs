//! The operator runtime on a real API server: leader election between two instances (graceful stop,
//! SIGTERM and SIGKILL of the `cimi-operator` binary), `/healthz`, `/readyz` and `/metrics` as a user
//! scrapes them. Each test has its own namespace, Lease and label selector.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use cimi_operator::api::{CimiProvider, CimiVolume};
use cimi_operator::operator::{self as runtime, Running};
use cimi_operator::runtime::{Config, LeaderElectionConfig};
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

use crate::harness::control_plane::{TestNamespace, client, client_as, control_plane, random_suffix};
use crate::harness::objects::machine;
use crate::harness::operator::{OperatorProcess, TestOperator, http_get};
use crate::harness::sim::ready_provider;
use crate::harness::wait::{condition, eventually, wait_machine};

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
    // Both are ready: the leader once its watches synced, the standby once the API answers.
    for (who, instance) in [("leader", leader), ("standby", standby)] {
        eventually(&format!("the {who}'s /readyz to answer 200"), T, || async {
            (http_get(instance.admin(), "/readyz").await.0 == 200).then_some(())
        })
        .await;
    }
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
    // The new leader started its controllers: ready again once their watches synced.
    eventually("the new leader's /readyz to answer 200", T, || async {
        (http_get(standby.admin(), "/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert!(
        http_get(standby.admin(), "/metrics").await.1.contains("cimi_leader 1"),
        "the new leader reports cimi_leader 1"
    );
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

/// The `cimi-operator run` binary as a leader-election candidate of the namespace `ns`, under `identity`; returns
/// the process and the address of its admin server.
fn start_binary(ns: &str, identity: &str) -> (OperatorProcess, SocketAddr) {
    let admin = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr")
    };
    let selector = format!("cimi.dev/e2e={ns}");
    let admin_arg = admin.to_string();
    let args = [
        ["--operator-namespace", ns, "--namespace", ns, "--selector", &selector].as_slice(),
        &["--admin-addr", &admin_arg, "--leader-elect", "--lease-name", LEASE_NAME],
        &["--lease-duration", "4s", "--lease-retry-period", "1s", "--lease-identity", identity],
    ]
    .concat();
    (OperatorProcess::start(&format!("operator-{identity}"), &args), admin)
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
    let (mut process, admin_addr) = start_binary(&ns.name, &identity);
    wait_for_holder(&mut process, &ns.name, &identity).await;
    let (status, body) = http_get(admin_addr, "/healthz").await;
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
    let (mut process, _) = start_binary(&ns.name, &identity);
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

/// A ClusterRole named `name` with `rules`.
fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta { name: Some(name.to_string()), ..ObjectMeta::default() },
        rules: Some(rules),
        ..ClusterRole::default()
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

fn role_ref(name: &str) -> RoleRef {
    RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "ClusterRole".into(), name: name.to_string() }
}

fn service_account(ns: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: "cimi-operator".into(),
        namespace: Some(ns.to_string()),
        ..Subject::default()
    }]
}

/// Grants the operator's namespaced rights in `ns` (a RoleBinding to the ClusterRole `role`).
async fn grant_namespace(admin: &kube::Client, ns: &str, role: &str, sa_ns: &str) {
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), ns);
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some("cimi-operator".into()), ..ObjectMeta::default() },
        role_ref: role_ref(role),
        subjects: Some(service_account(sa_ns)),
    };
    bindings.create(&PostParams::default(), &binding).await.expect("create RoleBinding");
}

fn volume(name: &str, provider: &str, labels: Option<BTreeMap<String, String>>) -> CimiVolume {
    let mut v: CimiVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "cimi.dev/v1alpha1",
        "kind": "CimiVolume",
        "metadata": {"name": name},
        "spec": {"providerRef": {"name": provider}, "capacity": "1Gi", "format": "ext4"}
    }))
    .expect("a CimiVolume");
    v.metadata.labels = labels;
    v
}

async fn wait_volume_ready(volumes: &Api<CimiVolume>, name: &str) {
    eventually(&format!("CimiVolume {name} to be Ready"), Duration::from_secs(60), || async {
        let v = volumes.get(name).await.ok()?;
        let ready = condition(&v.status?.common.conditions, "Ready")?;
        (ready.0 == "True").then_some(())
    })
    .await;
}

/// Writes `object` as the stored value of `key` in the control plane's etcd (its JSON gateway),
/// bypassing admission.
async fn plant_in_etcd(key: &str, object: &serde_json::Value) {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let body = serde_json::json!({
        "key": b64(key.as_bytes()),
        "value": b64(&serde_json::to_vec(object).expect("json")),
    });
    let response = reqwest::Client::new()
        .post(format!("{}/v3/kv/put", control_plane().etcd_url()))
        .json(&body)
        .send()
        .await
        .expect("etcd answers");
    assert!(response.status().is_success(), "etcd put: {}", response.status());
}

/// The value of the sample `line_start` (the metric name and its labels, as exposed).
fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test]
async fn readyz_waits_for_every_watch_of_every_namespace_and_metrics_count_real_work() {
    let admin = client().await;
    let ns_a = TestNamespace::new(&admin, "rt-ready-a").await;
    let ns_b = TestNamespace::new(&admin, "rt-ready-b").await;
    // The operator's own identity, with namespaced rights only: in namespace a now, in b later.
    let user = format!("system:serviceaccount:{}:cimi-operator", ns_a.name);
    let suffix = random_suffix();
    let (cluster_name, namespaced_name) = (format!("cimi-e2e-cluster-{suffix}"), format!("cimi-e2e-ns-{suffix}"));
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let rw = ["get", "list", "watch", "patch", "update"];
    roles
        .create(
            &PostParams::default(),
            &cluster_role(&cluster_name, vec![rule("cimi.dev", &["cimiproviders", "cimiproviders/status"], &rw)]),
        )
        .await
        .expect("create ClusterRole");
    let kinds = [
        "cimimachines",
        "cimimachines/status",
        "cimivolumes",
        "cimivolumes/status",
        "ciminetworks",
        "ciminetworks/status",
        "cimisystems",
        "cimisystems/status",
        "ciminamespacedproviders",
        "ciminamespacedproviders/status",
        "cimimachineimages",
        "cimimachineimages/status",
        "cimivolumeimages",
        "cimivolumeimages/status",
    ];
    roles
        .create(
            &PostParams::default(),
            &cluster_role(
                &namespaced_name,
                vec![
                    rule("cimi.dev", &kinds, &rw),
                    rule("", &["secrets"], &["get", "list", "watch"]),
                    rule("", &["namespaces"], &["get"]),
                    rule("", &["events"], &["create", "patch"]),
                    rule("events.k8s.io", &["events"], &["create", "patch"]),
                ],
            ),
        )
        .await
        .expect("create ClusterRole");
    let cluster_binding = ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(cluster_name.clone()), ..ObjectMeta::default() },
        role_ref: role_ref(&cluster_name),
        subjects: Some(service_account(&ns_a.name)),
    };
    cluster_bindings.create(&PostParams::default(), &cluster_binding).await.expect("create ClusterRoleBinding");
    grant_namespace(&admin, &ns_a.name, &namespaced_name, &ns_a.name).await;

    let label = ("cimi.dev/e2e".to_string(), ns_a.name.clone());
    let labels = Some(BTreeMap::from([label.clone()]));
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let config = Config {
        namespaces: vec![ns_a.name.clone(), ns_b.name.clone()],
        label_selector: Some(format!("{}={}", label.0, label.1)),
        operator_namespace: ns_a.name.clone(),
        admin_addr: Some("127.0.0.1:0".parse().expect("addr")),
        ..Config::default()
    };
    let running = runtime::start(config, client_as(&user, &[]).await, shutdown.clone()).await.expect("start");
    let addr = running.admin_addr.expect("admin server");

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"), "live even before its watches sync");
    // Namespace a's watches sync; namespace b's cannot list yet, and /readyz names each of them.
    let waiting = eventually("/readyz to wait only for namespace b", T, || async {
        let (status, body) = http_get(addr, "/readyz").await;
        (status == 503 && !body.contains(&format!("/{}", ns_a.name)) && !body.contains("api/")).then_some(body)
    })
    .await;
    for watch in [
        format!("watch/cimimachines/{}", ns_b.name),
        format!("watch/cimivolumes/{}", ns_b.name),
        format!("watch/ciminetworks/{}", ns_b.name),
        format!("watch/cimimachines/secrets/{}", ns_b.name),
        format!("watch/cimiproviders/cimivolumes/{}", ns_b.name),
    ] {
        assert!(waiting.contains(&watch), "/readyz names {watch}: {waiting}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(http_get(addr, "/readyz").await.0, 503, "not ready while a namespace's watches have not synced");

    // Grant namespace b: its watches sync and the operator turns ready, without a restart.
    grant_namespace(&admin, &ns_b.name, &namespaced_name, &ns_a.name).await;
    let body = eventually("/readyz to answer 200", T, || async {
        let (status, body) = http_get(addr, "/readyz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(body.trim(), "ok");

    // Real work in both namespaces: a provider and a volume in each.
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns_a.name);
    let mut secret = Secret {
        metadata: ObjectMeta { name: Some("creds".into()), labels: labels.clone(), ..ObjectMeta::default() },
        ..Secret::default()
    };
    secret.string_data = Some(BTreeMap::from([("username".into(), "demo".into()), ("password".into(), "demo".into())]));
    secrets.create(&PostParams::default(), &secret).await.expect("secret");
    let provider_name = format!("rt-{suffix}");
    let providers: Api<CimiProvider> = Api::all(admin.clone());
    let mut provider: CimiProvider = serde_json::from_value(serde_json::json!({
        "apiVersion": "cimi.dev/v1alpha1",
        "kind": "CimiProvider",
        "metadata": {"name": provider_name},
        "spec": {
            "endpoint": sim.url(),
            "credentialSecretRef": {"name": "creds"},
            "pollInterval": "2s",
            "allowPlainHTTP": true
        }
    }))
    .expect("a CimiProvider");
    provider.metadata.labels = labels.clone();
    providers.create(&PostParams::default(), &provider).await.expect("provider");
    let volumes_a: Api<CimiVolume> = Api::namespaced(admin.clone(), &ns_a.name);
    let volumes_b: Api<CimiVolume> = Api::namespaced(admin.clone(), &ns_b.name);
    volumes_a.create(&PostParams::default(), &volume("data-a", &provider_name, labels.clone())).await.expect("volume");
    volumes_b.create(&PostParams::default(), &volume("data-b", &provider_name, labels.clone())).await.expect("volume");
    wait_volume_ready(&volumes_a, "data-a").await;
    wait_volume_ready(&volumes_b, "data-b").await;

    // A bad object: stored data the API server would no longer admit (as an older schema or a restored
    // backup leaves behind), planted in etcd: a Job progress beyond 32 bits. The operator sees it
    // first in that state (it carries the label only there), so it never rewrote it.
    volumes_b.create(&PostParams::default(), &volume("broken", &provider_name, None)).await.expect("volume");
    let raw: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), &ns_b.name, &ApiResource::erase::<CimiVolume>(&()));
    let mut stored = serde_json::to_value(raw.get("broken").await.expect("read it")).expect("json");
    stored["metadata"]["labels"] = serde_json::json!({label.0.clone(): label.1.clone()});
    stored["metadata"].as_object_mut().expect("metadata").remove("resourceVersion");
    stored["status"] =
        serde_json::json!({"job": {"href": "http://example.invalid/jobs/1", "progress": 4_294_967_296_i64}});
    plant_in_etcd(&format!("/registry/cimi.dev/cimivolumes/{}/broken", ns_b.name), &stored).await;
    let decode_errors = "cimi_watch_errors_total{kind=\"CimiVolume\",reason=\"decode\"}";
    eventually("the decode failure to be counted", T, || async {
        let (_, metrics) = http_get(addr, "/metrics").await;
        (sample(&metrics, decode_errors)? >= 1.0).then_some(())
    })
    .await;
    // `kubectl describe` shows why the operator ignores it.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns_b.name);
    let note = eventually("a DecodeFailed Event on the bad object", T, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            let on_it = e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken");
            (on_it && e.reason.as_deref() == Some("DecodeFailed") && e.type_.as_deref() == Some("Warning"))
                .then(|| e.note.unwrap_or_default())
        })
    })
    .await;
    assert!(note.contains("cannot read this object"), "{note}");
    // The watch goes on: a volume created after the bad one is reconciled, and so are changes.
    volumes_b.create(&PostParams::default(), &volume("data-c", &provider_name, labels.clone())).await.expect("volume");
    wait_volume_ready(&volumes_b, "data-c").await;
    let broken = volumes_b.get_opt("broken").await;
    assert!(broken.is_err(), "the test's own typed client cannot read it either: {broken:?}");

    // Every family, fed by what the operator did.
    let provider_label = format!("provider=\"{provider_name}\"");
    let available = format!("cimi_resources{{kind=\"CimiVolume\",{provider_label},state=\"AVAILABLE\"}}");
    let metrics = eventually("three AVAILABLE volumes in cimi_resources", T, || async {
        let (_, metrics) = http_get(addr, "/metrics").await;
        (sample(&metrics, &available)? == 3.0).then_some(metrics)
    })
    .await;
    for (line, at_least) in [
        ("cimi_reconciles_total{kind=\"CimiVolume\",result=\"ok\"}", 3.0),
        ("cimi_reconciles_total{kind=\"CimiProvider\",result=\"ok\"}", 1.0),
        ("cimi_reconcile_duration_seconds_count{kind=\"CimiVolume\"}", 3.0),
        ("cimi_leader", 1.0),
    ] {
        let value = sample(&metrics, line).unwrap_or_else(|| panic!("missing {line}:\n{metrics}"));
        assert!(value >= at_least, "{line} is {value}, expected at least {at_least}");
    }
    let counted = |prefix: &str, extra: &str| {
        metrics.lines().any(|l| l.starts_with(prefix) && l.contains(&provider_label) && l.contains(extra))
    };
    assert!(counted("cimi_requests_total{", "status=\"200\""), "CIMI reads counted by provider:\n{metrics}");
    assert!(counted("cimi_requests_total{", "status=\"20"), "CIMI writes counted by provider:\n{metrics}");
    assert!(counted("cimi_request_duration_seconds_count{", ""), "CIMI latency by provider:\n{metrics}");
    assert!(
        counted("cimi_job_duration_seconds_count{", "action=\"add\",state=\"SUCCESS\""),
        "the create Jobs' durations:\n{metrics}"
    );

    // Clean up while the operator runs: the volumes go from the provider, then the provider.
    for (api, name) in [(&volumes_a, "data-a"), (&volumes_b, "data-b"), (&volumes_b, "data-c"), (&volumes_b, "broken")]
    {
        api.delete(name, &DeleteParams::default()).await.expect("delete volume");
    }
    for (api, name) in [(&volumes_a, "data-a"), (&volumes_b, "data-b"), (&volumes_b, "data-c")] {
        eventually(&format!("volume {name} to be gone"), T, || async {
            matches!(api.get_opt(name).await, Ok(None)).then_some(())
        })
        .await;
    }
    providers.delete(&provider_name, &DeleteParams::default()).await.expect("delete provider");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running.task).await.expect("stops").expect("task").expect("ok");
    sim.stop().await;
    let _ = cluster_bindings.delete(&cluster_name, &DeleteParams::default()).await;
    let _ = roles.delete(&cluster_name, &DeleteParams::default()).await;
    let _ = roles.delete(&namespaced_name, &DeleteParams::default()).await;
}

#[tokio::test]
async fn a_change_of_a_secret_a_machine_references_reconciles_that_machine_again() {
    use cimi_operator::api::CimiMachine;
    use cimi_operator::api::common::SecretRef;

    let admin = client().await;
    let ns = TestNamespace::new(&admin, "rt-secret").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let provider = ready_provider(&admin, &op, &ns.name, &sim).await;
    let mut machine = machine(&op, "web", &provider);
    machine.spec.template.as_mut().expect("template").credential_secret_ref = Some(SecretRef::new("login"));
    let machines: Api<CimiMachine> = Api::namespaced(admin.clone(), &ns.name);
    machines.create(&PostParams::default(), &machine).await.expect("machine");
    let reason = |m: &CimiMachine| m.status.as_ref().and_then(|s| condition(&s.common.conditions, "Ready"));
    wait_machine(&machines, "web", "Ready=False, SecretNotFound", |m| {
        reason(m) == Some(("False".into(), "SecretNotFound".into()))
    })
    .await;

    // A missing Secret needs a human, so the machine is not retried for minutes; creating the Secret
    // (with the operator's label: Secrets are watched by label) reconciles it at once.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns.name);
    let mut login = Secret {
        metadata: ObjectMeta { name: Some("login".into()), labels: Some(op.labels()), ..ObjectMeta::default() },
        ..Secret::default()
    };
    login.string_data = Some(BTreeMap::from([("userID".into(), "admin".into()), ("password".into(), "pw".into())]));
    secrets.create(&PostParams::default(), &login).await.expect("login secret");
    let m = wait_machine(&machines, "web", "the machine to move past SecretNotFound", |m| {
        reason(m).is_some_and(|(_, r)| r != "SecretNotFound")
    })
    .await;
    assert!(
        m.status.as_ref().and_then(|s| s.common.id.as_ref()).is_some() || reason(&m).is_some_and(|(s, _)| s == "True"),
        "the machine is being created once its Secret exists: {:?}",
        m.status
    );

    machines.delete("web", &DeleteParams::default()).await.expect("delete");
    eventually("the machine to be gone", T, || async {
        matches!(machines.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
    sim.stop().await;
}

/// The operator's Event recorder on the API server: a repeat continues its Event as a series, an Event with a
/// new note is one of its own (its note kept), and an Event deleted under it is created again.
#[tokio::test]
async fn the_event_recorder_continues_repeats_as_a_series_keeps_every_note_and_publishes_a_keyed_event_once() {
    use cimi_operator::runtime::events::{Event, EventRecorder};
    use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
    use k8s_openapi::api::events::v1::Event as KubeEvent;
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "events").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    let object = ConfigMap {
        metadata: ObjectMeta { name: Some("subject".into()), ..ObjectMeta::default() },
        ..ConfigMap::default()
    };
    let object = configmaps.create(&PostParams::default(), &object).await.expect("configmap");
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: object.metadata.name.clone(),
        namespace: object.metadata.namespace.clone(),
        uid: object.metadata.uid.clone(),
        ..ObjectReference::default()
    };
    let recorder = EventRecorder::new(admin.clone(), "cimi-operator", "e2e");
    let event =
        |note: &str| Event { warning: false, reason: "DeleteStep".into(), action: "Delete".into(), note: note.into() };
    for note in ["detaching", "detaching", "detaching", "deleting"] {
        recorder.publish(&event(note), &regarding).await.expect("publish");
    }
    let events: Api<KubeEvent> = Api::namespaced(admin.clone(), &ns.name);
    let listed = |list: Vec<KubeEvent>| {
        let mut seen: Vec<(String, i32, String)> = list
            .into_iter()
            .map(|e| {
                let count = e.series.as_ref().map_or(1, |s| s.count);
                (e.note.unwrap_or_default(), count, e.reporting_instance.unwrap_or_default())
            })
            .collect();
        seen.sort();
        seen
    };
    let seen = listed(events.list(&Default::default()).await.expect("list").items);
    assert_eq!(
        seen,
        vec![("deleting".to_string(), 1, "e2e".to_string()), ("detaching".to_string(), 3, "e2e".to_string())],
        "one Event per note, the repeats counted in its series"
    );
    assert_eq!(recorder.remembered(), 2);

    // The series' Event deleted (the API server's TTL does the same): the next repeat starts a new one.
    events.delete_collection(&Default::default(), &Default::default()).await.expect("delete events");
    recorder.publish(&event("detaching"), &regarding).await.expect("publish after the Event is gone");
    let seen = listed(events.list(&Default::default()).await.expect("list").items);
    assert_eq!(seen, vec![("detaching".to_string(), 1, "e2e".to_string())]);
    // A unique Event is never continued, and published once per key: a second publish with the same key (this
    // recorder's, or a new one's after a restart) is refused by the API server; another key is another Event.
    let once = |recorder: &EventRecorder, key: &'static str| {
        let (recorder, regarding) = (recorder.clone(), regarding.clone());
        async move { recorder.publish_once(&event("provider event"), &regarding, key).await.expect("publish once") }
    };
    assert!(once(&recorder, "p/events/7").await, "the first publish creates the Event");
    assert!(!once(&recorder, "p/events/7").await, "the same key again creates nothing");
    let restarted = EventRecorder::new(admin.clone(), "cimi-operator", "e2e-2");
    assert!(!once(&restarted, "p/events/7").await, "nor does a new recorder");
    assert!(once(&restarted, "p/events/8").await, "another key is another Event");
    let seen = listed(events.list(&Default::default()).await.expect("list").items);
    assert_eq!(
        seen.iter().filter(|(note, count, _)| note == "provider event" && *count == 1).count(),
        2,
        "one Event per key, never a series: {seen:?}"
    );

    // Published in the background: the publisher does not wait for the API server, and past the bound on those
    // in flight it waits for a slot: every one lands, none is dropped.
    events.delete_collection(&Default::default(), &Default::default()).await.expect("delete events");
    let many = cimi_operator::runtime::events::MAX_IN_FLIGHT * 3;
    for i in 0..many {
        recorder.publish_detached(event(&format!("background {i}")), regarding.clone()).await;
    }
    eventually("every Event published in the background", T, || async {
        let seen = listed(events.list(&Default::default()).await.ok()?.items);
        let background = seen.iter().filter(|(note, count, _)| note.starts_with("background ") && *count == 1).count();
        (background == many).then_some(())
    })
    .await;
}
