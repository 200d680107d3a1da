//! [`ProviderRegistry`]: one CIMI connection per CimiProvider, made by the provider controller and
//! used by every other controller. A connection is replaced when the provider's endpoint, format,
//! TLS settings or credentials change (the fingerprint tells).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::api::common::CatalogRef;
use crate::api::provider::CatalogEntry;
use crate::api::reasons::Reason;
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
    /// The provider's `spec.allowedNamespaces` (absent: every namespace may use it).
    pub allowed_namespaces: Option<LabelSelector>,
    /// When the provider controller last probed, and for which generation of the CimiProvider (kept in
    /// memory: a pass may see the object from a cache that does not show that probe's status yet).
    pub probed: Option<(std::time::Instant, Option<i64>)>,
}

/// Connections by CimiProvider name.
#[derive(Clone, Debug, Default)]
pub struct ProviderRegistry {
    inner: Arc<RwLock<HashMap<String, ProviderConnection>>>,
}

impl ProviderRegistry {
    /// The connection of a provider, if the provider controller made one.
    pub fn get(&self, provider: &str) -> Option<ProviderConnection> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(provider).cloned()
    }

    /// Stores (or replaces) a provider's connection.
    pub fn put(&self, provider: &str, connection: ProviderConnection) {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(provider.to_string(), connection);
    }

    /// Forgets a provider.
    pub fn remove(&self, provider: &str) {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(provider);
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
}
