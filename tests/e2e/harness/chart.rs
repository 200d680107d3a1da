//! The Helm chart `charts/cimi-operator`: where it is, `helm template` of it, and the RBAC it grants.

use std::path::PathBuf;

use cimi_operator::devenv::tools::Tool;
use serde_json::Value;

use super::repo::repo_file;
use super::tools::run_tool;

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    repo_file("charts/cimi-operator")
}

/// The chart's directory, as a helm argument.
pub fn chart_arg() -> String {
    chart_dir().display().to_string()
}

/// `helm template e2e <chart> --namespace NAMESPACE` with `--set` pairs: the rendered YAML, or helm's error.
pub fn helm_template(namespace: &str, sets: &[&str]) -> Result<String, String> {
    let chart = chart_arg();
    let mut args = vec!["template", "e2e", chart.as_str(), "--namespace", namespace];
    for set in sets {
        args.extend(["--set", set]);
    }
    let (ok, out, err) = run_tool(Tool::Helm, &args, None);
    if ok { Ok(out) } else { Err(err) }
}

/// Every (group, resource, verb) a list of RBAC rules grants, sorted.
pub fn grants(rules: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    out.push((
                        group.as_str().unwrap_or_default().to_string(),
                        resource.as_str().unwrap_or_default().to_string(),
                        verb.as_str().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

/// The arguments of the first container of a rendered or installed Deployment.
pub fn container_args(deployment: &Value) -> Vec<&str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .map(|args| args.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
