//! Limits that answer 429 at once instead of queueing: a tenant's
//! concurrent requests and a client's request rate, each kept separately
//! for writes and for reads so a burst of long queries cannot starve ingest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A concurrency cap; a guard holds one slot until it drops.
pub struct InFlight {
    max: usize,
    current: AtomicUsize,
}

pub struct InFlightGuard(Arc<InFlight>);

/// The cap was reached.
pub struct Full;

/// A slot under an optional cap: no cap needs no slot (`Ok(None)`).
pub fn acquire(cap: Option<&Arc<InFlight>>) -> Result<Option<InFlightGuard>, Full> {
    match cap {
        None => Ok(None),
        Some(c) => c.try_acquire().map(Some).ok_or(Full),
    }
}

impl InFlight {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(InFlight {
            max,
            current: AtomicUsize::new(0),
        })
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<InFlightGuard> {
        let mut cur = self.current.load(Ordering::Relaxed);
        loop {
            if cur >= self.max {
                return None;
            }
            match self.current.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(InFlightGuard(self.clone())),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A token bucket: `rate` requests per second, bursts up to one second's
/// worth (at least 1).
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: f64) -> Self {
        let burst = rate.max(1.0);
        RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Take a token, or say how long until one is there.
    pub fn try_take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            Ok(())
        } else {
            *s = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_caps_and_releases() {
        let l = InFlight::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert!(l.try_acquire().is_some());
    }

    #[test]
    fn bucket_allows_a_burst_then_says_when() {
        let r = RateLimiter::new(5.0);
        for _ in 0..5 {
            r.try_take().unwrap();
        }
        let wait = r.try_take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }
}
