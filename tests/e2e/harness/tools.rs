//! kubectl and helm from the tool cache (`make tools`), run against the shared control plane, a control plane of
//! a test's own, or no cluster at all.

use std::path::Path;

use cimi_operator::devenv::tools::Tool;

use super::control_plane::control_plane;

/// Runs a tool from the cache (kubectl, helm) with the shared control plane's kubeconfig; returns
/// (success, stdout, stderr).
pub fn run_tool(tool: Tool, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    run_tool_with(control_plane().kubeconfig_path(), tool, args, stdin)
}

/// Runs a tool from the cache against the cluster of `kubeconfig`.
pub fn run_tool_with(kubeconfig: &Path, tool: Tool, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let out = run_tool_env(kubeconfig, tool, args, &[], stdin);
    (out.code == Some(0), out.stdout, out.stderr)
}

/// What a tool run left: its exit code (`None` when a signal ended it), stdout and stderr.
pub struct ToolRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a tool from the cache against the cluster of `kubeconfig`, with extra environment variables (such
/// as a `PATH` on which kubectl finds a plugin); returns its exit code and output.
pub fn run_tool_env(
    kubeconfig: &Path,
    tool: Tool,
    args: &[&str],
    env: &[(&str, String)],
    stdin: Option<&str>,
) -> ToolRun {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let program = tool.locate().expect("the tool is provisioned (make tools)");
    let home = std::env::temp_dir().join("cimi-e2e-tool-home");
    let mut child = Command::new(&program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        })
    });
    let out = child.wait_with_output().expect("wait for the tool");
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    ToolRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl apply -f -` of a YAML stream against the cluster of `kubeconfig`, as the admin; it must succeed.
pub fn kubectl_apply(kubeconfig: &Path, yaml: &str) {
    let (ok, out, err) = run_tool_with(kubeconfig, Tool::Kubectl, &["apply", "-f", "-"], Some(yaml));
    assert!(ok, "kubectl apply failed: {out}\n{err}\n{yaml}");
}

/// Runs a tool of the cache that needs no cluster (`kubectl kustomize`, `helm template`): its stdout, or what it
/// said on failure.
pub fn offline_tool(tool: Tool, args: &[&str]) -> Result<String, String> {
    let (ok, out, err) = run_tool_with(Path::new("/dev/null"), tool, args, None);
    if ok { Ok(out) } else { Err(format!("{tool:?} {}: {err}", args.join(" "))) }
}
