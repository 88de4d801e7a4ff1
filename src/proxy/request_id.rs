//! Request ids: a per-process random prefix and a counter. Cheap, unique in
//! practice across replicas, and free of any dependency.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http::HeaderValue;

pub struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
            .unwrap_or(0);
        RequestIds {
            prefix: nanos ^ std::process::id().rotate_left(8),
            counter: AtomicU64::new(0),
        }
    }

    /// The next id, marked sensitive: unique per request, so never worth a
    /// place in an h2 connection's HPACK table (see `prepare_request`).
    pub fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Relaxed);
        // 8 hex digits of prefix, 12 of counter, without the formatter.
        let mut id = [0u8; 20];
        hex_into(&mut id[..8], u64::from(self.prefix));
        hex_into(&mut id[8..], n);
        let mut v = HeaderValue::from_bytes(&id).expect("hex is a valid header value");
        v.set_sensitive(true);
        v
    }

    /// A client-sent id is kept if it is short, visible ASCII.
    pub fn accept(value: &HeaderValue) -> bool {
        let b = value.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
    }
}

/// Writes the low `out.len()` hex digits of `v`, most significant first.
fn hex_into(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefix_then_counter_in_fixed_width_hex() {
        let ids = RequestIds {
            prefix: 0xdead_beef,
            counter: AtomicU64::new(0x0123_4567_89ab),
        };
        assert_eq!(ids.next(), "deadbeef0123456789ab");
        assert!(ids.next().is_sensitive(), "never indexed by HPACK");
        assert_eq!(ids.next(), "deadbeef0123456789ad");
        let ids = RequestIds {
            prefix: 7,
            counter: AtomicU64::new(u64::MAX),
        };
        // The counter keeps its low 48 bits; the width never changes.
        assert_eq!(ids.next(), "00000007ffffffffffff");
    }
}
