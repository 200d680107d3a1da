//! `examples/gitops/` read as Flux and Argo CD read it, without a cluster: YAML under a directory, `kustomize build`
//! of a directory (what kustomize-controller and Argo CD run) and `helm template` of a chart (what helm-controller
//! and Argo CD run), both from the tool cache; fields of the objects read; and the health checks the examples
//! configure, run as the tools run them (the Argo CD Lua scripts under Lua 5.1, the Flux `healthCheckExprs` in CEL).

use std::path::{Path, PathBuf};

use cimi_operator::devenv::tools::Tool;
use serde_json::Value;

use super::repo::{repo_file, yaml_documents};
use super::tools::offline_tool;

/// Every YAML document under `dir` (repository-relative), recursively, in path order.
pub fn documents_under(dir: &str) -> Vec<Value> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).expect("read dir").flatten().map(|e| e.path()).collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                walk(&entry, out);
            } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(entry);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_file(dir), &mut files);
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        docs.extend(yaml_documents(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display())));
    }
    docs
}

/// What kustomize-controller and Argo CD apply from a directory of the repository: `kustomize build` of it.
pub fn kustomize_build(dir: &str) -> Result<Vec<Value>, String> {
    let path = repo_file(dir);
    if !path.join("kustomization.yaml").is_file() {
        return Err(format!("{dir} has no kustomization.yaml (Flux would apply every manifest beneath it)"));
    }
    yaml_documents(&offline_tool(Tool::Kubectl, &["kustomize", &path.display().to_string()])?)
}

/// The objects a chart of the repository renders for a release, with `values`, as helm-controller or Argo CD
/// render them; values the chart's schema refuses are an error, as they are for those tools.
pub fn helm_render(chart: &str, release: &str, namespace: &str, values: &Value) -> Result<Vec<Value>, String> {
    let file = tempfile::NamedTempFile::new().expect("values file");
    std::fs::write(file.path(), serde_json::to_string(values).expect("values")).expect("write values");
    let chart = repo_file(chart).display().to_string();
    let values = file.path().display().to_string();
    yaml_documents(&offline_tool(
        Tool::Helm,
        &["template", release, &chart, "--namespace", namespace, "--values", &values, "--include-crds"],
    )?)
}

/// The string at a JSON pointer of `value`, if there is one.
pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// An object's API group (the part of apiVersion before the slash; "" for the core group).
pub fn group(object: &Value) -> &str {
    str_at(object, "/apiVersion").and_then(|v| v.rsplit_once('/')).map_or("", |(g, _)| g)
}

/// An object's kind ("" when it has none).
pub fn kind(object: &Value) -> &str {
    str_at(object, "/kind").unwrap_or("")
}

/// An object's metadata.name ("" when it has none).
pub fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name").unwrap_or("")
}

/// A repository-relative directory as Flux and Argo CD write it (`./examples/x`, `examples/x/`).
pub fn repo_dir(path: &str) -> String {
    path.trim_start_matches("./").trim_end_matches('/').to_string()
}

/// The URL of this repository, as the chart states it.
pub fn repository_url() -> String {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_file("charts/cimi-operator/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    str_at(&chart, "/home").expect("Chart.yaml home").to_string()
}

/// The argocd-cm ConfigMap of the Argo CD example.
pub fn argocd_cm() -> Value {
    let text = std::fs::read_to_string(repo_file("examples/gitops/argocd/argocd-cm.yaml")).expect("argocd-cm");
    serde_yaml::from_str(&text).expect("argocd-cm parses")
}

/// Runs an Argo CD health script on `object` under Lua 5.1: (status, message).
pub fn lua_health(script: &str, object: &Value) -> (String, String) {
    use mlua::LuaSerdeExt as _;
    let lua = mlua::Lua::new();
    let version: String = lua.globals().get("_VERSION").expect("_VERSION");
    assert_eq!(version, "Lua 5.1", "Argo CD runs health checks on Lua 5.1");
    lua.globals().set("obj", lua.to_value(object).expect("object to Lua")).expect("set obj");
    let health: mlua::Table = lua.load(script).eval().expect("the script returns a table");
    (health.get("status").expect("status"), health.get("message").expect("message"))
}

/// Runs the Argo CD health check of the cimi.dev kinds (`examples/gitops/argocd/health.lua`) on `object`:
/// (status, message).
pub fn argo_health(object: Value) -> (String, String) {
    let script = std::fs::read_to_string(repo_file("examples/gitops/argocd/health.lua")).expect("health.lua");
    lua_health(&script, &object)
}

/// How Flux's kustomize-controller reads `object` with the example Kustomization's `healthCheckExprs` for its
/// kind (RFC 0009): a status.observedGeneration that differs from metadata.generation is `InProgress`; then the
/// `inProgress`, `failed` and `current` expressions in that order, the first that holds wins; none ->
/// `InProgress`. The object's top-level fields are the CEL variables. `Err` is an evaluation error (Flux reports
/// it and polls again).
pub fn flux_health(object: &Value) -> Result<&'static str, String> {
    let text = std::fs::read_to_string(repo_file("examples/gitops/flux/resources-kustomization.yaml")).expect("flux");
    let kustomization: Value = serde_yaml::from_str(&text).expect("yaml");
    let kind = object["kind"].as_str().expect("kind");
    let exprs = kustomization["spec"]["healthCheckExprs"]
        .as_array()
        .expect("healthCheckExprs")
        .iter()
        .find(|e| e["kind"] == kind && e["apiVersion"] == object["apiVersion"])
        .unwrap_or_else(|| panic!("no healthCheckExprs for {kind}"))
        .clone();
    let observed = object["status"]["observedGeneration"].as_i64();
    let generation = object["metadata"]["generation"].as_i64();
    if let (Some(observed), Some(generation)) = (observed, generation)
        && observed != generation
    {
        return Ok("InProgress");
    }
    let mut context = cel::Context::default();
    for (field, value) in object.as_object().expect("an object") {
        context.add_variable_from_value(field.clone(), cel::to_value(value).expect("JSON to CEL"));
    }
    for (field, status) in [("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")] {
        let Some(expr) = exprs[field].as_str() else { continue };
        let program = cel::Program::compile(expr).map_err(|e| format!("{kind}.{field} does not parse: {e}"))?;
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => return Ok(status),
            Ok(cel::Value::Bool(false)) => {}
            Ok(other) => return Err(format!("{kind}.{field} is not a boolean: {other:?}")),
            Err(e) => return Err(format!("{kind}.{field}: {e}")),
        }
    }
    Ok("InProgress")
}
