//! The state machines of machines, networks and jobs, as pure functions: which actions a state allows, and the
//! states an action walks through (the transient ones first, the final one last).

/// Why an action cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRefusal {
    /// The resource type has no such action (400).
    Unknown,
    /// The action exists but not in the current state (409).
    NotAllowedNow,
}

/// The machine actions, in the order operations are listed.
pub const MACHINE_ACTIONS: &[&str] = &["start", "stop", "restart", "pause", "suspend", "capture"];

/// The stable machine states (from which a delete may start).
pub const MACHINE_STABLE: &[&str] = &["STARTED", "STOPPED", "PAUSED", "SUSPENDED", "ERROR"];

/// The states a machine walks through for `action` from `state`; the last one is the final state.
/// `capture` leaves the state unchanged (an empty walk).
pub fn machine_walk(state: &str, action: &str, force: bool) -> Result<Vec<&'static str>, ActionRefusal> {
    use ActionRefusal::*;
    let walk: &[&'static str] = match (action, state) {
        ("start", "STOPPED" | "PAUSED" | "SUSPENDED") => &["STARTING", "STARTED"],
        ("stop", "STARTED" | "PAUSED") => &["STOPPING", "STOPPED"],
        ("stop", "STOPPING") if force => &["STOPPED"],
        ("restart", "STARTED") => &["STOPPING", "STARTING", "STARTED"],
        ("restart", "STOPPED") => &["STARTING", "STARTED"],
        ("pause", "STARTED") => &["PAUSING", "PAUSED"],
        ("suspend", "STARTED") => &["SUSPENDING", "SUSPENDED"],
        ("capture", "STARTED" | "STOPPED" | "PAUSED" | "SUSPENDED") => &[],
        (a, _) if MACHINE_ACTIONS.contains(&a) => return Err(NotAllowedNow),
        _ => return Err(Unknown),
    };
    Ok(walk.to_vec())
}

/// The machine actions offered in `state`: those allowed there, and `stop` while STOPPING (it may be re-issued
/// with `force`, the standard's way out of a graceful stop that does not end).
pub fn machine_actions(state: &str) -> Vec<&'static str> {
    MACHINE_ACTIONS
        .iter()
        .copied()
        .filter(|a| machine_walk(state, a, false).is_ok() || machine_walk(state, a, true).is_ok())
        .collect()
}

/// The states a network (or network port) walks through for `action` from `state`.
pub fn network_walk(state: &str, action: &str) -> Result<Vec<&'static str>, ActionRefusal> {
    match (action, state) {
        ("start", "STOPPED") => Ok(vec!["STARTING", "STARTED"]),
        ("stop", "STARTED") => Ok(vec!["STOPPING", "STOPPED"]),
        ("start" | "stop", _) => Err(ActionRefusal::NotAllowedNow),
        _ => Err(ActionRefusal::Unknown),
    }
}

/// The network actions allowed in `state`.
pub fn network_actions(state: &str) -> Vec<&'static str> {
    ["start", "stop"].into_iter().filter(|a| network_walk(state, a).is_ok()).collect()
}

/// Whether a Job in `state` may be stopped.
pub fn job_stoppable(state: &str) -> bool {
    matches!(state, "QUEUED" | "RUNNING")
}

/// The initial states a machine may be created into.
pub const MACHINE_INITIAL_STATES: &[&str] = &["STARTED", "STOPPED", "PAUSED", "SUSPENDED"];

/// The walk of a machine from CREATING to `initial` (booting, then pausing or suspending when asked).
pub fn machine_create_walk(initial: &str) -> Option<Vec<&'static str>> {
    match initial {
        "STOPPED" => Some(vec!["STOPPED"]),
        "STARTED" => Some(vec!["STARTING", "STARTED"]),
        "PAUSED" => Some(vec!["STARTING", "PAUSING", "PAUSED"]),
        "SUSPENDED" => Some(vec!["STARTING", "SUSPENDING", "SUSPENDED"]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_actions_by_state() {
        let table: &[(&str, &[&str])] = &[
            ("STOPPED", &["start", "restart", "capture"]),
            ("STARTED", &["stop", "restart", "pause", "suspend", "capture"]),
            ("PAUSED", &["start", "stop", "capture"]),
            ("SUSPENDED", &["start", "capture"]),
            ("CREATING", &[]),
            ("STARTING", &[]),
            ("STOPPING", &["stop"]),
            ("DELETING", &[]),
            ("ERROR", &[]),
        ];
        for (state, actions) in table {
            assert_eq!(machine_actions(state), *actions, "state {state}");
        }
    }

    #[test]
    fn machine_walks_and_refusals() {
        assert_eq!(machine_walk("STOPPED", "start", false), Ok(vec!["STARTING", "STARTED"]));
        assert_eq!(machine_walk("STARTED", "restart", false), Ok(vec!["STOPPING", "STARTING", "STARTED"]));
        assert_eq!(machine_walk("STOPPING", "stop", true), Ok(vec!["STOPPED"]));
        assert_eq!(machine_walk("STOPPING", "stop", false), Err(ActionRefusal::NotAllowedNow));
        assert_eq!(machine_walk("STARTED", "start", false), Err(ActionRefusal::NotAllowedNow));
        assert_eq!(machine_walk("STOPPED", "pause", false), Err(ActionRefusal::NotAllowedNow));
        assert_eq!(machine_walk("STOPPED", "suspend", false), Err(ActionRefusal::NotAllowedNow));
        assert_eq!(machine_walk("CREATING", "stop", false), Err(ActionRefusal::NotAllowedNow));
        assert_eq!(machine_walk("STOPPED", "fly", false), Err(ActionRefusal::Unknown));
        assert_eq!(machine_create_walk("PAUSED"), Some(vec!["STARTING", "PAUSING", "PAUSED"]));
        assert_eq!(machine_create_walk("RUNNING"), None);
    }

    #[test]
    fn network_and_job_states() {
        assert_eq!(network_actions("STARTED"), ["stop"]);
        assert_eq!(network_actions("STOPPED"), ["start"]);
        assert!(network_actions("CREATING").is_empty());
        assert_eq!(network_walk("STARTED", "start"), Err(ActionRefusal::NotAllowedNow));
        assert_eq!(network_walk("STARTED", "pause"), Err(ActionRefusal::Unknown));
        assert!(job_stoppable("RUNNING"));
        assert!(!job_stoppable("SUCCESS"));
    }
}
