//! The single status writer of the managed kinds: every string bounded (provider text reaches status only as
//! a short, clean excerpt), written by server-side apply only when something other than the sync time
//! changed, and an Event on each Ready transition (`Created` for the pass that asked the provider to create the
//! resource: its href is new in status and Ready says `Creating`).

use kube::ResourceExt as _;
use kube::api::Api;

use super::kind::{KindStatus, ManagedKind};
use crate::api::conditions::{READY, find};
use crate::api::reasons::Reason;
use crate::controller::context::Context;
use crate::controller::kubeops::{apply_status, bounded, publish, ready_transition_event};

/// Writes `status` over `old` when it differs in more than `lastSyncTime`, and publishes the Ready transition.
/// The pass's result for `cimi_reconciles_total` is read from the conditions written here.
pub async fn write<K: ManagedKind>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    old: &K::Status,
    status: K::Status,
) -> kube::Result<()> {
    crate::runtime::metrics::report_result(crate::runtime::metrics::result_of(&status.common().conditions));
    let status = bounded(&status);
    let comparable = |s: &K::Status| {
        let mut s = s.clone();
        s.common_mut().last_sync_time = None;
        s
    };
    if comparable(old) == comparable(&status) {
        return Ok(());
    }
    apply_status(api, &obj.name_any(), &status).await?;
    let (before, after) = (old.common(), status.common());
    let creating = find(&after.conditions, READY).is_some_and(|c| c.reason == Reason::Creating.as_str());
    match &after.id {
        Some(href) if before.id.is_none() && creating => {
            let note = format!("provider {} {href} requested", K::NOUN);
            publish(&ctx.recorder, obj, false, "Created", "Create", note).await;
        }
        _ => ready_transition_event(&ctx.recorder, obj, &before.conditions, &after.conditions).await,
    }
    Ok(())
}

/// Whether the one-shot request `nonce` has already been handled in the object as the API server holds it now.
/// The controller's cache can lag the status write of the pass that ran the action (seen under load), and a
/// pass that read the older copy would run the action on the provider a second time. When it was handled,
/// `status` becomes the server's, so that this pass writes nothing older back; the caller then waits.
pub async fn action_already_handled<K: ManagedKind>(
    ctx: &Context,
    obj: &K,
    status: &mut K::Status,
    nonce: &str,
) -> Result<bool, crate::controller::outcome::Problem> {
    // A list by name, without a resourceVersion, is a consistent read: it needs only the `list` the controllers
    // already hold, where a GET would need a verb granted for this alone.
    let by_name = kube::api::ListParams::default().fields(&format!("metadata.name={}", obj.name_any()));
    let server = crate::controller::kubeops::object_api(&ctx.client, obj).list(&by_name).await?;
    let Some(now) = server.items.into_iter().next().map(|o| o.status_now()) else {
        return Ok(false);
    };
    if now.common().last_action.as_ref().is_some_and(|a| a.nonce == nonce) {
        *status = now;
        return Ok(true);
    }
    Ok(false)
}
