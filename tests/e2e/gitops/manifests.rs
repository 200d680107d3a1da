//! The manifests of `examples/gitops/` and `examples/team/`: every YAML file parses, and the cimi.dev resources
//! the examples apply are accepted by the API server (a server-side dry run).

use cimi_operator::devenv::tools::Tool;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::repo::{repo_file, yaml_documents};
use crate::harness::tools::run_tool;

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
