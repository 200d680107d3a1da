//! The two provider kinds behind one controller: [`ProviderObject`] says where a kind's Secrets are, which
//! namespaces may use it, and how its objects are keyed; everything else is shared.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::{Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::common::{ProviderKey, ProviderKind};
use crate::api::managed::Managed;
use crate::api::provider::{CimiProviderStatus, ProviderSettings};
use crate::api::{CimiNamespacedProvider, CimiProvider};
use crate::controller::context::Context;

/// A provider kind: CimiProvider (cluster-scoped, Secrets in the operator's namespace, any admitted namespace
/// may use it) or CimiNamespacedProvider (Secrets and users in its own namespace).
pub trait ProviderObject:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Which kind.
    const KIND: ProviderKind;

    /// Endpoint, credentials, cadences, limits, import rights.
    fn settings(&self) -> &ProviderSettings;
    /// The namespaces that may use it (`spec.allowedNamespaces` of a CimiProvider); `None`: no restriction
    /// beyond the kind's own (a CimiNamespacedProvider serves only its namespace).
    fn allowed_namespaces(&self) -> Option<&LabelSelector>;
    /// Its status, if it has one.
    fn provider_status(&self) -> Option<&CimiProviderStatus>;

    /// Its key in the registry, metrics and logs.
    fn key(&self) -> ProviderKey {
        match Self::KIND {
            ProviderKind::CimiProvider => ProviderKey::cluster(&self.name_any()),
            ProviderKind::CimiNamespacedProvider => {
                ProviderKey::namespaced(self.namespace().as_deref().unwrap_or_default(), &self.name_any())
            }
        }
    }
    /// Where its Secrets are: the operator's namespace, or its own.
    fn secret_namespace(&self, ctx: &Context) -> String {
        match Self::KIND {
            ProviderKind::CimiProvider => ctx.config.operator_namespace.clone(),
            ProviderKind::CimiNamespacedProvider => self.namespace().unwrap_or_default(),
        }
    }
    /// The API of its kind where it lives (for its status and finalizers).
    fn api(&self, client: &kube::Client) -> Api<Self>;

    /// Whether the managed object `user` names this provider.
    fn is_used_by<K: Managed>(&self, user: &K) -> bool {
        user.provider_key() == self.key().to_string()
    }
}

impl ProviderObject for CimiProvider {
    const KIND: ProviderKind = ProviderKind::CimiProvider;

    fn settings(&self) -> &ProviderSettings {
        &self.spec.settings
    }
    fn allowed_namespaces(&self) -> Option<&LabelSelector> {
        self.spec.allowed_namespaces.as_ref()
    }
    fn provider_status(&self) -> Option<&CimiProviderStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: &kube::Client) -> Api<Self> {
        Api::all(client.clone())
    }
}

impl ProviderObject for CimiNamespacedProvider {
    const KIND: ProviderKind = ProviderKind::CimiNamespacedProvider;

    fn settings(&self) -> &ProviderSettings {
        &self.spec.settings
    }
    fn allowed_namespaces(&self) -> Option<&LabelSelector> {
        None
    }
    fn provider_status(&self) -> Option<&CimiProviderStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: &kube::Client) -> Api<Self> {
        Api::namespaced(client.clone(), self.namespace().as_deref().unwrap_or_default())
    }
}
