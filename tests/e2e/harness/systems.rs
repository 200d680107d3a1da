//! A CimiSystem as the tests watch it: Ready, its state, how many of its members are ready, a member by name;
//! waiting until it satisfies a check, and deleting it until it is gone.

use std::time::Duration;

use cimi_operator::api::CimiSystem;
use cimi_operator::api::system::SystemMember;
use kube::api::{Api, DeleteParams};

use super::wait::{eventually, is_ready};

/// How long [`wait_system`] and [`delete_and_wait`] wait.
const WAIT: Duration = Duration::from_secs(90);

/// Whether the system's status says Ready=True.
pub fn system_ready(s: &CimiSystem) -> bool {
    s.status.as_ref().is_some_and(|st| is_ready(&st.common.conditions))
}

/// The system's state (STARTED, MIXED, STOPPED, ...).
pub fn system_state(s: &CimiSystem) -> Option<&str> {
    s.status.as_ref()?.common.state.as_deref()
}

/// How many of the system's members are ready, as `kubectl get` shows it (`4/4`).
pub fn members_ready(s: &CimiSystem) -> Option<&str> {
    Some(s.status.as_ref()?.members.as_ref()?.summary.as_str())
}

/// The member `name` of a list of the system's status (machines, volumes, networks).
pub fn member<'a, M: AsRef<SystemMember> + std::fmt::Debug>(list: &'a [M], name: &str) -> &'a M {
    list.iter()
        .find(|m| m.as_ref().name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no member {name} in {list:?}"))
}

/// Waits until the system `name` satisfies `check`.
pub async fn wait_system(
    api: &Api<CimiSystem>,
    name: &str,
    what: &str,
    check: impl Fn(&CimiSystem) -> bool,
) -> CimiSystem {
    eventually(what, WAIT, || async {
        let s = api.get(name).await.ok()?;
        check(&s).then_some(s)
    })
    .await
}

/// Deletes the system `name` and waits until it is gone.
pub async fn delete_and_wait(api: &Api<CimiSystem>, name: &str) {
    api.delete(name, &DeleteParams::default()).await.expect("delete the system");
    eventually(&format!("{name} to be gone"), WAIT, || async { api.get_opt(name).await.ok()?.is_none().then_some(()) })
        .await;
}
