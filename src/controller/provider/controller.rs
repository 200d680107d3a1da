//! The CimiProvider controller: reads the credentials and CA Secrets (in the operator's namespace),
//! connects, probes the CloudEntryPoint, reads a bounded catalog, writes status, re-probes every
//! `pollInterval`, and keeps the `cimi.dev/in-use` finalizer while objects reference the provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use serde_json::Value;

use crate::api::common::parse_duration;
use crate::api::conditions::{self, ConditionSet, IN_USE, READY, STALLED, Status};
use crate::api::provider::CimiProviderStatus;
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiNetwork, CimiProvider, CimiSystem, CimiVolume};
use crate::cimi::CimiError;
use crate::controller::context::Context;
use crate::controller::kubeops::{add_finalizer, apply_status, has_finalizer, publish, remove_finalizer};
use crate::controller::registry::ProviderConnection;
use crate::names::FINALIZER_IN_USE;

use std::future::Future;
use tokio_util::sync::CancellationToken;

use super::catalog::{bounded_catalog, read_capabilities, read_catalog};
use super::plan::{self, Lifecycle, ProbeDue};
use super::settings::{client_for, plain_http_refusal, read_settings};
use super::users::references;
use crate::controller::driver;
use crate::controller::shell::error::{Error, error_policy};

/// Builds the controller (its watches register with readiness at once) and returns the future that
/// runs it until `shutdown`: CimiProviders with the label selector; the provider Secrets of the
/// operator's namespace (names only) re-connect the providers that use them; CimiMachines,
/// CimiVolumes and CimiNetworks of the watched namespaces re-count the references of theirs.
pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let watches = ctx.watches();
    let owner = CimiProvider::plural(&()).to_string();
    let controller = driver::cluster::<CimiProvider>(&ctx, &shutdown);
    let store = controller.store();
    let namespace = ctx.config.operator_namespace.clone();
    let controller = controller
        .watches_stream(watches.secret_names(&owner, Some(&namespace)), move |secret| {
            let name = secret.name_any();
            let in_ns = secret.namespace().as_deref() == Some(namespace.as_str());
            driver::referencing(&store, |p: &CimiProvider| {
                in_ns
                    && [&p.spec.credentials_secret_ref, &p.spec.ca_bundle_secret_ref]
                        .into_iter()
                        .flatten()
                        .any(|r| r.name == name && r.namespace == namespace)
            })
        })
        .watches_stream(watches.related::<CimiMachine>(&owner), |m: CimiMachine| {
            Some(ObjectRef::new(&m.spec.provider_ref.name))
        })
        .watches_stream(watches.related::<CimiVolume>(&owner), |v: CimiVolume| {
            Some(ObjectRef::new(&v.spec.provider_ref.name))
        })
        .watches_stream(watches.related::<CimiNetwork>(&owner), |n: CimiNetwork| {
            Some(ObjectRef::new(&n.spec.provider_ref.name))
        })
        .watches_stream(watches.related::<CimiSystem>(&owner), |s: CimiSystem| {
            Some(ObjectRef::new(&s.spec.provider_ref.name))
        });
    driver::drive(controller, ctx, reconcile, error_policy::<CimiProvider>)
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
        CimiError::Unavailable { .. } | CimiError::Timeout { .. } | CimiError::RateLimited { .. } => {
            Reason::Unreachable
        }
        _ => Reason::NotCIMI,
    }
}

fn format_latency(d: Duration) -> String {
    if d.as_millis() >= 1000 { format!("{:.1}s", d.as_secs_f64()) } else { format!("{}ms", d.as_millis()) }
}

/// One pass of a provider, in a `reconcile` span naming it.
async fn reconcile(provider: Arc<CimiProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    let span = tracing::info_span!("reconcile", kind = "CimiProvider", name = %provider.name_any());
    pass(provider, ctx).instrument(span).await
}

async fn pass(provider: Arc<CimiProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = provider.name_any();
    let api: Api<CimiProvider> = Api::all(ctx.client.clone());
    let allowed = provider.spec.allowed_namespaces.as_ref();
    let mut users = references(&ctx, &name, allowed, false).await?;
    if users.is_empty() && has_finalizer(&*provider, FINALIZER_IN_USE) {
        // About to release it: make sure from the API, not from caches that may lag a new user.
        users = references(&ctx, &name, allowed, true).await?;
    }
    let old = provider.status.clone().unwrap_or_default();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut conds = ConditionSet::new(&old.conditions, provider.meta().generation, now.clone());
    let (in_use_status, in_use_reason, in_use_message) = plan::in_use(&users);
    conds.set(IN_USE, in_use_status, in_use_reason, in_use_message);

    let deleting = provider.meta().deletion_timestamp.is_some();
    match plan::plan_lifecycle(deleting, users.len(), has_finalizer(&*provider, FINALIZER_IN_USE)) {
        Lifecycle::Release => {
            ctx.providers.remove(&name);
            remove_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
            return Ok(Action::await_change());
        }
        Lifecycle::Hold => {
            let status =
                CimiProviderStatus { conditions: conds.build(), in_use_by: Some(users.len() as i32), ..old.clone() };
            if status != old {
                apply_status(&api, &name, &status).await?;
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

    let poll =
        parse_duration(&provider.spec.poll_interval).unwrap_or(Duration::from_secs(30)).max(Duration::from_secs(1));
    let mut status = CimiProviderStatus {
        observed_generation: provider.meta().generation,
        in_use_by: Some(users.len() as i32),
        ..old.clone()
    };
    let settings = match read_settings(&ctx, &provider).await {
        Ok(s) => s,
        Err(message) => {
            ctx.providers.remove(&name);
            conds.set(READY, Status::False, Reason::CredentialsNotFound, message);
            status.ready = false;
            status.conditions = conds.build();
            write(&ctx, &api, &provider, &old, status).await?;
            return Ok(Action::requeue(poll));
        }
    };
    if let Some(message) = plain_http_refusal(&provider, &settings.auth) {
        ctx.providers.remove(&name);
        conds.set(READY, Status::False, Reason::PlainHttpNotAllowed, message);
        status.ready = false;
        status.conditions = conds.build();
        write(&ctx, &api, &provider, &old, status).await?;
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
    let since = match (remembered, recorded) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let ProbeDue::After(next) = plan::plan_probe(existing.is_some(), since, poll) {
        status.conditions = conds.build();
        write(&ctx, &api, &provider, &old, status).await?;
        return Ok(Action::requeue(next));
    }
    let fp = settings.fingerprint;
    let client = match existing {
        Some(c) => c.client,
        None => match client_for(&provider, settings, &ctx.metrics.client) {
            Ok(c) => {
                tracing::info!(provider = %name, "connecting to the provider");
                c
            }
            Err(error) => {
                conds.set(READY, Status::False, probe_reason(&error), error.to_string());
                status.ready = false;
                status.conditions = conds.build();
                write(&ctx, &api, &provider, &old, status).await?;
                return Ok(Action::requeue(poll));
            }
        },
    };

    let started = Instant::now();
    let probe = client.discover().await;
    let latency = started.elapsed();
    status.last_probe_time = Some(now);
    status.latency = Some(format_latency(latency));
    let connection = match probe {
        Ok(discovery) => match read_catalog(&client).await {
            Ok((full, counts)) => {
                status.ready = true;
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
                    probed: None,
                }
            }
            Err(error) => {
                status.ready = false;
                conds.set(READY, Status::False, probe_reason(&error), format!("reading the catalog: {error}"));
                ProviderConnection {
                    client,
                    fingerprint: fp,
                    ready: false,
                    message: error.to_string(),
                    catalog: Arc::default(),
                    allowed_namespaces: None,
                    probed: None,
                }
            }
        },
        Err(error) => {
            status.ready = false;
            conds.set(READY, Status::False, probe_reason(&error), error.to_string());
            let catalog = ctx.providers.get(&name).map(|c| c.catalog).unwrap_or_default();
            ProviderConnection {
                client,
                fingerprint: fp,
                ready: false,
                message: error.to_string(),
                catalog,
                allowed_namespaces: None,
                probed: None,
            }
        }
    };
    let connection = ProviderConnection {
        allowed_namespaces: provider.spec.allowed_namespaces.clone(),
        probed: Some((started, provider.meta().generation)),
        ..connection
    };
    ctx.providers.put(&name, connection);
    status.conditions = conds.build();
    write(&ctx, &api, &provider, &old, status).await?;
    Ok(Action::requeue(poll))
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
fn with_stalled(
    provider: &CimiProvider,
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
async fn write(
    ctx: &Context,
    api: &Api<CimiProvider>,
    provider: &CimiProvider,
    old: &CimiProviderStatus,
    status: CimiProviderStatus,
) -> Result<(), Error> {
    let mut status = crate::controller::kubeops::bounded(&status);
    status.conditions = with_stalled(provider, status.conditions);
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
    }
}
