//! The forwarding path: upstream targets (precomputed at config load), the
//! hyper-util clients, header rules, and the streaming body wrapper.

mod body;
mod cause;
mod client;
mod connect_deadline;
mod egress;
mod exchange;
mod forward;
pub mod headers;
mod meter;
pub mod own_api;
mod own_client;
mod pool;
mod request_id;
mod target;
#[cfg(test)]
mod test_bodies;
mod upgrade;
mod via;

pub use body::{Body, Metered, OutBody};
pub use cause::root_cause;
pub use client::{ClientSet, Clients};
pub use egress::Egress;
pub use exchange::Exchange;
pub use forward::{forward, Failed, Routed};
pub use own_client::{OwnBody, OwnCallError, OwnClient};
pub use pool::UpstreamPool;
pub use request_id::RequestIds;
pub use target::{basic_auth, Target};
pub use upgrade::requested as upgrade_requested;
