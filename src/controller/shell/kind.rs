//! What a managed kind supplies to the reconcile shell; everything else is the shell's.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Error;
use crate::api::common::{DeletionPolicy, ManagedStatus};
use crate::api::managed::Managed;
use crate::cimi::CimiClient;
use crate::controller::context::Context;
use crate::controller::outcome::{Problem, Progress};
use crate::controller::stores::Cached;

/// The status of a managed kind: the shared part, and the kind's own fields.
pub trait KindStatus: Clone + Default + PartialEq + Serialize + DeserializeOwned + Debug + Send + Sync {
    /// The shared part.
    fn common(&self) -> &ManagedStatus;
    /// The shared part, to change it.
    fn common_mut(&mut self) -> &mut ManagedStatus;
}

/// What the kind's guard decided before the shell goes on.
#[derive(Debug, Default)]
pub struct Guard {
    /// The objects that hold this one (its deletion waits for them), for the messages.
    pub held_by: Vec<String>,
    /// End the pass here and look again then (a finalizer was added or removed).
    pub requeue: Option<Action>,
}

/// A managed kind, as the reconcile shell sees it.
pub trait ManagedKind:
    Managed
    + Cached
    + kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Its status type.
    type Status: KindStatus;
    /// The provider resource, in messages: `machine`, `volume`, `network`, `system`.
    const NOUN: &'static str;
    /// The CloudEntryPoint collection of its provider resources: `machines`...
    const COLLECTION: &'static str;

    /// The object's status now (the default when it has none).
    fn status_now(&self) -> Self::Status;

    /// What Ready says of the provider resource when it is in sync: its state (`STARTED`), or more.
    fn ready_state(status: &Self::Status) -> String {
        status.common().state.clone().unwrap_or_default()
    }

    /// The note of the `Deleted` Event once the provider resource is gone (or left in place).
    fn gone_note(policy: DeletionPolicy) -> String {
        match policy {
            DeletionPolicy::Delete => format!("the provider {} is gone", Self::NOUN),
            DeletionPolicy::Orphan => format!("the provider {} was left in place, untagged", Self::NOUN),
        }
    }

    /// Before pause and deletion: what holds the object (a volume or network named by machines keeps the
    /// `cimi.dev/in-use` finalizer while they do). Nothing by default.
    fn guard(&self, ctx: &Context, api: &Api<Self>) -> impl Future<Output = Result<Guard, Error>> + Send {
        let _ = (ctx, api);
        async { Ok(Guard::default()) }
    }

    /// During a deletion: the create, update or action Job still recorded in status, when it has run longer
    /// than the spec allows, is stopped where the provider offers `stop` (so that it ends and the delete can
    /// follow); returns the Timeout message, `None` while it is within its limit. A delete Job is never
    /// passed here. By default the Job alone; a kind whose Job has nested Jobs stops those too.
    fn stop_late_job(
        &self,
        client: &CimiClient,
        status: &mut Self::Status,
    ) -> impl Future<Output = Option<String>> + Send {
        let job = status.common().job.clone();
        async move {
            let job = job?;
            crate::controller::resource::jobs::enforce_timeout(client, self, &job).await.map(|p| p.message)
        }
    }

    /// One pass against the provider: observe the provider resource (and what the object depends on), plan
    /// the next step (a pure function of what was observed), act (one CIMI call, recorded in `status` before
    /// anything waits on it). Returns where the object stands and when to look again.
    fn sync(
        &self,
        ctx: &Context,
        status: &mut Self::Status,
    ) -> impl Future<Output = Result<(Progress, Duration), Problem>> + Send;
}
