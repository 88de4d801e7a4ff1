//! A JSON Web Key Set as the Kubernetes API server publishes it: the keys
//! that may sign ServiceAccount tokens, each with the one algorithm it
//! verifies (from its key type, never from a token).

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

/// A key and the algorithm it verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// RS256: RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192 bits.
    Rs256 { n: Vec<u8>, e: Vec<u8> },
    /// ES256: ECDSA on P-256 with SHA-256; the point uncompressed
    /// (`04 || x || y`).
    Es256 { point: Vec<u8> },
}

impl Key {
    /// The JOSE `alg` this key verifies.
    pub fn alg(&self) -> &'static str {
        match self {
            Key::Rs256 { .. } => "RS256",
            Key::Es256 { .. } => "ES256",
        }
    }
}

/// Signing keys by `kid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: HashMap<String, Key>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("not a JSON Web Key Set: {0}")]
    Json(String),
    #[error("no usable signing key (RS256 or ES256 with a kid)")]
    Empty,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Jwks {
    /// Parse a JWKS document. Keys this proxy cannot use (another key
    /// type or curve, an `alg` other than the key type's, `use` other
    /// than `sig`, no `kid`, bad encodings) are left out; a set with no
    /// usable key is an error.
    pub fn parse(json: &[u8]) -> Result<Jwks, JwksError> {
        let raw: RawSet =
            serde_json::from_slice(json).map_err(|e| JwksError::Json(e.to_string()))?;
        let mut keys = HashMap::new();
        for k in raw.keys {
            let Some(kid) = k.kid.clone() else { continue };
            if k.use_.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let Some(key) = k.key() else { continue };
            if k.alg.as_deref().is_some_and(|a| a != key.alg()) {
                continue;
            }
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(Jwks { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl RawKey {
    fn key(&self) -> Option<Key> {
        let b64 = |s: &Option<String>| URL_SAFE_NO_PAD.decode(s.as_deref()?).ok();
        match self.kty.as_str() {
            "RSA" => {
                let n = b64(&self.n)?;
                let e = b64(&self.e)?;
                // ring checks the size again; this keeps tiny keys out of
                // the set at once.
                (n.len() >= 256 && !e.is_empty()).then_some(Key::Rs256 { n, e })
            }
            "EC" if self.crv.as_deref() == Some("P-256") => {
                let (x, y) = (b64(&self.x)?, b64(&self.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Some(Key::Es256 { point })
            }
            _ => None,
        }
    }
}
