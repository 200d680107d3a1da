//! Observing a machine: the provider machine and its sub-collections (network interfaces with their
//! addresses, attached volumes) mirrored into status, and the related objects the spec names (CimiVolumes and
//! CimiNetworks, from the controllers' stores). Everything the plan needs is read here, so that building the
//! plan's input does no I/O.

use kube::ResourceExt as _;
use serde_json::Value;

use super::plan::{VolumeAttachment, WantedNetwork, WantedVolume};
use crate::api::conditions::{READY, is_true};
use crate::api::machine::CimiMachineStatus;
use crate::api::managed::Managed;
use crate::api::quantity::memory_quantity;
use crate::api::{CimiMachine, CimiNetwork, CimiVolume};
use crate::cimi::model::ResourceState;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::context::Context;
use crate::controller::outcome::Problem;
use crate::controller::resource::jobs::job_running;
use crate::controller::resource::reads::{entries, int, ref_href, text};

/// The CloudEntryPoint collection of machines.
pub const COLLECTION: &str = "machines";

/// What the spec's volumes and networks are on the provider now, from their objects.
#[derive(Debug, Default)]
pub struct Related {
    /// The attachments the spec wants, of volumes that are Ready.
    pub wanted_volumes: Vec<WantedVolume>,
    /// The provider hrefs of the namespace's CimiVolumes that the spec does not name: an attachment of one of
    /// these is the operator's to remove. A volume the spec names stays attached while it is not Ready (a
    /// provider blip or a re-adoption must never detach a disk).
    pub removable_volumes: Vec<String>,
    /// The interfaces the spec wants, on networks that are Ready.
    pub wanted_networks: Vec<WantedNetwork>,
    /// The provider hrefs of the namespace's CimiNetworks that the spec does not name.
    pub removable_networks: Vec<String>,
    /// What the machine waits for (volumes or networks that do not exist or are not Ready), if anything.
    pub waiting_for: Option<String>,
}

/// The spec's volumes and networks as their objects say now (read from the controllers' stores).
pub async fn related(ctx: &Context, machine: &CimiMachine) -> Result<Related, Problem> {
    let namespace = machine.namespace();
    let volumes = ctx.objects::<CimiVolume>(namespace.as_deref()).await?;
    let networks = ctx.objects::<CimiNetwork>(namespace.as_deref()).await?;
    let volume_names = machine.spec.volumes.iter().map(|v| v.volume_ref.name.as_str());
    let network_names = machine.spec.network_interfaces.iter().map(|n| n.network_ref.name.as_str());
    let volumes = named(&volumes, volume_names);
    let networks = named(&networks, network_names);
    let wanted_volumes = machine
        .spec
        .volumes
        .iter()
        .zip(&volumes.ready)
        .filter_map(|(v, href)| {
            let href = href.clone()?;
            Some(WantedVolume { name: v.volume_ref.name.clone(), href, initial_location: v.initial_location.clone() })
        })
        .collect();
    let wanted_networks = machine
        .spec
        .network_interfaces
        .iter()
        .zip(&networks.ready)
        .filter_map(|(n, href)| Some(WantedNetwork { name: n.network_ref.name.clone(), href: href.clone()? }))
        .collect();
    let waiting: Vec<String> = volumes.waiting.into_iter().chain(networks.waiting).collect();
    Ok(Related {
        wanted_volumes,
        removable_volumes: volumes.removable,
        wanted_networks,
        removable_networks: networks.removable,
        waiting_for: (!waiting.is_empty()).then(|| format!("waiting for {}", waiting.join(", "))),
    })
}

/// The objects a machine's spec names, of one kind, as the namespace's objects say now.
struct Named {
    /// For each name, in the spec's order, the provider href if the object is Ready.
    ready: Vec<Option<String>>,
    /// The provider hrefs of the namespace's objects that the spec does not name.
    removable: Vec<String>,
    /// What is missing or not Ready ("CimiVolume data is not Ready").
    waiting: Vec<String>,
}

fn named<'a, K: Managed>(all: &[std::sync::Arc<K>], names: impl Iterator<Item = &'a str>) -> Named {
    let kind = K::kind(&());
    let names: Vec<&str> = names.collect();
    let mut out = Named { ready: Vec::new(), removable: Vec::new(), waiting: Vec::new() };
    for object in all {
        if let Some(id) = object.managed_status().and_then(|s| s.id.clone())
            && !names.contains(&object.name_any().as_str())
        {
            out.removable.push(id);
        }
    }
    for name in names {
        let href = match all.iter().find(|o| o.name_any() == name) {
            None => {
                out.waiting.push(format!("{kind} {name} does not exist"));
                None
            }
            Some(o) => {
                let href = o.managed_status().filter(|s| is_true(&s.conditions, READY)).and_then(|s| s.id.clone());
                if href.is_none() {
                    out.waiting.push(format!("{kind} {name} is not Ready"));
                }
                href
            }
        };
        out.ready.push(href);
    }
    out
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
) -> Result<Vec<VolumeAttachment>, CimiError> {
    status.common.state = text(m, "state").map(str::to_string);
    status.cpu = int(m, "cpu");
    status.memory = int(m, "memory").map(memory_quantity);
    // While a Job runs or the machine is on its way between states, the plan only waits: its interfaces and
    // volumes are read once it has settled, not on every pass in between.
    let busy = job_running(status.common.job.as_ref())
        || ResourceState::parse(status.common.state.as_deref().unwrap_or_default()).is_transient();
    if busy {
        return Ok(Vec::new());
    }
    let href = status.common.id.clone().unwrap_or_default();
    let updated = text(m, "updated");
    let reading = match ctx.observer.sub_reading(status_provider, &href, updated).await.filter(|_| steady) {
        Some(r) => r,
        None => {
            let r = crate::controller::observer::read_sub_collections(client, m).await?;
            ctx.observer.store_sub_reading(&href, updated, r.clone());
            r
        }
    };
    let list = |k: &str| reading.get(k).cloned().unwrap_or_default();
    status.network_interfaces = serde_json::from_value(list("networkInterfaces")).unwrap_or_default();
    status.volumes = serde_json::from_value(list("volumes")).unwrap_or_default();
    status.addresses = status.network_interfaces.iter().flat_map(|n| n.addresses.iter().cloned()).collect();
    status.ip = status.addresses.first().cloned();
    let attached = reading
        .get("attached")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(VolumeAttachment {
                entry: a.get("entry")?.as_str()?.to_string(),
                volume: a.get("volume")?.as_str()?.to_string(),
            })
        })
        .collect();
    Ok(attached)
}

/// Names, in status, the attached volumes and interfaces that the spec's Ready CimiVolumes and CimiNetworks
/// stand for (`status.volumes[].name`, `status.networkInterfaces[].name`), matching the provider's hrefs as
/// written or resolved against its base URI; an attachment no object of the spec stands for stays unnamed.
pub async fn name_attachments(client: &CimiClient, status: &mut CimiMachineStatus, related: &Related) {
    let hrefs = status.volumes.iter().filter_map(|v| v.href.clone());
    let hrefs: Vec<String> = hrefs.chain(status.network_interfaces.iter().filter_map(|n| n.href.clone())).collect();
    let mut resolved = std::collections::BTreeMap::new();
    for href in hrefs {
        if let Ok(url) = client.resolve(&href).await {
            resolved.insert(href, url.to_string());
        }
    }
    apply_names(status, related, &resolved);
}

fn apply_names(
    status: &mut CimiMachineStatus,
    related: &Related,
    resolved: &std::collections::BTreeMap<String, String>,
) {
    fn absolute(href: Option<&str>, resolved: &std::collections::BTreeMap<String, String>) -> Option<String> {
        href.map(|h| resolved.get(h).cloned().unwrap_or_else(|| h.to_string()))
    }
    for v in &mut status.volumes {
        let href = absolute(v.href.as_deref(), resolved);
        v.name = related.wanted_volumes.iter().find(|w| Some(&w.href) == href.as_ref()).map(|w| w.name.clone());
    }
    for n in &mut status.network_interfaces {
        let href = absolute(n.href.as_deref(), resolved);
        n.name = related.wanted_networks.iter().find(|w| Some(&w.href) == href.as_ref()).map(|w| w.name.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::api::common::ManagedStatus;
    use crate::controller::machine::input::plan_input;
    use crate::controller::machine::plan::{MachineStep, plan_machine};

    fn volume(name: &str, id: &str, ready: &str) -> Arc<CimiVolume> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiVolume",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"providerRef": {"name": "p"}, "template": {"volumeConfig": {"name": "small"}}},
                "status": {"id": id, "conditions": [{"type": "Ready", "status": ready, "reason": "Test", "message": "",
                                                     "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
            }))
            .expect("volume"),
        )
    }

    #[test]
    fn a_named_volume_that_is_not_ready_stays_attached_and_an_unnamed_one_is_detached() {
        let all =
            vec![volume("data", "v/data", "False"), volume("old", "v/old", "True"), volume("log", "v/log", "True")];
        let volumes = named(&all, ["data", "log", "gone"].into_iter());
        assert_eq!(volumes.ready, [None, Some("v/log".to_string()), None]);
        assert_eq!(volumes.removable, ["v/old"]);
        assert_eq!(volumes.waiting, ["CimiVolume data is not Ready", "CimiVolume gone does not exist"]);

        let machine: CimiMachine = serde_json::from_value(json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine",
            "metadata": {"name": "web-1", "namespace": "team"},
            "spec": {"providerRef": {"name": "p"}, "name": "web-1",
                     "template": {"machineConfig": {"name": "small"}, "machineImage": {"name": "img"}},
                     "volumes": [{"volumeRef": {"name": "data"}}, {"volumeRef": {"name": "log"}}]}
        }))
        .expect("machine");
        let related = Related {
            wanted_volumes: vec![WantedVolume { name: "log".into(), href: "v/log".into(), initial_location: None }],
            removable_volumes: volumes.removable,
            ..Related::default()
        };
        let current = json!({"name": "web-1", "state": "STARTED", "operations": []});
        let plan = |attached: &[&str]| {
            let attached: Vec<VolumeAttachment> = attached
                .iter()
                .map(|v| VolumeAttachment { entry: format!("{v}/entry"), volume: v.to_string() })
                .collect();
            let input =
                plan_input(&machine, &BTreeMap::new(), &current, &ManagedStatus::default(), &attached, &[], &related);
            plan_machine(&input)
        };
        match plan(&["v/data", "v/old", "v/log"]) {
            MachineStep::Detach(a) => assert_eq!(a.volume, "v/old"),
            other => panic!("the unnamed volume is detached first: {other:?}"),
        }
        match plan(&["v/data"]) {
            MachineStep::Attach(w) => assert_eq!(w.href, "v/log"),
            other => panic!("the Ready named volume is attached: {other:?}"),
        }
        assert!(
            matches!(plan(&["v/data", "v/log"]), MachineStep::InSync),
            "the named volume that is not Ready stays attached"
        );
    }

    #[test]
    fn attachments_are_named_after_the_objects_of_the_spec() {
        use crate::api::machine::{AttachedVolume, NetworkInterface};
        let mut status = CimiMachineStatus {
            volumes: vec![
                AttachedVolume { href: Some("volumes/1".into()), ..Default::default() },
                AttachedVolume { href: Some("http://p/volumes/2".into()), ..Default::default() },
            ],
            network_interfaces: vec![NetworkInterface {
                href: Some("http://p/networks/7".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let related = Related {
            wanted_volumes: vec![WantedVolume {
                name: "data".into(),
                href: "http://p/volumes/1".into(),
                initial_location: None,
            }],
            removable_volumes: vec![],
            wanted_networks: vec![WantedNetwork { name: "lan".into(), href: "http://p/networks/7".into() }],
            removable_networks: vec![],
            waiting_for: None,
        };
        let resolved = BTreeMap::from([("volumes/1".to_string(), "http://p/volumes/1".to_string())]);
        apply_names(&mut status, &related, &resolved);
        let names: Vec<Option<&str>> = status.volumes.iter().map(|v| v.name.as_deref()).collect();
        assert_eq!(
            names,
            [Some("data"), None],
            "a relative href is resolved; a volume of no spec object stays unnamed"
        );
        assert_eq!(status.network_interfaces[0].name.as_deref(), Some("lan"));
    }
}
