//! Who is calling: client credentials -> tenant and client, the access
//! check, and per-tenant / per-client limits.

mod binding;
mod credentials;
mod limits;
mod resolve;

pub use binding::{acting_tenant, BindingError};
pub use credentials::{presented_token_hash, token_hash};
pub use limits::{acquire, ClientRate, InFlight, InFlightGuard, RateLimiter};
pub use resolve::{AuthError, ClientEntry, Resolver, X_SCOPE_ORGID};
