//! The GitOps examples of `examples/gitops/`, read as Flux and Argo CD read them: the Flux Kustomizations apply the
//! operator, then the resources (every `dependsOn` names a Kustomization, no cycle, every path and source resolves,
//! the health checks name what the release makes); the Argo CD app-of-apps syncs the operator's wave before the
//! resources' and its argocd-cm restores the Application health check those waves wait on. And the health checks
//! read what the operator really writes: the Argo CD Lua script and the Flux healthCheckExprs are run on live
//! objects from an operator working against cimi-sim, at first contact, once Ready, and once stalled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cimi_operator::api::{CimiMachine, CimiProvider};
use cimi_operator::devenv::tools::Tool;
use cimi_operator::sim::{Sim, SimConfig};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::chart::{argo_health, flux_health};
use crate::harness::control_plane::{TestNamespace, client, random_suffix};
use crate::harness::operator::TestOperator;
use crate::harness::repo::yaml_documents;
use crate::harness::sim::{credentials_secret, provider_for, ready_provider};
use crate::harness::tools::offline_tool;
use crate::harness::wait::eventually;

const T: Duration = Duration::from_secs(60);

fn machine(op: &TestOperator, name: &str, provider: &str, image: &str) -> CimiMachine {
    serde_json::from_value(json!({
        "apiVersion": "cimi.dev/v1alpha1",
        "kind": "CimiMachine",
        "metadata": {"name": name, "labels": op.labels()},
        "spec": {
            "providerRef": {"name": provider},
            "template": {"machineConfig": {"name": "tiny"}, "machineImage": {"name": image}},
        },
    }))
    .expect("a CimiMachine")
}

/// Both tools' verdicts on the object as it is now: (Argo CD health status, Flux status).
async fn verdicts(machines: &Api<CimiMachine>, name: &str) -> (String, Result<&'static str, String>, Value) {
    let object = serde_json::to_value(machines.get(name).await.expect("get")).expect("json");
    let (argo, _) = argo_health(object.clone());
    (argo, flux_health(&object), object)
}

#[tokio::test]
async fn argo_cd_and_flux_health_checks_agree_with_the_live_operator() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "gitops").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let provider = ready_provider(&client, &op, &ns.name, &sim).await;

    // The provider the operator marked Ready reads as healthy in both.
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let object = serde_json::to_value(providers.get(&provider).await.expect("provider")).expect("json");
    assert_eq!(argo_health(object.clone()).0, "Healthy", "{object}");
    assert_eq!(flux_health(&object), Ok("Current"), "{object}");

    let machines: Api<CimiMachine> = Api::namespaced(client.clone(), &ns.name);
    machines.create(&PostParams::default(), &machine(&op, "good", &provider, "Linux SUSE")).await.expect("good");
    machines.create(&PostParams::default(), &machine(&op, "bad", &provider, "No Such Image")).await.expect("bad");

    // From the first status write until Ready, the good machine is never failed nor degraded; then both read it
    // as healthy.
    eventually("the good machine healthy in Argo CD and current in Flux", T, || async {
        let (argo, flux, object) = verdicts(&machines, "good").await;
        assert_ne!(argo, "Degraded", "{object}");
        assert!(!matches!(flux, Ok("Failed")), "{object}");
        (argo == "Healthy" && flux == Ok("Current")).then_some(())
    })
    .await;

    // The stalled machine fails Flux's check at once and is degraded in Argo CD; neither waits for a timeout.
    let (argo, flux, object) = eventually("the bad machine degraded and failed", T, || async {
        let (argo, flux, object) = verdicts(&machines, "bad").await;
        assert_ne!(argo, "Healthy", "{object}");
        assert!(!matches!(flux, Ok("Current")), "{object}");
        (argo == "Degraded").then_some((argo, flux, object))
    })
    .await;
    assert_eq!(flux, Ok("Failed"), "{object}");
    let (_, message) = argo_health(object);
    assert!(message.contains("No Such Image"), "Argo CD shows what to fix: {message} ({argo})");
}

// --- The examples read as Flux and Argo CD read them ---------------------------------------------------------------
//
// No cluster is needed: the manifests are parsed, the directories they name are built with `kubectl kustomize` (what
// kustomize-controller and Argo CD run) and the chart is rendered with `helm template` (what helm-controller and Argo
// CD run), both from the tool cache.

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every YAML document under `dir` (repository-relative), recursively, in path order.
fn documents_under(dir: &str) -> Vec<Value> {
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
    walk(&repo().join(dir), &mut files);
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        docs.extend(yaml_documents(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display())));
    }
    docs
}

/// What kustomize-controller and Argo CD apply from a directory of the repository: `kustomize build` of it.
fn kustomize_build(dir: &str) -> Result<Vec<Value>, String> {
    let path = repo().join(dir);
    if !path.join("kustomization.yaml").is_file() {
        return Err(format!("{dir} has no kustomization.yaml (Flux would apply every manifest beneath it)"));
    }
    yaml_documents(&offline_tool(Tool::Kubectl, &["kustomize", &path.display().to_string()])?)
}

/// The objects a chart of the repository renders for a release, with `values`, as helm-controller or Argo CD
/// render them; values the chart's schema refuses are an error, as they are for those tools.
fn helm_render(chart: &str, release: &str, namespace: &str, values: &Value) -> Result<Vec<Value>, String> {
    let file = tempfile::NamedTempFile::new().expect("values file");
    std::fs::write(file.path(), serde_json::to_string(values).expect("values")).expect("write values");
    let chart = repo().join(chart).display().to_string();
    let values = file.path().display().to_string();
    yaml_documents(&offline_tool(
        Tool::Helm,
        &["template", release, &chart, "--namespace", namespace, "--values", &values, "--include-crds"],
    )?)
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// An object's API group (the part of apiVersion before the slash; "" for the core group).
fn group(object: &Value) -> &str {
    str_at(object, "/apiVersion").and_then(|v| v.rsplit_once('/')).map_or("", |(g, _)| g)
}

fn kind(object: &Value) -> &str {
    str_at(object, "/kind").unwrap_or("")
}

fn name(object: &Value) -> &str {
    str_at(object, "/metadata/name").unwrap_or("")
}

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

/// A repository-relative directory as Flux and Argo CD write it (`./examples/x`, `examples/x/`).
fn repo_dir(path: &str) -> String {
    path.trim_start_matches("./").trim_end_matches('/').to_string()
}

/// The URL of this repository, as the chart states it.
fn repository_url() -> String {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("charts/cimi-operator/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    str_at(&chart, "/home").expect("Chart.yaml home").to_string()
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
        if !repo().join(&path).is_dir() {
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

const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
const APPLICATION_HEALTH: &str = "resource.customizations.health.argoproj.io_Application";

/// What Argo CD reads from an Application's source: the chart rendered (with its CRDs, as Argo CD does), the
/// kustomize build, or the manifests of the directory (its subdirectories only with `directory.recurse`).
fn argo_source(app: &Value) -> Result<Vec<Value>, String> {
    let path = repo_dir(str_at(app, "/spec/source/path").unwrap_or("."));
    let dir = repo().join(&path);
    if !dir.is_dir() {
        return Err(format!("{path} is not a directory of the repository"));
    }
    if dir.join("Chart.yaml").is_file() {
        let release = str_at(app, "/spec/source/helm/releaseName").unwrap_or(name(app));
        let namespace = str_at(app, "/spec/destination/namespace").unwrap_or("default");
        let values = app.pointer("/spec/source/helm/valuesObject").cloned().unwrap_or(json!({}));
        return helm_render(&path, release, namespace, &values);
    }
    if dir.join("kustomization.yaml").is_file() {
        return kustomize_build(&path);
    }
    if app.pointer("/spec/source/directory/recurse") == Some(&json!(true)) {
        return Ok(documents_under(&path));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        docs.extend(yaml_documents(&std::fs::read_to_string(&file).map_err(|e| e.to_string())?)?);
    }
    Ok(docs)
}

/// An Application's sync wave (0 when it has none).
fn sync_wave(app: &Value) -> Result<i64, String> {
    match app.pointer("/metadata/annotations").and_then(|a| a.get(SYNC_WAVE)) {
        None => Ok(0),
        Some(Value::String(wave)) => {
            wave.trim().parse().map_err(|_| format!("Application {}: sync-wave {wave:?} is not an integer", name(app)))
        }
        Some(other) => Err(format!("Application {}: sync-wave must be a string, not {other}", name(app))),
    }
}

/// What Argo CD does with the example.
#[derive(Debug)]
struct ArgoPlan {
    /// The Application the user creates.
    root: String,
    /// Its children with their sync waves, in the order Argo CD syncs them.
    children: Vec<(i64, String)>,
    operator: String,
    resources: String,
}

/// Reads the Argo CD example as Argo CD would: `apps` every Application of the example, `sources` what each
/// Application's source renders (by Application name), `config` the argocd-cm ConfigMap.
fn read_argo(
    apps: &[Value],
    sources: &BTreeMap<String, Result<Vec<Value>, String>>,
    config: &Value,
) -> Result<ArgoPlan, Vec<String>> {
    let mut problems = Vec::new();
    let url = repository_url();
    for app in apps {
        if str_at(app, "/apiVersion") != Some("argoproj.io/v1alpha1") {
            problems.push(format!("Application {}: apiVersion must be argoproj.io/v1alpha1", name(app)));
        }
        if str_at(app, "/spec/source/repoURL") != Some(url.as_str()) {
            problems.push(format!("Application {}: source.repoURL must be this repository ({url})", name(app)));
        }
        if let Some(Err(e)) = sources.get(name(app)) {
            problems.push(format!("Application {}: its source does not render: {e}", name(app)));
        }
    }
    let rendered = |app: &Value| sources.get(name(app)).and_then(|s| s.as_ref().ok()).cloned().unwrap_or_default();
    let roots: Vec<&Value> = apps.iter().filter(|a| rendered(a).iter().any(|o| kind(o) == "Application")).collect();
    let [root] = roots.as_slice() else {
        problems.push(format!("{} root Applications (of Applications), not one", roots.len()));
        return Err(problems);
    };
    let children: Vec<Value> = rendered(root).into_iter().filter(|o| kind(o) == "Application").collect();
    for other in rendered(root).iter().filter(|o| kind(o) != "Application") {
        problems.push(format!("the root's directory holds a {} besides the Applications", kind(other)));
    }
    let root_namespace = str_at(root, "/metadata/namespace").unwrap_or("argocd");
    let destination = str_at(root, "/spec/destination/namespace").unwrap_or(root_namespace);
    let mut waves = Vec::new();
    for child in &children {
        let namespace = str_at(child, "/metadata/namespace").unwrap_or(destination);
        if namespace != root_namespace {
            problems.push(format!(
                "Application {} lands in {namespace}, where Argo CD does not look for Applications",
                name(child)
            ));
        }
        if !apps.iter().any(|a| name(a) == name(child)) {
            problems.push(format!("Application {} was not read", name(child)));
        }
        match sync_wave(child) {
            Ok(wave) => waves.push((wave, name(child).to_string())),
            Err(e) => problems.push(e),
        }
    }
    waves.sort();
    let installs_crds = |app: &Value| {
        rendered(app)
            .iter()
            .any(|o| kind(o) == "CustomResourceDefinition" && str_at(o, "/spec/group") == Some("cimi.dev"))
            && rendered(app).iter().any(|o| kind(o) == "Deployment")
    };
    let applies_cimi = |app: &Value| rendered(app).iter().any(|o| group(o) == "cimi.dev");
    let operator = children.iter().find(|c| installs_crds(c));
    let resources = children.iter().find(|c| applies_cimi(c));
    let (Some(operator), Some(resources)) = (operator, resources) else {
        problems.push("the root's children must include the operator (the chart) and the cimi.dev resources".into());
        return Err(problems);
    };
    if let (Ok(op), Ok(res)) = (sync_wave(operator), sync_wave(resources))
        && op >= res
    {
        problems.push(format!(
            "the operator's sync wave ({op}) must be lower than the resources' ({res}), or the resources come first"
        ));
    }
    if !config["data"][APPLICATION_HEALTH].is_string() {
        problems.push(format!(
            "argocd-cm lacks {APPLICATION_HEALTH}: Argo CD (>= 1.8) would read the operator Application as Healthy at \
             once, and wave 1 would not wait for it"
        ));
    }
    for object in rendered(resources).iter().filter(|o| group(o) == "cimi.dev") {
        let key = format!("resource.customizations.health.cimi.dev_{}", kind(object));
        if !config["data"][&key].is_string() {
            problems.push(format!("argocd-cm lacks {key}"));
        }
        let crd_made_by_operator = rendered(operator)
            .iter()
            .any(|crd| kind(crd) == "CustomResourceDefinition" && crd["spec"]["names"]["kind"] == object["kind"]);
        if !crd_made_by_operator {
            problems.push(format!("no CRD of the operator Application defines {}", kind(object)));
        }
    }
    if problems.is_empty() {
        Ok(ArgoPlan {
            root: name(root).to_string(),
            children: waves,
            operator: name(operator).to_string(),
            resources: name(resources).to_string(),
        })
    } else {
        Err(problems)
    }
}

/// Runs an Argo CD health script on `object` under Lua 5.1: (status, message).
fn lua_health(script: &str, object: &Value) -> (String, String) {
    use mlua::LuaSerdeExt as _;
    let lua = mlua::Lua::new();
    let version: String = lua.globals().get("_VERSION").expect("_VERSION");
    assert_eq!(version, "Lua 5.1", "Argo CD runs health checks on Lua 5.1");
    lua.globals().set("obj", lua.to_value(object).expect("object to Lua")).expect("set obj");
    let health: mlua::Table = lua.load(script).eval().expect("the script returns a table");
    (health.get("status").expect("status"), health.get("message").expect("message"))
}

fn argocd_cm() -> Value {
    let text = std::fs::read_to_string(repo().join("examples/gitops/argocd/argocd-cm.yaml")).expect("argocd-cm");
    serde_yaml::from_str(&text).expect("argocd-cm parses")
}

/// A child Application as the Application controller reports it.
fn application(status: Option<Value>) -> Value {
    let mut app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "cimi-operator", "namespace": "argocd", "generation": 3},
        "spec": {"project": "default"},
    });
    if let Some(status) = status {
        app["status"] = status;
    }
    app
}

#[test]
fn argo_cd_app_of_apps_syncs_the_operator_before_the_resources() {
    let apps: Vec<Value> =
        documents_under("examples/gitops/argocd").into_iter().filter(|d| kind(d) == "Application").collect();
    let sources: BTreeMap<String, Result<Vec<Value>, String>> =
        apps.iter().map(|a| (name(a).to_string(), argo_source(a))).collect();
    let config = argocd_cm();
    let plan =
        read_argo(&apps, &sources, &config).unwrap_or_else(|p| panic!("Argo CD would not sync it in order: {p:#?}"));
    assert_eq!(plan.root, "cimi-platform");
    assert_eq!((plan.operator.as_str(), plan.resources.as_str()), ("cimi-operator", "cimi-resources"));
    assert_eq!(plan.children, [(0, "cimi-operator".to_string()), (1, "cimi-resources".to_string())]);

    // The Application health check is the one of application-health.lua, and it makes the waves wait.
    let script = std::fs::read_to_string(repo().join("examples/gitops/argocd/application-health.lua")).expect("lua");
    assert_eq!(
        config["data"][APPLICATION_HEALTH].as_str(),
        Some(script.as_str()),
        "argocd-cm embeds application-health.lua"
    );
    let healthy = json!({
        "health": {"status": "Healthy"},
        "sync": {"status": "Synced", "revision": "abc"},
        "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)"},
    });
    assert_eq!(lua_health(&script, &application(Some(healthy))).0, "Healthy");
    let (status, message) = lua_health(&script, &application(None));
    assert_eq!(status, "Progressing", "a child not assessed yet holds the wave: {message}");
    for (health, sync) in [("Missing", "OutOfSync"), ("Progressing", "Synced"), ("Unknown", "Unknown")] {
        let status = json!({
            "health": {"status": health, "message": "Deployment cimi-operator: 0 of 2 replicas available"},
            "sync": {"status": sync},
        });
        let (status, message) = lua_health(&script, &application(Some(status)));
        assert_eq!(status, "Progressing", "{health}/{sync}");
        assert!(message.starts_with(health), "the child's own health is shown: {message}");
    }
    // A sync in progress is not Healthy yet, even if the previous revision was.
    let syncing = json!({
        "health": {"status": "Healthy"},
        "sync": {"status": "OutOfSync"},
        "operationState": {"phase": "Running", "message": "waiting for healthy state of apps/Deployment/cimi-operator"},
    });
    let (status, message) = lua_health(&script, &application(Some(syncing)));
    assert_eq!(status, "Progressing");
    assert!(message.contains("waiting for healthy state"), "{message}");
    let degraded = json!({
        "health": {"status": "Degraded", "message": "Deployment cimi-operator exceeded its progress deadline"},
        "sync": {"status": "Synced"},
    });
    assert_eq!(
        lua_health(&script, &application(Some(degraded))),
        ("Degraded".into(), "Deployment cimi-operator exceeded its progress deadline".into())
    );

    // The checker catches what does not work: waves in the wrong order, and no Application health check.
    let mut swapped = apps.clone();
    for app in swapped.iter_mut() {
        let wave = if name(app) == "cimi-operator" { "2" } else { "1" };
        if name(app) != "cimi-platform" {
            app["metadata"]["annotations"][SYNC_WAVE] = json!(wave);
        }
    }
    let mut swapped_sources = sources.clone();
    if let Some(Ok(children)) = swapped_sources.get_mut("cimi-platform") {
        *children = swapped.iter().filter(|a| name(a) != "cimi-platform").cloned().collect();
    }
    let problems = read_argo(&swapped, &swapped_sources, &config).expect_err("waves in the wrong order");
    assert!(problems.iter().any(|p| p.contains("must be lower")), "{problems:#?}");
    let mut bare = config.clone();
    bare["data"].as_object_mut().expect("data").remove(APPLICATION_HEALTH);
    let problems = read_argo(&apps, &sources, &bare).expect_err("no Application health");
    assert!(problems.iter().any(|p| p.contains(APPLICATION_HEALTH)), "{problems:#?}");
}

/// A CimiProvider as the operator writes it when the provider refuses the credentials, or cannot be reached.
fn provider_object(reason: &str, stalled: bool) -> Value {
    let message = "the provider answered 401 to the given credentials";
    let mut conditions = vec![json!({"type": "Ready", "status": "False", "reason": reason, "message": message})];
    if stalled {
        conditions.push(json!({"type": "Stalled", "status": "True", "reason": reason, "message": message}));
    }
    json!({
        "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider",
        "metadata": {"name": "lab", "generation": 2},
        "spec": {"endpoint": "https://cimi.example.net/cimi/cloudEntryPoint"},
        "status": {"observedGeneration": 2, "conditions": conditions},
    })
}

#[test]
fn a_provider_that_needs_a_human_is_degraded_in_argo_cd_and_failed_in_flux() {
    let config = argocd_cm();
    let script = config["data"]["resource.customizations.health.cimi.dev_CimiProvider"].as_str().expect("script");
    let refused = provider_object("Unauthorized", true);
    let (status, message) = lua_health(script, &refused);
    assert_eq!(status, "Degraded", "{message}");
    assert!(message.starts_with("Unauthorized: "), "{message}");
    assert_eq!(flux_health(&refused), Ok("Failed"));
    // Unreachable may come back by itself: no Stalled, so both keep waiting instead of failing.
    let unreachable = provider_object("Unreachable", false);
    assert_eq!(lua_health(script, &unreachable).0, "Progressing");
    assert_eq!(flux_health(&unreachable), Ok("InProgress"));
}

#[tokio::test]
async fn a_provider_refusing_the_credentials_is_degraded_and_failed_on_the_live_operator() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "gitopsprov").await;
    let op = TestOperator::start(&ns.name).await;
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    secrets
        .create(&PostParams::default(), &credentials_secret(&op, "wrong", "demo", "not-the-password"))
        .await
        .expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let name = format!("refused-{}", random_suffix());
    providers
        .create(&PostParams::default(), &provider_for(&op, &name, &sim.url(), &ns.name, "wrong"))
        .await
        .expect("provider");
    let script = argocd_cm()["data"]["resource.customizations.health.cimi.dev_CimiProvider"]
        .as_str()
        .expect("script")
        .to_string();
    let (argo, flux) = eventually("the refused provider Degraded in Argo CD", T, || async {
        let object = serde_json::to_value(providers.get(&name).await.ok()?).expect("json");
        let (argo, message) = lua_health(&script, &object);
        assert_ne!(argo, "Healthy", "{object}");
        (argo == "Degraded").then(|| ((argo, message), flux_health(&object)))
    })
    .await;
    assert!(argo.1.starts_with("Unauthorized"), "Argo CD shows why: {}", argo.1);
    assert_eq!(flux, Ok("Failed"), "Flux fails the Kustomization at once");
    providers.delete(&name, &Default::default()).await.expect("delete the provider");
}
