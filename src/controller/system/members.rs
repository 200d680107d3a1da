//! The members of a provider system, read into status: each machine, volume and network with its name,
//! href, state and key attributes (a machine's IPs, cpu and memory; a volume's capacity).

use serde_json::Value;

use crate::api::quantity::{capacity_quantity, memory_quantity};
use crate::api::system::{CimiSystemStatus, MachineMember, SystemMember, VolumeMember};
use crate::cimi::query::Query;
use crate::cimi::{CimiClient, CimiError, model};
use crate::controller::resource::reads::entries;
use crate::controller::resource::reads::{int, ref_href, text};

/// How many members of each kind status lists (the counts cover every member).
pub const MAX_LISTED: usize = 100;

/// Cuts the member lists of status to [`MAX_LISTED`] each (after the counts were taken).
pub fn truncate_lists(status: &mut CimiSystemStatus) {
    status.machines.truncate(MAX_LISTED);
    status.volumes.truncate(MAX_LISTED);
    status.networks.truncate(MAX_LISTED);
}

/// A member as read from the provider: its kind (`machine`, `volume`, `network`), href and document.
pub struct MemberDoc {
    /// `machine`, `volume` or `network`.
    pub kind: &'static str,
    /// The member's href.
    pub href: String,
    /// Its provider document.
    pub doc: Value,
}

/// Reads the system's machines, volumes and networks into `status` (IPs are re-read only when a machine's
/// state changed or none were known; each member keeps its event cursor), and returns what was read.
pub async fn observe_members(
    client: &CimiClient,
    system: &Value,
    status: &mut CimiSystemStatus,
) -> Result<Vec<MemberDoc>, CimiError> {
    let mut cursors: std::collections::HashMap<String, crate::api::common::EventCursor> =
        status.all_members().filter_map(|m| m.event_cursor.clone().map(|c| (m.href.clone(), c))).collect();
    let mut docs = Vec::new();
    let machines = read_kind(client, system, "machines").await?;
    let mut listed = Vec::new();
    for (href, doc) in machines {
        let previous = status.machines.iter().find(|m| m.member.href == href);
        let state = text(&doc, "state").map(str::to_string);
        let addresses = match previous {
            Some(p) if p.member.state == state && !p.addresses.is_empty() => p.addresses.clone(),
            _ => machine_addresses(client, &doc).await?,
        };
        listed.push(MachineMember {
            member: SystemMember { event_cursor: cursors.remove(&href), ..member(href.clone(), &doc) },
            addresses,
            cpu: int(&doc, "cpu"),
            memory: int(&doc, "memory").map(memory_quantity),
        });
        docs.push(MemberDoc { kind: "machine", href, doc });
    }
    status.machines = listed;
    let mut volumes = Vec::new();
    for (href, doc) in read_kind(client, system, "volumes").await? {
        volumes.push(VolumeMember {
            member: SystemMember { event_cursor: cursors.remove(&href), ..member(href.clone(), &doc) },
            capacity: int(&doc, "capacity").map(capacity_quantity),
        });
        docs.push(MemberDoc { kind: "volume", href, doc });
    }
    status.volumes = volumes;
    let mut networks = Vec::new();
    for (href, doc) in read_kind(client, system, "networks").await? {
        networks.push(SystemMember { event_cursor: cursors.remove(&href), ..member(href.clone(), &doc) });
        docs.push(MemberDoc { kind: "network", href, doc });
    }
    status.networks = networks;
    Ok(docs)
}

/// The status entry of a member (by href), wherever it is listed.
pub fn member_mut<'a>(status: &'a mut CimiSystemStatus, href: &str) -> Option<&'a mut SystemMember> {
    status.all_members_mut().find(|m| m.href == href)
}

fn member(href: String, doc: &Value) -> SystemMember {
    SystemMember {
        name: text(doc, "name").map(str::to_string),
        href,
        state: text(doc, "state").map(str::to_string),
        event_cursor: None,
    }
}

/// The members of one system sub-collection, as (href, document), sorted by name; members that vanished
/// between the listing and the read are left out. The listing pages through the whole sub-collection.
async fn read_kind(client: &CimiClient, system: &Value, sub: &str) -> Result<Vec<(String, Value)>, CimiError> {
    let Some(href) = system.get(sub).and_then(|v| v.get("href")).and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    let url = client.resolve(href).await?;
    let all = Query::new();
    let hrefs: Vec<String> = match sub {
        "machines" => client
            .list_all_at::<model::SystemMachine>(&url, &all)
            .await?
            .entries
            .into_iter()
            .filter_map(|e| e.machine.map(|r| r.href))
            .collect(),
        "volumes" => client
            .list_all_at::<model::SystemVolume>(&url, &all)
            .await?
            .entries
            .into_iter()
            .filter_map(|e| e.volume.map(|r| r.href))
            .collect(),
        _ => client
            .list_all_at::<model::SystemNetwork>(&url, &all)
            .await?
            .entries
            .into_iter()
            .filter_map(|e| e.network.map(|r| r.href))
            .collect(),
    };
    let mut out = Vec::new();
    for member in hrefs {
        let url = client.resolve(&member).await?;
        match client.get_value(&url).await {
            Ok(doc) => out.push((url.to_string(), doc)),
            Err(CimiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| {
        let name = |d: &Value| text(d, "name").unwrap_or("").to_string();
        name(&a.1).cmp(&name(&b.1)).then(a.0.cmp(&b.0))
    });
    Ok(out)
}

/// A machine's IP addresses, through its network interfaces and their addresses.
async fn machine_addresses(client: &CimiClient, machine: &Value) -> Result<Vec<String>, CimiError> {
    let mut out = Vec::new();
    let Some(href) = ref_href(machine, "networkInterfaces") else {
        return Ok(out);
    };
    let page =
        client.list_page_value(&client.resolve(href).await?, &Default::default(), "MachineNetworkInterface").await?;
    for nic in entries(&page) {
        let Some(ah) = ref_href(&nic, "addresses") else { continue };
        let page = client
            .list_page_value(&client.resolve(ah).await?, &Default::default(), "MachineNetworkInterfaceAddress")
            .await?;
        for entry in entries(&page) {
            if let Some(addr) = ref_href(&entry, "address") {
                let address = client.get_value(&client.resolve(addr).await?).await?;
                if let Some(ip) = text(&address, "ip") {
                    out.push(ip.to_string());
                }
            }
        }
    }
    Ok(out)
}
