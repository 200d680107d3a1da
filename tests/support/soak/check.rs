//! The soak's invariants, read from both sides: the API server (every object of the six kinds, every Event) and
//! the provider (cimi-sim's collections, read with a client of the soak's own while no fault is active).
//!
//! - No leak: every provider resource belongs to something — a live object's `cimi.dev/uid` tag or `status.id`,
//!   a member of a provider system that belongs to one, a machine the soak made by hand, or the catalog.
//! - No duplicate: no two provider resources of a collection carry one object's uid.
//! - No lie: no object reports Ready=True while the provider resource of its `status.id` is gone.
//! - No provider event mirrored twice on one object.
//! - No canary (the provider's password, raw or base64, alone or as a Basic credential) in an operator log, an
//!   Event or any object's status; no operator panic.
//! - At the end, convergence: every object as its spec asks (Ready, its generation observed, power state,
//!   attachments, description on the provider, its last one-shot action finished) and every deleted one gone.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use cimi_operator::cimi::CimiClient;
use cimi_operator::cimi::query::Query;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use super::churn::{Churn, HandMade, Key, Kind};

/// The objects of the six kinds, by key.
pub type Objects = BTreeMap<Key, DynamicObject>;

/// Reads every object of the managed kinds.
pub async fn read_objects(client: &kube::Client) -> Result<Objects, kube::Error> {
    let mut out = Objects::new();
    for kind in Kind::ALL {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        for o in api.list(&ListParams::default()).await? {
            let key =
                (kind, o.metadata.namespace.clone().unwrap_or_default(), o.metadata.name.clone().unwrap_or_default());
            out.insert(key, o);
        }
    }
    Ok(out)
}

/// One provider resource.
#[derive(Clone, Debug)]
pub struct Resource {
    pub collection: &'static str,
    pub href: String,
    pub uid: Option<String>,
    pub state: Option<String>,
    pub description: Option<String>,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the provider holds.
#[derive(Clone, Debug, Default)]
pub struct Provider {
    pub resources: BTreeMap<String, Resource>,
    /// Hrefs of the members of each provider system, by the system's href.
    pub members: BTreeMap<String, Vec<String>>,
}

/// Reads every resource of the six collections, and the members of every system.
pub async fn read_provider(cimi: &CimiClient) -> Result<Provider, String> {
    let mut out = Provider::default();
    for kind in Kind::ALL {
        let url = cimi.collection_url(kind.collection()).await.map_err(|e| e.to_string())?;
        let listing = cimi.list_values_at(&url, &Query::new(), "", None, 500).await.map_err(|e| e.to_string())?;
        if listing.truncated {
            return Err(format!("the {} listing was truncated", kind.collection()));
        }
        for r in listing.entries {
            let Some(href) = r["id"].as_str().map(str::to_string) else { continue };
            let properties = &r["properties"];
            let ours = properties["cimi.dev/cluster"].as_str() == Some("soak");
            let resource = Resource {
                collection: kind.collection(),
                href: href.clone(),
                uid: properties["cimi.dev/uid"].as_str().filter(|_| ours).map(str::to_string),
                state: r["state"].as_str().map(str::to_string),
                description: r["description"].as_str().map(str::to_string),
                created: r["created"].as_str().and_then(|c| c.parse().ok()),
            };
            if kind == Kind::System {
                let mut members = Vec::new();
                for (sub, entry) in [("machines", "machine"), ("volumes", "volume"), ("networks", "network")] {
                    let Some(sub_href) = r[sub]["href"].as_str() else { continue };
                    let sub_url = cimi.resolve(sub_href).await.map_err(|e| e.to_string())?;
                    let listing =
                        cimi.list_values_at(&sub_url, &Query::new(), "", None, 500).await.map_err(|e| e.to_string())?;
                    members
                        .extend(listing.entries.iter().filter_map(|e| e[entry]["href"].as_str().map(str::to_string)));
                }
                out.members.insert(href.clone(), members);
            }
            out.resources.insert(href, resource);
        }
    }
    Ok(out)
}

fn status_id(o: &DynamicObject) -> Option<&str> {
    o.data["status"]["id"].as_str()
}

fn condition<'a>(o: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    o.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn ready(o: &DynamicObject) -> (String, String, String) {
    let c = condition(o, "Ready");
    let field = |name: &str| c.and_then(|c| c[name].as_str()).unwrap_or_default().to_string();
    (field("status"), field("reason"), field("message"))
}

/// One broken invariant: what to report, and for a leak, the href of the leaked resource.
#[derive(Debug, Clone)]
pub struct Violation {
    pub message: String,
    pub leaked: Option<String>,
}

impl Violation {
    fn other(message: String) -> Self {
        Violation { message, leaked: None }
    }
}

/// The provider-side checks (leak, duplicate, lie) over `objects` read before `provider`. `strict`: also
/// untagged resources made within the last 30 s must belong to something (at the end; during the run the
/// operator may not have recorded a capture it just made).
pub fn provider_violations(
    objects: &Objects,
    provider: &Provider,
    hand_made: &[HandMade],
    baseline: &BTreeSet<String>,
    read_at: chrono::DateTime<chrono::Utc>,
    strict: bool,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let uids: BTreeMap<&str, &Key> =
        objects.iter().filter_map(|(k, o)| o.metadata.uid.as_deref().map(|u| (u, k))).collect();
    let mut owned: BTreeSet<&str> = objects.values().filter_map(status_id).collect();
    owned.extend(hand_made.iter().map(|h| h.href.as_str()));
    owned.extend(baseline.iter().map(String::as_str));
    // Members of systems that are themselves owned (by tag or by status).
    for (system, members) in &provider.members {
        let tagged =
            provider.resources.get(system).and_then(|r| r.uid.as_deref()).is_some_and(|u| uids.contains_key(u));
        if tagged || owned.contains(system.as_str()) {
            owned.extend(members.iter().map(String::as_str));
        }
    }
    let mut by_uid: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for r in provider.resources.values() {
        if let Some(uid) = r.uid.as_deref() {
            by_uid.entry((r.collection, uid)).or_default().push(&r.href);
            if !uids.contains_key(uid) && !owned.contains(r.href.as_str()) {
                out.push(Violation {
                    message: format!("leak: provider {} {} carries uid {uid} of no object", r.collection, r.href),
                    leaked: Some(r.href.clone()),
                });
            }
        } else if !owned.contains(r.href.as_str()) {
            let recent = r.created.is_none_or(|c| c > read_at - chrono::Duration::seconds(30));
            if strict || !recent {
                out.push(Violation {
                    message: format!(
                        "leak: provider {} {} (state {}) belongs to no object, system or hand-made machine",
                        r.collection,
                        r.href,
                        r.state.as_deref().unwrap_or("?")
                    ),
                    leaked: Some(r.href.clone()),
                });
            }
        }
    }
    for ((collection, uid), hrefs) in by_uid.into_iter().filter(|(_, h)| h.len() > 1) {
        let object = uids.get(uid).map(|k| format!("{k:?}")).unwrap_or_else(|| "a deleted object".into());
        out.push(Violation::other(format!(
            "duplicate: {} provider {collection} carry the uid of {object}: {hrefs:?}",
            hrefs.len()
        )));
    }
    for (key, o) in objects {
        let Some(id) = status_id(o) else { continue };
        let (status, reason, _) = ready(o);
        if o.metadata.deletion_timestamp.is_none() && status == "True" && !provider.resources.contains_key(id) {
            out.push(Violation::other(format!(
                "lie: {key:?} is Ready ({reason}) but its provider resource {id} is gone"
            )));
        }
    }
    out
}

/// How many provider events are mirrored as Events, and those mirrored more than once onto one object.
pub async fn mirrored_twice(client: &kube::Client) -> Result<(usize, Vec<String>), kube::Error> {
    let events: Api<Event> = Api::all(client.clone());
    let mut seen: BTreeMap<(String, String), i32> = BTreeMap::new();
    for e in events.list(&ListParams::default()).await? {
        if e.reason.as_deref() != Some("ProviderEvent") {
            continue;
        }
        // The note is `provider event <href>: <summary>`; the href has a scheme, so split at ": ".
        let message = e.message.unwrap_or_default();
        let Some((href, _)) = message.strip_prefix("provider event ").and_then(|m| m.split_once(": ")) else {
            continue;
        };
        let uid = e.involved_object.uid.unwrap_or_default();
        *seen.entry((uid, href.to_string())).or_default() += e.count.unwrap_or(1).max(1);
    }
    let twice = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((uid, href), n)| format!("provider event {href} mirrored {n} times onto object {uid}"))
        .collect();
    Ok((seen.len(), twice))
}

/// The strings a leaked canary would show as.
pub fn canary_forms(canary: &str, user: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![canary.to_string(), b64.encode(canary), b64.encode(format!("{user}:{canary}"))]
}

/// The canary found in Events, statuses (of every kind and the providers) and the operator logs.
pub async fn canary_leaks(
    client: &kube::Client,
    objects: &Objects,
    forms: &[String],
    logs: &[std::path::PathBuf],
) -> Result<Vec<String>, kube::Error> {
    let mut out = Vec::new();
    let found = |text: &str| forms.iter().any(|f| text.contains(f.as_str()));
    let events: Api<Event> = Api::all(client.clone());
    for e in events.list(&ListParams::default()).await? {
        if found(&serde_json::to_string(&e).unwrap_or_default()) {
            out.push(format!("canary in Event {:?}", e.metadata.name));
        }
    }
    for (key, o) in objects {
        if found(&o.data["status"].to_string()) {
            out.push(format!("canary in the status of {key:?}"));
        }
    }
    let providers: Api<cimi_operator::api::CimiProvider> = Api::all(client.clone());
    for p in providers.list(&ListParams::default()).await? {
        if found(&serde_json::to_string(&p.status).unwrap_or_default()) {
            out.push(format!("canary in the status of CimiProvider {:?}", p.metadata.name));
        }
    }
    for log in logs {
        if found(&std::fs::read_to_string(log).unwrap_or_default()) {
            out.push(format!("canary in operator log {}", log.display()));
        }
    }
    Ok(out)
}

/// Panics in the operator logs.
pub fn panics(logs: &[std::path::PathBuf]) -> Vec<String> {
    logs.iter()
        .filter_map(|log| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let line = text.lines().find(|l| l.contains("panicked at"))?;
            Some(format!("panic in {}: {line}", log.display()))
        })
        .collect()
}

fn power_state(spec: &Value) -> &'static str {
    if spec["powerState"].as_str() == Some("Stopped") { "STOPPED" } else { "STARTED" }
}

/// Why `key` has not converged to its spec (None once it has).
fn unconverged(key: &Key, o: &DynamicObject, provider: &Provider) -> Option<String> {
    let spec = &o.data["spec"];
    let status = &o.data["status"];
    let (ready_status, reason, message) = ready(o);
    let generation = o.metadata.generation.unwrap_or_default();
    if o.metadata.deletion_timestamp.is_some() {
        return Some("deleting".into());
    }
    if ready_status != "True" {
        return Some(format!("Ready={ready_status} {reason}: {message}"));
    }
    if status["observedGeneration"].as_i64() != Some(generation) {
        return Some(format!("generation {generation} not observed yet"));
    }
    let observe_only = spec["managementPolicy"].as_str() == Some("ObserveOnly");
    let resource = status_id(o).and_then(|id| provider.resources.get(id));
    let Some(resource) = resource else {
        return Some(format!("Ready but its provider resource {:?} is not there", status_id(o)));
    };
    if observe_only {
        return None;
    }
    if matches!(key.0, Kind::Machine | Kind::System) && resource.state.as_deref() != Some(power_state(spec)) {
        return Some(format!("provider state {:?}, spec asks {}", resource.state, power_state(spec)));
    }
    if matches!(key.0, Kind::Machine | Kind::Volume | Kind::Network | Kind::System)
        && spec["description"].as_str() != resource.description.as_deref()
    {
        return Some(format!("provider description {:?}, spec {:?}", resource.description, spec["description"]));
    }
    if key.0 == Kind::Machine {
        let want: BTreeSet<&str> = spec["volumes"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["volumeRef"]["name"].as_str()).collect())
            .unwrap_or_default();
        let have: BTreeSet<&str> = status["volumes"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        if want != have {
            return Some(format!("volumes attached {have:?}, spec asks {want:?}"));
        }
        if let Some(action) = o.metadata.annotations.as_ref().and_then(|a| a.get("cimi.dev/action")) {
            let nonce = action.split_once('@').map(|(_, n)| n).unwrap_or_default();
            let last = &status["lastAction"];
            let done = matches!(last["phase"].as_str(), Some("Succeeded" | "Failed" | "Rejected"));
            if last["nonce"].as_str() != Some(nonce) || !done {
                return Some(format!("action {action} not finished: lastAction {last}"));
            }
        }
    }
    None
}

/// What keeps the soak from having converged: objects of the model not yet as their spec asks, deleted
/// objects still there, objects the model does not know. Empty once converged.
pub fn convergence(objects: &Objects, provider: &Provider, churn: &Churn) -> Vec<String> {
    let mut out = Vec::new();
    for key in churn.live.keys() {
        match objects.get(key) {
            None => out.push(format!("{key:?}: missing from the API server")),
            Some(o) => {
                if let Some(why) = unconverged(key, o, provider) {
                    out.push(format!("{key:?}: {why}"));
                }
            }
        }
    }
    for key in &churn.gone {
        if objects.contains_key(key) {
            let (_, reason, message) = objects.get(key).map(ready).unwrap_or_default();
            out.push(format!("{key:?}: deleted but still there ({reason}: {message})"));
        }
    }
    for key in objects.keys().filter(|k| !churn.live.contains_key(*k) && !churn.gone.contains(*k)) {
        // Exposed system members are made by the operator; the soak makes none.
        out.push(format!("{key:?}: an object the soak did not make"));
    }
    out
}
