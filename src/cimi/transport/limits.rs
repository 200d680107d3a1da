//! The limits of one provider's traffic: the rate budget ([`Limits`]) and the token bucket that spends it,
//! when and how requests are retried ([`RetryPolicy`]), and how much is read ([`ReadLimits`], and the
//! bound of an error body).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The rate budget of one provider, shared by every caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Sustained requests per second (token refill rate).
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet period (bucket size).
    pub burst: u32,
    /// Requests in flight at most.
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { requests_per_second: 20.0, burst: 40, max_concurrent: 8 }
    }
}

/// When and how requests are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff; it doubles each attempt, with full jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for inside one call; a longer one is returned to the caller as
    /// [`CimiError::RateLimited`](crate::cimi::error::CimiError::RateLimited) /
    /// [`CimiError::Unavailable`](crate::cimi::error::CimiError::Unavailable) so it can requeue instead of
    /// blocking.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// How much the client reads from a provider (`CimiProvider.spec.readLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The largest response body read; a larger one is refused (before reading, when `Content-Length` says so).
    pub max_body_bytes: u64,
    /// The most pages one listing reads.
    pub max_pages: u64,
    /// The most entries one listing keeps.
    pub max_entries: u64,
    /// The longest one listing may take, all its pages together.
    pub listing_timeout: Duration,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_body_bytes: 16 << 20,
            max_pages: 1000,
            max_entries: 100_000,
            listing_timeout: Duration::from_secs(120),
        }
    }
}

/// The most bytes of an error answer read: enough for any message, of which only an excerpt is kept.
pub(super) const MAX_ERROR_BODY_BYTES: u64 = 64 << 10;

/// A token bucket shared by every clone of a transport.
#[derive(Debug)]
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket for `limits`.
    pub(super) fn new(limits: &Limits) -> Self {
        let burst = f64::from(limits.burst.max(1));
        TokenBucket { rate: limits.requests_per_second.max(0.001), burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Wait for a token.
    pub(super) async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
                s.0 = (s.0 + refill).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_token_bucket_spaces_requests_after_the_burst() {
        let bucket = TokenBucket::new(&Limits { requests_per_second: 50.0, burst: 2, max_concurrent: 1 });
        let start = Instant::now();
        for _ in 0..7 {
            bucket.acquire().await;
        }
        // 2 at once, then 5 at 50/s: at least ~100 ms.
        assert!(start.elapsed() >= Duration::from_millis(90), "{:?}", start.elapsed());
    }
}
