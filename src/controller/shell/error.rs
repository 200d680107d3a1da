//! The one error type of every reconcile, and what the controller does after one.

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::runtime::controller::Action;

use crate::controller::context::Context;
use crate::controller::outcome;

/// A reconcile failure. Only the Kubernetes API can cause one: provider problems land in status as
/// conditions, and the pass itself succeeds.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// A short, stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
        }
    }
}

/// What the controller does after a failed pass: log it and look again after a short backoff.
pub fn error_policy<K: kube::Resource<DynamicType = ()>>(obj: Arc<K>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(
        %error,
        error_kind = error.metric_label(),
        kind = %K::kind(&()),
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any(),
        "reconcile failed"
    );
    Action::requeue(outcome::backoff(3, None))
}
