//! `kubectl cimi catalog PROVIDER`: the configurations, images and templates a provider offers. By default
//! from the CimiProvider's status (no provider credentials needed), which keeps at most
//! [`CATALOG_ENTRIES_PER_COLLECTION`] entries per collection and says so; `--live` reads every entry from the
//! provider with the credentials of its Secret.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::cli::CatalogArgs;
use super::error::PluginError;
use super::kubeconn::Kube;
use super::output::{Cell, Printer, Table};
use crate::api::provider::{CATALOG_ENTRIES_PER_COLLECTION, Catalog, CatalogEntry};
use crate::cimi::model::{
    MachineConfiguration, MachineImage, MachineTemplate, NetworkConfiguration, NetworkTemplate, Resource,
    SystemTemplate, VolumeConfiguration, VolumeTemplate,
};
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::provider::catalog::CATALOG_COLLECTIONS;

/// The catalog as printed.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogView {
    /// The CimiProvider.
    pub provider: String,
    /// `status` (the CimiProvider's status) or `provider` (read live).
    pub source: String,
    /// When the status was written (for `status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probed: Option<String>,
    /// Each collection, by CloudEntryPoint name.
    pub collections: BTreeMap<String, CollectionView>,
}

/// One catalog collection.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionView {
    /// How many entries the provider has.
    pub count: i64,
    /// True when `entries` holds only part of them.
    pub partial: bool,
    /// The entries shown.
    pub entries: Vec<CatalogEntry>,
}

/// The collections of a status catalog, in the order of [`CATALOG_COLLECTIONS`].
pub fn from_status(provider: &str, catalog: &Catalog, probed: Option<String>) -> CatalogView {
    let lists: [(&str, &Vec<CatalogEntry>); 9] = [
        ("machineConfigs", &catalog.machine_configs),
        ("machineImages", &catalog.machine_images),
        ("machineTemplates", &catalog.machine_templates),
        ("volumeConfigs", &catalog.volume_configs),
        ("volumeImages", &catalog.volume_images),
        ("volumeTemplates", &catalog.volume_templates),
        ("networkConfigs", &catalog.network_configs),
        ("networkTemplates", &catalog.network_templates),
        ("systemTemplates", &catalog.system_templates),
    ];
    let mut collections = BTreeMap::new();
    for (name, entries) in lists {
        let count = catalog.counts.get(name).copied().unwrap_or(entries.len() as i64);
        if count == 0 && entries.is_empty() && !catalog.counts.contains_key(name) {
            continue;
        }
        collections.insert(
            name.to_string(),
            CollectionView { count, partial: (entries.len() as i64) < count, entries: entries.clone() },
        );
    }
    CatalogView { provider: provider.to_string(), source: "status".into(), probed, collections }
}

/// The catalog as text: one table of every entry, then what is only partly shown and how to see it all.
pub fn render(view: &CatalogView, printer: &Printer) -> String {
    let mut out = String::new();
    let mut t = Table::new(["collection", "name", "href"]);
    for (name, c) in &view.collections {
        for e in &c.entries {
            t.row(vec![
                Cell::plain(name),
                Cell::plain(e.name.clone().unwrap_or_else(|| "-".into())),
                Cell::plain(&e.href),
            ]);
        }
    }
    if t.is_empty() {
        out.push_str(&format!("cimiprovider/{} lists no catalog entries", view.provider));
        if view.source == "status" {
            out.push_str(" in its status (has it been probed? see `kubectl cimi status`)");
        }
        out.push('\n');
    } else {
        out.push_str(&t.render(printer.colour));
    }
    let partial: Vec<String> = view
        .collections
        .iter()
        .filter(|(_, c)| c.partial)
        .map(|(name, c)| format!("{name}: {} of {}", c.entries.len(), c.count))
        .collect();
    if !partial.is_empty() {
        out.push_str(&format!(
            "\nPartial: the CimiProvider's status keeps at most {CATALOG_ENTRIES_PER_COLLECTION} entries per \
             collection ({}).\nSee every entry with `kubectl cimi catalog {} --live` (reads the provider with the \
             credentials of its Secret).\n",
            partial.join(", "),
            view.provider
        ));
    }
    out
}

/// Every entry of one catalog collection, read from the provider.
async fn live_collection<T: Resource + DeserializeOwned + Serialize>(
    client: &CimiClient,
    name: &str,
) -> Result<CollectionView, CimiError> {
    let listing = client.list_all::<T>(name, &Query::new()).await?;
    let mut entries = Vec::new();
    for item in &listing.entries {
        let v = serde_json::to_value(item).unwrap_or(Value::Null);
        let Some(id) = v.get("id").and_then(Value::as_str) else { continue };
        let href = client.resolve(id).await.map(|u| u.to_string()).unwrap_or_else(|_| id.to_string());
        entries.push(CatalogEntry { name: v.get("name").and_then(Value::as_str).map(str::to_string), href });
    }
    let count = listing.count.map_or(entries.len() as i64, |c| i64::try_from(c).unwrap_or(i64::MAX));
    Ok(CollectionView { count, partial: listing.truncated, entries })
}

/// The whole catalog, read from the provider (collections it does not offer are left out).
pub async fn live(client: &CimiClient, provider: &str, only: Option<&str>) -> Result<CatalogView, PluginError> {
    let discovery = client.discovery().await.map_err(|e| PluginError::cimi(&format!("cimiprovider/{provider}"), e))?;
    let mut collections = BTreeMap::new();
    for name in CATALOG_COLLECTIONS {
        if only.is_some_and(|o| o != *name) || !discovery.supports(name) {
            continue;
        }
        let read = match *name {
            "machineConfigs" => live_collection::<MachineConfiguration>(client, name).await,
            "machineImages" => live_collection::<MachineImage>(client, name).await,
            "machineTemplates" => live_collection::<MachineTemplate>(client, name).await,
            "volumeConfigs" => live_collection::<VolumeConfiguration>(client, name).await,
            "volumeTemplates" => live_collection::<VolumeTemplate>(client, name).await,
            "networkConfigs" => live_collection::<NetworkConfiguration>(client, name).await,
            "networkTemplates" => live_collection::<NetworkTemplate>(client, name).await,
            "systemTemplates" => live_collection::<SystemTemplate>(client, name).await,
            _ => continue,
        };
        let view = read.map_err(|e| PluginError::cimi(&format!("read {name} of cimiprovider/{provider}"), e))?;
        collections.insert(name.to_string(), view);
    }
    Ok(CatalogView { provider: provider.to_string(), source: "provider".into(), probed: None, collections })
}

/// Runs `catalog`.
pub async fn run(kube: &Kube, args: &CatalogArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    if let Some(c) = &args.collection
        && !CATALOG_COLLECTIONS.contains(&c.as_str())
    {
        return Err(PluginError::Usage(format!(
            "unknown catalog collection {c:?}: one of {}",
            CATALOG_COLLECTIONS.join(", ")
        )));
    }
    let provider = super::objects::get_provider(kube, &args.provider).await?;
    let mut view = if args.live {
        let client = super::connect::connect(&kube.client, &provider).await?;
        live(&client, &args.provider, args.collection.as_deref()).await?
    } else {
        let status = provider.status.clone().unwrap_or_default();
        from_status(
            &args.provider,
            &status.catalog.unwrap_or_default(),
            status.last_probe_time.as_ref().map(super::output::age),
        )
    };
    if let Some(only) = &args.collection {
        view.collections.retain(|name, _| name == only);
    }
    if printer.is_document() {
        print!("{}", printer.document(&view)?);
    } else {
        print!("{}", render(&view, printer));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::output::OutputFormat;

    fn entry(name: &str) -> CatalogEntry {
        CatalogEntry { name: Some(name.into()), href: format!("http://p/x/{name}") }
    }

    #[test]
    fn a_capped_status_catalog_says_it_is_partial_and_how_to_see_the_rest() {
        let mut catalog = Catalog {
            machine_configs: vec![entry("small"), entry("large")],
            machine_images: (0..CATALOG_ENTRIES_PER_COLLECTION).map(|i| entry(&format!("img-{i}"))).collect(),
            truncated: true,
            ..Default::default()
        };
        catalog.counts.insert("machineConfigs".into(), 2);
        catalog.counts.insert("machineImages".into(), 75);
        catalog.counts.insert("volumeConfigs".into(), 0);
        let view = from_status("lab", &catalog, None);
        assert!(!view.collections["machineConfigs"].partial);
        assert!(view.collections["machineImages"].partial);
        assert_eq!(view.collections["machineImages"].count, 75);
        assert!(view.collections.contains_key("volumeConfigs"), "an empty collection the provider has is shown");
        assert!(!view.collections.contains_key("systemTemplates"), "one it does not have is not");
        let text = render(&view, &Printer { format: OutputFormat::Table, colour: false });
        assert!(text.contains("machineConfigs   small"), "{text}");
        assert!(text.contains("machineImages: 50 of 75"), "{text}");
        assert!(text.contains("kubectl cimi catalog lab --live"), "{text}");
        let whole = from_status("lab", &Catalog { machine_configs: vec![entry("small")], ..Default::default() }, None);
        let text = render(&whole, &Printer { format: OutputFormat::Table, colour: false });
        assert!(!text.contains("Partial"), "{text}");
    }
}
