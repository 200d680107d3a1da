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
//!     let controller = watching::namespaced::<CimiSystem>(&ctx, &shutdown)
//!         .watches_stream(ctx.watches().related::<CimiMachine>("cimisystems"), |m| /* systems of m */);
//!     watching::drive(controller, ctx, reconcile, error_policy)
//! }
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, reflector::Store};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::api::managed::Managed;

/// A controller of the managed kind `K` on every watched namespace, with the label selector,
/// concurrency and graceful shutdown of the operator; its store feeds `cimi_resources` and
/// `cimi_job_duration_seconds`. Add related watches with `watches_stream` (see
/// [`crate::runtime::watches::Watches::related`]), then [`drive`] it.
pub fn namespaced<K>(ctx: &Context, shutdown: &CancellationToken) -> Controller<K>
where
    K: Managed + Resource<Scope = NamespaceResourceScope> + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let status_of: crate::runtime::watches::StatusOf<K> = |k: &K| (k.provider_name(), k.managed_status());
    let (store, triggers, release) = ctx.watches().reflect::<K>(Some(status_of));
    Controller::for_stream(triggers, store)
        .with_config(controller::Config::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(release.on_shutdown(shutdown.clone()))
}

/// A controller of the cluster-scoped kind `K` (CimiProvider), as [`namespaced`].
pub fn cluster<K>(ctx: &Context, shutdown: &CancellationToken) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, triggers, release) = ctx.watches().reflect_cluster::<K>();
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

/// Runs `controller` until its shutdown, counting and timing each reconcile by kind and result
/// (`ok`, or `error` when the reconcile returned an error).
pub fn drive<K, R, Fut, E>(
    controller: Controller<K>,
    ctx: Arc<Context>,
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
    let timed = move |obj: Arc<K>, ctx: Arc<Context>| {
        let (metrics, kind) = (metrics.clone(), kind.clone());
        let started = Instant::now();
        let reconciled = reconcile(obj, ctx);
        async move {
            let result = reconciled.await;
            metrics.observe_reconcile(&kind, if result.is_ok() { "ok" } else { "error" }, started.elapsed());
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
