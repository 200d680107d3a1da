//! Watches scoped to the operator's [`Config`]: every namespace it watches (or all), its label
//! selector, and readiness that turns true once each watch has listed its objects.
//!
//! With several namespaces there is one watcher per namespace, merged into one stream that a single
//! reflector store can hold: each watcher's relist is passed on as plain `Apply` events (a relist of
//! one namespace must not wipe the objects of the others from the shared store). An object deleted
//! while its watch was down stays in the store until its next reconcile finds it gone.

use std::fmt::Debug;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::config::Config;
use super::health::Readiness;

/// The readiness component name of one watch: `watch/<plural>/<namespace or *>`.
pub fn component_name<K: Resource<DynamicType = ()>>(namespace: Option<&str>) -> String {
    format!("watch/{}/{}", K::plural(&()), namespace.unwrap_or("*"))
}

/// Turns one namespace's relist into plain applies, so merged streams can share one store; `None`
/// for the events that only frame a relist.
pub fn flatten_relist<K>(event: Event<K>) -> Option<Event<K>> {
    match event {
        Event::Init | Event::InitDone => None,
        Event::InitApply(object) => Some(Event::Apply(object)),
        other => Some(other),
    }
}

/// Watches a namespaced kind in every namespace of `config` (one watcher per namespace, or one for
/// all), with its label selector. Each watch registers with `readiness` and reports ready when its
/// first list is complete.
pub fn watch_namespaced<K>(
    client: &Client,
    config: &Config,
    readiness: &Readiness,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let scopes: Vec<Option<String>> =
        if config.namespaces.is_empty() { vec![None] } else { config.namespaces.iter().cloned().map(Some).collect() };
    let single = scopes.len() == 1;
    let streams = scopes.into_iter().map(|namespace| {
        let api: Api<K> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let component = component_name::<K>(namespace.as_deref());
        readiness.register(component.clone());
        let readiness = readiness.clone();
        watcher(api, config.watcher_config())
            .filter_map(move |event| {
                if matches!(event, Ok(Event::InitDone)) {
                    readiness.mark_ready(&component);
                }
                let event = match event {
                    Ok(event) if !single => flatten_relist(event).map(Ok),
                    other => Some(other),
                };
                futures::future::ready(event)
            })
            .boxed()
    });
    stream::select_all(streams)
}

/// Watches a cluster-scoped kind (CimiProvider) with the label selector of `config`, registering
/// with `readiness`.
pub fn watch_cluster<K>(
    client: &Client,
    config: &Config,
    readiness: &Readiness,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let component = component_name::<K>(None);
    readiness.register(component.clone());
    let readiness = readiness.clone();
    watcher(Api::<K>::all(client.clone()), config.watcher_config()).inspect(move |event| {
        if matches!(event, Ok(Event::InitDone)) {
            readiness.mark_ready(&component);
        }
    })
}

fn watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    use kube::runtime::WatchStreamExt;
    watcher::watcher(api, config).default_backoff()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CimiMachine, CimiProvider};

    #[test]
    fn relists_become_applies() {
        assert!(flatten_relist::<u8>(Event::Init).is_none());
        assert!(flatten_relist::<u8>(Event::InitDone).is_none());
        assert!(matches!(flatten_relist(Event::InitApply(1u8)), Some(Event::Apply(1))));
        assert!(matches!(flatten_relist(Event::Apply(2u8)), Some(Event::Apply(2))));
        assert!(matches!(flatten_relist(Event::Delete(3u8)), Some(Event::Delete(3))));
    }

    #[test]
    fn components_name_the_watch() {
        assert_eq!(component_name::<CimiMachine>(Some("team-a")), "watch/cimimachines/team-a");
        assert_eq!(component_name::<CimiProvider>(None), "watch/cimiproviders/*");
    }

    #[tokio::test]
    async fn every_namespace_registers_a_watch() {
        crate::runtime::telemetry::install_crypto_provider();
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().expect("url"))).expect("client");
        let config = Config { namespaces: vec!["a".into(), "b".into()], ..Config::default() };
        let readiness = Readiness::new();
        let _machines = watch_namespaced::<CimiMachine>(&client, &config, &readiness);
        let _providers = watch_cluster::<CimiProvider>(&client, &config, &readiness);
        assert_eq!(readiness.pending(), ["watch/cimimachines/a", "watch/cimimachines/b", "watch/cimiproviders/*"]);
    }
}
