//! Verify a Kubernetes ServiceAccount token (a JWT) offline: the signature
//! by the key its `kid` names, with that key's one algorithm; `iss`, `aud`,
//! `exp`, `nbf` and `iat` with `LEEWAY`; and the `kubernetes.io` claim,
//! which names the ServiceAccount.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::jwks::{Jwks, Key};
use super::spec::ServiceAccount;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 60;

/// Longer tokens are not decoded (Kubernetes' are ~1 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was not accepted. Messages name claims, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a JWT")]
    Malformed,
    #[error("alg {:?} is not accepted", .0.get(..16).unwrap_or(.0))]
    Alg(String),
    /// (The kid is logged apart, bounded.)
    #[error("no key with the token's kid in the JWKS")]
    UnknownKid(String),
    #[error("alg {:?} does not match the key's {key}", .token.get(..16).unwrap_or(.token))]
    AlgMismatch { token: String, key: &'static str },
    #[error("signature does not verify")]
    Signature,
    /// (The token's issuer is not repeated: it is the client's text.)
    #[error("issuer is not the configured issuer")]
    Issuer(String),
    #[error("audience is not one of the configured audiences")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("no kubernetes.io ServiceAccount claim")]
    NotServiceAccount,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<KubernetesClaim>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct KubernetesClaim {
    namespace: String,
    serviceaccount: NamedRef,
}

#[derive(Deserialize)]
struct NamedRef {
    name: String,
}

/// A verified token: who it is, and until when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub account: ServiceAccount,
    pub expires: i64,
}

/// What a token must satisfy besides its signature.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    /// Unix seconds.
    pub now: i64,
}

/// The `kid` a token names, if it parses that far (to tell "refresh the
/// keys" from any other refusal).
pub fn kid_of(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    header.kid
}

/// The bearer token, when it is shaped like a JWT.
pub fn bearer_jwt(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && looks_like_jwt(token)).then_some(token)
}

/// A token shaped like a JWS compact serialization (three base64url parts,
/// the first a JSON object): `eyJ...`.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

pub fn verify(token: &str, keys: &Jwks, expect: &Expect<'_>) -> Result<Verified, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::Malformed)?;
    if header.alg != "RS256" && header.alg != "ES256" {
        return Err(JwtError::Alg(header.alg));
    }
    let kid = header.kid.ok_or(JwtError::UnknownKid(String::new()))?;
    let key = keys.get(&kid).ok_or(JwtError::UnknownKid(kid))?;
    if header.alg != key.alg() {
        return Err(JwtError::AlgMismatch {
            token: header.alg,
            key: key.alg(),
        });
    }
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    let sig = decode(s)?;
    let ok = match key {
        Key::Rs256 { n, e } => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, &sig)
            .is_ok(),
        Key::Es256 { point } => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(signed, &sig)
            .is_ok(),
    };
    if !ok {
        return Err(JwtError::Signature);
    }
    let claims: Claims = serde_json::from_slice(&decode(c)?).map_err(|_| JwtError::Malformed)?;
    let iss = claims.iss.unwrap_or_default();
    if iss != expect.issuer {
        return Err(JwtError::Issuer(iss));
    }
    let aud_ok = match &claims.aud {
        Some(Audience::One(a)) => expect.audiences.contains(a),
        Some(Audience::Many(list)) => list.iter().any(|a| expect.audiences.contains(a)),
        None => false,
    };
    if !aud_ok {
        return Err(JwtError::Audience);
    }
    // Every ServiceAccount token has an expiry; one without is refused.
    let exp = claims.exp.ok_or(JwtError::Expired)? as i64;
    if exp + LEEWAY_SECS <= expect.now {
        return Err(JwtError::Expired);
    }
    for t in [claims.nbf, claims.iat].into_iter().flatten() {
        if t as i64 - LEEWAY_SECS > expect.now {
            return Err(JwtError::NotYetValid);
        }
    }
    let k = claims.kubernetes.ok_or(JwtError::NotServiceAccount)?;
    if k.namespace.is_empty() || k.serviceaccount.name.is_empty() {
        return Err(JwtError::NotServiceAccount);
    }
    Ok(Verified {
        account: ServiceAccount {
            namespace: k.namespace.into(),
            name: k.serviceaccount.name.into(),
        },
        expires: exp + LEEWAY_SECS,
    })
}
