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

    pub fn next(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Relaxed);
        let s = format!("{:08x}{:012x}", self.prefix, n);
        HeaderValue::from_str(&s).expect("hex is a valid header value")
    }

    /// A client-sent id is kept if it is short, visible ASCII.
    pub fn accept(value: &HeaderValue) -> bool {
        let b = value.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}
