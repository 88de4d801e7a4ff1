//! `Admission`: the global `max_in_flight`. Full means 503 at once, as
//! `tower::load_shed` over `tower::limit::ConcurrencyLimit` would answer;
//! those are not used because their permit is a semaphore's, released when
//! the response future ends, while a proxied request holds its slot until
//! both bodies have streamed (the `Exchange` owns it). The slot is a
//! counter kept across reloads (`State::build` carries it).

use super::ctx::Inbound;
use super::gate::Gate;
use crate::error::ProxyError;
use crate::tenant::acquire;

#[derive(Debug, Clone, Copy)]
pub struct Admission;

impl Gate for Admission {
    fn admit<B: http_body::Body>(&self, call: &mut Inbound<B>) -> Result<(), ProxyError> {
        let ctx = &mut call.ctx;
        ctx.admitted =
            acquire(ctx.state.in_flight.as_ref()).map_err(|_| ProxyError::Overloaded {
                limit: "max_in_flight",
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::test_support::{fixture, request};

    #[tokio::test]
    async fn the_global_slots_are_held_by_admitted_requests_and_refused_beyond() {
        let f = fixture();
        let mut admitted = Vec::new();
        for _ in 0..2 {
            let mut call = f.inbound(request("GET", "/prometheus/x", &[]));
            Admission.admit(&mut call).unwrap();
            assert!(call.ctx.admitted.is_some());
            admitted.push(call);
        }
        let mut third = f.inbound(request("GET", "/prometheus/x", &[]));
        let err = Admission.admit(&mut third).unwrap_err();
        assert_eq!(err.status(), 503);
        admitted.pop();
        Admission.admit(&mut third).unwrap();
    }
}
