//! Observing a machine: the provider machine and its sub-collections (network interfaces with their
//! addresses, attached volumes) mirrored into status, and the related objects the spec names (CimiVolumes and
//! CimiNetworks, from the controllers' stores). Everything the plan needs is read here, so that building the
//! plan's input does no I/O.

use kube::ResourceExt as _;
use serde_json::{Value, json};

use super::plan::{AttachedVolume, WantedNetwork, WantedVolume};
use crate::api::conditions::READY;
use crate::api::machine::{CimiMachineStatus, ObservedAttachment};
use crate::api::quantity::format_memory_kib;
use crate::api::{CimiMachine, CimiNetwork, CimiVolume};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::context::Context;
use crate::controller::outcome::Problem;
use crate::controller::resource::reads::entries;
use crate::controller::resource::reads::{int, ref_href, text};

/// The CloudEntryPoint collection of machines.
pub const COLLECTION: &str = "machines";

/// What the spec's volumes and networks are on the provider now, from their objects.
#[derive(Debug, Default)]
pub struct Related {
    /// The attachments the spec wants, of volumes that are Ready.
    pub wanted_volumes: Vec<WantedVolume>,
    /// The provider hrefs of every CimiVolume of the namespace (what Kubernetes knows).
    pub known_volumes: Vec<String>,
    /// The interfaces the spec wants, on networks that are Ready.
    pub wanted_networks: Vec<WantedNetwork>,
    /// The provider hrefs of every CimiNetwork of the namespace.
    pub known_networks: Vec<String>,
    /// What the machine waits for (volumes or networks that do not exist or are not Ready), if anything.
    pub waiting_for: Option<String>,
}

/// The spec's volumes and networks as their objects say now (read from the controllers' stores).
pub async fn related(ctx: &Context, machine: &CimiMachine) -> Result<Related, Problem> {
    let (wanted_volumes, known_volumes, volumes_waiting) = wanted_volumes(ctx, machine).await?;
    let (wanted_networks, known_networks, networks_waiting) = network_refs(ctx, machine).await?;
    let waiting_for = match (volumes_waiting, networks_waiting) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    Ok(Related { wanted_volumes, known_volumes, wanted_networks, known_networks, waiting_for })
}

/// The provider networks the machine's interfaces are on, as absolute hrefs (from the interfaces just mirrored
/// into status: no second read of the collection).
pub async fn interface_networks(client: &CimiClient, status: &CimiMachineStatus) -> Result<Vec<String>, CimiError> {
    let mut out = Vec::new();
    for nic in &status.network_interfaces {
        if let Some(href) = &nic.href {
            out.push(client.resolve(href).await?.to_string());
        }
    }
    Ok(out)
}

/// The volumes the spec wants attached, with their provider hrefs; the hrefs of every CimiVolume of
/// the namespace (what Kubernetes knows); and which volumes are not ready yet, by name.
pub async fn wanted_volumes(
    ctx: &Context,
    machine: &CimiMachine,
) -> Result<(Vec<WantedVolume>, Vec<String>, Option<String>), Problem> {
    let all = ctx.objects::<CimiVolume>(machine.namespace().as_deref()).await?;
    let known: Vec<String> = all.iter().filter_map(|v| v.status.as_ref().and_then(|s| s.common.id.clone())).collect();
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for v in &machine.spec.volumes {
        let name = &v.volume_ref.name;
        match all.iter().find(|vol| vol.name_any() == *name) {
            Some(vol) => match vol.status.as_ref().and_then(|s| {
                crate::api::conditions::is_true(&s.common.conditions, READY).then(|| s.common.id.clone()).flatten()
            }) {
                Some(href) => {
                    out.push(WantedVolume { name: name.clone(), href, initial_location: v.initial_location.clone() })
                }
                None => waiting.push(format!("CimiVolume {name} is not Ready")),
            },
            None => waiting.push(format!("CimiVolume {name} does not exist")),
        }
    }
    Ok((out, known, (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))))
}

/// The networks the spec wants interfaces on, with their provider hrefs; the hrefs of every
/// CimiNetwork of the namespace (what Kubernetes knows); and which networks are not ready yet.
pub async fn network_refs(
    ctx: &Context,
    machine: &CimiMachine,
) -> Result<(Vec<WantedNetwork>, Vec<String>, Option<String>), Problem> {
    let all = ctx.objects::<CimiNetwork>(machine.namespace().as_deref()).await?;
    let known: Vec<String> = all.iter().filter_map(|n| n.status.as_ref().and_then(|s| s.common.id.clone())).collect();
    let mut out = Vec::new();
    let mut waiting = Vec::new();
    for n in &machine.spec.network_interfaces {
        let name = &n.network_ref.name;
        match all.iter().find(|net| net.name_any() == *name) {
            Some(net) => match net.status.as_ref().and_then(|s| {
                crate::api::conditions::is_true(&s.common.conditions, READY).then(|| s.common.id.clone()).flatten()
            }) {
                Some(href) => out.push(WantedNetwork { name: name.clone(), href }),
                None => waiting.push(format!("CimiNetwork {name} is not Ready")),
            },
            None => waiting.push(format!("CimiNetwork {name} does not exist")),
        }
    }
    Ok((out, known, (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", ")))))
}

/// The machine's interface entry on `network` (what a disconnect deletes), if it has one.
pub async fn interface_entry(client: &CimiClient, machine: &Value, network: &str) -> Result<Option<Value>, CimiError> {
    let Some(href) = ref_href(machine, "networkInterfaces") else {
        return Ok(None);
    };
    let url = client.resolve(href).await?;
    let page = client.list_page_value(&url, &Default::default(), "MachineNetworkInterface").await?;
    for e in entries(&page) {
        let Some(on) = ref_href(&e, "network") else { continue };
        if client.resolve(on).await?.as_str() == network {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Mirrors the provider machine into status: state, cpu, memory, addresses, interfaces, volumes; returns
/// the volume attachments for the plan. The sub-collections (interfaces, their addresses, volumes) are
/// read when the object is not `steady`, when the machine's `updated` changed, or once per meter
/// interval; otherwise the observer's last reading is reused.
pub async fn observe_into_status(
    ctx: &Context,
    status_provider: &str,
    client: &CimiClient,
    m: &Value,
    status: &mut CimiMachineStatus,
    steady: bool,
) -> Result<Vec<AttachedVolume>, CimiError> {
    status.common.state = text(m, "state").map(str::to_string);
    status.cpu = int(m, "cpu");
    status.memory = int(m, "memory");
    status.memory_display = status.memory.map(format_memory_kib);
    let href = status.common.id.clone().unwrap_or_default();
    let updated = text(m, "updated");
    let reading = match ctx.observer.sub_reading(status_provider, &href, updated).await.filter(|_| steady) {
        Some(r) => r,
        None => {
            let r = read_sub_collections(client, m).await?;
            ctx.observer.store_sub_reading(&href, updated, r.clone());
            r
        }
    };
    let list = |k: &str| -> Vec<ObservedAttachment> {
        reading.get(k).cloned().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    };
    status.network_interfaces = list("networkInterfaces");
    status.volumes = list("volumes");
    status.addresses = status.network_interfaces.iter().flat_map(|n| n.addresses.iter().cloned()).collect();
    status.ip = status.addresses.first().cloned();
    let attached = reading
        .get("attached")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(AttachedVolume {
                entry: a.get("entry")?.as_str()?.to_string(),
                volume: a.get("volume")?.as_str()?.to_string(),
            })
        })
        .collect();
    Ok(attached)
}

/// The most network interfaces, addresses per interface, and attached volumes read of one machine: what a
/// provider serves beyond is not read (a hostile provider cannot make one machine cost unbounded requests).
const MAX_SUB_ENTRIES: usize = 64;

/// Reads a machine's network interfaces (with their addresses) and attached volumes, as JSON:
/// `{networkInterfaces: [ObservedAttachment], volumes: [ObservedAttachment], attached: [{entry, volume}]}`.
pub async fn read_sub_collections(client: &CimiClient, m: &Value) -> Result<Value, CimiError> {
    let mut interfaces = Vec::new();
    if let Some(href) = ref_href(m, "networkInterfaces") {
        let page = client
            .list_page_value(&client.resolve(href).await?, &Default::default(), "MachineNetworkInterface")
            .await?;
        for nic in entries(&page).into_iter().take(MAX_SUB_ENTRIES) {
            let mut attachment = ObservedAttachment {
                href: ref_href(&nic, "network").map(str::to_string),
                state: text(&nic, "state").map(str::to_string),
                ..Default::default()
            };
            if let Some(ah) = ref_href(&nic, "addresses") {
                let page = client
                    .list_page_value(&client.resolve(ah).await?, &Default::default(), "MachineNetworkInterfaceAddress")
                    .await?;
                for entry in entries(&page).into_iter().take(MAX_SUB_ENTRIES) {
                    if let Some(addr) = ref_href(&entry, "address") {
                        let address = client.get_value(&client.resolve(addr).await?).await?;
                        if let Some(ip) = text(&address, "ip") {
                            attachment.addresses.push(ip.to_string());
                        }
                    }
                }
            }
            interfaces.push(attachment);
        }
    }
    let mut volumes = Vec::new();
    let mut attached = Vec::new();
    if let Some(href) = ref_href(m, "volumes") {
        let page = client.list_page_value(&client.resolve(href).await?, &Default::default(), "MachineVolume").await?;
        for e in entries(&page).into_iter().take(MAX_SUB_ENTRIES) {
            let volume = ref_href(&e, "volume");
            volumes.push(ObservedAttachment {
                href: volume.map(str::to_string),
                initial_location: text(&e, "initialLocation").map(str::to_string),
                ..Default::default()
            });
            if let (Some(id), Some(volume)) = (text(&e, "id"), volume) {
                attached.push(json!({
                    "entry": client.resolve(id).await?.to_string(),
                    "volume": client.resolve(volume).await?.to_string(),
                }));
            }
        }
    }
    Ok(json!({"networkInterfaces": interfaces, "volumes": volumes, "attached": attached}))
}
