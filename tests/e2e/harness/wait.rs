//! Waiting until something holds, and conditions read as a user reads them (`kubectl get`, `kubectl describe`).

use std::time::Duration;

use cimi_operator::api::{CimiMachine, CimiProvider};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;

/// How long [`wait_machine`] and [`wait_ready`] wait.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A condition of an object's status conditions, as (status, reason).
pub fn condition(conditions: &[Condition], type_: &str) -> Option<(String, String)> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone()))
}

/// Whether the conditions say Ready=True.
pub fn is_ready(conditions: &[Condition]) -> bool {
    condition(conditions, "Ready").is_some_and(|c| c.0 == "True")
}

/// Whether the machine's status says Ready=True.
pub fn machine_ready(m: &CimiMachine) -> bool {
    m.status.as_ref().is_some_and(|s| is_ready(&s.common.conditions))
}

/// Waits until the machine's status satisfies `check`.
pub async fn wait_machine(
    machines: &Api<CimiMachine>,
    name: &str,
    what: &str,
    check: impl Fn(&CimiMachine) -> bool,
) -> CimiMachine {
    eventually(what, WAIT, || async {
        let m = machines.get(name).await.ok()?;
        check(&m).then_some(m)
    })
    .await
}

/// Waits for the provider's Ready condition to have `status` and `reason`.
pub async fn wait_ready(providers: &Api<CimiProvider>, name: &str, status: &str, reason: &str) -> CimiProvider {
    eventually(&format!("provider {name} Ready={status} ({reason})"), WAIT, || async {
        let p = providers.get(name).await.ok()?;
        let st = p.status.as_ref()?;
        (condition(&st.conditions, "Ready") == Some((status.into(), reason.into()))).then_some(p)
    })
    .await
}
