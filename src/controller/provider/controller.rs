//! The provider controller, one for each provider kind ([`super::kind::ProviderObject`]): reads the
//! credentials and CA Secrets (in the operator's namespace for a CimiProvider, in its own for a
//! CimiNamespacedProvider), connects, probes the CloudEntryPoint, reads a bounded catalog, writes status,
//! re-probes every `pollInterval`, and keeps the `cimi.dev/in-use` finalizer while objects reference the
//! provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use crate::api::common::{ProviderKind, parse_duration};
use crate::api::conditions::{self, ConditionSet, IN_USE, READY, STALLED, Status};
use crate::api::managed::Managed;
use crate::api::provider::CimiProviderStatus;
use crate::api::reasons::Reason;
use crate::api::{
    CimiMachine, CimiMachineImage, CimiNamespacedProvider, CimiNetwork, CimiProvider, CimiSystem, CimiVolume,
    CimiVolumeImage,
};
use crate::cimi::CimiError;
use crate::controller::context::Context;
use crate::controller::kubeops::{add_finalizer, apply_status, has_finalizer, publish, remove_finalizer};
use crate::controller::registry::ProviderConnection;
use crate::names::FINALIZER_IN_USE;

use std::future::Future;
use tokio_util::sync::CancellationToken;

use super::catalog::{bounded_catalog, read_capabilities, read_catalog, stop_force};
use super::kind::ProviderObject;
use super::plan::{self, Lifecycle, ProbeDue};
use super::settings::{client_for, plain_http_refusal, read_settings};
use super::users::references;
use crate::controller::driver;
use crate::controller::shell::error::{Error, error_policy};
use crate::runtime::watches::{Watched, Watches};

/// The CimiProvider controller (its watches register with readiness at once), as a future that runs it
/// until `shutdown`: CimiProviders with the label selector, the provider Secrets of the operator's
/// namespace (names only), and the managed objects of the watched namespaces that name a CimiProvider.
pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let controller = driver::cluster::<CimiProvider>(&ctx, &shutdown, forget::<CimiProvider>(&ctx));
    let secrets = Some(ctx.config.operator_namespace.clone());
    run_kind(ctx, controller, secrets)
}

/// The CimiNamespacedProvider controller, as [`run`]: CimiNamespacedProviders of the watched namespaces, the
/// Secrets there, and the managed objects that name a CimiNamespacedProvider of their namespace.
pub fn run_namespaced(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let controller =
        driver::namespaced_unmanaged::<CimiNamespacedProvider>(&ctx, &shutdown, forget::<CimiNamespacedProvider>(&ctx));
    run_kind(ctx, controller, None)
}

/// Forgets a provider that left the store: its connection (objects that name it afterwards get ProviderNotFound,
/// not a client of a provider that no longer exists) and its probe gauges. A provider deleted while nothing used
/// it has no finalizer and gets no reconcile once gone: this is where it is let go.
fn forget<P: ProviderObject>(ctx: &Arc<Context>) -> crate::runtime::watches::OnDelete<P> {
    let ctx = ctx.clone();
    Arc::new(move |provider: &P| {
        let key = provider.key().to_string();
        ctx.providers.remove(&key);
        ctx.metrics.forget_provider(&key);
    })
}

/// The reconcile request for the provider of kind `P` that `user` names, if it names one of that kind.
fn provider_of<P: ProviderObject, K: Managed>(user: &K) -> Option<ObjectRef<P>> {
    let reference = user.provider_ref();
    (reference.kind == P::KIND).then(|| {
        let object = ObjectRef::new(&reference.name);
        match (P::KIND, user.namespace()) {
            (ProviderKind::CimiNamespacedProvider, Some(ns)) => object.within(&ns),
            _ => object,
        }
    })
}

/// Recounts the users of a provider when an object of kind `K` starts or stops naming it. Its other changes
/// (its status writes, its provider resource appearing) do not wake the provider: at 10,000 objects a pass per
/// write was a pass over every object per write. Whether an object has a provider resource changes the count
/// only under `allowedNamespaces`, and the pass that recounts comes at the latest one pollInterval later.
fn counts_users<P: ProviderObject, K: Managed + Watched>(
    controller: Controller<P>,
    watches: &Watches,
    owner: &str,
) -> Controller<P> {
    controller.watches_stream(watches.related_changes::<K, _>(owner, K::provider_key), |o: K| provider_of::<P, _>(&o))
}

/// Wires a provider controller: Secrets of `secret_namespace` (every watched namespace when `None`) re-connect
/// the providers that use them; each managed kind re-counts the references of its provider.
fn run_kind<P: ProviderObject>(
    ctx: Arc<Context>,
    controller: Controller<P>,
    secret_namespace: Option<String>,
) -> impl Future<Output = ()> + Send + 'static {
    let watches = ctx.watches();
    let owner = P::plural(&()).to_string();
    let store = controller.store();
    let operator_namespace = ctx.config.operator_namespace.clone();
    let controller =
        controller.watches_stream(watches.secret_names(&owner, secret_namespace.as_deref()), move |secret| {
            let (name, namespace) = (secret.name_any(), secret.namespace().unwrap_or_default());
            driver::referencing(&store, |p: &P| {
                let home = match P::KIND {
                    ProviderKind::CimiProvider => operator_namespace.clone(),
                    ProviderKind::CimiNamespacedProvider => p.namespace().unwrap_or_default(),
                };
                let settings = p.settings();
                home == namespace
                    && [&settings.credential_secret_ref, &settings.ca_bundle_secret_ref]
                        .into_iter()
                        .flatten()
                        .any(|r| r.name == name)
            })
        });
    let controller = counts_users::<P, CimiMachine>(controller, &watches, &owner);
    let controller = counts_users::<P, CimiVolume>(controller, &watches, &owner);
    let controller = counts_users::<P, CimiNetwork>(controller, &watches, &owner);
    let controller = counts_users::<P, CimiSystem>(controller, &watches, &owner);
    let controller = counts_users::<P, CimiMachineImage>(controller, &watches, &owner);
    let controller = counts_users::<P, CimiVolumeImage>(controller, &watches, &owner);
    driver::drive(controller, ctx, driver::Ownership::Every, reconcile::<P>, error_policy::<P>)
}

/// A provider's `pollInterval` (30 s when it does not parse; at least 1 s).
fn poll_interval(settings: &crate::api::provider::ProviderSettings) -> Duration {
    parse_duration(&settings.poll_interval).unwrap_or(Duration::from_secs(30)).max(Duration::from_secs(1))
}

/// How long ago `probed` was; `None` when it lies in the future (a clock step: probe again).
fn probe_age(probed: &Time) -> Option<Duration> {
    Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(probed.0)).ok()
}

/// The Ready reason of a failed probe.
pub fn probe_reason(error: &CimiError) -> Reason {
    match error {
        CimiError::Unauthorized { .. } => Reason::Unauthorized,
        CimiError::UntrustedHref { .. } => Reason::UntrustedHref,
        CimiError::ReadLimit { .. } => Reason::ReadLimitExceeded,
        CimiError::Unavailable { message, .. } | CimiError::Config(message)
            if message.to_ascii_lowercase().contains("certificate") || message.to_ascii_lowercase().contains("tls") =>
        {
            Reason::TLSError
        }
        CimiError::RateLimited { .. } => Reason::RateLimited,
        CimiError::Unavailable { .. } | CimiError::Timeout { .. } => Reason::Unreachable,
        _ => Reason::NotCIMI,
    }
}

fn format_latency(d: Duration) -> String {
    if d.as_millis() >= 1000 { format!("{:.1}s", d.as_secs_f64()) } else { format!("{}ms", d.as_millis()) }
}

/// One pass of a provider, in a `reconcile` span naming it.
async fn reconcile<P: ProviderObject>(provider: Arc<P>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    let span = tracing::info_span!(
        "reconcile",
        kind = P::KIND.as_str(),
        namespace = provider.namespace().unwrap_or_default(),
        name = %provider.name_any()
    );
    pass(provider, ctx).instrument(span).await
}

async fn pass<P: ProviderObject>(provider: Arc<P>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.config.shard.probes_providers() {
        return Ok(follow(&*provider, &ctx).await);
    }
    let name = provider.key().to_string();
    let api = provider.api(&ctx.client);
    let allowed = provider.allowed_namespaces();
    let mut users = references(&ctx, &name, allowed, false).await?;
    if users.is_empty() && has_finalizer(&*provider, FINALIZER_IN_USE) {
        // About to release it: make sure from the API, not from caches that may lag a new user.
        users = references(&ctx, &name, allowed, true).await?;
    }
    let old = provider.provider_status().cloned().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut conds = ConditionSet::new(&old.conditions, provider.meta().generation, now.clone());
    let (in_use_status, in_use_reason, in_use_message) = plan::in_use(&users);
    conds.set(IN_USE, in_use_status, in_use_reason, in_use_message);

    let deleting = provider.meta().deletion_timestamp.is_some();
    match plan::plan_lifecycle(deleting, users.len(), has_finalizer(&*provider, FINALIZER_IN_USE)) {
        Lifecycle::Release => {
            ctx.providers.remove(&name);
            ctx.metrics.forget_provider(&name);
            remove_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
            return Ok(Action::await_change());
        }
        Lifecycle::Hold => {
            let status =
                CimiProviderStatus { conditions: conds.build(), in_use_by: Some(users.len() as i32), ..old.clone() };
            if status != old {
                apply_status(&api, &provider.name_any(), &status).await?;
            }
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        Lifecycle::Keep { add, remove } => {
            if add {
                add_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
            }
            if remove {
                remove_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
            }
        }
    }

    let poll = poll_interval(provider.settings());
    let mut status = CimiProviderStatus {
        observed_generation: provider.meta().generation,
        in_use_by: Some(users.len() as i32),
        ..old.clone()
    };
    let settings = match read_settings(&ctx, &*provider).await {
        Ok(s) => s,
        Err(message) => {
            ctx.providers.remove(&name);
            ctx.metrics.observe_probe(&name, false, Duration::ZERO);
            conds.set(READY, Status::False, Reason::CredentialsNotFound, message);
            status.conditions = conds.build();
            write(&ctx, &api, &*provider, &old, status).await?;
            return Ok(Action::requeue(poll));
        }
    };
    if let Some(message) = plain_http_refusal(provider.settings(), &settings.auth) {
        ctx.providers.remove(&name);
        ctx.metrics.observe_probe(&name, false, Duration::ZERO);
        conds.set(READY, Status::False, Reason::PlainHttpNotAllowed, message);
        status.conditions = conds.build();
        write(&ctx, &api, &*provider, &old, status).await?;
        return Ok(Action::requeue(poll));
    }
    let existing = ctx.providers.get(&name).filter(|c| c.fingerprint == settings.fingerprint);
    // Between probes, a pass triggered by an object that references the provider (or by our own status
    // write) only recounts the users: the CloudEntryPoint and catalog are read once per pollInterval, or
    // at once when the spec or the Secrets change.
    // The connection remembers its probe too: the object this pass reads may come from a cache that does
    // not show the status of the last probe yet.
    let generation = provider.meta().generation;
    let remembered =
        existing.as_ref().and_then(|c| c.probed).filter(|(_, g)| *g == generation).map(|(t, _)| t.elapsed());
    let recorded = old.last_probe_time.as_ref().and_then(probe_age).filter(|_| old.observed_generation == generation);
    match plan::plan_probe(existing.is_some(), remembered, recorded, poll) {
        ProbeDue::Now => {}
        ProbeDue::After(next) => {
            status.conditions = conds.build();
            write(&ctx, &api, &*provider, &old, status).await?;
            return Ok(Action::requeue(next));
        }
        ProbeDue::Behind(next) => return Ok(Action::requeue(next)),
    }
    let fp = settings.fingerprint;
    let client = match existing {
        Some(c) => c.client,
        None => match client_for(&name, provider.settings(), settings, &ctx.metrics.client, ctx.config.shard) {
            Ok(c) => {
                tracing::info!(provider = %name, "connecting to the provider");
                c
            }
            Err(error) => {
                ctx.metrics.observe_probe(&name, false, Duration::ZERO);
                conds.set(READY, Status::False, probe_reason(&error), error.to_string());
                status.conditions = conds.build();
                write(&ctx, &api, &*provider, &old, status).await?;
                return Ok(Action::requeue(poll));
            }
        },
    };

    let started = Instant::now();
    let probe = client.discover().await;
    let latency = started.elapsed();
    status.last_probe_time = Some(now);
    status.latency = Some(format_latency(latency));
    let read = match probe {
        Ok(discovery) => match read_catalog(&client).await {
            Ok(catalog) => Ok((discovery, catalog)),
            Err(error) => Err(ProbeFailure { message: format!("reading the catalog: {error}"), error, keep: false }),
        },
        Err(error) => Err(ProbeFailure { message: error.to_string(), error, keep: true }),
    };
    // The connection of the last good probe, with these very settings.
    let previous = ctx.providers.get(&name).filter(|c| c.ready && c.fingerprint == fp);
    let mut next_probe = poll;
    let connection = match (read, previous) {
        (Ok((discovery, (full, counts))), _) => {
            status.cimi_version = Some(
                discovery
                    .cep
                    .extra
                    .get("cimiVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| "1.x".to_string()),
            );
            status.base_uri = Some(discovery.base.to_string());
            status.collections = discovery.collections.keys().cloned().collect();
            status.catalog = Some(bounded_catalog(&full, &counts));
            status.capabilities = match read_capabilities(&client).await {
                Ok(capabilities) => capabilities,
                Err(error) => {
                    tracing::debug!(provider = %name, %error, "cannot read ResourceMetadata; capabilities unknown");
                    Vec::new()
                }
            };
            conds.set(
                READY,
                Status::True,
                Reason::Reachable,
                format!("CloudEntryPoint at {} answered in {}", discovery.base, format_latency(latency)),
            );
            ProviderConnection {
                client,
                fingerprint: fp,
                ready: true,
                message: String::new(),
                catalog: Arc::new(full),
                allowed_namespaces: None,
                import_rights: None,
                probed: None,
                machine_stop_force: stop_force(&status.capabilities),
            }
        }
        // A 429 is an answer: a provider that was Ready is there, only busy. It stays Ready with what its last
        // good probe read (connection, catalog, status), and is probed again as usual, or later if it asks.
        (Err(ProbeFailure { error: CimiError::RateLimited { retry_after, .. }, message, .. }), Some(previous)) => {
            next_probe = throttled_probe_delay(retry_after, poll);
            conds.set(
                READY,
                Status::True,
                Reason::Reachable,
                format!(
                    "the provider is rate limiting the probe (429, {message}); what its last probe read stays in \
                     use, and it is probed again in {}s",
                    next_probe.as_secs()
                ),
            );
            previous
        }
        (Err(ProbeFailure { error, message, keep }), _) => {
            if matches!(error, CimiError::RateLimited { .. }) {
                next_probe = throttled_probe_delay(error.retry_after(), poll);
            }
            conds.set(READY, Status::False, probe_reason(&error), message);
            let catalog =
                if keep { ctx.providers.get(&name).map(|c| c.catalog).unwrap_or_default() } else { Arc::default() };
            ProviderConnection {
                client,
                fingerprint: fp,
                ready: false,
                message: error.to_string(),
                catalog,
                allowed_namespaces: None,
                import_rights: None,
                probed: None,
                machine_stop_force: false,
            }
        }
    };
    // Deleted while the probe ran (an unreachable provider's probe lasts its timeout)? Then the store's deletion
    // has forgotten it already, and this pass must not bring its connection back.
    if matches!(crate::controller::registry::read_provider(&ctx.client, &provider.key()).await, Ok(None)) {
        ctx.providers.remove(&name);
        ctx.metrics.forget_provider(&name);
        return Ok(Action::await_change());
    }
    ctx.metrics.observe_probe(&name, connection.ready, latency);
    let connection = ProviderConnection {
        allowed_namespaces: provider.allowed_namespaces().cloned(),
        import_rights: provider.settings().import_rights.clone(),
        probed: Some((started, provider.meta().generation)),
        ..connection
    };
    ctx.providers.put(&name, connection);
    status.observation = ctx.observer.observation(&name);
    status.conditions = conds.build();
    write(&ctx, &api, &*provider, &old, status).await?;
    Ok(Action::requeue(next_probe))
}

/// Why a probe failed: the error, the condition's message, and whether the catalog of the last probe is kept
/// (the CloudEntryPoint did not answer) or dropped (it answered, but its catalog could not be read).
struct ProbeFailure {
    error: CimiError,
    message: String,
    keep: bool,
}

/// When to probe a provider that answered 429 again: after its pollInterval, or after its Retry-After (up to
/// 5 minutes) when that is longer; a busy provider is never probed sooner than usual.
fn throttled_probe_delay(retry_after: Option<Duration>, poll: Duration) -> Duration {
    poll.max(retry_after.unwrap_or_default().min(Duration::from_secs(300)))
}

/// How soon a shard that follows a provider looks again while the provider's status does not say Ready yet (shard
/// 0 writes it after its probe).
const FOLLOW_RETRY: Duration = Duration::from_secs(2);

/// One pass of a shard other than 0: it uses the provider without probing it or writing to it. It connects with the
/// provider's settings and Secrets, and takes readiness, capabilities and the catalog from the status shard 0
/// wrote (reading the catalog itself only when that status holds a truncated one). Its connection is remade when
/// the settings or Secrets change, and refreshed once per pollInterval, as shard 0 probes.
async fn follow<P: ProviderObject>(provider: &P, ctx: &Context) -> Action {
    let name = provider.key().to_string();
    let poll = poll_interval(provider.settings());
    let settings = match read_settings(ctx, provider).await {
        Ok(settings) if plain_http_refusal(provider.settings(), &settings.auth).is_none() => settings,
        // Shard 0 says why in the provider's status; without a connection, objects wait with ProviderNotReady.
        _ => {
            ctx.providers.remove(&name);
            return Action::requeue(poll);
        }
    };
    let status = provider.provider_status().cloned().unwrap_or_default();
    let generation = provider.meta().generation;
    let ready_condition =
        conditions::find(&status.conditions, READY).filter(|_| status.observed_generation == generation);
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let due = if ready { poll } else { FOLLOW_RETRY.min(poll) };
    let existing = ctx.providers.get(&name).filter(|c| c.fingerprint == settings.fingerprint);
    let fresh = existing.as_ref().and_then(|c| c.probed).filter(|(at, g)| *g == generation && at.elapsed() < due);
    if let (Some(connection), Some((at, _))) = (&existing, fresh)
        && connection.ready == ready
    {
        return Action::requeue(due.saturating_sub(at.elapsed()));
    }
    let fingerprint = settings.fingerprint;
    let client = match existing.as_ref() {
        Some(connection) => connection.client.clone(),
        None => match client_for(&name, provider.settings(), settings, &ctx.metrics.client, ctx.config.shard) {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(provider = %name, %error, "cannot connect to the provider");
                ctx.providers.remove(&name);
                return Action::requeue(poll);
            }
        },
    };
    let previous = existing.map(|c| c.catalog).unwrap_or_default();
    let catalog = match status.catalog.as_ref().and_then(super::catalog::catalogue_from_status) {
        Some(catalog) if ready => Arc::new(catalog),
        _ if !ready => previous,
        _ => match read_catalog(&client).await {
            Ok((full, _)) => Arc::new(full),
            Err(error) => {
                tracing::debug!(provider = %name, %error, "cannot read the catalog; keeping the last one");
                previous
            }
        },
    };
    let message = match ready_condition {
        Some(condition) if !ready => condition.message.clone(),
        Some(_) => String::new(),
        None => format!("waiting for shard 0 to probe the provider (it has not reported on generation {generation:?})"),
    };
    ctx.providers.put(
        &name,
        ProviderConnection {
            client,
            fingerprint,
            ready,
            message,
            catalog,
            allowed_namespaces: provider.allowed_namespaces().cloned(),
            import_rights: provider.settings().import_rights.clone(),
            probed: Some((Instant::now(), generation)),
            machine_stop_force: stop_force(&status.capabilities),
        },
    );
    Action::requeue(due)
}

/// The Ready reasons of a CimiProvider that a retry cannot mend: a human must change the spec, a Secret or
/// the provider.
const NEEDS_A_HUMAN: &[Reason] = &[
    Reason::Unauthorized,
    Reason::NotCIMI,
    Reason::TLSError,
    Reason::CredentialsNotFound,
    Reason::PlainHttpNotAllowed,
    Reason::UntrustedHref,
    Reason::ReadLimitExceeded,
];

/// `conditions` with `Stalled=True` (the Ready condition's reason and message) when the provider is not Ready
/// for a reason that needs a human, so that Argo CD shows Degraded and Flux fails promptly; without a Stalled
/// condition otherwise (an unreachable provider may come back by itself).
fn with_stalled<P: ProviderObject>(
    provider: &P,
    conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let ready = conditions::find(&conditions, READY).cloned();
    let mut conds =
        ConditionSet::new(&conditions, provider.meta().generation, Time(k8s_openapi::jiff::Timestamp::now()));
    let stalled = ready
        .as_ref()
        .filter(|c| c.status == "False")
        .and_then(|c| NEEDS_A_HUMAN.iter().find(|r| r.as_str() == c.reason).map(|r| (*r, c.message.clone())));
    match stalled {
        Some((reason, message)) => {
            conds.set(STALLED, Status::True, reason, message);
        }
        None => {
            conds.remove(STALLED);
        }
    }
    conds.build()
}

/// Writes status when it changed (the probe time and latency alone do not count) and records an
/// Event when Ready flips or changes reason.
async fn write<P: ProviderObject>(
    ctx: &Context,
    api: &kube::Api<P>,
    provider: &P,
    old: &CimiProviderStatus,
    status: CimiProviderStatus,
) -> Result<(), Error> {
    let mut status = crate::controller::kubeops::bounded(&status);
    status.conditions = with_stalled(provider, status.conditions);
    crate::runtime::metrics::report_result(if conditions::is_true(&status.conditions, READY) { "ok" } else { "error" });
    let comparable = |s: &CimiProviderStatus| CimiProviderStatus { last_probe_time: None, latency: None, ..s.clone() };
    let probe_due = match (&old.last_probe_time, &status.last_probe_time) {
        (Some(a), Some(b)) => b.0.duration_since(a.0).as_secs() >= 60,
        (None, Some(_)) => true,
        _ => false,
    };
    if comparable(old) == comparable(&status) && !probe_due {
        return Ok(());
    }
    apply_status(api, &provider.name_any(), &status).await?;
    let before = conditions::find(&old.conditions, READY).map(|c| (c.status.clone(), c.reason.clone()));
    if let Some(now) = conditions::find(&status.conditions, READY)
        && before.as_ref() != Some(&(now.status.clone(), now.reason.clone()))
    {
        publish(&ctx.recorder, provider, now.status != "True", &now.reason, "Probe", now.message.clone()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_errors_name_the_cause() {
        assert_eq!(probe_reason(&CimiError::Unauthorized { href: "h".into(), status: 401 }), Reason::Unauthorized);
        assert_eq!(
            probe_reason(&CimiError::Unavailable {
                href: "h".into(),
                status: None,
                message: "connection refused".into(),
                retry_after: None
            }),
            Reason::Unreachable
        );
        assert_eq!(probe_reason(&CimiError::protocol("h", "not a CloudEntryPoint", b"<html>")), Reason::NotCIMI);
        assert_eq!(probe_reason(&CimiError::NotFound { href: "h".into() }), Reason::NotCIMI);
        let throttled = CimiError::RateLimited { href: "h".into(), retry_after: None };
        assert_eq!(probe_reason(&throttled), Reason::RateLimited, "a 429 is an answer, not an unreachable endpoint");
    }

    #[test]
    fn a_throttled_provider_is_probed_no_sooner_than_usual() {
        let poll = Duration::from_secs(30);
        assert_eq!(throttled_probe_delay(None, poll), poll);
        assert_eq!(throttled_probe_delay(Some(Duration::from_secs(2)), poll), poll);
        assert_eq!(throttled_probe_delay(Some(Duration::from_secs(90)), poll), Duration::from_secs(90));
        assert_eq!(throttled_probe_delay(Some(Duration::from_secs(86_400)), poll), Duration::from_secs(300));
    }
}
