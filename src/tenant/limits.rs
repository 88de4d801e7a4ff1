//! Limits that answer 429 at once instead of queueing: a tenant's
//! concurrent requests and a client's request rate, each kept separately
//! for writes and for reads so a burst of long queries cannot starve ingest.
//! Their state outlives a reload: `State::build` hands the previous
//! config's counters and buckets on (`InFlight::set_max`,
//! `ClientRate::carried`), so a reload never frees slots that requests
//! still hold or refills a client's bucket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A concurrency cap; a guard holds one slot until it drops.
pub struct InFlight {
    max: AtomicUsize,
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
            max: AtomicUsize::new(max),
            current: AtomicUsize::new(0),
        })
    }

    /// `new(max)`, or `previous` with its cap set to `max` and the slots
    /// its holders still hold counted: a reload keeps the counter.
    pub fn carried(previous: Option<&Arc<InFlight>>, max: usize) -> Arc<Self> {
        match previous {
            Some(p) => {
                p.set_max(max);
                p.clone()
            }
            None => InFlight::new(max),
        }
    }

    /// A new cap; slots held beyond it are kept until they are released,
    /// and none is given out until the count is under it again.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Slots held now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<InFlightGuard> {
        let max = self.max.load(Ordering::Relaxed);
        let mut cur = self.current.load(Ordering::Relaxed);
        loop {
            if cur >= max {
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

/// A client's `rate`: one bucket for writes, one for everything else.
pub struct ClientRate {
    pub write: RateLimiter,
    pub read: RateLimiter,
}

impl ClientRate {
    pub fn new(rate: f64) -> Arc<Self> {
        Arc::new(ClientRate {
            write: RateLimiter::new(rate),
            read: RateLimiter::new(rate),
        })
    }

    /// The buckets `previous` had when its rate is `rate` (a reload that
    /// leaves the client's rate alone leaves its buckets alone), else new.
    pub fn carried(previous: Option<&Arc<ClientRate>>, rate: f64) -> Arc<Self> {
        match previous {
            Some(p) if p.write.rate == rate => p.clone(),
            _ => ClientRate::new(rate),
        }
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
    fn a_carried_cap_keeps_the_slots_held_under_the_old_one() {
        let old = InFlight::new(2);
        let held = [old.try_acquire().unwrap(), old.try_acquire().unwrap()];
        // The same cap after a reload: still full.
        let same = InFlight::carried(Some(&old), 2);
        assert!(same.try_acquire().is_none());
        // Lowered under what is held: none until the count is below it.
        let lower = InFlight::carried(Some(&old), 1);
        assert!(lower.try_acquire().is_none());
        drop(held);
        assert_eq!(lower.current(), 0);
        let one = lower.try_acquire().unwrap();
        assert!(lower.try_acquire().is_none());
        // Raised: room at once, the held slot still counted.
        let higher = InFlight::carried(Some(&old), 3);
        let _two = [higher.try_acquire().unwrap(), higher.try_acquire().unwrap()];
        assert!(higher.try_acquire().is_none());
        drop(one);
        assert_eq!(higher.current(), 2);
        // Nothing before: a new counter.
        assert_eq!(InFlight::carried(None, 3).current(), 0);
    }

    #[test]
    fn a_carried_rate_keeps_its_buckets_unless_the_rate_changed() {
        let old = ClientRate::new(1.0);
        assert!(old.write.try_take().is_ok());
        assert!(old.write.try_take().is_err());
        // Same rate: the empty bucket stays empty.
        let same = ClientRate::carried(Some(&old), 1.0);
        assert!(Arc::ptr_eq(&same, &old));
        assert!(same.write.try_take().is_err());
        // The read bucket is its own.
        assert!(same.read.try_take().is_ok());
        // Another rate: new buckets.
        let other = ClientRate::carried(Some(&old), 2.0);
        assert!(!Arc::ptr_eq(&other, &old));
        assert!(other.write.try_take().is_ok());
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
