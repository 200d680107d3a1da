//! `kubectl cimi import PROVIDER`: the machines, volumes and networks of a provider that no object manages,
//! and, with `--all`, a ready-to-commit manifest for each that adopts it (`spec.import.href`), so a brownfield
//! estate goes into Git in one command.
//!
//! A provider resource is managed when it carries the operator's `cimi.dev/uid` tag, or when it is the
//! `status.id` of an object (an ObserveOnly import is never tagged) or a member of a CimiSystem. The provider
//! is read with the credentials of the CimiProvider's Secret, with the user's own Kubernetes permissions.
//!
//! The manifests are ObserveOnly by default (adopt, never change) with `deletionPolicy: Orphan`; with
//! `--policy Managed` they mirror what the provider reports (a machine's power state), so adopting changes
//! nothing but the operator's tags.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::ExitCode;

use kube::ResourceExt as _;
use kube::api::ListParams;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::cli::ImportArgs;
use super::error::PluginError;
use super::kubeconn::Kube;
use super::output::{Cell, Printer, Table, or_dash};
use crate::api::{CimiMachine, CimiNetwork, CimiSystem, CimiVolume};
use crate::cimi::model::{Machine, Network, Resource, Volume};
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, CimiError};

pub use super::cli::{ImportKind, Policy};

/// A provider resource that no object manages.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Its kind.
    pub kind: ImportKind,
    /// Its href.
    pub href: String,
    /// Its CIMI name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The name its object gets.
    pub object_name: String,
}

/// A provider resource as listed: its href (resolved), name, state and properties.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listed {
    /// The href.
    pub href: String,
    /// The CIMI name.
    pub name: Option<String>,
    /// The state.
    pub state: Option<String>,
    /// The properties (the operator's tags among them).
    pub properties: BTreeMap<String, String>,
}

/// Whether an object already manages the resource: our UID tag, or one object's `status.id`.
pub fn is_managed(listed: &Listed, known: &HashSet<String>) -> bool {
    listed.properties.contains_key(crate::names::TAG_UID) || known.contains(&listed.href)
}

/// A DNS-1123 label (at most 63 characters) from a CIMI name, else from the href's last segment, unique
/// among `taken` (which it joins).
pub fn object_name(kind: ImportKind, name: Option<&str>, href: &str, taken: &mut BTreeSet<String>) -> String {
    let clean = |raw: &str| -> String {
        let mut out = String::new();
        for c in raw.to_ascii_lowercase().chars() {
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
                out.push(c);
            }
        }
        out.truncate(57);
        out.trim_matches('-').to_string()
    };
    let mut base = name.map(clean).unwrap_or_default();
    if base.is_empty() {
        let last = href.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        base = clean(&format!("{}-{last}", kind.word()));
    }
    if base.is_empty() {
        base = kind.word().to_string();
    }
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}-{n}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// The CimiMachine, CimiVolume or CimiNetwork that adopts a resource.
pub fn manifest(
    candidate: &Candidate,
    provider: &str,
    namespace: &str,
    policy: Policy,
    labels: &BTreeMap<String, String>,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(candidate.object_name));
    metadata.insert("namespace".into(), json!(namespace));
    if !labels.is_empty() {
        metadata.insert("labels".into(), json!(labels));
    }
    let mut spec = Map::new();
    spec.insert("providerRef".into(), json!({"name": provider}));
    spec.insert("import".into(), json!({"href": candidate.href}));
    spec.insert(
        "managementPolicy".into(),
        json!(match policy {
            Policy::ObserveOnly => "ObserveOnly",
            Policy::Managed => "Managed",
        }),
    );
    spec.insert("deletionPolicy".into(), json!("Orphan"));
    if candidate.kind == ImportKind::Machine
        && let Some(power) = match candidate.state.as_deref() {
            Some("STARTED") => Some("Started"),
            Some("STOPPED") => Some("Stopped"),
            Some("PAUSED") => Some("Paused"),
            Some("SUSPENDED") => Some("Suspended"),
            _ => None,
        }
    {
        spec.insert("powerState".into(), json!(power));
    }
    json!({
        "apiVersion": format!("{}/{}", crate::names::API_GROUP, crate::names::API_VERSION),
        "kind": candidate.kind.kind_name(),
        "metadata": metadata,
        "spec": spec,
    })
}

/// One manifest as a YAML document, with a comment saying what it adopts.
pub fn manifest_yaml(candidate: &Candidate, manifest: &Value, provider: &str) -> Result<String, PluginError> {
    let body = serde_yaml::to_string(manifest).map_err(|e| PluginError::Other(format!("cannot write YAML: {e}")))?;
    Ok(format!(
        "# The {} {} ({}) of cimiprovider/{provider}, adopted: kubectl cimi import\n{body}",
        candidate.kind.word(),
        candidate.name.as_deref().map(|n| format!("{n:?}")).unwrap_or_else(|| "without a name".into()),
        candidate.state.as_deref().unwrap_or("state unknown"),
    ))
}

/// Every resource of a kind on the provider (through `filter` when given), as listed.
async fn list_provider<T: Resource + DeserializeOwned + Serialize>(
    client: &CimiClient,
    kind: ImportKind,
    filter: Option<&str>,
) -> Result<Vec<Listed>, CimiError> {
    let mut url = client.collection_url(kind.collection()).await?;
    if let Some(f) = filter {
        let encoded = percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC).to_string();
        let query = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&$filter={encoded}"),
            _ => format!("$filter={encoded}"),
        };
        url.set_query(Some(&query));
    }
    let listing = client.list_all_at::<T>(&url, &Query::new()).await?;
    if listing.truncated {
        eprintln!(
            "warning: the provider served fewer {} than it counts; some may be missing from this list",
            kind.collection()
        );
    }
    let mut out = Vec::new();
    for entry in &listing.entries {
        let v = serde_json::to_value(entry).unwrap_or(Value::Null);
        let Some(id) = v.get("id").and_then(Value::as_str) else { continue };
        let href = client.resolve(id).await.map(|u| u.to_string()).unwrap_or_else(|_| id.to_string());
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let properties = v
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        out.push(Listed { href, name: text("name"), state: text("state"), properties });
    }
    Ok(out)
}

/// The hrefs some object already stands for: every managed object's `status.id` and every CimiSystem member,
/// in every namespace the user may list (else in the target namespace, with a warning).
async fn known_hrefs(kube: &Kube) -> Result<HashSet<String>, PluginError> {
    async fn ids<K>(kube: &Kube, namespace: Option<&str>) -> Result<Vec<K>, kube::Error>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        Ok(super::objects::api::<K>(kube, namespace).list(&ListParams::default()).await?.items)
    }
    async fn collect(kube: &Kube, ns: Option<&str>) -> Result<HashSet<String>, kube::Error> {
        let mut out = HashSet::new();
        for m in ids::<CimiMachine>(kube, ns).await? {
            out.extend(m.status.and_then(|s| s.common.id));
        }
        for v in ids::<CimiVolume>(kube, ns).await? {
            out.extend(v.status.and_then(|s| s.common.id));
        }
        for n in ids::<CimiNetwork>(kube, ns).await? {
            out.extend(n.status.and_then(|s| s.common.id));
        }
        for s in ids::<CimiSystem>(kube, ns).await? {
            let Some(st) = s.status else { continue };
            out.extend(st.common.id.clone());
            for member in st.all_members() {
                out.insert(member.href.clone());
            }
        }
        Ok(out)
    }
    match collect(kube, None).await {
        Ok(known) => Ok(known),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            eprintln!(
                "warning: you may not list cimi.dev objects in every namespace; only namespace {} was checked for \
                 objects that already manage these resources",
                kube.namespace
            );
            collect(kube, Some(&kube.namespace))
                .await
                .map_err(|e| PluginError::kube(&format!("list cimi.dev objects in namespace {}", kube.namespace), e))
        }
        Err(e) => Err(PluginError::kube("list cimi.dev objects", e)),
    }
}

/// The names already used in the target namespace, per kind.
async fn taken_names(kube: &Kube) -> Result<BTreeMap<ImportKind, BTreeSet<String>>, PluginError> {
    let ns = Some(kube.namespace.as_str());
    let names = |items: Vec<String>| items.into_iter().collect::<BTreeSet<String>>();
    let err = |e| PluginError::kube(&format!("list objects in namespace {}", kube.namespace), e);
    let lp = ListParams::default();
    let machines = super::objects::api::<CimiMachine>(kube, ns).list(&lp).await.map_err(err)?;
    let volumes = super::objects::api::<CimiVolume>(kube, ns).list(&lp).await.map_err(err)?;
    let networks = super::objects::api::<CimiNetwork>(kube, ns).list(&lp).await.map_err(err)?;
    Ok([
        (ImportKind::Machine, names(machines.items.iter().map(|o| o.name_any()).collect())),
        (ImportKind::Volume, names(volumes.items.iter().map(|o| o.name_any()).collect())),
        (ImportKind::Network, names(networks.items.iter().map(|o| o.name_any()).collect())),
    ]
    .into_iter()
    .collect())
}

/// `k=v` labels.
pub fn parse_labels(pairs: &[String]) -> Result<BTreeMap<String, String>, PluginError> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(PluginError::Usage(format!("--label {p:?} is not key=value"))),
        })
        .collect()
}

/// The candidates as a table.
pub fn render_list(candidates: &[Candidate], provider: &str, printer: &Printer) -> String {
    if candidates.is_empty() {
        return format!(
            "every machine, volume and network of cimiprovider/{provider} (that you selected) is managed by an object\n"
        );
    }
    let mut t = Table::new(["kind", "name", "state", "object", "href"]);
    for c in candidates {
        t.row(vec![
            Cell::plain(c.kind.word()),
            Cell::plain(or_dash(c.name.as_deref())),
            Cell::plain(or_dash(c.state.as_deref())),
            Cell::plain(format!("{}/{}", c.kind.kind_name(), c.object_name)),
            Cell::plain(&c.href),
        ]);
    }
    let mut out = t.render(printer.colour);
    out.push_str(&format!(
        "\n{} provider resources no object manages. Write manifests that adopt them with --all (narrow with \
         --kind and --filter; --policy Managed to manage them).\n",
        candidates.len()
    ));
    out
}

/// Runs `import`.
pub async fn run(kube: &Kube, args: &ImportArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    let labels = parse_labels(&args.labels)?;
    let provider = super::objects::get_provider(kube, &args.provider).await?;
    let client = super::connect::connect(&kube.client, &provider).await?;
    let known = known_hrefs(kube).await?;
    let mut taken = taken_names(kube).await?;
    let kinds: Vec<ImportKind> = if args.kind.is_empty() { ImportKind::ALL.to_vec() } else { args.kind.clone() };
    let discovery =
        client.discovery().await.map_err(|e| PluginError::cimi(&format!("cimiprovider/{}", args.provider), e))?;
    let mut candidates = Vec::new();
    for kind in ImportKind::ALL.into_iter().filter(|k| kinds.contains(k)) {
        if !discovery.supports(kind.collection()) {
            eprintln!("note: cimiprovider/{} has no {} collection", args.provider, kind.collection());
            continue;
        }
        let filter = args.filter.as_deref();
        let listed = match kind {
            ImportKind::Machine => list_provider::<Machine>(&client, kind, filter).await,
            ImportKind::Volume => list_provider::<Volume>(&client, kind, filter).await,
            ImportKind::Network => list_provider::<Network>(&client, kind, filter).await,
        }
        .map_err(|e| match e {
            CimiError::Invalid { message, .. } if filter.is_some() => {
                PluginError::Usage(format!("the provider rejected --filter {:?}: {message}", filter.unwrap_or("")))
            }
            e => PluginError::cimi(&format!("list {} of cimiprovider/{}", kind.collection(), args.provider), e),
        })?;
        for l in listed.into_iter().filter(|l| !is_managed(l, &known)) {
            let names = taken.entry(kind).or_default();
            let object_name = object_name(kind, l.name.as_deref(), &l.href, names);
            candidates.push(Candidate { kind, href: l.href, name: l.name, state: l.state, object_name });
        }
    }

    if !args.all {
        if printer.is_document() {
            print!("{}", printer.document(&json!({"provider": args.provider, "unmanaged": candidates}))?);
        } else {
            print!("{}", render_list(&candidates, &args.provider, printer));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if candidates.is_empty() {
        eprintln!("nothing to import: every selected resource of cimiprovider/{} is managed", args.provider);
        return Ok(ExitCode::SUCCESS);
    }
    let mut written = Vec::new();
    let mut stream = String::new();
    for c in &candidates {
        let m = manifest(c, &args.provider, &kube.namespace, args.policy, &labels);
        let text = manifest_yaml(c, &m, &args.provider)?;
        match &args.output_dir {
            Some(dir) => {
                let path = dir.join(format!("{}-{}.yaml", c.kind.word(), c.object_name));
                write_file(dir, &path, &text)?;
                written.push(path.display().to_string());
            }
            None => {
                stream.push_str("---\n");
                stream.push_str(&text);
            }
        }
    }
    if args.output_dir.is_some() {
        for path in &written {
            println!("{path}");
        }
    } else {
        print!("{stream}");
    }
    let policy = match args.policy {
        Policy::ObserveOnly => "ObserveOnly: adopted, never changed",
        Policy::Managed => "Managed: adopted, tagged, kept as the spec says",
    };
    eprintln!(
        "{} manifests for namespace {} ({policy}; deletionPolicy Orphan). Commit them, or `kubectl apply -f` them, to \
         adopt the resources.",
        candidates.len(),
        kube.namespace
    );
    Ok(ExitCode::SUCCESS)
}

fn write_file(dir: &Path, path: &Path, text: &str) -> Result<(), PluginError> {
    std::fs::create_dir_all(dir).map_err(|e| PluginError::Other(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(path, text).map_err(|e| PluginError::Other(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(href: &str, props: &[(&str, &str)]) -> Listed {
        Listed {
            href: href.into(),
            name: Some("x".into()),
            state: None,
            properties: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn tagged_resources_and_those_of_an_object_are_managed() {
        let known: HashSet<String> = ["http://p/machines/2".to_string()].into_iter().collect();
        assert!(is_managed(&listed("http://p/machines/1", &[("cimi.dev/uid", "u")]), &known));
        assert!(is_managed(&listed("http://p/machines/2", &[("owner", "legacy")]), &known), "ObserveOnly imports");
        assert!(!is_managed(&listed("http://p/machines/3", &[("owner", "legacy")]), &known));
    }

    #[test]
    fn object_names_are_valid_and_unique() {
        let mut taken: BTreeSet<String> = ["web".to_string()].into_iter().collect();
        assert_eq!(object_name(ImportKind::Machine, Some("Web"), "h/1", &mut taken), "web-2");
        assert_eq!(object_name(ImportKind::Machine, Some("Web"), "h/2", &mut taken), "web-3");
        assert_eq!(object_name(ImportKind::Machine, Some("My VM #1 (prod)"), "h/3", &mut taken), "my-vm-1-prod");
        assert_eq!(object_name(ImportKind::Volume, None, "http://p/volumes/7f3c", &mut taken), "volume-7f3c");
        assert_eq!(object_name(ImportKind::Volume, Some("***"), "http://p/volumes/8", &mut taken), "volume-8");
        let long = "a".repeat(100);
        assert!(object_name(ImportKind::Network, Some(&long), "h/4", &mut taken).len() <= 63);
    }

    #[test]
    fn manifests_adopt_by_href_and_mirror_the_power_state() {
        let c = Candidate {
            kind: ImportKind::Machine,
            href: "http://p/machines/1".into(),
            name: Some("legacy-vm".into()),
            state: Some("STOPPED".into()),
            object_name: "legacy-vm".into(),
        };
        let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into_iter().collect();
        let m = manifest(&c, "lab", "team-a", Policy::ObserveOnly, &labels);
        let machine: CimiMachine = serde_json::from_value(m.clone()).expect("a CimiMachine");
        assert_eq!(machine.spec.import.and_then(|i| i.href).as_deref(), Some("http://p/machines/1"));
        assert_eq!(machine.spec.management_policy, crate::api::common::ManagementPolicy::ObserveOnly);
        assert_eq!(machine.spec.deletion_policy, crate::api::common::DeletionPolicy::Orphan);
        assert_eq!(machine.spec.power_state, crate::api::PowerState::Stopped);
        assert_eq!(machine.metadata.namespace.as_deref(), Some("team-a"));
        assert!(machine.spec.template.is_none() && machine.spec.machine_template.is_none());
        let managed = manifest(&c, "lab", "team-a", Policy::Managed, &BTreeMap::new());
        assert_eq!(managed["spec"]["managementPolicy"], "Managed");
        let yaml = manifest_yaml(&c, &managed, "lab").expect("yaml");
        assert!(yaml.starts_with("# The machine \"legacy-vm\" (STOPPED) of cimiprovider/lab"), "{yaml}");
        let volume = Candidate { kind: ImportKind::Volume, state: Some("AVAILABLE".into()), ..c };
        let v: CimiVolume =
            serde_json::from_value(manifest(&volume, "lab", "ns", Policy::ObserveOnly, &labels)).expect("a CimiVolume");
        assert!(v.spec.import.is_some());
        assert!(manifest(&volume, "lab", "ns", Policy::ObserveOnly, &labels)["spec"].get("powerState").is_none());
    }

    #[test]
    fn labels_are_key_value_pairs() {
        assert_eq!(parse_labels(&["a=b".into(), "c=".into()]).expect("ok").len(), 2);
        assert!(parse_labels(&["novalue".into()]).is_err());
        assert!(parse_labels(&["=x".into()]).is_err());
    }
}
