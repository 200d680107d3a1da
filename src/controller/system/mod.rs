//! The CimiSystem controller, as the reconcile shell ([`crate::controller::shell`]) runs it: observe (the
//! provider system, its Job and nested Jobs, its machines, volumes and networks) -> plan
//! ([`plan::plan_system`], pure) -> act (one CIMI call on the system, recorded in status before waiting on
//! it). With `spec.exposeMembers`, each member is also shown as a read-only CimiMachine, CimiVolume or
//! CimiNetwork owned by the system ([`expose`]).
//!
//! - [`sync`]: one pass; [`jobs`]: the system's Job and its nested Jobs; [`create`]: the SystemCreate;
//! - [`template`]: SystemTemplates by value; [`members`]: the members and their states;
//! - [`plan`]: the next step (pure); [`expose`]: members as objects of their own.

pub mod create;
pub mod expose;
pub mod jobs;
pub mod members;
pub mod plan;
pub mod sync;
pub mod template;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::CimiSystem;
use crate::api::common::{DeletionPolicy, ManagedStatus};
use crate::api::system::CimiSystemStatus;
use crate::cimi::CimiClient;
use crate::controller::context::Context;
use crate::controller::driver;
use crate::controller::outcome::{Problem, Progress};
use crate::controller::shell::error::error_policy;
use crate::controller::shell::kind::{KindStatus, ManagedKind};
use crate::controller::shell::reconcile::reconcile;

/// Runs the controller until `shutdown`.
pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let controller = driver::namespaced::<CimiSystem>(&ctx, &shutdown);
    driver::drive(controller, ctx, driver::Ownership::Shard, reconcile::<CimiSystem>, error_policy::<CimiSystem>)
}

impl KindStatus for CimiSystemStatus {
    fn common(&self) -> &ManagedStatus {
        &self.common
    }
    fn common_mut(&mut self) -> &mut ManagedStatus {
        &mut self.common
    }
}

impl ManagedKind for CimiSystem {
    type Status = CimiSystemStatus;
    const NOUN: &'static str = "system";
    const COLLECTION: &'static str = "systems";

    fn status_now(&self) -> CimiSystemStatus {
        self.status.clone().unwrap_or_default()
    }

    fn ready_state(status: &CimiSystemStatus) -> String {
        format!(
            "{}, {} members ready",
            status.common.state.clone().unwrap_or_default(),
            status.members.as_ref().map_or_else(|| "0/0".to_string(), |m| m.summary.clone())
        )
    }

    fn gone_note(policy: DeletionPolicy) -> String {
        match policy {
            DeletionPolicy::Delete => "the provider system and its members are gone".to_string(),
            DeletionPolicy::Orphan => "the provider system was left in place, untagged".to_string(),
        }
    }

    /// The system's Job is refreshed with its nested Jobs first (a system deleted right after its create has
    /// not followed them yet); past its limit, the nested Jobs still running are stopped, then its own.
    async fn stop_late_job(&self, client: &CimiClient, status: &mut CimiSystemStatus) -> Option<String> {
        let job = status.common.job.as_mut()?;
        // A read that fails leaves what was known; the stop below is best effort either way.
        let _ = jobs::follow_job(client, job, &mut status.nested_jobs).await;
        jobs::enforce_timeout(client, self, job, &status.nested_jobs).await.map(|p| p.message)
    }

    async fn sync(&self, ctx: &Context, status: &mut CimiSystemStatus) -> Result<(Progress, Duration), Problem> {
        let done = sync::sync(self, ctx, status).await?;
        expose::sync_exposed(ctx, self, status).await?;
        Ok(done)
    }
}
