//! The one reconcile shell of the managed kinds (CimiMachine, CimiVolume, CimiNetwork, CimiSystem).
//!
//! Every pass of every kind goes the same way ([`reconcile::reconcile`]): scope (a namespace this instance
//! watches), the kind's guard (a volume held by a machine keeps its `cimi.dev/in-use` finalizer), pause (which
//! comes before deletion), deletion ([`finalize`]), the cleanup finalizer, first contact (`Reconciling`,
//! `observedGeneration`), the kind's [`kind::ManagedKind::sync`] (observe -> plan -> act), the conditions of
//! its outcome, and the single status writer ([`status::write`]: bounded strings, written only when
//! something changed, an Event on each Ready transition). Each pass runs in a `reconcile` tracing span that
//! carries the object's kind, namespace and name.
//!
//! - [`kind`]: what each kind supplies ([`kind::ManagedKind`]);
//! - [`reconcile`]: the pass;
//! - [`error`]: the error type (with its metric label) and the error policy;
//! - [`finalize`]: deletion, one step per pass;
//! - [`status`]: the status writer.

pub mod error;
pub mod finalize;
pub mod kind;
pub mod reconcile;
pub mod status;
