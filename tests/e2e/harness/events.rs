//! Kubernetes Events as a user reads them: the Events about an object, and the provider events (of a resource's
//! EventLog) the operator mirrored onto it.

use std::collections::HashMap;
use std::time::Duration;

use cimi_operator::cimi::CimiClient;
use kube::api::{Api, ListParams};

use super::sim::provider_events;
use super::wait::eventually;

/// The reason and note of every Event (events.k8s.io) about the object `name` in `namespace`.
pub async fn events_about(client: &kube::Client, namespace: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    let list = api.list(&Default::default()).await.expect("events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// The provider event ids mirrored on an object, with how often each was mirrored.
pub async fn mirrored(client: &kube::Client, ns: &str, uid: &str) -> HashMap<String, usize> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.uid={uid},reason=ProviderEvent"));
    let mut out = HashMap::new();
    for e in events.list(&params).await.expect("list events").items {
        let note = e.message.unwrap_or_default();
        if let Some(id) = cimi_operator::controller::observer::event_id_of_note(&note) {
            // A series (count > 1) would be the same event mirrored again.
            let series = e.series.as_ref().and_then(|s| s.count).unwrap_or(1);
            let times = series.max(e.count.unwrap_or(1)).max(1) as usize;
            *out.entry(id.to_string()).or_default() += times;
        }
    }
    out
}

/// Waits until every provider event of every resource of `hrefs` is mirrored on the object `uid`, each exactly
/// once (one mirrored twice fails at once); returns how many there are.
pub async fn all_mirrored_once(
    client: &kube::Client,
    cimi: &CimiClient,
    ns: &str,
    uid: &str,
    hrefs: &[String],
) -> usize {
    eventually("every provider event mirrored exactly once", Duration::from_secs(90), || async {
        let mut ids = Vec::new();
        for href in hrefs {
            let on_provider = provider_events(cimi, href).await;
            ids.extend(on_provider.iter().filter_map(|e| e["id"].as_str().map(str::to_string)));
        }
        let seen = mirrored(client, ns, uid).await;
        if let Some((id, n)) = seen.iter().find(|(_, n)| **n > 1) {
            panic!("provider event {id} mirrored {n} times");
        }
        (!ids.is_empty() && ids.iter().all(|id| seen.contains_key(id)) && seen.len() == ids.len()).then_some(ids.len())
    })
    .await
}
