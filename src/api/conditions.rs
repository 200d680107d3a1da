//! Conditions: the types every kind reports, and a builder that merges new conditions into the old
//! ones, keeping `lastTransitionTime` unless the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reasons::Reason;

/// `Ready`: the object is in the state its spec asks for.
pub const READY: &str = "Ready";
/// `Synced`: the last reconcile reached the provider and mirrored it without error.
pub const SYNCED: &str = "Synced";
/// `Reconciling`: the operator is working towards the spec (kstatus reads this).
pub const RECONCILING: &str = "Reconciling";
/// `Stalled`: the operator cannot make progress without a human (kstatus reads this).
pub const STALLED: &str = "Stalled";
/// `InUse` (CimiProvider): objects reference this provider; it cannot go before they do.
pub const IN_USE: &str = "InUse";

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Status {
    /// The wire form: `True`, `False` or `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

impl From<bool> for Status {
    fn from(value: bool) -> Self {
        if value { Status::True } else { Status::False }
    }
}

/// Builds the conditions of one status write from the conditions the object has now.
///
/// Each `set` replaces the condition of its type; `lastTransitionTime` is kept from the old
/// condition when the status did not change, and set to `now` when it did (or the type is new).
/// Conditions of types that are not set again are kept as they were.
#[derive(Clone, Debug)]
pub struct ConditionSet {
    conditions: Vec<Condition>,
    generation: Option<i64>,
    now: Time,
}

impl ConditionSet {
    /// Starts from the object's current conditions; `generation` is the `metadata.generation` that
    /// this reconcile acted on, recorded as each condition's `observedGeneration`.
    pub fn new(current: &[Condition], generation: Option<i64>, now: Time) -> Self {
        Self { conditions: current.to_vec(), generation, now }
    }

    /// Sets one condition with a reason from the catalogue and a human-readable message.
    pub fn set(&mut self, type_: &str, status: Status, reason: Reason, message: impl Into<String>) -> &mut Self {
        let message = message.into();
        let previous = self.conditions.iter().position(|c| c.type_ == type_);
        let last_transition_time = match previous.map(|i| &self.conditions[i]) {
            Some(old) if old.status == status.as_str() => old.last_transition_time.clone(),
            _ => self.now.clone(),
        };
        let condition = Condition {
            type_: type_.to_string(),
            status: status.as_str().to_string(),
            reason: reason.as_str().to_string(),
            message,
            observed_generation: self.generation,
            last_transition_time,
        };
        match previous {
            Some(i) => self.conditions[i] = condition,
            None => self.conditions.push(condition),
        }
        self
    }

    /// Removes the condition of a type, if present.
    pub fn remove(&mut self, type_: &str) -> &mut Self {
        self.conditions.retain(|c| c.type_ != type_);
        self
    }

    /// The condition of a type, if present.
    pub fn get(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The merged conditions, in a stable order (Ready, Synced, Reconciling, Stalled, then by type).
    pub fn build(&self) -> Vec<Condition> {
        let mut out = self.conditions.clone();
        out.sort_by_key(|c| (rank(&c.type_), c.type_.clone()));
        out
    }
}

fn rank(type_: &str) -> usize {
    [READY, SYNCED, RECONCILING, STALLED].iter().position(|t| *t == type_).unwrap_or(usize::MAX)
}

/// The condition of a type in a list, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the list holds a condition of this type with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn new_condition_gets_now_and_generation() {
        let mut set = ConditionSet::new(&[], Some(3), at(100));
        set.set(READY, Status::False, Reason::Creating, "creating the machine");
        let out = set.build();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].type_, "Ready");
        assert_eq!(out[0].status, "False");
        assert_eq!(out[0].reason, "Creating");
        assert_eq!(out[0].observed_generation, Some(3));
        assert_eq!(out[0].last_transition_time, at(100));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_reason_and_message() {
        let first =
            ConditionSet::new(&[], Some(1), at(100)).set(READY, Status::False, Reason::Creating, "posting").build();
        let second = ConditionSet::new(&first, Some(2), at(200))
            .set(READY, Status::False, Reason::WaitingForJob, "job 91 at 40%")
            .build();
        assert_eq!(second[0].last_transition_time, at(100));
        assert_eq!(second[0].reason, "WaitingForJob");
        assert_eq!(second[0].message, "job 91 at 40%");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let first = ConditionSet::new(&[], Some(1), at(100)).set(READY, Status::False, Reason::Creating, "").build();
        let second =
            ConditionSet::new(&first, Some(1), at(300)).set(READY, Status::True, Reason::Available, "").build();
        assert_eq!(second[0].last_transition_time, at(300));
        let third = ConditionSet::new(&second, Some(1), at(400))
            .set(READY, Status::Unknown, Reason::ProviderUnreachable, "")
            .build();
        assert_eq!(third[0].last_transition_time, at(400));
    }

    #[test]
    fn untouched_types_are_kept_and_order_is_stable() {
        let first = ConditionSet::new(&[], Some(1), at(100))
            .set(STALLED, Status::False, Reason::Available, "")
            .set(READY, Status::True, Reason::Available, "")
            .set(SYNCED, Status::True, Reason::Available, "")
            .build();
        let types: Vec<_> = first.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Synced", "Stalled"]);
        let second = ConditionSet::new(&first, Some(2), at(200))
            .set(RECONCILING, Status::True, Reason::Updating, "")
            .remove(STALLED)
            .build();
        let types: Vec<_> = second.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Synced", "Reconciling"]);
        assert!(is_true(&second, READY));
        assert!(is_true(&second, RECONCILING));
    }
}
