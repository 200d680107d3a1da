//! The manifests of `examples/gitops/` and `examples/team/`: every YAML file parses, the cimi.dev resources the
//! examples apply are accepted by the API server (a server-side dry run), and, applied to a live operator and
//! cimi-sim, every one of them becomes Ready.

use std::time::Duration;

use cimi_operator::api::common::ProviderKind;
use cimi_operator::api::{CimiMachine, CimiNamespacedProvider, CimiNetwork, CimiProvider, CimiVolume};
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::examples::apply_example;
use crate::harness::operator::TestOperator;
use crate::harness::repo::{repo_file, yaml_documents};
use crate::harness::sim::credentials_secret;
use crate::harness::tools::run_tool;
use crate::harness::wait::{eventually, is_ready, wait_ready};

#[test]
fn every_gitops_example_parses() {
    for dir in ["examples/gitops/argocd", "examples/gitops/flux", "examples/gitops/resources", "examples/team"] {
        for entry in std::fs::read_dir(repo_file(dir)).expect("dir").flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("read");
                let documents =
                    yaml_documents(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
                assert!(!documents.is_empty(), "{} parses as YAML", path.display());
            }
        }
    }
}

#[tokio::test]
async fn gitops_cimi_resources_are_accepted_by_the_api_server() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "gitops").await;
    let dir = repo_file("examples/gitops/resources");
    let (ok, out, err) = run_tool(
        Tool::Kubectl,
        &["apply", "--server-side", "--dry-run=server", "-n", &ns.name, "-k", &dir.display().to_string()],
        None,
    );
    assert!(ok, "kubectl apply -k examples/gitops/resources (server dry run): {out}{err}");
    for object in ["cimiprovider.cimi.dev/lab", "cimimachine.cimi.dev/web-1", "cimivolume.cimi.dev/data"] {
        assert!(out.contains(object), "{object} in {out}");
    }
}

#[tokio::test]
async fn the_team_provider_example_is_accepted_by_the_api_server() {
    let admin = client().await;
    let ns = TestNamespace::new(&admin, "team-example").await;
    let dir = repo_file("examples/team");
    let (ok, out, err) = run_tool(
        Tool::Kubectl,
        &["apply", "--server-side", "--dry-run=server", "-n", &ns.name, "-f", &dir.display().to_string()],
        None,
    );
    assert!(ok, "kubectl apply -f examples/team (server dry run): {out}{err}");
    for object in ["ciminamespacedprovider.cimi.dev/team-cloud", "cimivolume.cimi.dev/scratch"] {
        assert!(out.contains(object), "{object} in {out}");
    }
}

#[tokio::test]
async fn the_gitops_and_team_examples_reach_ready_on_a_live_operator() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "examples").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    // The Secrets the examples say to create by hand (they are not kept in Git).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    for name in ["lab-credentials", "team-cloud"] {
        secrets.create(&PostParams::default(), &credentials_secret(&op, name, "demo", "demo")).await.expect("secret");
    }
    let lab = format!("lab-{}", random_suffix());
    apply_example(&client, "examples/gitops/resources", &ns.name, &op.label, &lab, &sim.url()).await;
    apply_example(&client, "examples/team", &ns.name, &op.label, &lab, &sim.url()).await;

    let providers: Api<CimiProvider> = Api::all(client.clone());
    wait_ready(&providers, &lab, "True", "Reachable").await;
    let t = Duration::from_secs(90);
    let team: Api<CimiNamespacedProvider> = Api::namespaced(client.clone(), &ns.name);
    eventually("the team's CimiNamespacedProvider Ready", t, || async {
        let st = team.get("team-cloud").await.ok()?.status?;
        is_ready(&st.conditions).then_some(())
    })
    .await;
    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    let volumes: Api<CimiVolume> = Api::namespaced(client.clone(), &ns.name);
    let networks: Api<CimiNetwork> = Api::namespaced(client.clone(), &ns.name);
    eventually("the gitops machine, volume and network and the team's volume Ready", t, || async {
        let m = machines.get("web-1").await.ok()?.status?;
        let v = volumes.get("data").await.ok()?.status?;
        let n = networks.get("backend").await.ok()?.status?;
        let scratch = volumes.get("scratch").await.ok()?.status?;
        [&m.common, &v.common, &n.common, &scratch.common].iter().all(|c| is_ready(&c.conditions)).then_some(())
    })
    .await;
    let scratch = volumes.get("scratch").await.expect("scratch");
    assert_eq!(scratch.spec.provider_ref.kind, ProviderKind::CimiNamespacedProvider, "on the team's own provider");
    assert!(scratch.status.and_then(|s| s.common.id).is_some(), "made on the provider");
}
