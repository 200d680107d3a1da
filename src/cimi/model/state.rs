//! The states of CIMI Jobs as types (reference §3.6), so that code compares states, not strings.

use std::fmt;

/// The state of a CIMI Job. A state outside the standard's is kept as it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Ended, failed.
    Failed,
    /// Ended, done.
    Success,
    /// Being stopped.
    Stopping,
    /// Ended, stopped before it was done.
    Stopped,
    /// A state the standard does not name.
    Other(String),
}

impl JobState {
    /// The state a provider wrote (case as the standard writes it).
    pub fn parse(text: &str) -> JobState {
        match text {
            "QUEUED" => JobState::Queued,
            "RUNNING" => JobState::Running,
            "FAILED" => JobState::Failed,
            "SUCCESS" => JobState::Success,
            "STOPPING" => JobState::Stopping,
            "STOPPED" => JobState::Stopped,
            other => JobState::Other(other.to_string()),
        }
    }

    /// The state as CIMI writes it.
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Running => "RUNNING",
            JobState::Failed => "FAILED",
            JobState::Success => "SUCCESS",
            JobState::Stopping => "STOPPING",
            JobState::Stopped => "STOPPED",
            JobState::Other(s) => s,
        }
    }

    /// Whether the Job has ended (SUCCESS, FAILED or STOPPED).
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobState::Success | JobState::Failed | JobState::Stopped)
    }

    /// Whether the Job ended without doing its work (FAILED or STOPPED).
    pub fn is_failure(&self) -> bool {
        matches!(self, JobState::Failed | JobState::Stopped)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_round_trip_and_classify() {
        for s in ["QUEUED", "RUNNING", "FAILED", "SUCCESS", "STOPPING", "STOPPED", "CANCELLED"] {
            assert_eq!(JobState::parse(s).as_str(), s);
        }
        assert!(JobState::Success.is_terminal() && !JobState::Success.is_failure());
        assert!(JobState::Stopped.is_terminal() && JobState::Stopped.is_failure());
        assert!(!JobState::Running.is_terminal() && !JobState::Stopping.is_terminal());
        assert!(!JobState::parse("CANCELLED").is_terminal(), "an unknown state is not taken for an end");
    }
}
