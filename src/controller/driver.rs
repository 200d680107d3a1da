//! How every controller is wired to the cluster: [`namespaced`] and [`cluster`] build a configured
//! `Controller<K>` on the operator's scoped watches ([`crate::runtime::watches`]: every watched
//! namespace, the label selector, readiness, decode failures reported), and [`drive`] runs it with
//! each reconcile counted and timed in `cimi_reconciles_total` / `cimi_reconcile_duration_seconds`.
//!
//! A controller is built synchronously (so its watches are registered with readiness before the
//! operator can report ready) and then driven:
//!
//! ```text
//! pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
//!     let controller = driver::namespaced::<CimiSystem>(&ctx, &shutdown)
//!         .watches_stream(ctx.watches().related::<CimiMachine>("cimisystems"), |m| /* systems of m */);
//!     driver::drive(controller, ctx, Ownership::Shard, reconcile, error_policy)
//! }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, reflector::Store};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use crate::api::managed::Managed;
use crate::runtime::watches::OnDelete;

/// A controller of the managed kind `K` on every watched namespace, with the label selector,
/// concurrency and graceful shutdown of the operator; its store feeds `cimi_resources` and
/// `cimi_job_duration_seconds`, and is shared with the other reconciles ([`super::stores`]). Add related watches with `watches_stream` (see
/// [`crate::runtime::watches::Watches::related`]), then [`drive`] it.
pub fn namespaced<K>(ctx: &Context, shutdown: &CancellationToken) -> Controller<K>
where
    K: Managed + super::stores::Cached,
{
    let status_of: crate::runtime::watches::StatusOf<K> = |k: &K| (k.provider_key(), k.managed_status());
    let (store, triggers, release) = ctx.watches().reflect::<K>(Some(status_of), None);
    ctx.stores.register(store.clone(), release.listed());
    let provider_ready = on_provider_ready(ctx, store.clone());
    Controller::for_stream(triggers, store)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(release.on_shutdown(shutdown.clone()))
        .reconcile_on(provider_ready)
}

/// The objects of `store` that name a provider, each time that provider turns ready: an object created before
/// its provider (GitOps applies them together), or one that waited while its provider was not ready, goes on at
/// once rather than at its next retry.
pub fn on_provider_ready<K>(
    ctx: &Context,
    store: Store<K>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send + 'static
where
    K: Managed + Clone + Send + Sync + 'static,
{
    let rx = ctx.providers.subscribe_ready();
    let shard = ctx.config.shard;
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(key) => return Some((key, rx)),
                // Missed announcements: the objects retry on their own; keep listening.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .flat_map(move |key| {
        let users: Vec<ObjectRef<K>> = store
            .state()
            .iter()
            .filter(|o| o.provider_key() == key && shard.owns(o.meta()))
            .map(|o| ObjectRef::from_obj(&**o))
            .collect();
        futures::stream::iter(users)
    })
}

/// A controller of the cluster-scoped kind `K` (CimiProvider), as [`namespaced`]; `on_delete` runs for each object
/// that leaves its store.
pub fn cluster<K>(ctx: &Context, shutdown: &CancellationToken, on_delete: OnDelete<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, triggers, release) = ctx.watches().reflect_cluster::<K>(Some(on_delete));
    Controller::for_stream(triggers, store)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(release.on_shutdown(shutdown.clone()))
}

/// A controller of a namespaced kind that is not a managed kind (CimiNamespacedProvider), on every watched
/// namespace, as [`namespaced`] without the resource gauges and the shared store; `on_delete` runs for each object
/// that leaves its store.
pub fn namespaced_unmanaged<K>(ctx: &Context, shutdown: &CancellationToken, on_delete: OnDelete<K>) -> Controller<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (store, triggers, release) = ctx.watches().reflect::<K>(None, Some(on_delete));
    Controller::for_stream(triggers, store)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(release.on_shutdown(shutdown.clone()))
}

/// The objects of `store` for which `references` says yes, as reconcile requests (for the mappers of
/// related watches).
pub fn referencing<K>(store: &Store<K>, references: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store.state().iter().filter(|o| references(o)).map(|o| ObjectRef::from_obj(&**o)).collect()
}

/// A mapper for a related watch of `R` (such as CimiMachine) to the objects of `K` in the same namespace
/// that an `R` names (`names`), now or at its previous event: a change that drops a name still reconciles
/// the object it released, and an `R` that names nothing triggers nothing (rather than every `K` of the
/// namespace on every status write of every `R`). What each `R` last named is remembered until it is
/// deleted.
pub fn naming<R, K>(names: fn(&R) -> Vec<String>) -> impl Fn(R) -> Vec<ObjectRef<K>> + Send + Sync + 'static
where
    R: Resource<DynamicType = ()> + Send + Sync + 'static,
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    let last: std::sync::Mutex<std::collections::HashMap<(String, String), Vec<String>>> = Default::default();
    move |r: R| {
        let namespace = r.namespace().unwrap_or_default();
        let key = (namespace.clone(), r.name_any());
        let now = names(&r);
        let mut last = last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = if r.meta().deletion_timestamp.is_some() {
            // Its last events (with the DELETED one) carry the same names: forget it now.
            last.remove(&key)
        } else {
            last.insert(key, now.clone())
        };
        let mut all: Vec<String> = before.unwrap_or_default();
        all.extend(now);
        all.sort();
        all.dedup();
        all.into_iter().map(|name| ObjectRef::new(&name).within(&namespace)).collect()
    }
}

/// Which objects of a kind an instance reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Those of its shard ([`crate::runtime::shard`]): the managed kinds.
    Shard,
    /// Every object: the providers, which every shard needs (shard 0 alone probes them and writes).
    Every,
}

/// Runs `controller` until its shutdown, counting and timing each reconcile by kind and result: the one the
/// pass reported ([`crate::runtime::metrics::report_result`]: `ok`, `waiting`, `error`), or `error`
/// when it returned an error. With [`Ownership::Shard`], a request for another shard's object (from a related
/// watch, the observer or a provider turning ready) is dropped before any work: the shard that owns it acts.
pub fn drive<K, R, Fut, E>(
    controller: Controller<K>,
    ctx: Arc<Context>,
    ownership: Ownership,
    reconcile: R,
    error_policy: fn(Arc<K>, &E, Arc<Context>) -> Action,
) -> impl Future<Output = ()> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<Context>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    let kind = K::kind(&()).to_string();
    let metrics = ctx.metrics.clone();
    let shard = ctx.config.shard;
    let timed = move |obj: Arc<K>, ctx: Arc<Context>| {
        let (metrics, kind) = (metrics.clone(), kind.clone());
        let started = Instant::now();
        let own = ownership == Ownership::Every || shard.owns(obj.meta());
        let reconciled = own.then(|| reconcile(obj, ctx));
        async move {
            // Another shard's: nothing to do until a change makes it this shard's (its label).
            let Some(reconciled) = reconciled else { return Ok(Action::await_change()) };
            let (result, reported) = crate::runtime::metrics::with_result(reconciled).await;
            metrics.observe_reconcile(&kind, if result.is_ok() { reported } else { "error" }, started.elapsed());
            result
        }
    };
    let kind = K::kind(&()).to_string();
    async move {
        controller
            .run(timed, error_policy, ctx)
            .for_each(|result| {
                if let Err(error) = result {
                    tracing::debug!(%error, kind, "reconcile");
                }
                futures::future::ready(())
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::api::{CimiMachine, CimiVolume};

    fn machine(name: &str, volumes: &[&str], deleting: bool) -> CimiMachine {
        let mut m: CimiMachine = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"providerRef": {"name": "p"}, "template": {"machineConfig": {"name": "small"}, "machineImage": {"name": "img"}},
                "volumes": volumes.iter().map(|v| serde_json::json!({"volumeRef": {"name": v}})).collect::<Vec<_>>()}
        }))
        .expect("a machine");
        if deleting {
            m.metadata = ObjectMeta {
                deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                )),
                ..m.metadata
            };
        }
        m
    }

    fn names(refs: Vec<ObjectRef<CimiVolume>>) -> Vec<String> {
        assert!(refs.iter().all(|r| r.namespace.as_deref() == Some("team")), "{refs:?}");
        refs.into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_machine_event_reconciles_what_it_names_and_what_it_released() {
        let map =
            naming::<CimiMachine, CimiVolume>(|m| m.spec.volumes.iter().map(|v| v.volume_ref.name.clone()).collect());
        assert_eq!(names(map(machine("m", &["a", "b"], false))), ["a", "b"]);
        // A status write: the same names, nothing else.
        assert_eq!(names(map(machine("m", &["a", "b"], false))), ["a", "b"]);
        // A detach: the released volume is reconciled too, once.
        assert_eq!(names(map(machine("m", &["a"], false))), ["a", "b"]);
        assert_eq!(names(map(machine("m", &["a"], false))), ["a"]);
        // A machine that names nothing triggers nothing; another machine is its own.
        assert!(map(machine("other", &[], false)).is_empty());
        // Deletion: the names are reconciled and forgotten.
        assert_eq!(names(map(machine("m", &["a"], true))), ["a"]);
        assert_eq!(names(map(machine("m", &["a"], true))), ["a"]);
    }
}
