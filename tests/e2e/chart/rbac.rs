//! The chart's RBAC proved from the API server's audit log: in each RBAC mode, the operator runs as the chart's
//! service account through everything a user does, and what it requested equals what the chart grants: nothing
//! denied, nothing granted that it never uses.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use cimi_operator::devenv::tools::Tool;
use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use serde_json::Value;

use crate::harness::chart::{chart_arg, grants};
use crate::harness::control_plane::client_of_as;
use crate::harness::tools::{kubectl_apply, run_tool_with};
use crate::harness::wait::eventually;

/// An audit policy that logs every request's metadata.
const AUDIT_POLICY: &str =
    "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n";

/// (verb, group, resource/subresource) of every request the impersonated `user` made, with the HTTP codes.
fn audited(log: &Path, user: &str) -> Vec<(String, String, String, i64)> {
    let text = std::fs::read_to_string(log).expect("audit log");
    let mut out: Vec<(String, String, String, i64)> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["impersonatedUser"]["username"] == user)
        .filter_map(|event| {
            let object = &event["objectRef"];
            let resource = object["resource"].as_str()?;
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.to_string(),
            };
            Some((
                event["verb"].as_str()?.to_string(),
                object["apiGroup"].as_str().unwrap_or_default().to_string(),
                resource,
                event["responseStatus"]["code"].as_i64().unwrap_or(0),
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The status of `kind/name` (in `namespace`, or cluster-scoped) as JSON; `None` once it is gone.
fn object_json(kubeconfig: &Path, kind: &str, name: &str, namespace: Option<&str>) -> Option<Value> {
    let mut args = vec!["get", kind, name, "-o", "json", "--ignore-not-found"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &args, None);
    assert!(ok, "kubectl get {kind}/{name}: {out}{err}");
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).expect("json"))
}

fn is_ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Waits until `check` holds for `kind/name`; on timeout, fails showing the object as it was last seen.
async fn wait_for(kubeconfig: &Path, kind: &str, name: &str, ns: Option<&str>, what: &str, check: fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let seen = object_json(kubeconfig, kind, name, ns);
        if seen.as_ref().is_some_and(check) {
            return;
        }
        if std::time::Instant::now() > deadline {
            let status = seen.map(|o| o["status"].to_string()).unwrap_or_else(|| "absent".into());
            panic!("timed out after 90s waiting for {kind}/{name} {what}; status: {status}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_gone(kubeconfig: &Path, kind: &str, name: &str, ns: Option<&str>) {
    let label = format!("{kind}/{name} gone");
    eventually(&label, Duration::from_secs(90), || async {
        object_json(kubeconfig, kind, name, ns).is_none().then_some(())
    })
    .await;
}

/// Everything a user does with the operator, on every kind it manages: a provider with credentials from a
/// Secret, admitting only labelled namespaces; then per namespace a network, a volume and a machine attached to
/// both with credentials from a Secret, a one-shot restart, a stop, a system whose members are exposed as objects
/// of their own, a volume on the team's own provider (named before that provider exists), and deletion of
/// everything (the providers last).
async fn full_lifecycle(kubeconfig: &Path, release: &str, operator_ns: &str, namespaces: &[&str], endpoint: &str) {
    let provider = format!("{release}-sim");
    kubectl_apply(
        kubeconfig,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {provider}-creds, namespace: {operator_ns}}}\n\
             stringData: {{username: demo, password: demo}}\n---\n\
             apiVersion: cimi.dev/v1alpha1\nkind: CimiProvider\nmetadata: {{name: {provider}}}\n\
             spec:\n  endpoint: {endpoint}\n  pollInterval: 1s\n  allowPlainHTTP: true\n\
             \x20 credentialSecretRef: {{name: {provider}-creds}}\n\
             \x20 allowedNamespaces: {{matchLabels: {{e2e.cimi.dev/tenant: \"yes\"}}}}\n"
        ),
    );
    wait_for(kubeconfig, "cimiprovider", &provider, None, "Ready", is_ready).await;
    for ns in namespaces {
        kubectl_apply(
            kubeconfig,
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: login, namespace: {ns}}}\n\
                 stringData: {{userID: admin, password: s3cret}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiNetwork\nmetadata: {{name: net, namespace: {ns}}}\n\
                 spec: {{providerRef: {{name: {provider}}}, networkConfig: {{name: private}}}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiVolume\nmetadata: {{name: data, namespace: {ns}}}\n\
                 spec: {{providerRef: {{name: {provider}}}, capacity: 1Gi}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiVolume\nmetadata: {{name: team-data, namespace: {ns}}}\n\
                 spec: {{providerRef: {{kind: CimiNamespacedProvider, name: team}}, capacity: 1Gi}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiMachine\nmetadata: {{name: web, namespace: {ns}}}\n\
                 spec:\n  providerRef: {{name: {provider}}}\n\
                 \x20 template:\n    machineConfig: {{name: tiny}}\n    machineImage: {{name: Linux SUSE}}\n\
                 \x20   credentialSecretRef: {{name: login}}\n\
                 \x20 networkInterfaces: [{{networkRef: {{name: net}}}}]\n\
                 \x20 volumes: [{{volumeRef: {{name: data}}, initialLocation: /dev/vdb}}]\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiSystem\nmetadata: {{name: shop, namespace: {ns}}}\n\
                 spec:\n  providerRef: {{name: {provider}}}\n  exposeMembers: true\n\
                 \x20 template:\n    componentDescriptors:\n\
                 \x20   - {{name: net, networkTemplate: {{name: private}}}}\n\
                 \x20   - {{name: disk, volumeTemplate: {{name: data-10g}}}}\n\
                 \x20   - {{name: web, quantity: 2, machineTemplate: \
                 {{machineConfig: {{name: tiny}}, machineImage: {{name: Linux SUSE}}}}}}\n"
            ),
        );
    }
    for ns in namespaces {
        wait_for(kubeconfig, "cimimachine", "web", Some(ns), "Ready and STARTED", |o| {
            is_ready(o) && o["status"]["state"] == "STARTED"
        })
        .await;
        let annotate = ["annotate", "cimimachine", "web", "-n", ns, "cimi.dev/action=restart@rbac"];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &annotate, None);
        assert!(ok, "{out}{err}");
        wait_for(kubeconfig, "cimimachine", "web", Some(ns), "restarted", |o| {
            o["status"]["lastAction"]["nonce"] == "rbac" && o["status"]["lastAction"]["completedAt"].is_string()
        })
        .await;
        let stop =
            ["patch", "cimimachine", "web", "-n", ns, "--type=merge", "-p", r#"{"spec":{"powerState":"Stopped"}}"#];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &stop, None);
        assert!(ok, "{out}{err}");
        wait_for(kubeconfig, "cimimachine", "web", Some(ns), "STOPPED", |o| {
            is_ready(o) && o["status"]["state"] == "STOPPED"
        })
        .await;
        // Images: a capture of the machine and a snapshot of its volume.
        kubectl_apply(
            kubeconfig,
            &format!(
                "apiVersion: cimi.dev/v1alpha1\nkind: CimiMachineImage\nmetadata: {{name: gold, namespace: {ns}}}\n\
                 spec: {{providerRef: {{name: {provider}}}, source: {{machineRef: {{name: web}}}}}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiVolumeImage\nmetadata: {{name: snap, namespace: {ns}}}\n\
                 spec: {{providerRef: {{name: {provider}}}, source: {{volumeRef: {{name: data}}}}}}\n"
            ),
        );
        wait_for(kubeconfig, "cimimachineimage", "gold", Some(ns), "Ready", is_ready).await;
        wait_for(kubeconfig, "cimivolumeimage", "snap", Some(ns), "Ready", is_ready).await;
        wait_for(kubeconfig, "cimisystem", "shop", Some(ns), "Ready with its members exposed", |o| {
            is_ready(o) && o["status"]["members"]["summary"] == "4/4"
        })
        .await;
        // Turning exposeMembers off deletes the member objects (and nothing on the provider).
        let hide =
            ["patch", "cimisystem", "shop", "-n", ns, "--type=merge", "-p", r#"{"spec":{"exposeMembers":false}}"#];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &hide, None);
        assert!(ok, "{out}{err}");
        let exposed = ["get", "cimimachines,cimivolumes,ciminetworks", "-n", ns, "-l", "cimi.dev/system", "-o", "name"];
        eventually("exposed members removed", Duration::from_secs(90), || async {
            let (ok, out, _) = run_tool_with(kubeconfig, Tool::Kubectl, &exposed, None);
            (ok && out.trim().is_empty()).then_some(())
        })
        .await;
        let show =
            ["patch", "cimisystem", "shop", "-n", ns, "--type=merge", "-p", r#"{"spec":{"exposeMembers":true}}"#];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &show, None);
        assert!(ok, "{out}{err}");
        eventually("exposed members back", Duration::from_secs(90), || async {
            let (ok, out, _) = run_tool_with(kubeconfig, Tool::Kubectl, &exposed, None);
            (ok && out.lines().count() == 4).then_some(())
        })
        .await;
    }
    // The team's own provider, which team-data has been waiting for.
    for ns in namespaces {
        kubectl_apply(
            kubeconfig,
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: team-creds, namespace: {ns}}}\n\
                 stringData: {{username: demo, password: demo}}\n---\n\
                 apiVersion: cimi.dev/v1alpha1\nkind: CimiNamespacedProvider\nmetadata: {{name: team, namespace: {ns}}}\n\
                 spec: {{endpoint: {endpoint}, pollInterval: 1s, allowPlainHTTP: true, \
                 credentialSecretRef: {{name: team-creds}}}}\n"
            ),
        );
        wait_for(kubeconfig, "ciminamespacedprovider", "team", Some(ns), "Ready", is_ready).await;
        wait_for(kubeconfig, "cimivolume", "team-data", Some(ns), "Ready on the team's provider", is_ready).await;
        let (ok, out, err) =
            run_tool_with(kubeconfig, Tool::Kubectl, &["delete", "cimivolume/team-data", "-n", ns], None);
        assert!(ok, "{out}{err}");
        wait_gone(kubeconfig, "cimivolume", "team-data", Some(ns)).await;
        let (ok, out, err) =
            run_tool_with(kubeconfig, Tool::Kubectl, &["delete", "ciminamespacedprovider/team", "-n", ns], None);
        assert!(ok, "{out}{err}");
        wait_gone(kubeconfig, "ciminamespacedprovider", "team", Some(ns)).await;
    }
    for ns in namespaces {
        let delete = [
            "delete",
            "cimimachine/web",
            "cimivolume/data",
            "ciminetwork/net",
            "cimisystem/shop",
            "cimimachineimage/gold",
            "cimivolumeimage/snap",
            "-n",
            ns,
            "--wait=false",
        ];
        let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &delete, None);
        assert!(ok, "{out}{err}");
    }
    for ns in namespaces {
        for (kind, name) in [
            ("cimimachine", "web"),
            ("cimivolume", "data"),
            ("ciminetwork", "net"),
            ("cimisystem", "shop"),
            ("cimimachineimage", "gold"),
            ("cimivolumeimage", "snap"),
        ] {
            wait_gone(kubeconfig, kind, name, Some(ns)).await;
        }
    }
    let (ok, out, err) =
        run_tool_with(kubeconfig, Tool::Kubectl, &["delete", "cimiprovider", &provider, "--wait=false"], None);
    assert!(ok, "{out}{err}");
    wait_gone(kubeconfig, "cimiprovider", &provider, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_of_both_modes_equals_what_the_operator_uses_over_the_full_lifecycle() {
    use cimi_operator::operator as runtime;
    use cimi_operator::runtime::{Config, LeaderElectionConfig};
    let policy_dir = tempfile::tempdir().expect("tempdir");
    let policy = policy_dir.path().join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY).expect("policy");
    let cp = ControlPlane::start(ControlPlaneConfig {
        audit_policy: Some(policy),
        // The garbage collector removes the members a CimiSystem exposed.
        controller_manager: true,
        ..ControlPlaneConfig::default()
    })
    .await
    .expect("a control plane with an audit log");
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    for ns in ["ops", "team-a", "team-b"] {
        let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Kubectl, &["create", "namespace", ns], None);
        assert!(ok, "{out}{err}");
        let label = ["label", "namespace", ns, "e2e.cimi.dev/tenant=yes"];
        let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Kubectl, &label, None);
        assert!(ok, "{out}{err}");
    }
    let sim = cimi_operator::sim::Sim::start(cimi_operator::sim::SimConfig::default()).await.expect("sim");

    for (release, sets, namespaces) in [
        ("wide", vec![], vec![]),
        // Two watched namespaces: one watch per namespace, each within the Role the chart grants there.
        ("narrow", vec!["--set", "rbac.mode=namespaced,watch.namespaces={team-a,team-b}"], vec!["team-a", "team-b"]),
    ] {
        let chart = chart_arg();
        let mut args = vec!["install", release, chart.as_str(), "--namespace", "ops"];
        args.extend(sets.iter().copied());
        let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Helm, &args, None);
        assert!(ok, "helm install {release}: {out}{err}");
        let fullname = format!("{release}-cimi-operator");
        let user = format!("system:serviceaccount:ops:{fullname}");

        // What the chart grants this service account, from the objects helm installed.
        let mut granted = BTreeSet::new();
        for kind in ["clusterrole", "role"] {
            let mut get = vec!["get", kind, "-A", "-o", "json", "-l"];
            let selector = format!("app.kubernetes.io/instance={release}");
            get.push(&selector);
            if kind == "clusterrole" {
                get.retain(|a| *a != "-A");
            }
            let (ok, out, err) = run_tool_with(&kubeconfig, Tool::Kubectl, &get, None);
            assert!(ok, "{out}{err}");
            let list: Value = serde_json::from_str(&out).expect("json");
            for role in list["items"].as_array().expect("items") {
                for (group, resource, verb) in grants(&role["rules"]) {
                    granted.insert((verb, group, resource));
                }
            }
        }

        // The operator, as that service account, through everything a user does.
        let groups = ["system:serviceaccounts", "system:serviceaccounts:ops", "system:authenticated"];
        let client = client_of_as(&cp, &user, &groups).await;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let config = Config {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            operator_namespace: "ops".into(),
            leader_election: Some(LeaderElectionConfig {
                retry_period: Duration::from_millis(500),
                ..LeaderElectionConfig::new(fullname.clone(), "ops", format!("{release}-0"))
            }),
            ..Config::default()
        };
        let running = runtime::start(config, client.clone(), shutdown.clone()).await.expect("start");
        eventually("the operator to lead and be ready", Duration::from_secs(30), || {
            let ready = *running.leading.borrow() && running.readiness.is_ready();
            async move { ready.then_some(()) }
        })
        .await;
        let lifecycle_namespaces: Vec<&str> = if namespaces.is_empty() { vec!["team-a", "team-b"] } else { namespaces };
        full_lifecycle(&kubeconfig, release, "ops", &lifecycle_namespaces, &sim.url()).await;
        shutdown.cancel();
        running.task.await.expect("task").expect("clean stop");

        // The audit log shows a denied request when there is one: a delete the chart does not grant.
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(client, "ops");
        let denied = leases.delete(&fullname, &Default::default()).await;
        assert!(matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403), "{denied:?}");

        let requests = audited(cp.audit_log_path().expect("audit log"), &user);
        let forbidden: Vec<_> = requests.iter().filter(|r| r.3 == 403).collect();
        assert_eq!(
            forbidden,
            [&("delete".to_string(), "coordination.k8s.io".to_string(), "leases".to_string(), 403)],
            "{release}: only the probe was denied; the operator itself never was"
        );
        let used: BTreeSet<(String, String, String)> =
            requests.iter().filter(|r| r.3 != 403).map(|r| (r.0.clone(), r.1.clone(), r.2.clone())).collect();
        let outside: Vec<_> = used.difference(&granted).collect();
        assert!(outside.is_empty(), "{release}: requests the chart does not grant: {outside:?}");
        let unused: Vec<_> = granted.difference(&used).collect();
        assert!(unused.is_empty(), "{release}: the chart grants what the operator never uses: {unused:?}");
    }
    cp.stop();
}
