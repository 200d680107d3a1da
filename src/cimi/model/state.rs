//! The states of CIMI Jobs (reference §3.6) and of CIMI resources (machines, volumes, networks, systems,
//! images) as types, so that code compares states, not strings.

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

/// The state of a CIMI resource: a machine, volume, network, system or image. One type for all of them, as
/// the standard shares the names (a network is STARTED like a machine; a volume is AVAILABLE like an image;
/// a system is MIXED when its machines disagree). A state outside the standard's is kept as it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResourceState {
    /// Being made.
    Creating,
    /// Booting (a machine) or coming up (a network).
    Starting,
    /// Running.
    Started,
    /// Shutting down.
    Stopping,
    /// Shut down.
    Stopped,
    /// Being paused.
    Pausing,
    /// Paused (kept in memory).
    Paused,
    /// Being suspended.
    Suspending,
    /// Suspended (kept on disk).
    Suspended,
    /// Being restarted (some providers show it).
    Restarting,
    /// Being captured into an image or snapshot.
    Capturing,
    /// Being restored from an image.
    Restoring,
    /// Ready for use (a volume or an image).
    Available,
    /// A system whose machines are not all in one state.
    Mixed,
    /// Being removed.
    Deleting,
    /// Broken; the provider cannot bring it back on its own.
    Error,
    /// No state given.
    #[default]
    Unknown,
    /// A state the standard does not name.
    Other(String),
}

impl ResourceState {
    /// The state a provider wrote.
    pub fn parse(text: &str) -> ResourceState {
        match text {
            "CREATING" => ResourceState::Creating,
            "STARTING" => ResourceState::Starting,
            "STARTED" => ResourceState::Started,
            "STOPPING" => ResourceState::Stopping,
            "STOPPED" => ResourceState::Stopped,
            "PAUSING" => ResourceState::Pausing,
            "PAUSED" => ResourceState::Paused,
            "SUSPENDING" => ResourceState::Suspending,
            "SUSPENDED" => ResourceState::Suspended,
            "RESTARTING" => ResourceState::Restarting,
            "CAPTURING" => ResourceState::Capturing,
            "RESTORING" => ResourceState::Restoring,
            "AVAILABLE" => ResourceState::Available,
            "MIXED" => ResourceState::Mixed,
            "DELETING" => ResourceState::Deleting,
            "ERROR" => ResourceState::Error,
            "" => ResourceState::Unknown,
            other => ResourceState::Other(other.to_string()),
        }
    }

    /// The state as CIMI writes it (empty when unknown).
    pub fn as_str(&self) -> &str {
        match self {
            ResourceState::Creating => "CREATING",
            ResourceState::Starting => "STARTING",
            ResourceState::Started => "STARTED",
            ResourceState::Stopping => "STOPPING",
            ResourceState::Stopped => "STOPPED",
            ResourceState::Pausing => "PAUSING",
            ResourceState::Paused => "PAUSED",
            ResourceState::Suspending => "SUSPENDING",
            ResourceState::Suspended => "SUSPENDED",
            ResourceState::Restarting => "RESTARTING",
            ResourceState::Capturing => "CAPTURING",
            ResourceState::Restoring => "RESTORING",
            ResourceState::Available => "AVAILABLE",
            ResourceState::Mixed => "MIXED",
            ResourceState::Deleting => "DELETING",
            ResourceState::Error => "ERROR",
            ResourceState::Unknown => "",
            ResourceState::Other(s) => s,
        }
    }

    /// Whether the resource is on its way to another state (the provider is working on it: wait, do not act).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ResourceState::Creating
                | ResourceState::Starting
                | ResourceState::Stopping
                | ResourceState::Pausing
                | ResourceState::Suspending
                | ResourceState::Restarting
                | ResourceState::Capturing
                | ResourceState::Restoring
                | ResourceState::Deleting
        )
    }
}

impl From<&str> for ResourceState {
    fn from(text: &str) -> ResourceState {
        ResourceState::parse(text)
    }
}

impl PartialEq<&str> for ResourceState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ResourceState {
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

    #[test]
    fn resource_states_round_trip_and_classify() {
        for s in ["CREATING", "STARTED", "STOPPED", "AVAILABLE", "MIXED", "ERROR", "HIBERNATED", ""] {
            assert_eq!(ResourceState::parse(s).as_str(), s);
        }
        assert!(ResourceState::Creating.is_transient() && ResourceState::Deleting.is_transient());
        assert!(!ResourceState::Started.is_transient() && !ResourceState::Error.is_transient());
        assert!(!ResourceState::parse("HIBERNATING").is_transient(), "an unknown state is not taken for a transition");
        assert_eq!(ResourceState::parse("MIXED"), "MIXED");
    }
}
