//! Waiting for asynchronous operations: following a Job to SUCCESS, FAILED or STOPPED (nested Jobs
//! included), or, for providers without Jobs, following the resource's `state`.
//!
//! Every wait polls with a backoff (doubling from `poll_initial` to `poll_max`), stops at an overall
//! timeout ([`CimiError::Timeout`]) and stops at once when its [`CancellationToken`] is cancelled
//! ([`CimiError::Cancelled`]). Transient errors while polling (5xx, 429, timeouts) are retried until the
//! deadline; the others end the wait.
//!
//! ```no_run
//! # use cimi_operator::cimi::{CimiClient, jobs::WaitOptions};
//! # async fn demo(client: CimiClient, machine: serde_json::Value) -> Result<(), cimi_operator::cimi::CimiError> {
//! let accepted = client.action(&machine, "start", Default::default()).await?;
//! let href = client.resolve(machine["id"].as_str().unwrap_or_default()).await?;
//! client.settle(&accepted, Some(&href), &["STARTED"], &WaitOptions::from(client.config().wait)).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::client::{Accepted, CimiClient, WaitPolicy};
use super::error::{CimiError, redact_url};
use super::model::Job;

/// Job states after which nothing more happens.
pub const JOB_TERMINAL: &[&str] = &["SUCCESS", "FAILED", "STOPPED"];
/// Resource states that mean the operation failed.
pub const RESOURCE_FAILED: &[&str] = &["ERROR", "FAILED"];
/// How deep nested Jobs are followed.
const MAX_NESTING: u32 = 8;
/// How many nested Jobs of one Job are followed (a provider may list more; the parent's state still counts).
const MAX_NESTED_JOBS: usize = 64;

/// How one wait behaves.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The first poll interval.
    pub poll_initial: Duration,
    /// The longest poll interval.
    pub poll_max: Duration,
    /// The overall limit.
    pub timeout: Duration,
    /// Cancels the wait.
    pub cancel: CancellationToken,
}

impl From<WaitPolicy> for WaitOptions {
    fn from(p: WaitPolicy) -> Self {
        WaitOptions {
            poll_initial: p.poll_initial,
            poll_max: p.poll_max,
            timeout: p.timeout,
            cancel: CancellationToken::new(),
        }
    }
}

impl WaitOptions {
    /// The same options with another overall limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// The same options with a cancellation token.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }
}

/// What a settled operation ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The Job, when the provider had one.
    pub job: Option<Job>,
    /// The resource as last read, when the wait followed its state.
    pub resource: Option<Value>,
}

struct Poller<'a> {
    opts: &'a WaitOptions,
    deadline: Instant,
    interval: Duration,
    what: String,
}

impl Poller<'_> {
    /// Sleep until the next poll; errors on timeout or cancellation.
    async fn pause(&mut self) -> Result<(), CimiError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(CimiError::Timeout { what: self.what.clone(), after: self.opts.timeout });
        }
        let sleep = self.interval.min(self.deadline - now);
        self.interval = (self.interval * 2).min(self.opts.poll_max);
        tokio::select! {
            () = self.opts.cancel.cancelled() => Err(CimiError::Cancelled { what: self.what.clone() }),
            () = tokio::time::sleep(sleep) => Ok(()),
        }
    }

    fn check(&self) -> Result<(), CimiError> {
        if self.opts.cancel.is_cancelled() {
            return Err(CimiError::Cancelled { what: self.what.clone() });
        }
        if Instant::now() >= self.deadline {
            return Err(CimiError::Timeout { what: self.what.clone(), after: self.opts.timeout });
        }
        Ok(())
    }
}

impl CimiClient {
    /// Follow the Job at `job` until SUCCESS (returned), FAILED or STOPPED ([`CimiError::JobFailed`], with
    /// the message of the deepest failed nested Job when there is one).
    pub async fn follow_job(&self, job: &Url, opts: &WaitOptions) -> Result<Job, CimiError> {
        let deadline = Instant::now() + opts.timeout;
        self.follow_job_until(job, opts, deadline, 0).await
    }

    async fn follow_job_until(
        &self,
        job: &Url,
        opts: &WaitOptions,
        deadline: Instant,
        depth: u32,
    ) -> Result<Job, CimiError> {
        let what = format!("job {}", redact_url(job));
        let mut p = Poller { opts, deadline, interval: opts.poll_initial, what };
        loop {
            p.check()?;
            let polled = tokio::select! {
                () = opts.cancel.cancelled() => return Err(CimiError::Cancelled { what: p.what.clone() }),
                r = self.get::<Job>(job) => r,
            };
            match polled {
                Ok(j) => {
                    let state = j.state.clone().unwrap_or_default();
                    match state.as_str() {
                        "SUCCESS" => {
                            // A parent is SUCCESS only if its nested Jobs are; check those not yet done.
                            if depth < MAX_NESTING {
                                for n in j.nested_jobs.clone().unwrap_or_default().iter().take(MAX_NESTED_JOBS) {
                                    let u = self.resolve(&n.href).await?;
                                    Box::pin(self.follow_job_until(&u, opts, deadline, depth + 1)).await?;
                                }
                            }
                            return Ok(j);
                        }
                        "FAILED" | "STOPPED" => return Err(self.job_failure(job, &j, depth).await),
                        _ => {
                            tracing::debug!(job = %redact_url(job), state, progress = j.progress, "job running")
                        }
                    }
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, "polling the job failed; trying again")
                }
                Err(e) => return Err(e),
            }
            p.pause().await?;
        }
    }

    async fn job_failure(&self, href: &Url, j: &Job, depth: u32) -> CimiError {
        let mut message = j.status_message.clone().unwrap_or_default();
        let mut return_code = j.return_code;
        if depth < MAX_NESTING {
            for n in j.nested_jobs.clone().unwrap_or_default().into_iter().take(MAX_NESTED_JOBS) {
                let Ok(u) = self.resolve(&n.href).await else {
                    continue;
                };
                if let Ok(nj) = self.get::<Job>(&u).await
                    && matches!(nj.state.as_deref(), Some("FAILED" | "STOPPED"))
                {
                    let nested = nj.status_message.clone().unwrap_or_default();
                    if !nested.is_empty() {
                        message = if message.is_empty() { nested } else { format!("{message}: {nested}") };
                    }
                    return_code = return_code.or(nj.return_code);
                    break;
                }
            }
        }
        CimiError::JobFailed {
            href: redact_url(href),
            state: j.state.clone().unwrap_or_default(),
            return_code,
            message,
        }
    }

    /// Poll the resource at `href` until its `state` is one of `targets` (returned); ERROR or FAILED ends the
    /// wait with [`CimiError::JobFailed`]; with `gone_ok`, a 404 also ends it (for deletes, as `Ok(None)`).
    pub async fn wait_for_state(
        &self,
        href: &Url,
        targets: &[&str],
        gone_ok: bool,
        opts: &WaitOptions,
    ) -> Result<Option<Value>, CimiError> {
        let what = format!("{} to reach {}", redact_url(href), targets.join("|"));
        let mut p = Poller { opts, deadline: Instant::now() + opts.timeout, interval: opts.poll_initial, what };
        loop {
            p.check()?;
            let polled = tokio::select! {
                () = opts.cancel.cancelled() => return Err(CimiError::Cancelled { what: p.what.clone() }),
                r = self.get_value(href) => r,
            };
            match polled {
                Ok(v) => {
                    let state = v.get("state").and_then(Value::as_str).unwrap_or("");
                    if targets.contains(&state) || (targets.is_empty() && !state.ends_with("ING")) {
                        return Ok(Some(v));
                    }
                    if RESOURCE_FAILED.contains(&state) {
                        return Err(CimiError::JobFailed {
                            href: redact_url(href),
                            state: state.to_string(),
                            return_code: None,
                            message: format!("the resource went {state} while waiting for {}", targets.join("|")),
                        });
                    }
                }
                Err(CimiError::NotFound { .. }) if gone_ok => return Ok(None),
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, "polling the resource failed; trying again")
                }
                Err(e) => return Err(e),
            }
            p.pause().await?;
        }
    }

    /// Wait for an accepted operation to finish: through its Job when there is one; else, when it was
    /// asynchronous (202, or a provider without Jobs) and `resource` is known, through the resource's state
    /// reaching one of `targets` (an empty `targets` means "any state not ending in ING"). For deletes pass
    /// `targets = &["DELETED"]`: the resource disappearing ends the wait too.
    pub async fn settle(
        &self,
        accepted: &Accepted,
        resource: Option<&Url>,
        targets: &[&str],
        opts: &WaitOptions,
    ) -> Result<Settled, CimiError> {
        if let Some(job) = &accepted.job {
            let j = self.follow_job(job, opts).await?;
            return Ok(Settled { job: Some(j), resource: None });
        }
        let Some(href) = resource else {
            return Ok(Settled { job: None, resource: None });
        };
        let deleting = targets.contains(&"DELETED");
        if accepted.is_complete() && !deleting && targets.is_empty() {
            return Ok(Settled { job: None, resource: None });
        }
        // Without Jobs (ref §7: "the client then follows the resource's `state` instead of a Job"), and also
        // after a synchronous answer when a target state was asked for: the state may lag the answer.
        let v = self.wait_for_state(href, targets, deleting, opts).await?;
        Ok(Settled { job: None, resource: v })
    }
}
