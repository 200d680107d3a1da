//! The CimiMachine controller, as the reconcile shell ([`crate::controller::shell`]) runs it:
//!
//! - [`sync`]: one pass: the Job in flight, observe, plan, act;
//! - [`observe`]: the provider machine, its interfaces and volumes, and the objects it depends on;
//! - [`input`]: the plan's input from what was observed (pure);
//! - [`plan`]: the next step, a pure function of what was observed (unit-tested from fixtures);
//! - [`act`]: one CIMI call for that step;
//! - [`create`]: the MachineCreate from the spec.

pub mod act;
pub mod create;
pub mod input;
pub mod observe;
pub mod plan;
pub mod sync;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::{Resource as _, ResourceExt as _};
use tokio_util::sync::CancellationToken;

use crate::api::CimiMachine;
use crate::api::common::ManagedStatus;
use crate::api::machine::CimiMachineStatus;
use crate::controller::context::Context;
use crate::controller::driver;
use crate::controller::outcome::{Problem, Progress};
use crate::controller::shell::error::error_policy;
use crate::controller::shell::kind::{KindStatus, ManagedKind};
use crate::controller::shell::reconcile::reconcile;

pub use observe::COLLECTION;

/// Builds the controller (its watches register with readiness at once) and returns the future that
/// runs it until `shutdown`: CimiMachines of the watched namespaces with the label selector, and the
/// names of the Secrets there, so a change of a Secret a machine references (its credential or user
/// data) reconciles that machine again.
pub fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
    let controller = driver::namespaced::<CimiMachine>(&ctx, &shutdown);
    let store = controller.store();
    let secrets = ctx.watches().secret_names(&CimiMachine::plural(&()), None);
    let controller = controller
        // Provider-side changes seen by the observer's collection reads.
        .reconcile_on(ctx.observer.changes::<CimiMachine>(COLLECTION))
        .watches_stream(secrets, move |secret| {
            let (namespace, name) = (secret.namespace(), secret.name_any());
            driver::referencing(&store, |m: &CimiMachine| {
                m.namespace() == namespace && secrets_of(m).any(|secret| secret == name)
            })
        });
    driver::drive(controller, ctx, driver::Ownership::Shard, reconcile::<CimiMachine>, error_policy::<CimiMachine>)
}

/// The names of the Secrets (in its namespace) a machine's spec references.
fn secrets_of(machine: &CimiMachine) -> impl Iterator<Item = &str> {
    let template = machine.spec.template.as_ref();
    let credential = template.and_then(|t| t.credential_secret_ref.as_ref()).map(|r| r.name.as_str());
    let user_data = template.and_then(|t| t.user_data_secret_ref.as_ref()).map(|r| r.name.as_str());
    credential.into_iter().chain(user_data)
}

impl KindStatus for CimiMachineStatus {
    fn common(&self) -> &ManagedStatus {
        &self.common
    }
    fn common_mut(&mut self) -> &mut ManagedStatus {
        &mut self.common
    }
}

impl ManagedKind for CimiMachine {
    type Status = CimiMachineStatus;
    const NOUN: &'static str = "machine";
    const COLLECTION: &'static str = COLLECTION;

    fn status_now(&self) -> CimiMachineStatus {
        self.status.clone().unwrap_or_default()
    }

    fn sync(
        &self,
        ctx: &Context,
        status: &mut CimiMachineStatus,
    ) -> impl Future<Output = Result<(Progress, Duration), Problem>> + Send {
        sync::sync(self, ctx, status)
    }
}
