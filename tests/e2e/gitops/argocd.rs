//! The Argo CD example of `examples/gitops/argocd/`, read as Argo CD reads it (no cluster: each Application's
//! source rendered with `helm template`, built with `kubectl kustomize`, or read as a directory): the app-of-apps
//! syncs the operator's wave before the resources', and its argocd-cm restores the Application health check those
//! waves wait on. The checker is shown to catch waves in the wrong order and a missing health check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::harness::gitops::{
    argocd_cm, documents_under, group, helm_render, kind, kustomize_build, lua_health, name, repo_dir, repository_url,
    str_at,
};
use crate::harness::repo::{repo_file, yaml_documents};

/// The annotation of an Application's sync wave.
const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// The argocd-cm key of the Application health check.
const APPLICATION_HEALTH: &str = "resource.customizations.health.argoproj.io_Application";

/// What Argo CD reads from an Application's source: the chart rendered (with its CRDs, as Argo CD does), the
/// kustomize build, or the manifests of the directory (its subdirectories only with `directory.recurse`).
fn argo_source(app: &Value) -> Result<Vec<Value>, String> {
    let path = repo_dir(str_at(app, "/spec/source/path").unwrap_or("."));
    let dir = repo_file(&path);
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
    let script = std::fs::read_to_string(repo_file("examples/gitops/argocd/application-health.lua")).expect("lua");
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
