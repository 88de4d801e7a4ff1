//! Signing ServiceAccount-shaped tokens with test keys: RS256 (fixed keys
//! in tests/fixtures/jwt) and ES256 (generated), their JWKS, and the
//! forgeries a verifier must refuse (`alg: none`, HS256 keyed with the
//! public key, a tampered payload). Used by unit and integration tests.

#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{json, Value};

pub const RSA_A: &[u8] = include_bytes!("../fixtures/jwt/rsa-a.pk8");
pub const RSA_B: &[u8] = include_bytes!("../fixtures/jwt/rsa-b.pk8");

pub enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

pub struct Signer {
    pub kid: String,
    key: Key,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    pub fn rsa(kid: &str, pk8: &[u8]) -> Signer {
        Signer {
            kid: kid.into(),
            key: Key::Rsa(RsaKeyPair::from_pkcs8(pk8).expect("an RSA PKCS#8 key")),
        }
    }

    pub fn ec(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pk8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer {
            kid: kid.into(),
            key: Key::Ec(EcdsaKeyPair::from_pkcs8(alg, pk8.as_ref(), &rng).unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "RS256",
            Key::Ec(_) => "ES256",
        }
    }

    /// The public key as the API server's JWKS lists it.
    pub fn jwk(&self) -> Value {
        match &self.key {
            Key::Rsa(k) => {
                let c: ring::rsa::PublicKeyComponents<Vec<u8>> = k.public().into();
                json!({
                    "use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                    "n": b64(&c.n),
                    "e": b64(&c.e),
                })
            }
            Key::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({
                    "use": "sig", "kty": "EC", "kid": self.kid, "alg": "ES256", "crv": "P-256",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
        }
    }

    /// The public key's bytes (what an HS256 forgery keys its MAC with).
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.key {
            Key::Rsa(k) => k.public().as_ref().to_vec(),
            Key::Ec(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// `claims` signed with this key, the header naming its alg and kid.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg(), "kid": self.kid}), claims)
    }

    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match &self.key {
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    signed.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Key::Ec(k) => k.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{signed}.{}", b64(&sig))
    }
}

/// A JWKS document holding these keys.
pub fn jwks(signers: &[&Signer]) -> String {
    json!({ "keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>() }).to_string()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a projected ServiceAccount token, as kubelet gets them.
pub fn claims(issuer: &str, aud: &str, namespace: &str, sa: &str) -> Value {
    let now = now();
    json!({
        "aud": [aud],
        "exp": now + 3600,
        "iat": now,
        "nbf": now,
        "iss": issuer,
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": format!("{sa}-0"), "uid": "8c1f6a4e-0000-4000-8000-000000000001"},
            "serviceaccount": {"name": sa, "uid": "8c1f6a4e-0000-4000-8000-000000000002"},
        },
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
    })
}

/// A token with `alg: none` and no signature.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "none", "kid": kid});
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// HS256 keyed with `secret` (the classic forgery keys it with the
/// verifier's public key).
pub fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let header = json!({"alg": "HS256", "kid": kid});
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", b64(tag.as_ref()))
}

/// `token` with its payload replaced by `claims` and its signature kept.
pub fn tampered(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let (h, _, s) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    format!("{h}.{}.{s}", b64(claims.to_string().as_bytes()))
}
