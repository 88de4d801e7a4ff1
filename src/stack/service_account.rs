//! `ServiceAccountToken`: a bearer token that is a JWT, when
//! `[kubernetes_auth]` is configured, is verified here and the
//! ServiceAccount it names is noted in the `Ctx` for `Authenticate`. A
//! token verified before is one hash lookup and goes straight on; a new one
//! is verified in a boxed future, which may wait for a key refresh when it
//! names an unknown `kid` (so a key rotation costs no failed request). A
//! token that does not verify is noted nowhere: `Authenticate` then finds
//! no client for it (401), as for an unknown static token.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use tower::{Layer, Service};

use super::ctx::{Inbound, Refusal};
use std::sync::Arc;

use crate::kubernetes_auth::keys::Verifier;
use crate::kubernetes_auth::spec::ServiceAccount;
use crate::kubernetes_auth::verify::bearer_jwt;
use crate::proxy::Body;
use crate::tenant::token_hash;

#[derive(Debug, Clone, Copy)]
pub struct ServiceAccountToken;

impl<S> Layer<S> for ServiceAccountToken {
    type Service = ServiceAccountTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServiceAccountTokenService { inner }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ServiceAccountTokenService<S> {
    inner: S,
}

pin_project_lite::pin_project! {
    #[project = VerifyingProj]
    pub enum Verifying<F> {
        Next { #[pin] next: F },
        Verify { verify: Pin<Box<dyn Future<Output = Result<Response<Body>, Refusal>> + Send>> },
    }
}

impl<F> Future for Verifying<F>
where
    F: Future<Output = Result<Response<Body>, Refusal>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            VerifyingProj::Next { next } => next.poll(cx),
            VerifyingProj::Verify { verify } => verify.as_mut().poll(cx),
        }
    }
}

/// What the request's bearer token is to the verifier.
enum Seen {
    /// No verifier, or no bearer JWT.
    NoToken,
    /// Verified before: its account.
    Cached(ServiceAccount),
    /// Not seen (or expired): to verify.
    New(Arc<Verifier>, String, [u8; 32]),
}

impl<S, B> Service<Inbound<B>> for ServiceAccountTokenService<S>
where
    S: Service<Inbound<B>, Response = Response<Body>, Error = Refusal> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Refusal;
    type Future = Verifying<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, mut call: Inbound<B>) -> Self::Future {
        // Nothing is copied for a token seen before: the digest, one
        // lookup, on.
        let seen = match &call.ctx.state.verifier {
            None => Seen::NoToken,
            Some(verifier) => match bearer_jwt(call.req.headers()) {
                None => Seen::NoToken,
                Some(token) => {
                    let digest = token_hash(token.as_bytes());
                    match verifier.cached(&digest) {
                        Some(v) => Seen::Cached(v.account),
                        None => Seen::New(verifier.clone(), token.to_owned(), digest),
                    }
                }
            },
        };
        let (verifier, token, digest) = match seen {
            Seen::NoToken => {
                return Verifying::Next {
                    next: self.inner.call(call),
                }
            }
            Seen::Cached(account) => {
                call.ctx.account = Some(account);
                return Verifying::Next {
                    next: self.inner.call(call),
                };
            }
            Seen::New(verifier, token, digest) => (verifier, token, digest),
        };
        // The inner service that was made ready goes with the future; a
        // clone stays for the next request (tower's pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Verifying::Verify {
            verify: Box::pin(async move {
                if let Ok(v) = verifier.verify(&token, digest).await {
                    call.ctx.account = Some(v.account);
                }
                inner.call(call).await
            }),
        }
    }
}
