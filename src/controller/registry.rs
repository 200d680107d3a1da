//! [`ProviderRegistry`]: one CIMI connection per provider (CimiProvider or CimiNamespacedProvider, by
//! [`ProviderKey`]), made by the provider controller and used by every other controller. A connection is
//! replaced when the provider's endpoint, format, TLS settings or credentials change (the fingerprint tells).
//! [`read_provider`] reads a provider object of either kind from the API.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::common::{CatalogRef, ProviderKey, ProviderKind};
use crate::api::provider::{CatalogEntry, ImportRight, ProviderSettings};
use crate::api::reasons::Reason;
use crate::api::{CimiNamespacedProvider, CimiProvider};
use crate::cimi::CimiClient;

/// What the other controllers know of one provider.
#[derive(Clone, Debug)]
pub struct ProviderConnection {
    /// The client (shared pool, rate budget and discovery).
    pub client: CimiClient,
    /// A hash of everything the client was built from; a change means a new client.
    pub fingerprint: u64,
    /// True when the last probe reached the CloudEntryPoint.
    pub ready: bool,
    /// Why it is not ready, for the message of dependent objects.
    pub message: String,
    /// The catalog (up to `CATALOG_MAX_ENTRIES` per collection), by CEP collection name (`machineConfigs`,
    /// `machineImages`...); shared, not copied, by every reconcile.
    pub catalog: Arc<Catalog>,
    /// The provider's `spec.allowedNamespaces` (absent: every namespace may use it; a CimiNamespacedProvider
    /// has none, its own namespace being the only one that can name it).
    pub allowed_namespaces: Option<LabelSelector>,
    /// The provider's `spec.importRights` (absent: ObserveOnly imports for every namespace that may use it).
    pub import_rights: Option<Vec<ImportRight>>,
    /// When the provider controller last probed, and for which generation of the CimiProvider (kept in
    /// memory: a pass may see the object from a cache that does not show that probe's status yet).
    pub probed: Option<(std::time::Instant, Option<i64>)>,
    /// Whether the provider advertises the Machine capability MachineStopForce (a stop may be forced).
    pub machine_stop_force: bool,
}

/// Connections by provider key, and the news that a provider became usable.
#[derive(Clone, Debug)]
pub struct ProviderRegistry {
    inner: Arc<RwLock<HashMap<String, ProviderConnection>>>,
    /// The key of each provider that turns ready (a new connection, or one that was not ready): the objects that
    /// waited for it (not found, not ready) are reconciled at once instead of at their next retry.
    ready: tokio::sync::broadcast::Sender<String>,
}

impl Default for ProviderRegistry {
    fn default() -> Self {
        ProviderRegistry { inner: Arc::default(), ready: tokio::sync::broadcast::channel(256).0 }
    }
}

impl ProviderRegistry {
    /// The keys of the providers that turn ready from now on.
    pub fn subscribe_ready(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.ready.subscribe()
    }

    /// The connection of a provider, if the provider controller made one.
    pub fn get(&self, provider: &str) -> Option<ProviderConnection> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(provider).cloned()
    }

    /// Stores (or replaces) a provider's connection; announces the provider when it turns ready.
    pub fn put(&self, provider: &str, connection: ProviderConnection) {
        let ready = connection.ready;
        let was_ready = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(provider.to_string(), connection)
            .is_some_and(|c| c.ready);
        if ready && !was_ready {
            // Nobody listening (no controller yet) is fine.
            let _ = self.ready.send(provider.to_string());
        }
    }

    /// Forgets a provider.
    pub fn remove(&self, provider: &str) {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(provider);
    }
}

/// What the other controllers read of a provider object of either kind.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    /// Endpoint, credentials, cadences, limits, import rights.
    pub settings: ProviderSettings,
    /// `spec.allowedNamespaces` of a CimiProvider.
    pub allowed_namespaces: Option<LabelSelector>,
}

/// The provider `key` as the API server has it now, or `None` when there is no such object.
pub async fn read_provider(client: &kube::Client, key: &ProviderKey) -> kube::Result<Option<ProviderSpec>> {
    match (key.kind, &key.namespace) {
        (ProviderKind::CimiNamespacedProvider, Some(namespace)) => {
            let api: kube::Api<CimiNamespacedProvider> = kube::Api::namespaced(client.clone(), namespace);
            Ok(api
                .get_opt(&key.name)
                .await?
                .map(|p| ProviderSpec { settings: p.spec.settings, allowed_namespaces: None }))
        }
        _ => {
            let api: kube::Api<CimiProvider> = kube::Api::all(client.clone());
            Ok(api
                .get_opt(&key.name)
                .await?
                .map(|p| ProviderSpec { settings: p.spec.settings, allowed_namespaces: p.spec.allowed_namespaces }))
        }
    }
}

/// A stable hash of the inputs of a connection (secret values included, never stored or shown).
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for part in parts {
        part.hash(&mut hasher);
    }
    hasher.finish()
}

/// Resolves a catalog reference to an href: an href is taken as given; a name must match exactly one
/// entry of `entries`. Errors carry the reason and a message for the user.
/// A provider's catalog: its entries by CEP collection name (`machineConfigs`, `machineImages`...).
pub type Catalog = BTreeMap<String, Vec<CatalogEntry>>;

/// The entries of one catalog collection (none when the provider has no such collection).
pub fn catalog_entries<'a>(catalog: &'a Catalog, collection: &str) -> &'a [CatalogEntry] {
    catalog.get(collection).map(Vec::as_slice).unwrap_or(&[])
}

pub fn resolve_catalog(
    entries: &[CatalogEntry],
    reference: &CatalogRef,
    what: &str,
) -> Result<String, (Reason, String)> {
    if let Some(href) = &reference.href {
        return Ok(href.clone());
    }
    let Some(name) = &reference.name else {
        return Err((Reason::InvalidSpec, format!("{what}: set a name or an href")));
    };
    let matches: Vec<&CatalogEntry> = entries.iter().filter(|e| e.name.as_deref() == Some(name.as_str())).collect();
    match matches.as_slice() {
        [one] => Ok(one.href.clone()),
        [] => Err((
            Reason::CatalogEntryNotFound,
            format!(
                "{what} {name:?} matches no entry of the provider's catalog (see the CimiProvider's status.catalog)"
            ),
        )),
        many => Err((
            Reason::CatalogEntryAmbiguous,
            format!("{what} {name:?} matches {} entries of the provider's catalog; name it by href", many.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, href: &str) -> CatalogEntry {
        CatalogEntry { name: Some(name.into()), href: href.into() }
    }

    #[test]
    fn catalog_names_resolve_to_exactly_one_href() {
        let entries = vec![entry("small", "http://p/mc/small"), entry("big", "http://p/mc/big1"), entry("big", "x")];
        assert_eq!(
            resolve_catalog(&entries, &CatalogRef::by_name("small"), "machineConfig"),
            Ok("http://p/mc/small".into())
        );
        assert_eq!(
            resolve_catalog(&entries, &CatalogRef::by_href("http://other"), "machineConfig"),
            Ok("http://other".into())
        );
        assert_eq!(
            resolve_catalog(&entries, &CatalogRef::by_name("nope"), "m").expect_err("no single match").0,
            Reason::CatalogEntryNotFound
        );
        assert_eq!(
            resolve_catalog(&entries, &CatalogRef::by_name("big"), "m").expect_err("no single match").0,
            Reason::CatalogEntryAmbiguous
        );
    }

    #[test]
    fn fingerprints_differ_with_any_input() {
        assert_ne!(fingerprint(&[b"a", b"b"]), fingerprint(&[b"a", b"c"]));
        assert_eq!(fingerprint(&[b"a", b"b"]), fingerprint(&[b"a", b"b"]));
    }

    #[test]
    fn a_provider_is_announced_when_it_turns_ready_and_not_again_while_it_stays_ready() {
        let registry = ProviderRegistry::default();
        let mut news = registry.subscribe_ready();
        let connection = |ready: bool| ProviderConnection {
            client: CimiClient::new(crate::cimi::ClientConfig::new("lab", "http://127.0.0.1:9/").expect("config"))
                .expect("client"),
            fingerprint: 1,
            ready,
            message: String::new(),
            catalog: Arc::default(),
            allowed_namespaces: None,
            import_rights: None,
            probed: None,
            machine_stop_force: false,
        };
        registry.put("team-a/lab", connection(false));
        assert!(news.try_recv().is_err(), "not ready: nothing to announce");
        registry.put("team-a/lab", connection(true));
        assert_eq!(news.try_recv().ok().as_deref(), Some("team-a/lab"));
        registry.put("team-a/lab", connection(true));
        assert!(news.try_recv().is_err(), "still ready: announced once");
        registry.remove("team-a/lab");
        registry.put("team-a/lab", connection(true));
        assert_eq!(news.try_recv().ok().as_deref(), Some("team-a/lab"), "back after it was gone");
    }
}
