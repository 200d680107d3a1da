//! A machine's sub-collections (network interfaces with their addresses, attached volumes) read into one JSON
//! reading, either by following each href (per object) or from what a listing inlined (`$expand` with path
//! notation: the batched read of [`super::batch`]).

use serde_json::{Value, json};

use crate::api::machine::{AttachedVolume, NetworkInterface};
use crate::cimi::{CimiClient, CimiError};
use crate::controller::resource::reads::{entries, ref_href, text};

/// The most network interfaces, addresses per interface, and attached volumes read of one machine: what a
/// provider serves beyond is not read (a hostile provider cannot make one machine cost unbounded requests).
pub const MAX_SUB_ENTRIES: usize = 64;

/// What `$expand` asks for on a machine listing so that [`sub_collections_inline`] finds everything inlined.
pub const EXPAND: [&str; 2] = ["networkInterfaces/addresses/address", "volumes"];

/// Where the parts of a reading come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Follow each href that is not inlined.
    Fetch,
    /// Only what is inlined: a part that is not is [`NotInlined`].
    Inline,
}

/// What a listing entry inlined, read into a reading or not.
#[derive(Debug)]
pub enum Inlined {
    /// Everything was inlined: the reading.
    Reading(Value),
    /// The provider did not inline this part (it ignores `$expand`, or its path notation).
    Missing(&'static str),
    /// An inlined collection is cut short (`count` larger than what is served): this machine reads its own.
    Truncated,
}

enum ReadError {
    Cimi(CimiError),
    NotInlined(&'static str),
    Truncated,
}

impl From<CimiError> for ReadError {
    fn from(e: CimiError) -> Self {
        ReadError::Cimi(e)
    }
}

/// Reads a machine's network interfaces (with their addresses) and attached volumes, as JSON:
/// `{networkInterfaces: [NetworkInterface], volumes: [AttachedVolume], attached: [{entry, volume}]}`, using what
/// `m` has inlined and reading the rest.
pub async fn read_sub_collections(client: &CimiClient, m: &Value) -> Result<Value, CimiError> {
    match read(client, m, Source::Fetch).await {
        Ok(v) => Ok(v),
        Err(ReadError::Cimi(e)) => Err(e),
        Err(ReadError::NotInlined(_) | ReadError::Truncated) => {
            unreachable!("fetching reads what is not inlined or is cut short")
        }
    }
}

/// The same reading from a listing entry whose sub-collections are all inlined (no request is made for what
/// is not; resolving hrefs needs none once the provider is discovered).
pub async fn sub_collections_inline(client: &CimiClient, m: &Value) -> Result<Inlined, CimiError> {
    match read(client, m, Source::Inline).await {
        Ok(v) => Ok(Inlined::Reading(v)),
        Err(ReadError::NotInlined(what)) => Ok(Inlined::Missing(what)),
        Err(ReadError::Truncated) => Ok(Inlined::Truncated),
        Err(ReadError::Cimi(e)) => Err(e),
    }
}

/// The inlined collection at `key` (an object with `count`), if the provider inlined it.
fn inlined(v: &Value, key: &str) -> Option<Value> {
    v.get(key).filter(|c| c.get("count").is_some()).cloned()
}

/// The entries of the collection `key` of `v`: inlined, or read from its href (`Fetch`); `None` when `v` has none.
async fn collection(
    client: &CimiClient,
    v: &Value,
    key: &'static str,
    item_type: &str,
    source: Source,
) -> Result<Option<Vec<Value>>, ReadError> {
    if let Some(page) = inlined(v, key) {
        let served = entries(&page);
        let whole = page.get("count").and_then(Value::as_u64).is_none_or(|n| n <= served.len() as u64);
        match source {
            _ if whole => return Ok(Some(served)),
            Source::Inline => return Err(ReadError::Truncated),
            // Cut short: read from its href like one that is not inlined.
            Source::Fetch => {}
        }
    }
    let Some(href) = ref_href(v, key) else { return Ok(None) };
    if source == Source::Inline {
        return Err(ReadError::NotInlined(key));
    }
    let page = client.list_page_value(&client.resolve(href).await?, &Default::default(), item_type).await?;
    Ok(Some(entries(&page)))
}

/// The reading of a machine: its interfaces (with their addresses) and its volumes, the two read at once.
async fn read(client: &CimiClient, m: &Value, source: Source) -> Result<Value, ReadError> {
    let (interfaces, (volumes, attached)) =
        futures::try_join!(read_interfaces(client, m, source), read_volumes(client, m, source))?;
    Ok(json!({"networkInterfaces": interfaces, "volumes": volumes, "attached": attached}))
}

async fn read_interfaces(client: &CimiClient, m: &Value, source: Source) -> Result<Vec<NetworkInterface>, ReadError> {
    let mut interfaces = Vec::new();
    let nics = collection(client, m, "networkInterfaces", "MachineNetworkInterface", source).await?;
    for nic in nics.unwrap_or_default().into_iter().take(MAX_SUB_ENTRIES) {
        let mut attachment = NetworkInterface {
            href: ref_href(&nic, "network").map(str::to_string),
            state: text(&nic, "state").map(str::to_string),
            ..Default::default()
        };
        let addresses = collection(client, &nic, "addresses", "MachineNetworkInterfaceAddress", source).await?;
        for entry in addresses.unwrap_or_default().into_iter().take(MAX_SUB_ENTRIES) {
            let Some(address) = entry.get("address") else { continue };
            let ip = match text(address, "ip") {
                Some(ip) => Some(ip.to_string()),
                None => match (ref_href(&entry, "address"), source) {
                    (Some(_), Source::Inline) => return Err(ReadError::NotInlined("address")),
                    (Some(addr), Source::Fetch) => {
                        let address = client.get_value(&client.resolve(addr).await?).await?;
                        text(&address, "ip").map(str::to_string)
                    }
                    (None, _) => None,
                },
            };
            attachment.addresses.extend(ip);
        }
        interfaces.push(attachment);
    }
    Ok(interfaces)
}

async fn read_volumes(
    client: &CimiClient,
    m: &Value,
    source: Source,
) -> Result<(Vec<AttachedVolume>, Vec<Value>), ReadError> {
    let mut volumes = Vec::new();
    let mut attached = Vec::new();
    let entries = collection(client, m, "volumes", "MachineVolume", source).await?;
    for e in entries.unwrap_or_default().into_iter().take(MAX_SUB_ENTRIES) {
        let volume = ref_href(&e, "volume");
        volumes.push(AttachedVolume {
            href: volume.map(str::to_string),
            initial_location: text(&e, "initialLocation").map(str::to_string),
            ..Default::default()
        });
        // An entry inlined in a listing carries its href (the entry's id) as `href`.
        if let (Some(id), Some(volume)) = (text(&e, "id").or_else(|| text(&e, "href")), volume) {
            attached.push(json!({
                "entry": client.resolve(id).await?.to_string(),
                "volume": client.resolve(volume).await?.to_string(),
            }));
        }
    }
    Ok((volumes, attached))
}
