//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles and writes.
//!
//! Each replica tries every retry period: the holder renews; a standby takes the Lease once it has
//! not been renewed for its duration (so a dead leader is replaced within leaseDuration + retryPeriod),
//! or at once when the holder released it on a graceful shutdown. Writes use the Lease's
//! resourceVersion, so two standbys cannot both win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::LeaderElectionConfig;

/// What a replica does with the Lease as it finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free, released or expired: take it (the new transition count is given).
    Acquire {
        /// `leaseTransitions` after taking it.
        transitions: i32,
    },
    /// Someone else holds a valid Lease.
    Wait {
        /// The current holder.
        holder: String,
    },
}

/// Decides what to do with a Lease spec (pure, for tests).
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire { transitions: 0 };
    };
    let transitions = spec.lease_transitions.unwrap_or(0);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire { transitions: transitions + 1 };
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()).map(|t| t.0);
    match renewed {
        Some(renewed) if renewed.checked_add(duration).is_ok_and(|expiry| expiry > now) => Decision::Wait { holder },
        _ => Decision::Acquire { transitions: transitions + 1 },
    }
}

/// One replica's side of leader election.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
}

impl LeaderElector {
    /// An elector for the Lease the configuration names.
    pub fn new(client: Client, config: LeaderElectionConfig) -> Self {
        let api = Api::namespaced(client, &config.lease_namespace);
        Self { api, config }
    }

    fn spec_for_us(
        &self,
        previous: Option<&LeaseSpec>,
        transitions: i32,
        acquiring: bool,
        now: Timestamp,
    ) -> LeaseSpec {
        let seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX).max(1);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if acquiring { Some(MicroTime(now)) } else { previous.and_then(|p| p.acquire_time.clone()) },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt: true when we hold the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let name = &self.config.lease_name;
        let Some(lease) = self.api.get_opt(name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec_for_us(None, 0, true, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        };
        let (transitions, acquiring) = match decide(lease.spec.as_ref(), &self.config.identity, now) {
            Decision::Wait { .. } => return Ok(false),
            Decision::Renew => (lease.spec.as_ref().and_then(|s| s.lease_transitions).unwrap_or(0), false),
            Decision::Acquire { transitions } => (transitions, true),
        };
        let mut updated = lease.clone();
        updated.spec = Some(self.spec_for_us(lease.spec.as_ref(), transitions, acquiring, now));
        match self.api.replace(name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up if we hold it, so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api.replace(&self.config.lease_name, &PostParams::default(), &lease).await?;
        Ok(())
    }

    /// Campaigns until `shutdown`, publishing whether we lead on `leading`; releases the Lease on the
    /// way out. Leadership is given up when renewals keep failing for a whole lease duration.
    pub async fn run(self, leading: watch::Sender<bool>, shutdown: CancellationToken) {
        let mut last_renewal: Option<tokio::time::Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    if !*leading.borrow() {
                        tracing::info!(identity = %self.config.identity, lease = %self.config.lease_name, "became leader");
                    }
                    last_renewal = Some(tokio::time::Instant::now());
                    leading.send_replace(true);
                }
                Ok(false) => {
                    if *leading.borrow() {
                        tracing::warn!(identity = %self.config.identity, "lost the leader Lease");
                    }
                    last_renewal = None;
                    leading.send_replace(false);
                }
                Err(error) => {
                    tracing::warn!(%error, "leader election: cannot reach the Lease");
                    let expired = last_renewal.is_none_or(|t| t.elapsed() >= self.config.lease_duration);
                    if expired && *leading.borrow() {
                        tracing::warn!("renewals failed for a lease duration: stepping down");
                        leading.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            match self.release().await {
                Ok(()) => tracing::info!("released the leader Lease"),
                Err(error) => tracing::warn!(%error, "could not release the leader Lease"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("valid")
    }

    fn spec(holder: Option<&str>, renewed: i64, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn absent_lease_is_acquired() {
        assert_eq!(decide(None, "a", at(100)), Decision::Acquire { transitions: 0 });
    }

    #[test]
    fn holder_renews_and_standby_waits_while_valid() {
        let lease = spec(Some("a"), 100, 2);
        assert_eq!(decide(Some(&lease), "a", at(110)), Decision::Renew);
        assert_eq!(decide(Some(&lease), "b", at(110)), Decision::Wait { holder: "a".into() });
    }

    #[test]
    fn expired_or_released_lease_is_taken_over() {
        let lease = spec(Some("a"), 100, 2);
        assert_eq!(decide(Some(&lease), "b", at(116)), Decision::Acquire { transitions: 3 });
        let released = spec(None, 100, 2);
        assert_eq!(decide(Some(&released), "b", at(101)), Decision::Acquire { transitions: 3 });
    }
}
