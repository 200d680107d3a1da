//! Applying YAML manifests (as `kubectl apply --server-side` would) and reading their readiness.

use std::path::{Path, PathBuf};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde::Deserialize as _;

use super::Error;

/// One object of a manifest file, as applied.
#[derive(Clone, Debug)]
pub struct Applied {
    /// Its kind.
    pub gvk: GroupVersionKind,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The API it lives in.
    pub api: Api<DynamicObject>,
}

/// Reads every document of every `*.yaml` file in `dir` (sorted by file name).
pub fn read_manifests(dir: &Path) -> Result<Vec<(PathBuf, DynamicObject)>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::Io(dir.to_path_buf(), e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Io(file.clone(), e))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| Error::Crd(file.clone(), e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject =
                serde_yaml::from_value(value).map_err(|e| Error::Crd(file.clone(), e.to_string()))?;
            out.push((file.clone(), obj));
        }
    }
    Ok(out)
}

/// Server-side applies every object of the manifests in `dir`, namespaced ones into `default_namespace` unless they
/// name their own.
pub async fn apply_dir(client: &kube::Client, dir: &Path, default_namespace: &str) -> Result<Vec<Applied>, Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let pp = PatchParams::apply("cimi-demo").force();
    let mut applied = Vec::new();
    for (file, obj) in read_manifests(dir)? {
        let types =
            obj.types.clone().ok_or_else(|| Error::Crd(file.clone(), "a document without apiVersion/kind".into()))?;
        let gvk = GroupVersionKind::try_from(&types).map_err(|e| Error::Crd(file.clone(), e.to_string()))?;
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| Error::Crd(file.clone(), format!("the cluster does not serve {}", gvk.kind)))?;
        let name =
            obj.metadata.name.clone().ok_or_else(|| Error::Crd(file.clone(), "an object without a name".into()))?;
        let (api, namespace) = if caps.scope == Scope::Namespaced {
            let ns = obj.metadata.namespace.clone().unwrap_or_else(|| default_namespace.to_string());
            (Api::namespaced_with(client.clone(), &ns, &ar), Some(ns))
        } else {
            (Api::all_with(client.clone(), &ar), None)
        };
        api.patch(&name, &pp, &Patch::Apply(&obj)).await?;
        applied.push(Applied { gvk, namespace, name, api });
    }
    Ok(applied)
}

/// The `Ready` condition of an object: `(status, reason, message)`.
pub fn ready_condition(obj: &DynamicObject) -> Option<(String, String, String)> {
    let conditions = obj.data.get("status")?.get("conditions")?.as_array()?;
    let ready = conditions.iter().find(|c| c.get("type").and_then(|t| t.as_str()) == Some("Ready"))?;
    let field = |k: &str| ready.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Some((field("status"), field("reason"), field("message")))
}
