//! What a probe reads besides the CloudEntryPoint: the catalog (bounded, in memory and in status) and the
//! capabilities of the provider's ResourceMetadata.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::provider::{CATALOG_ENTRIES_PER_COLLECTION, Capability, Catalog, CatalogEntry, MAX_CAPABILITIES};
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::text;

/// The catalog collections read at each probe, by CEP collection name.
pub const CATALOG_COLLECTIONS: &[&str] = &[
    "machineConfigs",
    "machineImages",
    "machineTemplates",
    "volumeConfigs",
    "volumeImages",
    "volumeTemplates",
    "networkConfigs",
    "networkTemplates",
    "systemTemplates",
];

/// The most entries of one catalog collection kept in memory (names are resolved against them; status
/// shows at most [`CATALOG_ENTRIES_PER_COLLECTION`]).
pub const CATALOG_MAX_ENTRIES: u64 = 10_000;

/// The catalog collections, each read in bounded pages up to [`CATALOG_MAX_ENTRIES`] entries. Entries whose
/// href is not on a trusted origin are left out (nothing could use them), and so are the images an object of some
/// namespace made (tagged `cimi.dev/uid`: a CimiMachineImage or CimiVolumeImage): they belong to that object and
/// its namespace, which restores from them with `imageRef`, and must neither be usable by name from another
/// namespace nor make a shared catalog name ambiguous.
pub async fn read_catalog(client: &CimiClient) -> Result<(Catalogue, BTreeMap<String, u64>), CimiError> {
    let discovery = client.discovery().await?;
    let page_size = client.config().page_size;
    let mut out = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for name in CATALOG_COLLECTIONS {
        let Some(url) = discovery.collections.get(*name) else { continue };
        let query = Query::new().last(CATALOG_MAX_ENTRIES);
        let listing = client.list_values_at(url, &query, "", None, page_size).await?;
        let mut entries = Vec::with_capacity(listing.entries.len());
        for item in &listing.entries {
            if owned_by_an_object(item) {
                continue;
            }
            let Some(href) = text(item, "id") else { continue };
            let Ok(href) = client.resolve(href).await else { continue };
            let name = text(item, "name").map(str::to_string);
            entries.push(CatalogEntry { name, href: href.to_string() });
        }
        // The provider's own count, where it states one: the entries kept may be fewer.
        counts.insert((*name).to_string(), listing.count.unwrap_or(0).max(entries.len() as u64));
        out.insert((*name).to_string(), entries);
    }
    Ok((out, counts))
}

/// Whether a catalog entry was made by an object of the operator (it carries the `cimi.dev/uid` tag).
pub fn owned_by_an_object(item: &Value) -> bool {
    item.get("properties").and_then(|p| p.get(crate::names::TAG_UID)).is_some()
}

/// The catalog entries by CEP collection name.
pub type Catalogue = BTreeMap<String, Vec<CatalogEntry>>;

/// Whether `capabilities` say a Machine stop may be forced (MachineStopForce, true when it has no value).
pub fn stop_force(capabilities: &[Capability]) -> bool {
    capabilities.iter().any(|c| {
        c.resource == "Machine"
            && c.name == "MachineStopForce"
            && c.value.as_deref().is_none_or(|v| v.trim().eq_ignore_ascii_case("true"))
    })
}

/// The capabilities of the provider's ResourceMetadata (the CEP's `resourceMetadata` collection),
/// at most [`MAX_CAPABILITIES`]; none when the provider offers no ResourceMetadata.
pub async fn read_capabilities(client: &CimiClient) -> Result<Vec<Capability>, CimiError> {
    let discovery = client.discovery().await?;
    let Some(url) = discovery.collections.get("resourceMetadata") else { return Ok(Vec::new()) };
    let page = client.list_page_value(url, &Query::new(), "").await?;
    Ok(capabilities_of(&crate::controller::resource::reads::entries(&page)))
}

/// The capabilities listed by ResourceMetadata documents, capped at [`MAX_CAPABILITIES`]. The
/// resource is the document's name (else the last segment of its typeURI); an absent value means
/// boolean true and stays absent.
pub fn capabilities_of(metadata: &[Value]) -> Vec<Capability> {
    let mut out = Vec::new();
    for doc in metadata {
        let resource = doc
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| text(doc, "typeURI").and_then(|t| t.rsplit('/').next()))
            .unwrap_or_default();
        for capability in doc.get("capabilities").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = text(capability, "name") else { continue };
            let value = match capability.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            out.push(Capability { resource: resource.to_string(), name: name.to_string(), value });
            if out.len() == MAX_CAPABILITIES {
                return out;
            }
        }
    }
    out
}

/// The bounded catalog of status from the one read, with each collection's full size (`counts`, the
/// provider's count where it stated one).
pub fn bounded_catalog(full: &BTreeMap<String, Vec<CatalogEntry>>, counts: &BTreeMap<String, u64>) -> Catalog {
    let mut catalog = Catalog::default();
    for (name, entries) in full {
        let count = counts.get(name).copied().unwrap_or(0).max(entries.len() as u64);
        catalog.counts.insert(name.clone(), i64::try_from(count).unwrap_or(i64::MAX));
        if count > CATALOG_ENTRIES_PER_COLLECTION as u64 {
            catalog.truncated = true;
        }
        let capped: Vec<CatalogEntry> = entries.iter().take(CATALOG_ENTRIES_PER_COLLECTION).cloned().collect();
        let slot = match name.as_str() {
            "machineConfigs" => &mut catalog.machine_configs,
            "machineImages" => &mut catalog.machine_images,
            "machineTemplates" => &mut catalog.machine_templates,
            "volumeConfigs" => &mut catalog.volume_configs,
            "volumeImages" => &mut catalog.volume_images,
            "volumeTemplates" => &mut catalog.volume_templates,
            "networkConfigs" => &mut catalog.network_configs,
            "networkTemplates" => &mut catalog.network_templates,
            "systemTemplates" => &mut catalog.system_templates,
            _ => continue,
        };
        *slot = capped;
    }
    catalog
}

/// The in-memory catalog a status catalog stands for, when it holds every entry (not truncated): what a shard that
/// does not probe the provider resolves names against. `None` when truncated: that shard reads the catalog itself.
pub fn catalogue_from_status(catalog: &Catalog) -> Option<Catalogue> {
    if catalog.truncated {
        return None;
    }
    let collection = |name: &str| match name {
        "machineConfigs" => &catalog.machine_configs,
        "machineImages" => &catalog.machine_images,
        "machineTemplates" => &catalog.machine_templates,
        "volumeConfigs" => &catalog.volume_configs,
        "volumeImages" => &catalog.volume_images,
        "volumeTemplates" => &catalog.volume_templates,
        "networkConfigs" => &catalog.network_configs,
        "networkTemplates" => &catalog.network_templates,
        _ => &catalog.system_templates,
    };
    Some(
        CATALOG_COLLECTIONS
            .iter()
            .filter(|name| catalog.counts.contains_key(**name))
            .map(|name| (name.to_string(), collection(name).clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_catalog_that_holds_every_entry_gives_back_the_catalog_it_came_from() {
        let entry = |n: usize| CatalogEntry { name: Some(format!("e{n}")), href: format!("http://p/c/{n}") };
        let full: Catalogue = [
            ("machineConfigs".to_string(), (0..3).map(entry).collect()),
            ("machineImages".to_string(), vec![entry(9)]),
            ("systemTemplates".to_string(), Vec::new()),
        ]
        .into();
        let counts = BTreeMap::from([("machineConfigs".to_string(), 3)]);
        assert_eq!(catalogue_from_status(&bounded_catalog(&full, &counts)), Some(full));
        let many: Catalogue =
            [("volumeImages".to_string(), (0..CATALOG_ENTRIES_PER_COLLECTION + 1).map(entry).collect())].into();
        assert_eq!(catalogue_from_status(&bounded_catalog(&many, &BTreeMap::new())), None, "truncated: read it");
    }

    #[test]
    fn images_made_by_objects_are_not_catalog_entries() {
        assert!(owned_by_an_object(&serde_json::json!({"name": "golden", "properties": {"cimi.dev/uid": "u"}})));
        assert!(!owned_by_an_object(&serde_json::json!({"name": "Linux SUSE", "properties": {"owner": "ops"}})));
        assert!(!owned_by_an_object(&serde_json::json!({"name": "Linux SUSE"})));
    }

    #[test]
    fn a_forced_stop_is_offered_by_machine_stop_force_unless_its_value_says_false() {
        let cap = |resource: &str, name: &str, value: Option<&str>| Capability {
            resource: resource.into(),
            name: name.into(),
            value: value.map(str::to_string),
        };
        assert!(stop_force(&[cap("Machine", "MachineStopForce", None)]));
        assert!(stop_force(&[cap("Machine", "MachineStopForce", Some("true"))]));
        assert!(!stop_force(&[cap("Machine", "MachineStopForce", Some("false"))]));
        assert!(!stop_force(&[cap("Machine", "MachineStopForceDefault", None)]), "the default is another capability");
        assert!(!stop_force(&[cap("System", "MachineStopForce", None)]));
        assert!(!stop_force(&[]));
    }

    #[test]
    fn capabilities_come_from_resource_metadata_and_are_capped() {
        let docs = vec![
            serde_json::json!({"name": "Machine", "capabilities": [
                {"name": "InitialStates", "value": "STARTED,STOPPED"},
                {"name": "MachineStopForce"},
                {"value": "no name"}
            ]}),
            serde_json::json!({"typeURI": "http://schemas.dmtf.org/cimi/1/Job", "capabilities": [
                {"name": "JobRetention", "value": 60}
            ]}),
        ];
        let caps = capabilities_of(&docs);
        assert_eq!(caps.len(), 3);
        assert_eq!(
            caps[0],
            Capability {
                resource: "Machine".into(),
                name: "InitialStates".into(),
                value: Some("STARTED,STOPPED".into())
            }
        );
        assert_eq!(caps[1].value, None, "an absent value means true and stays absent");
        assert_eq!((caps[2].resource.as_str(), caps[2].value.as_deref()), ("Job", Some("60")));
        let many: Vec<Value> = (0..3)
            .map(|i| serde_json::json!({"name": format!("R{i}"), "capabilities": (0..60).map(|j| serde_json::json!({"name": format!("c{j}")})).collect::<Vec<_>>()}))
            .collect();
        assert_eq!(capabilities_of(&many).len(), MAX_CAPABILITIES);
    }

    #[test]
    fn the_status_catalog_is_capped_but_counts_are_complete() {
        let mut full = BTreeMap::new();
        let many: Vec<CatalogEntry> = (0..60)
            .map(|i| CatalogEntry { name: Some(format!("img{i}")), href: format!("http://p/img/{i}") })
            .collect();
        full.insert("machineImages".to_string(), many);
        full.insert("machineConfigs".to_string(), vec![CatalogEntry { name: Some("small".into()), href: "h".into() }]);
        let mut counts = BTreeMap::new();
        counts.insert("machineConfigs".to_string(), 3);
        let catalog = bounded_catalog(&full, &counts);
        assert_eq!(catalog.machine_images.len(), CATALOG_ENTRIES_PER_COLLECTION);
        assert_eq!(catalog.counts["machineImages"], 60);
        assert_eq!(catalog.machine_configs.len(), 1);
        assert_eq!(catalog.counts["machineConfigs"], 3, "the provider's count, though one entry was read");
        assert!(catalog.truncated);
    }
}
