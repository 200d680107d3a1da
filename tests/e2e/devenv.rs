//! The launcher's process hygiene: nothing of a control plane survives its owner, however the owner ends.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use crate::harness::control_plane::{control_plane, random_suffix};

/// Pids of the live (non-zombie) processes in a process group.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
                let f: Vec<&str> =
                    stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
                f.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && f.first() != Some(&"Z")
            })
        })
        .collect()
}

fn command_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

#[tokio::test]
async fn the_shared_control_plane_serves_kubectl() {
    let cp = control_plane();
    let kubectl = cimi_operator::devenv::tools::Tool::Kubectl.locate().expect("kubectl from make tools");
    let out = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .args(["get", "ns", "kube-system", "-o", "name"])
        .output()
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "namespace/kube-system");
    let names: Vec<String> = group_members(cp.process_group()).into_iter().map(command_name).collect();
    for expected in ["etcd", "kube-apiserver", "kube-controller"] {
        assert!(names.iter().any(|n| n.starts_with(expected)), "{expected} runs in the group: {names:?}");
    }
    // The admin identity is allowed everything.
    let client = cp.client().await.expect("client");
    Api::<Namespace>::all(client).get("default").await.expect("read namespace default");
}

/// Starts `cimi-dev serve` (a control plane owner in its own process), waits until it is ready, kills the owner
/// with SIGKILL and checks that every etcd, kube-apiserver and kube-controller-manager of it is gone.
#[test]
fn kill_9_of_the_owner_leaves_no_process_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut owner = Command::new(env!("CARGO_BIN_EXE_cimi-dev"))
        .args(["serve", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cimi-dev serve");
    let ready = dir.path().join("ready");
    let deadline = Instant::now() + Duration::from_secs(180);
    while !ready.exists() {
        assert!(owner.try_wait().expect("wait").is_none(), "cimi-dev serve exited early");
        assert!(Instant::now() < deadline, "cimi-dev serve did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pgid = supervisor_group_of(owner.id(), dir.path()).expect("the owner's supervisor is registered");
    let before: Vec<String> = group_members(pgid).into_iter().map(command_name).collect();
    assert!(before.iter().any(|n| n == "etcd"), "etcd runs before the kill: {before:?}");
    assert!(before.iter().any(|n| n.starts_with("kube-apiserver")), "apiserver runs before the kill: {before:?}");

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap the owner");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes survived the owner's kill -9: {:?}",
            left.into_iter().map(command_name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The process group recorded for `owner` in the launcher's pidfile registry.
fn supervisor_group_of(owner: u32, state_dir: &Path) -> Option<i32> {
    let registry = cimi_operator::devenv::supervisor::registry_dir();
    let label = state_dir.canonicalize().ok()?.display().to_string();
    std::fs::read_dir(registry).ok()?.flatten().find_map(|e| {
        let text = std::fs::read_to_string(e.path()).ok()?;
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix('=').map(str::to_string));
        (field("owner")? == owner.to_string() && field("label")? == label).then(|| field("pgid")?.parse().ok())?
    })
}

/// The audit policy option records requests in the audit log (later tests prove RBAC from it).
#[tokio::test]
async fn audit_log_records_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n").expect("policy");
    let config = cimi_operator::devenv::ControlPlaneConfig {
        audit_policy: Some(policy),
        controller_manager: false,
        crds_dir: None,
        ..Default::default()
    };
    let cp = cimi_operator::devenv::ControlPlane::start(config).await.expect("a second control plane");
    let client = cp.client().await.expect("client");
    let probe = format!("audit-probe-{}", random_suffix());
    let _ = Api::<Namespace>::all(client).get_opt(&probe).await.expect("a GET that is audited");
    let log = cp.audit_log_path().expect("audit log enabled").to_path_buf();
    let text = std::fs::read_to_string(&log).expect("read the audit log");
    let hit = text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|e| {
        e["verb"] == "get"
            && e["objectRef"]["resource"] == "namespaces"
            && e["objectRef"]["name"] == probe.as_str()
            && e["user"]["username"] == "cimi-admin"
    });
    assert!(hit, "the audit log at {} records the GET of namespace {probe}", log.display());
    let pgid = cp.process_group();
    cp.stop();
    assert!(group_members(pgid).is_empty(), "stop() leaves no process behind");
}

/// A component killed and started again in place (what a chaos run does to etcd and the API server) comes back
/// with its data, ports and certificates: the clients made before keep working, and nothing is left behind.
#[tokio::test]
async fn a_component_killed_and_started_again_in_place_keeps_its_data_and_its_clients() {
    let config =
        cimi_operator::devenv::ControlPlaneConfig { controller_manager: false, crds_dir: None, ..Default::default() };
    let mut cp = cimi_operator::devenv::ControlPlane::start(config).await.expect("a second control plane");
    let client = cp.client().await.expect("client");
    let namespaces: Api<Namespace> = Api::all(client);
    let name = format!("kept-{}", random_suffix());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() },
        ..Default::default()
    };
    namespaces.create(&Default::default(), &ns).await.expect("a namespace");
    for component in ["etcd", "kube-apiserver"] {
        cp.restart(component, Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{component} restarts: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match namespaces.get_opt(&name).await {
                Ok(Some(_)) => break,
                Ok(None) => panic!("the namespace is gone after {component} restarted"),
                Err(error) if Instant::now() > deadline => panic!("no answer after {component} restarted: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        assert!(cp.is_running(), "every component runs after {component} restarted");
    }
    assert!(cp.restart("kube-scheduler", Duration::from_secs(1)).await.is_err(), "no such component here");
    let log = std::fs::read_to_string(cp.dir().join("logs/etcd.log")).expect("etcd log");
    assert!(!log.is_empty(), "the log of a restarted component is kept");
    let pgid = cp.process_group();
    cp.stop();
    assert!(group_members(pgid).is_empty(), "stop() leaves no process behind, restarted ones included");
}

/// A registry entry whose owner is dead gets its group killed at the next start; one whose owner lives is left
/// alone, so parallel runs never stop each other's control planes.
#[test]
fn stale_pidfiles_are_reaped_only_when_their_owner_is_dead() {
    use std::os::unix::process::CommandExt as _;
    let spawn_group =
        || Command::new("sleep").arg("300").process_group(0).stdin(Stdio::null()).spawn().expect("spawn sleep");
    let (mut orphaned, mut owned) = (spawn_group(), spawn_group());
    // An owner that has exited: a short-lived process, reaped.
    let mut dead = Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("reap");
    let registry = cimi_operator::devenv::supervisor::registry_dir();
    std::fs::create_dir_all(&registry).expect("registry");
    let stale = registry.join(format!("{dead_pid}-{}.pid", orphaned.id()));
    let live = registry.join(format!("{}-{}.pid", std::process::id(), owned.id()));
    std::fs::write(&stale, format!("owner={dead_pid}\npgid={}\nlabel=test\n", orphaned.id())).expect("write");
    std::fs::write(&live, format!("owner={}\npgid={}\nlabel=test\n", std::process::id(), owned.id())).expect("write");

    cimi_operator::devenv::supervisor::reap_stale();

    let deadline = Instant::now() + Duration::from_secs(10);
    while orphaned.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the group of a dead owner was not reaped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!stale.exists(), "the stale entry is removed");
    assert!(owned.try_wait().expect("wait").is_none(), "the group of a live owner is left alone");
    assert!(live.exists(), "the live entry is kept");
    let _ = std::fs::remove_file(&live);
    let _ = owned.kill();
    let _ = owned.wait();
}
