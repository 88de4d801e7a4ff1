//! How a send on the pool fails: what the caller sees (`SendError`), a
//! failed connect shared by the requests that waited for it
//! (`SharedFailure`), and whether a try left the request unsent
//! (`TryFailure`).

use std::sync::Arc;

use http::Request;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a pooled send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(#[source] BoxError),
    #[error(transparent)]
    Request(hyper::Error),
    /// Every one of `max_connections` stayed busy for the whole wait.
    #[error("all {max} connections busy")]
    Busy { max: usize },
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// One failed connect's error, given to every request that waited for it;
/// its source is the error itself, so the error mapping and the log see
/// the same cause each time.
#[derive(Debug, Clone)]
pub struct SharedFailure(pub(super) Arc<BoxError>);

impl std::fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&**self.0)
    }
}

/// How a try on a connection failed.
// The request rides in the error so it can go on another connection
// without a copy; boxing it would allocate on the retry path for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum TryFailure<B> {
    /// The connection never wrote the request: it can go on another.
    Unsent(Request<B>, hyper::Error),
    /// It was written (or partly): never resent.
    Failed(hyper::Error),
}

impl<B> From<hyper::client::conn::TrySendError<Request<B>>> for TryFailure<B> {
    fn from(mut e: hyper::client::conn::TrySendError<Request<B>>) -> Self {
        match e.take_message() {
            Some(unsent) => TryFailure::Unsent(unsent, e.into_error()),
            None => TryFailure::Failed(e.into_error()),
        }
    }
}
