//! The Flux example of `examples/gitops/flux/`, read as Flux reads it (no cluster: the directories it names are
//! built with `kubectl kustomize`, the HelmRelease rendered with `helm template`): the Kustomizations apply the
//! operator, then the resources; every `dependsOn` names a Kustomization, there is no cycle, every path and source
//! resolves, and the health checks name what the release makes. The checker is shown to catch what was wrong
//! before.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::gitops::{
    documents_under, group, helm_render, kind, kustomize_build, name, repo_dir, repository_url, str_at,
};
use crate::harness::repo::repo_file;

/// (namespace, name) of an object, its namespace defaulting to `default_namespace`.
fn key(object: &Value, default_namespace: &str) -> (String, String) {
    (str_at(object, "/metadata/namespace").unwrap_or(default_namespace).to_string(), name(object).to_string())
}

/// (namespace, name) named by a reference (`dependsOn` entry, `sourceRef`) of an object in `namespace`.
fn reference(reference: &Value, namespace: &str) -> (String, String) {
    (
        str_at(reference, "/namespace").unwrap_or(namespace).to_string(),
        str_at(reference, "/name").unwrap_or("").to_string(),
    )
}
/// The names of the chart's CRDs.
fn chart_crds() -> Vec<String> {
    documents_under("charts/cimi-operator/crds").iter().map(|crd| name(crd).to_string()).collect()
}

const FLUX_API_VERSIONS: [(&str, &str); 3] = [
    ("kustomize.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io/v1"),
    ("helm.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io/v2"),
    ("source.toolkit.fluxcd.io", "source.toolkit.fluxcd.io/v1"),
];

/// What Flux does with the example, as far as the order of things goes.
#[derive(Debug)]
struct FluxPlan {
    /// The Flux Kustomizations, each after every Kustomization it depends on.
    order: Vec<String>,
    /// The Kustomization that installs the operator (its build holds the chart's HelmRelease).
    operator: String,
    /// The Kustomizations that apply cimi.dev objects.
    resources: Vec<String>,
}

/// What a directory of the repository builds to (`kustomize build`), by repository-relative path.
type Builds = BTreeMap<String, Result<Vec<Value>, String>>;

/// The Flux example as Flux meets it.
#[derive(Clone)]
struct FluxExample {
    /// Every manifest under examples/gitops/flux.
    docs: Vec<Value>,
    /// What the user's Flux applies: the build of examples/gitops/flux.
    entry: Vec<Value>,
    /// The build of each Flux Kustomization's path.
    builds: Builds,
    /// What the chart's HelmRelease renders, with its values.
    release: Vec<Value>,
}

impl FluxExample {
    fn read() -> Self {
        let docs = documents_under("examples/gitops/flux");
        let entry = kustomize_build("examples/gitops/flux").expect("examples/gitops/flux builds");
        let mut builds = BTreeMap::new();
        for ks in docs.iter().filter(|d| kind(d) == "Kustomization" && group(d) == "kustomize.toolkit.fluxcd.io") {
            let path = repo_dir(str_at(ks, "/spec/path").unwrap_or("."));
            builds.entry(path.clone()).or_insert_with(|| kustomize_build(&path));
        }
        let release = builds
            .values()
            .flat_map(|b| b.iter().flatten())
            .find(|o| kind(o) == "HelmRelease")
            .map(|hr| {
                let namespace =
                    str_at(hr, "/spec/targetNamespace").or(str_at(hr, "/metadata/namespace")).unwrap_or("default");
                let release = match (str_at(hr, "/spec/releaseName"), str_at(hr, "/spec/targetNamespace")) {
                    (Some(release), _) => release.to_string(),
                    (None, Some(target)) => format!("{target}-{}", name(hr)),
                    (None, None) => name(hr).to_string(),
                };
                let chart = repo_dir(str_at(hr, "/spec/chart/spec/chart").expect("chart path"));
                helm_render(&chart, &release, namespace, &hr["spec"]["values"])
                    .expect("the HelmRelease's values render")
            })
            .unwrap_or_default();
        FluxExample { docs, entry, builds, release }
    }

    /// The same example with the Flux Kustomization `from` renamed `to` (in its file and in the entry point).
    fn renamed(&self, from: &str, to: &str) -> Self {
        let mut copy = self.clone();
        for doc in copy.docs.iter_mut().chain(copy.entry.iter_mut()) {
            if kind(doc) == "Kustomization" && group(doc) == "kustomize.toolkit.fluxcd.io" && name(doc) == from {
                doc["metadata"]["name"] = json!(to);
            }
        }
        copy
    }
}

/// Reads the Flux example as Flux would. Returns the plan, or every problem found.
fn read_flux(example: &FluxExample) -> Result<FluxPlan, Vec<String>> {
    let FluxExample { docs, entry, builds, release } = example;
    let mut problems = Vec::new();
    for doc in docs {
        for (g, wanted) in FLUX_API_VERSIONS {
            if group(doc) == g && str_at(doc, "/apiVersion") != Some(wanted) {
                problems.push(format!("{} {}: apiVersion must be {wanted}", kind(doc), name(doc)));
            }
        }
    }
    let is_flux_kustomization = |d: &Value| group(d) == "kustomize.toolkit.fluxcd.io" && kind(d) == "Kustomization";
    let kustomizations: BTreeMap<(String, String), &Value> =
        docs.iter().filter(|d| is_flux_kustomization(d)).map(|d| (key(d, "default"), d)).collect();
    let find = |kind_: &str, at: &(String, String)| docs.iter().find(|d| kind(d) == kind_ && key(d, "default") == *at);
    let url = repository_url();

    // Every path and source resolves; every dependsOn names a Kustomization.
    let mut edges: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for (at, ks) in &kustomizations {
        let path = repo_dir(str_at(ks, "/spec/path").unwrap_or("."));
        if !repo_file(&path).is_dir() {
            problems.push(format!("Kustomization {}: spec.path {path} is not a directory of the repository", at.1));
        }
        match builds.get(&path) {
            Some(Err(e)) => problems.push(format!("Kustomization {}: {path} does not build: {e}", at.1)),
            None => problems.push(format!("Kustomization {}: {path} was not built", at.1)),
            Some(Ok(_)) => {}
        }
        let source_kind = str_at(ks, "/spec/sourceRef/kind").unwrap_or("");
        let source_at = reference(&ks["spec"]["sourceRef"], &at.0);
        match find(source_kind, &source_at) {
            None => {
                problems.push(format!("Kustomization {}: sourceRef {source_kind} {source_at:?} does not exist", at.1))
            }
            Some(source) if source_kind == "GitRepository" && str_at(source, "/spec/url") != Some(url.as_str()) => {
                problems.push(format!("GitRepository {}: url must be this repository ({url})", source_at.1));
            }
            Some(_) => {}
        }
        if !entry.iter().any(|o| kind(o) == source_kind && key(o, "default") == source_at) {
            problems.push(format!("{source_kind} {} is not applied by the entry point", source_at.1));
        }
        if !entry.iter().any(|o| is_flux_kustomization(o) && key(o, "default") == *at) {
            problems.push(format!("Kustomization {} is not applied by the entry point", at.1));
        }
        let mut targets = Vec::new();
        for dep in ks["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let target = reference(dep, &at.0);
            if kustomizations.contains_key(&target) {
                targets.push(target);
            } else if find("HelmRelease", &target).is_some() {
                problems.push(format!(
                    "Kustomization {}: dependsOn {target:?} names a HelmRelease; Flux's dependsOn takes Kustomizations only",
                    at.1
                ));
            } else {
                problems.push(format!("Kustomization {}: dependsOn {target:?} names no Kustomization", at.1));
            }
        }
        if let Some(ns) = str_at(ks, "/spec/targetNamespace")
            && !entry.iter().any(|o| kind(o) == "Namespace" && name(o) == ns)
        {
            problems.push(format!("Kustomization {}: targetNamespace {ns} is created by nothing", at.1));
        }
        edges.insert(at.clone(), targets);
    }

    // The order Flux follows: each Kustomization after its dependencies; a cycle blocks everything in it.
    let mut order: Vec<(String, String)> = Vec::new();
    while order.len() < edges.len() {
        let next = edges.iter().find(|(at, deps)| !order.contains(at) && deps.iter().all(|d| order.contains(d)));
        match next {
            Some((at, _)) => order.push(at.clone()),
            None => {
                let stuck: Vec<&str> = edges.keys().filter(|at| !order.contains(at)).map(|at| at.1.as_str()).collect();
                problems.push(format!("dependsOn cycle: {stuck:?} never become ready"));
                break;
            }
        }
    }
    let depends_on = |from: &(String, String), on: &(String, String)| {
        let mut seen = vec![from.clone()];
        let mut todo = vec![from.clone()];
        while let Some(at) = todo.pop() {
            for dep in edges.get(&at).into_iter().flatten() {
                if dep == on {
                    return true;
                }
                if !seen.contains(dep) {
                    seen.push(dep.clone());
                    todo.push(dep.clone());
                }
            }
        }
        false
    };

    // The operator's Kustomization: the one applying the HelmRelease of the chart, Ready only once the operator is.
    let built = |at: &(String, String)| {
        let path = repo_dir(str_at(kustomizations[at], "/spec/path").unwrap_or("."));
        builds.get(&path).and_then(|b| b.as_ref().ok()).cloned().unwrap_or_default()
    };
    let installs_chart = |o: &Value| {
        kind(o) == "HelmRelease"
            && str_at(o, "/spec/chart/spec/chart").map(repo_dir).as_deref() == Some("charts/cimi-operator")
    };
    let operators: Vec<&(String, String)> =
        kustomizations.keys().filter(|at| built(at).iter().any(installs_chart)).collect();
    let operator = match operators.as_slice() {
        [one] => (*one).clone(),
        other => {
            problems.push(format!("{} Kustomizations install the chart, not one: {other:?}", other.len()));
            return Err(problems);
        }
    };
    if entry.iter().any(|o| kind(o) == "HelmRelease") {
        problems.push("the entry point applies a HelmRelease itself: nothing would wait for it".into());
    }
    let ks = kustomizations[&operator];
    let release_at = built(&operator).into_iter().find(|o| installs_chart(o)).map(|hr| (key(&hr, &operator.0), hr));
    if let Some((hr_at, hr)) = &release_at {
        let source_kind = str_at(hr, "/spec/chart/spec/sourceRef/kind").unwrap_or("");
        let source_at = reference(&hr["spec"]["chart"]["spec"]["sourceRef"], &hr_at.0);
        if find(source_kind, &source_at).is_none() {
            problems
                .push(format!("HelmRelease {}: chart sourceRef {source_kind} {source_at:?} does not exist", hr_at.1));
        }
        if ks["spec"]["wait"] != json!(true) {
            let checks: Vec<(String, String, String)> = ks["spec"]["healthChecks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let (ns, n) = reference(c, "");
                    (str_at(c, "/kind").unwrap_or("").to_string(), ns, n)
                })
                .collect();
            for (k, ns, n) in &checks {
                let exists = match k.as_str() {
                    "HelmRelease" => (ns.clone(), n.clone()) == *hr_at,
                    "CustomResourceDefinition" => chart_crds().contains(n),
                    _ => release
                        .iter()
                        .any(|o| kind(o) == k && name(o) == n && str_at(o, "/metadata/namespace") == Some(ns)),
                };
                if !exists {
                    problems.push(format!(
                        "Kustomization {}: health check {k} {ns}/{n} names nothing the release makes",
                        operator.1
                    ));
                }
            }
            let deployment = release.iter().find(|o| kind(o) == "Deployment");
            let waits_for_deployment = deployment.is_some_and(|d| {
                checks.iter().any(|(k, ns, n)| {
                    k == "Deployment" && n == name(d) && Some(ns.as_str()) == str_at(d, "/metadata/namespace")
                })
            });
            let waits_for_crds = chart_crds()
                .iter()
                .all(|crd| checks.iter().any(|(k, _, n)| k == "CustomResourceDefinition" && n == crd));
            if !(waits_for_deployment && waits_for_crds) {
                problems.push(format!(
                    "Kustomization {}: neither `wait: true` nor health checks on the operator Deployment and every CRD; \
                     it would be Ready before the operator is",
                    operator.1
                ));
            }
        }
    }

    // The resources: after the operator, and waited for with a health check of every cimi.dev kind.
    let resources: Vec<(String, String)> =
        kustomizations.keys().filter(|at| built(at).iter().any(|o| group(o) == "cimi.dev")).cloned().collect();
    if resources.is_empty() {
        problems.push("no Kustomization applies cimi.dev objects".into());
    }
    for at in &resources {
        if !depends_on(at, &operator) {
            problems
                .push(format!("Kustomization {} applies cimi.dev objects without depending on {}", at.1, operator.1));
        }
        let ks = kustomizations[at];
        if ks["spec"]["wait"] != json!(true) && ks["spec"]["healthChecks"].as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("Kustomization {}: nothing waits for its objects to be Ready", at.1));
        }
        for object in built(at).iter().filter(|o| group(o) == "cimi.dev") {
            let covered = ks["spec"]["healthCheckExprs"].as_array().into_iter().flatten().any(|e| {
                e["apiVersion"] == object["apiVersion"]
                    && e["kind"] == object["kind"]
                    && e["current"].is_string()
                    && e["failed"].is_string()
            });
            if !covered {
                problems.push(format!(
                    "Kustomization {}: no healthCheckExprs (current and failed) for {}",
                    at.1,
                    kind(object)
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(FluxPlan {
            order: order.into_iter().map(|at| at.1).collect(),
            operator: operator.1,
            resources: resources.into_iter().map(|at| at.1).collect(),
        })
    } else {
        Err(problems)
    }
}

#[test]
fn flux_example_applies_the_operator_then_the_resources_as_flux_would() {
    let example = FluxExample::read();
    let plan = read_flux(&example).unwrap_or_else(|p| panic!("Flux would not apply it: {p:#?}"));
    assert_eq!(plan.operator, "cimi-operator");
    assert_eq!(plan.resources, ["cimi-resources"]);
    assert_eq!(plan.order, ["cimi-operator", "cimi-resources"], "the operator first, then the resources");
    // The release the HelmRelease makes is the one the docs describe: cimi-operator in cimi-system.
    let deployment = example.release.iter().find(|o| kind(o) == "Deployment").expect("a Deployment");
    assert_eq!(key(deployment, ""), ("cimi-system".into(), "cimi-operator".into()));
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--cluster-name=prod"), "the cluster name of the example reaches the operator: {args}");

    // The checker catches what was wrong before: a dependsOn that names the HelmRelease, and a cycle.
    let problems = read_flux(&example.renamed("cimi-operator", "install-cimi-operator"))
        .expect_err("a dependsOn on a HelmRelease");
    assert!(problems.iter().any(|p| p.contains("names a HelmRelease")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("without depending on install-cimi-operator")), "{problems:#?}");
    let mut cyclic = example.clone();
    for doc in cyclic.docs.iter_mut().filter(|d| kind(d) == "Kustomization" && name(d) == "cimi-operator") {
        doc["spec"]["dependsOn"] = json!([{"name": "cimi-resources"}]);
    }
    let problems = read_flux(&cyclic).expect_err("a cycle");
    assert!(problems.iter().any(|p| p.contains("cycle")), "{problems:#?}");
}
