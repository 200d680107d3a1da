//! What a CimiProvider pass does, a pure function of what it saw: its in-use finalizer and deletion (from
//! the objects that hold it), and whether the provider is probed now or only its users recounted (the
//! CloudEntryPoint and catalog are read once per `pollInterval`, or at once when the spec or the Secrets
//! change).

use std::time::Duration;

use crate::api::conditions::Status;
use crate::api::reasons::Reason;

/// The in-use finalizer and deletion of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// Being deleted and nothing holds it: drop the finalizer; it goes.
    Release,
    /// Being deleted, but objects still use it: wait for them.
    Hold,
    /// Not being deleted: add the finalizer (objects use it) or remove it (none does), or leave it.
    Keep {
        /// Add `cimi.dev/in-use`.
        add: bool,
        /// Remove `cimi.dev/in-use`.
        remove: bool,
    },
}

/// The lifecycle step of a provider `deleting` or not, used by `users` objects, holding the in-use finalizer or
/// not.
pub fn plan_lifecycle(deleting: bool, users: usize, has_finalizer: bool) -> Lifecycle {
    match (deleting, users) {
        (true, 0) => Lifecycle::Release,
        (true, _) => Lifecycle::Hold,
        (false, 0) => Lifecycle::Keep { add: false, remove: has_finalizer },
        (false, _) => Lifecycle::Keep { add: !has_finalizer, remove: false },
    }
}

/// The InUse condition for `users` (each as `Kind namespace/name`): at most five named.
pub fn in_use(users: &[String]) -> (Status, Reason, String) {
    if users.is_empty() {
        return (Status::False, Reason::NotReferenced, "no object references this provider".into());
    }
    let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
    let more = if users.len() > 5 { format!(" and {} more", users.len() - 5) } else { String::new() };
    (Status::True, Reason::Referenced, format!("referenced by {}{more}", shown.join(", ")))
}

/// Whether the provider is probed in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeDue {
    /// Probe now.
    Now,
    /// Only recount the users; the next probe is due after this long.
    After(Duration),
    /// This instance probed the provider, but the object this pass read does not show that probe yet (a watch
    /// cache behind the write): write nothing, since a status built from it would take back what the probe wrote
    /// (server-side apply drops the fields an apply omits), and look again after this long.
    Behind(Duration),
}

/// How soon a pass that read a provider behind its last probe looks again.
const BEHIND_RETRY: Duration = Duration::from_secs(1);

/// Whether a provider is probed now: when it has no connection made from its current settings (`connected`),
/// when it was never probed for this generation, or when a `poll` interval has passed since. `remembered` is how
/// long ago this instance probed the current generation (its connection's memory); `recorded`, how long ago the
/// status this pass read says it was.
pub fn plan_probe(
    connected: bool,
    remembered: Option<Duration>,
    recorded: Option<Duration>,
    poll: Duration,
) -> ProbeDue {
    let since = match (remembered, recorded) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match since {
        Some(since) if connected && since < poll && recorded.is_none() => {
            ProbeDue::Behind(BEHIND_RETRY.min(poll - since))
        }
        Some(since) if connected && since < poll => ProbeDue::After(poll - since),
        _ => ProbeDue::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_nobody_uses_is_released_when_deleted() {
        assert_eq!(plan_lifecycle(true, 0, true), Lifecycle::Release);
    }

    #[test]
    fn a_provider_in_use_waits_for_its_users_before_it_goes() {
        assert_eq!(plan_lifecycle(true, 2, true), Lifecycle::Hold);
    }

    #[test]
    fn the_in_use_finalizer_follows_the_users() {
        assert_eq!(plan_lifecycle(false, 1, false), Lifecycle::Keep { add: true, remove: false });
        assert_eq!(plan_lifecycle(false, 1, true), Lifecycle::Keep { add: false, remove: false });
        assert_eq!(plan_lifecycle(false, 0, true), Lifecycle::Keep { add: false, remove: true });
        assert_eq!(plan_lifecycle(false, 0, false), Lifecycle::Keep { add: false, remove: false });
    }

    #[test]
    fn the_in_use_condition_names_at_most_five_users() {
        assert_eq!(in_use(&[]).1, Reason::NotReferenced);
        let users: Vec<String> = (0..7).map(|i| format!("CimiMachine ns/m{i}")).collect();
        let (status, reason, message) = in_use(&users);
        assert_eq!((status, reason), (Status::True, Reason::Referenced));
        assert!(
            message.contains("ns/m4") && !message.contains("ns/m5") && message.ends_with("and 2 more"),
            "{message}"
        );
    }

    #[test]
    fn between_probes_a_pass_only_recounts() {
        let (poll, s) = (Duration::from_secs(30), Duration::from_secs);
        assert_eq!(plan_probe(true, Some(s(10)), Some(s(11)), poll), ProbeDue::After(s(20)));
        assert_eq!(plan_probe(true, None, Some(s(10)), poll), ProbeDue::After(s(20)), "probed before a restart");
    }

    #[test]
    fn a_pass_that_reads_the_provider_from_before_its_last_probe_writes_nothing() {
        // Probed 2 s ago, but the object read shows no probe for this generation (its cache is behind): a status
        // built from it would drop the catalog and Ready that the probe wrote.
        let (poll, s) = (Duration::from_secs(30), Duration::from_secs);
        assert_eq!(plan_probe(true, Some(s(2)), None, poll), ProbeDue::Behind(s(1)));
        assert_eq!(
            plan_probe(true, Some(Duration::from_millis(500)), None, s(1)),
            ProbeDue::Behind(Duration::from_millis(500))
        );
        assert_eq!(plan_probe(true, Some(s(31)), None, poll), ProbeDue::Now, "long enough: probe again anyway");
    }

    #[test]
    fn a_probe_is_due_after_the_poll_interval_a_new_connection_or_a_new_generation() {
        let (poll, s) = (Duration::from_secs(30), Duration::from_secs);
        assert_eq!(plan_probe(true, Some(s(31)), Some(s(31)), poll), ProbeDue::Now);
        assert_eq!(plan_probe(false, Some(s(1)), Some(s(1)), poll), ProbeDue::Now, "new settings");
        assert_eq!(plan_probe(true, None, None, poll), ProbeDue::Now, "never probed for this generation");
    }
}
