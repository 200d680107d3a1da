//! The CimiProvider controller: reads the credentials and CA Secrets (in the operator's namespace),
//! connects, probes the CloudEntryPoint, reads a bounded catalog, writes status, re-probes every
//! `pollInterval`, and keeps the `cimi.dev/in-use` finalizer while objects reference the provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::Future;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::driver;
use super::kubeops::{add_finalizer, apply_status, has_finalizer, publish, remove_finalizer};
use super::registry::{ProviderConnection, fingerprint};
use crate::api::common::parse_duration;
use crate::api::conditions::{self, ConditionSet, IN_USE, READY, STALLED, Status};
use crate::api::provider::{
    CATALOG_ENTRIES_PER_COLLECTION, Capability, Catalog, CatalogEntry, CimiProviderStatus, MAX_CAPABILITIES,
    credentials_from_secret,
};
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiNetwork, CimiProvider, CimiSystem, CimiVolume};
use crate::cimi::query::Query;
use crate::cimi::{Auth, CimiClient, CimiError};
use crate::names::FINALIZER_IN_USE;

/// The catalog collections read at each probe, by CEP collection name.
pub const CATALOG_COLLECTIONS: &[&str] = &[
    "machineConfigs",
    "machineImages",
    "machineTemplates",
    "volumeConfigs",
    "volumeTemplates",
    "networkConfigs",
    "networkTemplates",
    "systemTemplates",
];

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
    driver::drive(controller, ctx, reconcile, error_policy)
}

/// A reconcile failure that only the Kubernetes API can cause (provider problems land in status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

fn error_policy(_: Arc<CimiProvider>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "cimiprovider reconcile failed");
    Action::requeue(super::outcome::backoff(3, None))
}

/// The objects (in this operator's scope) that hold `provider` in use, as `kind namespace/name`, sorted
/// (objects the operator cannot decode are skipped; their watch reports them)
/// (read from the controllers' stores: see [`super::stores`]).
/// With `fresh`, listed from the API instead.
///
/// An object counts when its namespace is one the provider's `allowed` namespaces admit, or when it already
/// has a provider resource (`status.id`) wherever it is: a tenant of a namespace the provider does not admit
/// cannot block the provider's deletion by merely naming it.
pub async fn references(
    ctx: &Context,
    provider: &str,
    allowed: Option<&LabelSelector>,
    fresh: bool,
) -> kube::Result<Vec<String>> {
    let mut out = referencing::<CimiMachine>(ctx, provider, allowed, fresh).await?;
    out.extend(referencing::<CimiVolume>(ctx, provider, allowed, fresh).await?);
    out.extend(referencing::<CimiNetwork>(ctx, provider, allowed, fresh).await?);
    out.extend(referencing::<CimiSystem>(ctx, provider, allowed, fresh).await?);
    out.sort();
    Ok(out)
}

/// The objects of kind `K` in the watched namespaces that hold `provider` in use, as `Kind namespace/name`.
async fn referencing<K>(
    ctx: &Context,
    provider: &str,
    allowed: Option<&LabelSelector>,
    fresh: bool,
) -> kube::Result<Vec<String>>
where
    K: crate::api::managed::Managed + super::stores::Cached,
{
    let objects = if fresh { ctx.listed::<K>(None).await? } else { ctx.objects::<K>(None).await? };
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| o.provider_name() == provider) {
        let namespace = o.namespace().unwrap_or_default();
        let has_resource = o.managed_status().and_then(|s| s.id.as_deref()).is_some_and(|id| !id.is_empty());
        let admitted = match allowed {
            None => true,
            Some(selector) => {
                let labels = ctx.namespace_labels.get(&ctx.client, &namespace).await?.unwrap_or_default();
                super::namespaces::selector_matches(selector, &labels).unwrap_or(false)
            }
        };
        if has_resource || admitted {
            out.push(format!("{} {namespace}/{}", K::kind(&()), o.name_any()));
        }
    }
    Ok(out)
}

/// How long ago `probed` was; `None` when it lies in the future (a clock step: probe again).
fn probe_age(probed: &Time) -> Option<Duration> {
    Duration::try_from(k8s_openapi::jiff::Timestamp::now().duration_since(probed.0)).ok()
}

/// What the provider's Secrets hold (never logged).
struct Settings {
    auth: Auth,
    ca_bundle_pem: Option<Vec<u8>>,
    fingerprint: u64,
}

async fn read_settings(ctx: &Context, provider: &CimiProvider) -> Result<Settings, String> {
    let ns = &ctx.config.operator_namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let spec = &provider.spec;
    let mut auth = Auth::None;
    let mut parts: Vec<Vec<u8>> = vec![
        spec.endpoint.as_bytes().to_vec(),
        format!("{:?}{}", spec.format, spec.insecure_skip_tls_verify).into_bytes(),
        format!("{:?}", spec.rate_limit).into_bytes(),
        format!(
            "{:?}{}{:?}{}",
            spec.trusted_origins, spec.allow_plain_http, spec.read_limits, spec.ca_bundle_replaces_system_roots
        )
        .into_bytes(),
    ];
    if let Some(r) = &spec.credentials_secret_ref {
        if &r.namespace != ns {
            return Err(format!(
                "credentialsSecretRef names namespace {:?}; provider Secrets must live in the operator's namespace {ns:?}",
                r.namespace
            ));
        }
        let secret = secrets
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", r.name))?
            .ok_or_else(|| format!("Secret {ns}/{} does not exist", r.name))?;
        let data: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        auth = credentials_from_secret(&data, &format!("{ns}/{}", r.name))?;
        for k in ["username", "password", "token"] {
            parts.push(data.get(k).cloned().unwrap_or_default());
        }
    }
    let mut ca_bundle_pem = None;
    if let Some(r) = &spec.ca_bundle_secret_ref {
        if &r.namespace != ns {
            return Err(format!("caBundleSecretRef must name a Secret in the operator's namespace {ns:?}"));
        }
        let secret = secrets
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", r.name))?
            .ok_or_else(|| format!("Secret {ns}/{} does not exist", r.name))?;
        let pem = secret
            .data
            .unwrap_or_default()
            .get("ca.crt")
            .map(|v| v.0.clone())
            .ok_or_else(|| format!("Secret {ns}/{} has no key ca.crt", r.name))?;
        parts.push(pem.clone());
        ca_bundle_pem = Some(pem);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(Settings { auth, ca_bundle_pem, fingerprint: fingerprint(&refs) })
}

fn client_for(
    provider: &CimiProvider,
    settings: Settings,
    metrics: &crate::cimi::ClientMetrics,
) -> Result<CimiClient, CimiError> {
    let mut config = provider.client_config(settings.auth, settings.ca_bundle_pem)?;
    // Probes and reconciles requeue on their own; keep in-call retries short.
    config.transport.retry.max_attempts = 2;
    config.transport.request_timeout = Duration::from_secs(15);
    config.transport.connect_timeout = Duration::from_secs(5);
    CimiClient::with_metrics(config, metrics.clone())
}

/// Why the operator will not connect: credentials would go over plain http (the endpoint or a trusted
/// origin) without `spec.allowPlainHttp`. `None` when it may.
pub fn plain_http_refusal(provider: &CimiProvider, auth: &Auth) -> Option<String> {
    if *auth == Auth::None || provider.spec.allow_plain_http {
        return None;
    }
    let plain: Vec<&str> = std::iter::once(provider.spec.endpoint.as_str())
        .chain(provider.spec.trusted_origins.iter().map(String::as_str))
        .filter(|u| u.trim().to_ascii_lowercase().starts_with("http://"))
        .collect();
    (!plain.is_empty()).then(|| {
        format!(
            "{} is plain http: the credentials would travel in clear text; use https, or set spec.allowPlainHttp: \
             true if the network to the provider is trusted",
            plain.join(", ")
        )
    })
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

/// The most entries of one catalog collection kept in memory (names are resolved against them; status
/// shows at most [`CATALOG_ENTRIES_PER_COLLECTION`]).
pub const CATALOG_MAX_ENTRIES: u64 = 10_000;

/// The catalog collections, each read in bounded pages up to [`CATALOG_MAX_ENTRIES`] entries. Entries whose
/// href is not on a trusted origin are left out (nothing could use them).
async fn read_catalog(client: &CimiClient) -> Result<(Catalogue, BTreeMap<String, u64>), CimiError> {
    let discovery = client.discovery().await?;
    let page_size = client.config().page_size;
    let mut out = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for name in CATALOG_COLLECTIONS {
        let Some(url) = discovery.collections.get(*name) else { continue };
        let query = Query::new().last(CATALOG_MAX_ENTRIES);
        let listing = client.list_values_at(url, &query, "", None, page_size).await?;
        let mut entries = Vec::with_capacity(listing.entries.len());
        for item in &listing.entries {
            let Some(href) = item.get("id").and_then(Value::as_str) else { continue };
            let Ok(href) = client.resolve(href).await else { continue };
            let name = item.get("name").and_then(Value::as_str).map(str::to_string);
            entries.push(CatalogEntry { name, href: href.to_string() });
        }
        // The provider's own count, where it states one: the entries kept may be fewer.
        counts.insert((*name).to_string(), listing.count.unwrap_or(0).max(entries.len() as u64));
        out.insert((*name).to_string(), entries);
    }
    Ok((out, counts))
}

/// The catalog entries by CEP collection name.
type Catalogue = BTreeMap<String, Vec<CatalogEntry>>;

/// The capabilities of the provider's ResourceMetadata (the CEP's `resourceMetadata` collection),
/// at most [`MAX_CAPABILITIES`]; none when the provider offers no ResourceMetadata.
async fn read_capabilities(client: &CimiClient) -> Result<Vec<Capability>, CimiError> {
    let discovery = client.discovery().await?;
    let Some(url) = discovery.collections.get("resourceMetadata") else { return Ok(Vec::new()) };
    let page = client.list_page_value(url, &Query::new(), "").await?;
    Ok(capabilities_of(&crate::controller::resource::reads::entries(&page)))
}

/// The capabilities listed by ResourceMetadata documents, capped at [`MAX_CAPABILITIES`]. The
/// resource is the document's name (else the last segment of its typeURI); an absent value means
/// boolean true and stays absent.
pub fn capabilities_of(metadata: &[Value]) -> Vec<Capability> {
    let mut out = Vec::new();
    for doc in metadata {
        let resource = doc
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| doc.get("typeURI").and_then(Value::as_str).and_then(|t| t.rsplit('/').next()))
            .unwrap_or_default();
        for capability in doc.get("capabilities").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = capability.get("name").and_then(Value::as_str) else { continue };
            let value = match capability.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            out.push(Capability { resource: resource.to_string(), name: name.to_string(), value });
            if out.len() == MAX_CAPABILITIES {
                return out;
            }
        }
    }
    out
}

/// The bounded catalog of status from the one read, with each collection's full size (`counts`, the
/// provider's count where it stated one).
pub fn bounded_catalog(full: &BTreeMap<String, Vec<CatalogEntry>>, counts: &BTreeMap<String, u64>) -> Catalog {
    let mut catalog = Catalog::default();
    for (name, entries) in full {
        let count = counts.get(name).copied().unwrap_or(0).max(entries.len() as u64);
        catalog.counts.insert(name.clone(), i64::try_from(count).unwrap_or(i64::MAX));
        if count > CATALOG_ENTRIES_PER_COLLECTION as u64 {
            catalog.truncated = true;
        }
        let capped: Vec<CatalogEntry> = entries.iter().take(CATALOG_ENTRIES_PER_COLLECTION).cloned().collect();
        let slot = match name.as_str() {
            "machineConfigs" => &mut catalog.machine_configs,
            "machineImages" => &mut catalog.machine_images,
            "machineTemplates" => &mut catalog.machine_templates,
            "volumeConfigs" => &mut catalog.volume_configs,
            "volumeTemplates" => &mut catalog.volume_templates,
            "networkConfigs" => &mut catalog.network_configs,
            "networkTemplates" => &mut catalog.network_templates,
            "systemTemplates" => &mut catalog.system_templates,
            _ => continue,
        };
        *slot = capped;
    }
    catalog
}

fn format_latency(d: Duration) -> String {
    if d.as_millis() >= 1000 { format!("{:.1}s", d.as_secs_f64()) } else { format!("{}ms", d.as_millis()) }
}

async fn reconcile(provider: Arc<CimiProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
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
    if users.is_empty() {
        conds.set(IN_USE, Status::False, Reason::NotReferenced, "no object references this provider");
    } else {
        let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
        let more = if users.len() > 5 { format!(" and {} more", users.len() - 5) } else { String::new() };
        conds.set(IN_USE, Status::True, Reason::Referenced, format!("referenced by {}{more}", shown.join(", ")));
    }

    if provider.meta().deletion_timestamp.is_some() {
        if users.is_empty() {
            ctx.providers.remove(&name);
            remove_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
            return Ok(Action::await_change());
        }
        let status =
            CimiProviderStatus { conditions: conds.build(), in_use_by: Some(users.len() as i32), ..old.clone() };
        if status != old {
            apply_status(&api, &name, &status).await?;
        }
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    if users.is_empty() {
        remove_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
    } else if !has_finalizer(&*provider, FINALIZER_IN_USE) {
        add_finalizer(&api, &*provider, FINALIZER_IN_USE).await?;
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
    if existing.is_some()
        && let Some(since) = since
        && since < poll
    {
        status.conditions = conds.build();
        write(&ctx, &api, &provider, &old, status).await?;
        return Ok(Action::requeue(poll - since));
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
    let mut status = super::kubeops::bounded(&status);
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

    fn provider(endpoint: &str, trusted: &[&str], allow: bool) -> CimiProvider {
        let spec = serde_json::json!({"endpoint": endpoint, "trustedOrigins": trusted, "allowPlainHttp": allow});
        CimiProvider::new("p", serde_json::from_value(spec).expect("spec"))
    }

    #[test]
    fn plain_http_needs_an_explicit_opt_in() {
        let basic = Auth::Basic { username: "u".into(), password: crate::cimi::Secret::new("p") };
        let refusal = plain_http_refusal(&provider("http://lab:8780/", &[], false), &basic).expect("refused");
        assert!(refusal.contains("http://lab:8780/") && refusal.contains("allowPlainHttp"), "{refusal}");
        assert_eq!(plain_http_refusal(&provider("http://lab:8780/", &[], true), &basic), None);
        assert_eq!(plain_http_refusal(&provider("https://lab/", &[], false), &basic), None);
        assert_eq!(plain_http_refusal(&provider("http://lab/", &[], false), &Auth::None), None, "no credentials");
        let refusal =
            plain_http_refusal(&provider("https://lab/", &["http://jobs.lab"], false), &basic).expect("refused");
        assert!(refusal.contains("http://jobs.lab"), "a plain-http trusted origin counts too: {refusal}");
    }

    #[test]
    fn capabilities_come_from_resource_metadata_and_are_capped() {
        let docs = vec![
            serde_json::json!({"name": "Machine", "capabilities": [
                {"name": "InitialStates", "value": "STARTED,STOPPED"},
                {"name": "MachineStopForce"},
                {"value": "no name"}
            ]}),
            serde_json::json!({"typeURI": "http://schemas.dmtf.org/cimi/1/Job", "capabilities": [
                {"name": "JobRetention", "value": 60}
            ]}),
        ];
        let caps = capabilities_of(&docs);
        assert_eq!(caps.len(), 3);
        assert_eq!(
            caps[0],
            Capability {
                resource: "Machine".into(),
                name: "InitialStates".into(),
                value: Some("STARTED,STOPPED".into())
            }
        );
        assert_eq!(caps[1].value, None, "an absent value means true and stays absent");
        assert_eq!((caps[2].resource.as_str(), caps[2].value.as_deref()), ("Job", Some("60")));
        let many: Vec<Value> = (0..3)
            .map(|i| serde_json::json!({"name": format!("R{i}"), "capabilities": (0..60).map(|j| serde_json::json!({"name": format!("c{j}")})).collect::<Vec<_>>()}))
            .collect();
        assert_eq!(capabilities_of(&many).len(), MAX_CAPABILITIES);
    }

    #[test]
    fn the_status_catalog_is_capped_but_counts_are_complete() {
        let mut full = BTreeMap::new();
        let many: Vec<CatalogEntry> = (0..60)
            .map(|i| CatalogEntry { name: Some(format!("img{i}")), href: format!("http://p/img/{i}") })
            .collect();
        full.insert("machineImages".to_string(), many);
        full.insert("machineConfigs".to_string(), vec![CatalogEntry { name: Some("small".into()), href: "h".into() }]);
        let mut counts = BTreeMap::new();
        counts.insert("machineConfigs".to_string(), 3);
        let catalog = bounded_catalog(&full, &counts);
        assert_eq!(catalog.machine_images.len(), CATALOG_ENTRIES_PER_COLLECTION);
        assert_eq!(catalog.counts["machineImages"], 60);
        assert_eq!(catalog.machine_configs.len(), 1);
        assert_eq!(catalog.counts["machineConfigs"], 3, "the provider's count, though one entry was read");
        assert!(catalog.truncated);
    }
}
