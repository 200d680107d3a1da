//! The kinds the plugin knows, how users name them (`machine/web-1`, `cimisystem shop`, `cimim/web-1`),
//! and one common view of a managed object whatever its kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt as _;
use kube::api::{Api, ListParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cli::TargetArgs;
use super::error::PluginError;
use super::kubeconn::Kube;
use crate::api::common::ProviderKey;
use crate::api::common::{JobStatus, LastAction, ManagedStatus, MeterStatus};
use crate::api::managed::Managed;
use crate::api::provider::{CimiProviderStatus, ProviderSettings};
use crate::api::{
    CimiMachine, CimiMachineImage, CimiNamespacedProvider, CimiNetwork, CimiProvider, CimiSystem, CimiVolume,
    CimiVolumeImage,
};

/// A cimi.dev kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// CimiMachine.
    Machine,
    /// CimiVolume.
    Volume,
    /// CimiNetwork.
    Network,
    /// CimiSystem.
    System,
    /// CimiMachineImage.
    MachineImage,
    /// CimiVolumeImage.
    VolumeImage,
    /// CimiProvider (cluster-scoped).
    Provider,
}

impl Kind {
    /// The namespaced, managed kinds.
    pub const MANAGED: [Kind; 6] =
        [Kind::Machine, Kind::Volume, Kind::Network, Kind::System, Kind::MachineImage, Kind::VolumeImage];

    /// The kind from what a user types: `machine`, `machines`, `cimimachine`, `cimim`, `CimiMachine`,
    /// `cimimachines.cimi.dev`... (case-insensitive).
    pub fn parse(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        let bare = lower.strip_suffix(".cimi.dev").unwrap_or(&lower);
        let kind = match bare {
            "machine" | "machines" | "cimimachine" | "cimimachines" | "cimim" => Kind::Machine,
            "volume" | "volumes" | "cimivolume" | "cimivolumes" | "cimivol" => Kind::Volume,
            "network" | "networks" | "ciminetwork" | "ciminetworks" | "ciminet" => Kind::Network,
            "system" | "systems" | "cimisystem" | "cimisystems" | "cimisys" => Kind::System,
            "machineimage" | "machineimages" | "cimimachineimage" | "cimimachineimages" | "cimimi" => {
                Kind::MachineImage
            }
            "volumeimage" | "volumeimages" | "cimivolumeimage" | "cimivolumeimages" | "cimivi" | "snapshot"
            | "snapshots" => Kind::VolumeImage,
            "provider" | "providers" | "cimiprovider" | "cimiproviders" | "cimiprov" => Kind::Provider,
            _ => return None,
        };
        Some(kind)
    }

    /// The Kubernetes kind, such as `CimiMachine`.
    pub fn kind_name(self) -> &'static str {
        match self {
            Kind::Machine => "CimiMachine",
            Kind::Volume => "CimiVolume",
            Kind::Network => "CimiNetwork",
            Kind::System => "CimiSystem",
            Kind::MachineImage => "CimiMachineImage",
            Kind::VolumeImage => "CimiVolumeImage",
            Kind::Provider => "CimiProvider",
        }
    }

    /// The resource name kubectl uses, such as `cimimachine`.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Machine => "cimimachine",
            Kind::Volume => "cimivolume",
            Kind::Network => "ciminetwork",
            Kind::System => "cimisystem",
            Kind::MachineImage => "cimimachineimage",
            Kind::VolumeImage => "cimivolumeimage",
            Kind::Provider => "cimiprovider",
        }
    }

    /// The CIMI collection of the provider resources of this kind (the CloudEntryPoint's name).
    pub fn collection(self) -> Option<&'static str> {
        match self {
            Kind::Machine => Some("machines"),
            Kind::Volume => Some("volumes"),
            Kind::Network => Some("networks"),
            Kind::System => Some("systems"),
            Kind::MachineImage => Some("machineImages"),
            Kind::VolumeImage => Some("volumeImages"),
            Kind::Provider => None,
        }
    }
}

/// An object a command acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
}

impl Target {
    /// `KIND/NAME`, `KIND NAME`, or a bare `NAME` (a CimiMachine).
    pub fn parse(args: &TargetArgs) -> Result<Target, PluginError> {
        let unknown = |k: &str| {
            PluginError::Usage(format!(
                "unknown kind {k:?}: use machine, volume, network, system, machineimage, volumeimage or provider (or \
                 cimimachine, cimisystem...)"
            ))
        };
        let (kind, name) = match (args.target.split_once('/'), &args.name) {
            (Some(_), Some(extra)) => {
                return Err(PluginError::Usage(format!("give KIND/NAME or KIND NAME, not both (extra {extra:?})")));
            }
            (Some((k, n)), None) => (Kind::parse(k).ok_or_else(|| unknown(k))?, n.to_string()),
            (None, Some(n)) => (Kind::parse(&args.target).ok_or_else(|| unknown(&args.target))?, n.clone()),
            (None, None) => (Kind::Machine, args.target.clone()),
        };
        if name.is_empty() {
            return Err(PluginError::Usage("the object's name is empty".into()));
        }
        Ok(Target { kind, name })
    }

    /// `cimimachine/web-1`, as kubectl names objects.
    pub fn display(&self) -> String {
        format!("{}/{}", self.kind.resource(), self.name)
    }
}

/// What every managed object shows, whatever its kind.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectView {
    /// The kind.
    #[serde(serialize_with = "kind_name")]
    pub kind: Kind,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The CimiProvider it references.
    pub provider: String,
    /// `metadata.uid`.
    #[serde(skip)]
    pub uid: Option<String>,
    /// `metadata.generation`.
    #[serde(skip)]
    pub generation: Option<i64>,
    /// `metadata.creationTimestamp`.
    #[serde(skip)]
    pub created: Option<Time>,
    /// The common status, if any.
    #[serde(skip)]
    pub status: ManagedStatus,
}

fn kind_name<S: serde::Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.kind_name())
}

impl ObjectView {
    /// The view of a managed object.
    pub fn of<K: Managed>(kind: Kind, object: &K) -> Self {
        ObjectView {
            kind,
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            provider: object.provider_key(),
            uid: object.meta().uid.clone(),
            generation: object.meta().generation,
            created: object.meta().creation_timestamp.clone(),
            status: object.managed_status().cloned().unwrap_or_default(),
        }
    }

    /// `CimiMachine/web-1`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.kind.kind_name(), self.name)
    }

    /// A condition of the status.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        crate::api::conditions::find(&self.status.conditions, type_)
    }

    /// The status of a condition, `-` when absent.
    pub fn condition_status(&self, type_: &str) -> String {
        self.condition(type_).map(|c| c.status.clone()).unwrap_or_else(|| "-".into())
    }

    /// The provider Job, when it is still running.
    pub fn running_job(&self) -> Option<&JobStatus> {
        self.status.job.as_ref().filter(|j| job_is_running(j))
    }

    /// The latest meters.
    pub fn meters(&self) -> &[MeterStatus] {
        &self.status.meters
    }

    /// The latest one-shot action.
    pub fn last_action(&self) -> Option<&LastAction> {
        self.status.last_action.as_ref()
    }
}

/// Whether a Job has not ended (QUEUED, RUNNING, STOPPING, or no state yet).
pub fn job_is_running(job: &JobStatus) -> bool {
    !matches!(job.state.as_deref(), Some("SUCCESS" | "FAILED" | "STOPPED"))
}

/// The Job as one short phrase: `stop RUNNING 40%`.
pub fn job_phrase(job: &JobStatus) -> String {
    let mut parts = vec![job.action.clone().unwrap_or_else(|| "job".into())];
    parts.push(job.state.clone().unwrap_or_else(|| "QUEUED".into()));
    if let Some(p) = job.progress {
        parts.push(format!("{p}%"));
    }
    parts.join(" ")
}

/// The Api of a managed kind in `namespace` (every namespace when `None`).
pub fn api<K>(kube: &Kube, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(kube.client.clone(), ns),
        None => Api::all(kube.client.clone()),
    }
}

/// Every object of a managed kind in `namespace` (every namespace when `None`), as views.
pub async fn list_kind<K>(kube: &Kube, kind: Kind, namespace: Option<&str>) -> Result<Vec<ObjectView>, PluginError>
where
    K: Managed + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope> + DeserializeOwned + std::fmt::Debug,
{
    let where_ = namespace.map_or("in every namespace".to_string(), |ns| format!("in namespace {ns}"));
    let list = api::<K>(kube, namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| PluginError::kube(&format!("list {} {where_}", kind.kind_name()), e))?;
    Ok(list.items.iter().map(|o| ObjectView::of(kind, o)).collect())
}

/// Every managed object (every managed kind) in `namespace` (every namespace when `None`), sorted by
/// namespace, kind and name.
pub async fn list_managed(kube: &Kube, namespace: Option<&str>) -> Result<Vec<ObjectView>, PluginError> {
    let mut out = list_kind::<CimiMachine>(kube, Kind::Machine, namespace).await?;
    out.extend(list_kind::<CimiVolume>(kube, Kind::Volume, namespace).await?);
    out.extend(list_kind::<CimiNetwork>(kube, Kind::Network, namespace).await?);
    out.extend(list_kind::<CimiSystem>(kube, Kind::System, namespace).await?);
    out.extend(list_kind::<CimiMachineImage>(kube, Kind::MachineImage, namespace).await?);
    out.extend(list_kind::<CimiVolumeImage>(kube, Kind::VolumeImage, namespace).await?);
    out.sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    Ok(out)
}

/// One object of a managed kind, by name in the command's namespace.
pub async fn get<K>(kube: &Kube, target: &Target) -> Result<K, PluginError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    api::<K>(kube, Some(&kube.namespace))
        .get(&target.name)
        .await
        .map_err(|e| PluginError::kube(&format!("{} in namespace {}", target.display(), kube.namespace), e))
}

/// The view of one managed object, whatever its kind.
pub async fn get_view(kube: &Kube, target: &Target) -> Result<ObjectView, PluginError> {
    Ok(match target.kind {
        Kind::Machine => ObjectView::of(Kind::Machine, &get::<CimiMachine>(kube, target).await?),
        Kind::Volume => ObjectView::of(Kind::Volume, &get::<CimiVolume>(kube, target).await?),
        Kind::Network => ObjectView::of(Kind::Network, &get::<CimiNetwork>(kube, target).await?),
        Kind::System => ObjectView::of(Kind::System, &get::<CimiSystem>(kube, target).await?),
        Kind::MachineImage => ObjectView::of(Kind::MachineImage, &get::<CimiMachineImage>(kube, target).await?),
        Kind::VolumeImage => ObjectView::of(Kind::VolumeImage, &get::<CimiVolumeImage>(kube, target).await?),
        Kind::Provider => {
            return Err(PluginError::Usage(format!("{} is not a managed object", target.display())));
        }
    })
}

/// A provider of either kind, as the plugin reads it.
#[derive(Clone, Debug)]
pub struct ProviderView {
    /// Which provider: `name` (a CimiProvider) or `namespace/name` (a CimiNamespacedProvider).
    pub key: ProviderKey,
    /// Its spec's settings.
    pub settings: ProviderSettings,
    /// Its status, once the operator wrote one.
    pub status: Option<CimiProviderStatus>,
    /// Where its Secrets are: the operator's namespace (`--operator-namespace`) or its own.
    pub secret_namespace: String,
}

impl ProviderView {
    /// The view of a CimiProvider, whose Secrets are in `operator_namespace`.
    pub fn cluster(p: CimiProvider, operator_namespace: &str) -> Self {
        ProviderView {
            key: ProviderKey::cluster(&p.name_any()),
            settings: p.spec.settings,
            status: p.status,
            secret_namespace: operator_namespace.to_string(),
        }
    }
    /// The view of a CimiNamespacedProvider.
    pub fn namespaced(p: CimiNamespacedProvider) -> Self {
        let namespace = p.namespace().unwrap_or_default();
        ProviderView {
            key: ProviderKey::namespaced(&namespace, &p.name_any()),
            settings: p.spec.settings,
            status: p.status,
            secret_namespace: namespace,
        }
    }
    /// `cimiprovider/lab` or `ciminamespacedprovider/team-a/lab`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.key.kind.as_str().to_ascii_lowercase(), self.key)
    }
}

/// The provider `key`: a CimiProvider by name, or `namespace/name` for a CimiNamespacedProvider.
pub async fn get_provider(kube: &Kube, key: &str) -> Result<ProviderView, PluginError> {
    provider_opt(kube, key).await?.ok_or_else(|| {
        let key = ProviderKey::parse(key);
        PluginError::NotFound(format!("{} does not exist", key.describe()))
    })
}

/// The provider `key`, or `None` when there is no such object.
pub async fn provider_opt(kube: &Kube, key: &str) -> Result<Option<ProviderView>, PluginError> {
    let key = ProviderKey::parse(key);
    let what = format!("{}/{key}", key.kind.as_str().to_ascii_lowercase());
    match &key.namespace {
        Some(namespace) => Api::<CimiNamespacedProvider>::namespaced(kube.client.clone(), namespace)
            .get_opt(&key.name)
            .await
            .map(|p| p.map(ProviderView::namespaced))
            .map_err(|e| PluginError::kube(&what, e)),
        None => Api::<CimiProvider>::all(kube.client.clone())
            .get_opt(&key.name)
            .await
            .map(|p| p.map(|p| ProviderView::cluster(p, &kube.operator_namespace)))
            .map_err(|e| PluginError::kube(&what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(target: &str, name: Option<&str>) -> TargetArgs {
        TargetArgs { target: target.into(), name: name.map(str::to_string) }
    }

    #[test]
    fn targets_are_named_as_kubectl_names_them() {
        for (t, n, kind, name) in [
            ("machine/web-1", None, Kind::Machine, "web-1"),
            ("cimimachines.cimi.dev/web-1", None, Kind::Machine, "web-1"),
            ("CimiSystem", Some("shop"), Kind::System, "shop"),
            ("cimisys/shop", None, Kind::System, "shop"),
            ("ciminet/net", None, Kind::Network, "net"),
            ("volume", Some("data"), Kind::Volume, "data"),
            ("provider/lab", None, Kind::Provider, "lab"),
            ("web-1", None, Kind::Machine, "web-1"),
            ("machineimage/golden", None, Kind::MachineImage, "golden"),
            ("cimimi", Some("golden"), Kind::MachineImage, "golden"),
            ("cimivi/nightly", None, Kind::VolumeImage, "nightly"),
            ("CimiVolumeImage", Some("nightly"), Kind::VolumeImage, "nightly"),
        ] {
            let target = Target::parse(&args(t, n)).expect(t);
            assert_eq!((target.kind, target.name.as_str()), (kind, name), "{t}");
        }
        assert!(matches!(Target::parse(&args("pod/x", None)), Err(PluginError::Usage(_))));
        assert!(matches!(Target::parse(&args("machine/", None)), Err(PluginError::Usage(_))));
        assert!(matches!(Target::parse(&args("machine/a", Some("b"))), Err(PluginError::Usage(_))));
        assert_eq!(Target::parse(&args("cimim/web-1", None)).expect("t").display(), "cimimachine/web-1");
    }

    #[test]
    fn kind_names() {
        let names: Vec<&str> = Kind::MANAGED.iter().chain([Kind::Provider].iter()).map(|k| k.kind_name()).collect();
        assert_eq!(
            names,
            [
                "CimiMachine",
                "CimiVolume",
                "CimiNetwork",
                "CimiSystem",
                "CimiMachineImage",
                "CimiVolumeImage",
                "CimiProvider"
            ]
        );
        for kind in Kind::MANAGED {
            let crd = crate::api::crds().into_iter().find(|c| c.spec.names.kind == kind.kind_name()).expect("a CRD");
            assert_eq!(Some(kind.resource()), crd.spec.names.singular.as_deref(), "{kind:?}");
        }
    }

    #[test]
    fn jobs_read_as_phrases() {
        let job = JobStatus {
            href: "j".into(),
            action: Some("stop".into()),
            state: Some("RUNNING".into()),
            progress: Some(40),
            ..Default::default()
        };
        assert!(job_is_running(&job));
        assert_eq!(job_phrase(&job), "stop RUNNING 40%");
        let done = JobStatus { state: Some("SUCCESS".into()), ..job };
        assert!(!job_is_running(&done));
    }
}
