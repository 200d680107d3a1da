//! machine (in progress).

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs the controller until `shutdown`.
pub async fn run(_ctx: Arc<super::Context>, shutdown: CancellationToken) {
    shutdown.cancelled().await;
}
