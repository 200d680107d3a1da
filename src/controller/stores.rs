//! The controllers' caches, shared: each managed kind's controller registers its reflector store here, so a
//! reconcile that needs related objects (the volumes and networks a machine names, the machines that hold a
//! volume, everything that references a provider) reads them from memory instead of listing them from the
//! API server on every pass, which would cost O(N) per reconcile and O(N²) per wave of changes.
//!
//! A store is used only once every namespace it watches has listed (not when it was merely released at
//! shutdown); before that, or for a kind whose controller does not run in this process, the objects are
//! listed from the API with the same namespaces and label selector.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use kube::api::{Api, ListParams};
use kube::core::{DeserializeGuard, NamespaceResourceScope};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::api::{CimiMachine, CimiMachineImage, CimiNetwork, CimiSystem, CimiVolume, CimiVolumeImage};
use crate::runtime::Config;

/// A registered store and whether it has really listed.
#[doc(hidden)]
pub struct Registered<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    listed: Arc<AtomicBool>,
}

/// The reflector stores of the managed kinds' controllers.
#[derive(Default)]
pub struct Stores {
    machines: OnceLock<Registered<CimiMachine>>,
    volumes: OnceLock<Registered<CimiVolume>>,
    networks: OnceLock<Registered<CimiNetwork>>,
    systems: OnceLock<Registered<CimiSystem>>,
    machine_images: OnceLock<Registered<CimiMachineImage>>,
    volume_images: OnceLock<Registered<CimiVolumeImage>>,
}

impl Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("machines", &self.machines.get().is_some())
            .field("volumes", &self.volumes.get().is_some())
            .field("networks", &self.networks.get().is_some())
            .field("systems", &self.systems.get().is_some())
            .field("machine_images", &self.machine_images.get().is_some())
            .field("volume_images", &self.volume_images.get().is_some())
            .finish()
    }
}

/// A namespaced kind whose controller's store can be shared.
pub trait Cached:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// Where its store is kept.
    #[doc(hidden)]
    fn slot(stores: &Stores) -> &OnceLock<Registered<Self>>;
}

macro_rules! cached {
    ($kind:ty, $field:ident) => {
        impl Cached for $kind {
            fn slot(stores: &Stores) -> &OnceLock<Registered<Self>> {
                &stores.$field
            }
        }
    };
}
cached!(CimiMachine, machines);
cached!(CimiVolume, volumes);
cached!(CimiNetwork, networks);
cached!(CimiSystem, systems);
cached!(CimiMachineImage, machine_images);
cached!(CimiVolumeImage, volume_images);

impl Stores {
    /// Registers the store of `K`'s controller; `listed` turns true once every watched namespace has listed.
    /// A second registration (a second controller of the same kind in one context) is ignored.
    pub fn register<K: Cached>(&self, store: Store<K>, listed: Arc<AtomicBool>) {
        let _ = K::slot(self).set(Registered { store, listed });
    }

    /// The registered store of `K`, once it has listed.
    fn listed<K: Cached>(&self) -> Option<&Store<K>> {
        K::slot(self).get().filter(|r| r.listed.load(Ordering::SeqCst)).map(|r| &r.store)
    }
}

/// The objects of `K` this operator watches, in `namespace` (or in every watched namespace): from the
/// controller's store once it has listed, else listed from the API (with the label selector; objects that do
/// not decode are skipped, as their watch reports them).
pub async fn objects<K: Cached>(
    stores: &Stores,
    client: &kube::Client,
    config: &Config,
    namespace: Option<&str>,
) -> kube::Result<Vec<Arc<K>>> {
    if let Some(store) = stores.listed::<K>() {
        return Ok(store.state_filter(|o| namespace.is_none_or(|ns| o.namespace().as_deref() == Some(ns))));
    }
    listed(client, config, namespace).await
}

/// The same objects as [`objects`], always listed from the API: for a decision a store a few milliseconds
/// behind must not make, such as dropping an in-use finalizer because no user is seen yet.
pub async fn listed<K: Cached>(
    client: &kube::Client,
    config: &Config,
    namespace: Option<&str>,
) -> kube::Result<Vec<Arc<K>>> {
    let mut params = ListParams::default();
    if let Some(selector) = config.label_selector.as_deref().filter(|s| !s.trim().is_empty()) {
        params = params.labels(selector);
    }
    let apis: Vec<Api<DeserializeGuard<K>>> = match namespace {
        Some(ns) => vec![Api::namespaced(client.clone(), ns)],
        None => super::kubeops::watched_apis(client, config),
    };
    let mut out = Vec::new();
    for api in apis {
        let items = api.list(&params).await?.items;
        out.extend(items.into_iter().filter_map(|guard| guard.0.ok()).map(Arc::new));
    }
    Ok(out)
}
