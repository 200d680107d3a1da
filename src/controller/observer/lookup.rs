//! The observer's handle ([`Observer`]): the change streams the controllers reconcile on, and how a reconcile
//! reads its provider resource — from the poll cache when the object is steady, else by a GET whose answer
//! refreshes the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::poll::{poll_loop, timing};
use super::shared::*;
use crate::api::common::ManagedStatus;
use crate::cimi::{CimiClient, CimiError};
use crate::controller::registry::ProviderRegistry;
use crate::runtime::Config;
use crate::runtime::metrics::{MeterLabels, Metrics};

impl Observer {
    /// An observer for one operator instance; its poll tasks stop when it is dropped.
    pub fn new(
        client: kube::Client,
        recorder: crate::runtime::events::EventRecorder,
        config: &Config,
        providers: ProviderRegistry,
        metrics: Metrics,
    ) -> Self {
        let stop = CancellationToken::new();
        let mut triggers = HashMap::new();
        let mut receivers = HashMap::new();
        for collection in ["machines", "volumes", "networks"] {
            let (tx, rx) = mpsc::unbounded_channel();
            triggers.insert(collection, tx);
            receivers.insert(collection, rx);
        }
        Self {
            inner: Arc::new(Inner {
                providers,
                client,
                recorder,
                page_size: config.observe_page_size.max(1),
                cluster: config.cluster_name.clone(),
                timings: Mutex::new(HashMap::new()),
                gauges_max: config.meter_gauges_max,
                metrics,
                stop: stop.clone(),
                pollers: Mutex::new(HashMap::new()),
                triggers: Mutex::new(triggers),
                receivers: Mutex::new(receivers),
                monitors: Mutex::new(HashMap::new()),
                gauges: Mutex::new(GaugeSet::default()),
                batches: Mutex::new(HashMap::new()),
            }),
            _stop: stop.drop_guard(),
        }
    }

    /// The objects of `collection` whose provider resource changed (or vanished) in a listing, for
    /// `Controller::reconcile_on`. The stream can be taken once; a second call gets an empty stream.
    pub fn changes<K>(&self, collection: &'static str) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + 'static,
    {
        let rx = lock(&self.inner.receivers).remove(collection);
        futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            let (ns, name) = rx.recv().await?;
            Some((ObjectRef::<K>::new(&name).within(&ns), Some(rx)))
        })
    }

    /// Stores what a GET of `href` answered (fresher than any listing started before) and whose it is.
    pub fn record(&self, provider: &str, collection: &'static str, href: &str, value: &Value, owner: Owner) {
        let poller = self.poller(provider, collection);
        let mut state = lock_state(&poller);
        let listed = state.entries.get(href).is_some_and(|c| c.listed);
        state.entries.insert(href.to_string(), Cached::new(value, listed));
        state.owners.insert(href.to_string(), owner);
    }

    /// Stores a resource just adopted by `spec.import` (read by a GET) and marks it imported, so the next listing
    /// covers it (whole, once imports make that the cheaper read) and the object's next pass reads it from there.
    pub fn adopted(&self, provider: &str, collection: &'static str, href: &str, value: &Value, owner: Owner) {
        self.record(provider, collection, href, value, owner);
        lock_state(&self.poller(provider, collection)).imported.insert(href.to_string());
    }

    /// Forgets an object that goes away: its cache entry, its monitoring state and its meter gauges.
    pub fn forget(&self, provider: &str, collection: &'static str, href: Option<&str>, kind: &str, owner: &Owner) {
        if let Some(href) = href {
            if let Some(poller) = lock(&self.inner.pollers).get(&(provider.to_string(), collection)).cloned() {
                let mut state = lock_state(&poller);
                state.entries.remove(href);
                state.owners.remove(href);
                state.imported.remove(href);
            }
            let mut monitors = lock(&self.inner.monitors);
            monitors.remove(href);
            let members = member_key(href, "");
            monitors.retain(|key, _| !key.starts_with(&members));
        }
        let mut gauges = lock(&self.inner.gauges);
        let gone: Vec<MeterLabels> = gauges
            .live
            .iter()
            .filter(|l| l.kind == kind && l.namespace == owner.0 && l.name == owner.1)
            .cloned()
            .collect();
        for labels in gone {
            self.inner.metrics.meter_values.remove(&labels);
            gauges.live.remove(&labels);
        }
    }

    /// The last sub-collection reading of a machine, if still usable: same `updated`, younger than the
    /// meter interval.
    pub async fn sub_reading(&self, provider: &str, href: &str, updated: Option<&str>) -> Option<Value> {
        let every = timing(&self.inner, provider).await.meters;
        let monitors = lock(&self.inner.monitors);
        let sub = monitors.get(href)?.sub.as_ref()?;
        let usable = if sub.batched { every * 2 } else { every };
        (sub.updated.as_deref() == updated && sub.at.elapsed() < usable).then(|| sub.value())
    }

    /// Stores a machine's sub-collection reading.
    pub fn store_sub_reading(&self, href: &str, updated: Option<&str>, value: Value) {
        lock(&self.inner.monitors).entry(href.to_string()).or_default().sub =
            Some(SubReading::new(updated.map(str::to_string), Instant::now(), &value, false));
    }

    /// How the provider's meters, events and machine sub-collections are read now (batched or per object, and
    /// why), for the CimiProvider's status; `None` before the observer has decided.
    pub fn observation(&self, provider: &str) -> Option<crate::api::provider::Observation> {
        super::batch::observation(&self.inner, provider)
    }

    fn poller(&self, provider: &str, collection: &'static str) -> Arc<Poller> {
        let mut pollers = lock(&self.inner.pollers);
        if let Some(p) = pollers.get(&(provider.to_string(), collection)) {
            return p.clone();
        }
        let (first, _) = watch::channel(false);
        let poller = Arc::new(Poller { state: Mutex::new(PollState::default()), first });
        pollers.insert((provider.to_string(), collection), poller.clone());
        tokio::spawn(poll_loop(self.inner.clone(), provider.to_string(), collection, poller.clone()));
        poller
    }
}

/// Whether an object's status is steady: Ready for its current generation with no Job running, so its
/// observation may come from the observer's cache.
pub fn steady(common: &ManagedStatus, generation: Option<i64>) -> bool {
    let ready = crate::api::conditions::find(&common.conditions, crate::api::conditions::READY)
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation);
    ready && !crate::controller::resource::jobs::job_running(common.job.as_ref())
}

/// Where and how to read one object's provider resource.
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    /// The CimiProvider.
    pub provider: &'a str,
    /// Its client.
    pub client: &'a CimiClient,
    /// The CEP collection of the resource (`machines`).
    pub collection: &'static str,
    /// The resource (`status.id`).
    pub href: &'a str,
    /// Whether the object is steady (see [`steady`]): its observation may come from the cache.
    pub steady: bool,
    /// Whether the resource was imported (`spec.import`), so carries no tag of ours.
    pub imported: bool,
}

/// Reads the provider resource of `obj` at `href` (`None` when it is gone, as
/// [`crate::controller::resource::reads::observe`] decides): from the observer's cache when the object is `steady` and
/// the resource was listed, else by a GET whose answer goes into the cache.
///
/// An `imported` resource carries no tag of ours (none at all under ObserveOnly), so the tag-filtered listing
/// misses it: it is served from the cache only when it was in the last listing, which lists the collection
/// whole while there are at least as many imported resources as pages in it; otherwise each is read by a
/// GET, and only a 404 means gone.
pub async fn observe_object<K>(observer: &Observer, obj: &K, at: &Lookup<'_>) -> Result<Option<Value>, CimiError>
where
    K: Resource<DynamicType = ()>,
{
    let Lookup { provider, client, collection, href, steady, imported } = *at;
    let uid = obj.uid().unwrap_or_default();
    let owner = (obj.namespace().unwrap_or_default(), obj.name_any());
    let poller = observer.poller(provider, collection);
    if imported {
        lock_state(&poller).imported.insert(href.to_string());
    }
    if steady {
        let mut first = poller.first.subscribe();
        let _ = tokio::time::timeout(FIRST_POLL_WAIT, first.wait_for(|done| *done)).await;
        let state = lock_state(&poller);
        let usable = |c: &&Cached| {
            if imported { c.listed } else { c.carries_uid(&uid) }
        };
        if let Some(c) = state.entries.get(href).filter(usable) {
            return Ok(Some(c.value()));
        }
    }
    let current = if imported {
        crate::controller::resource::reads::read_imported(client, href).await?
    } else {
        crate::controller::resource::reads::observe(client, href, &uid).await?
    };
    if let Some(v) = &current {
        observer.record(provider, collection, href, v, owner);
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_means_ready_for_this_generation_without_a_job() {
        use crate::api::common::JobStatus;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let ready = |generation| Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Available".into(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        };
        let mut s = ManagedStatus { conditions: vec![ready(2)], ..Default::default() };
        assert!(steady(&s, Some(2)));
        assert!(!steady(&s, Some(3)), "a new generation is not steady");
        s.job = Some(JobStatus { href: "j".into(), state: Some("RUNNING".into()), ..Default::default() });
        assert!(!steady(&s, Some(2)), "a running Job is not steady");
    }
}
