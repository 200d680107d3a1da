//! The single status writer of the managed kinds: every string bounded (provider text reaches status only as
//! a short, clean excerpt), written by server-side apply only when something other than the sync time
//! changed, and an Event on each Ready transition.

use kube::ResourceExt as _;
use kube::api::Api;

use super::kind::{KindStatus, ManagedKind};
use crate::controller::context::Context;
use crate::controller::kubeops::{apply_status, bounded, ready_transition_event};

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
    ready_transition_event(&ctx.recorder, obj, &old.common().conditions, &status.common().conditions).await;
    Ok(())
}
