//! The container image: the Dockerfile is multi-stage, runs as a non-root user, ships the binary only, and passes
//! hadolint (through `tools/lint-dockerfile.sh`, which is shown to refuse a careless Dockerfile).

use std::path::Path;

use crate::harness::repo::repo_file;

fn lint_dockerfile(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(repo_file("tools/lint-dockerfile.sh"))
        .arg(path)
        .output()
        .expect("run tools/lint-dockerfile.sh");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_passes_hadolint() {
    let text = std::fs::read_to_string(repo_file("Dockerfile")).expect("Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(stages.last().is_some_and(|s| s.contains("distroless")), "a minimal final base: {stages:?}");
    let final_stage = text.rsplit("\nFROM ").next().expect("final stage");
    assert!(final_stage.contains("USER 65532:65532"), "runs as a non-root user");
    let copies: Vec<&str> = final_stage.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies, ["COPY --from=build /out/cimi-operator /usr/local/bin/cimi-operator"], "the binary only");

    let (ok, out) = lint_dockerfile(&repo_file("Dockerfile"));
    assert!(ok, "hadolint finds problems in the Dockerfile:\n{out}");
    // The linter really lints: a careless Dockerfile fails with the rule it breaks.
    let dir = tempfile::tempdir().expect("tempdir");
    let careless = dir.path().join("Dockerfile");
    std::fs::write(&careless, "FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n").expect("write");
    let (ok, out) = lint_dockerfile(&careless);
    assert!(!ok && out.contains("DL3007"), "a :latest base is refused:\n{out}");
}
