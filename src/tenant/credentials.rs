//! Client credentials as presented: `Authorization: Bearer T`, or Basic
//! with any user and password T (Alloy and Prometheus can both send Basic).
//! Only SHA-256 hashes of tokens are kept and compared.

use base64::Engine as _;
use http::header::{HeaderMap, AUTHORIZATION};
use sha2::{Digest, Sha256};

pub fn token_hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// The hash of the token the client presented, if any.
pub fn presented_token_hash(headers: &HeaderMap) -> Option<[u8; 32]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = split_scheme(value)?;
    if scheme.eq_ignore_ascii_case(b"bearer") {
        let token = trim(rest);
        return (!token.is_empty()).then(|| token_hash(token));
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(trim(rest))
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        let password = &decoded[colon + 1..];
        return (!password.is_empty()).then(|| token_hash(password));
    }
    None
}

fn split_scheme(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = v.iter().position(|b| *b == b' ')?;
    Some((&v[..space], &v[space + 1..]))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn bearer_and_basic_password_give_the_same_hash() {
        let want = Some(token_hash(b"tok123"));
        assert_eq!(presented_token_hash(&with("Bearer tok123")), want);
        assert_eq!(presented_token_hash(&with("bearer  tok123 ")), want);
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:tok123");
        assert_eq!(presented_token_hash(&with(&format!("Basic {basic}"))), want);
        let basic = base64::engine::general_purpose::STANDARD.encode(":tok123");
        assert_eq!(presented_token_hash(&with(&format!("BASIC {basic}"))), want);
    }

    #[test]
    fn malformed_or_empty_credentials_are_none() {
        assert_eq!(presented_token_hash(&HeaderMap::new()), None);
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic !!!",
            "Basic dXNlcg==",
            "Digest abc",
            "tok123",
        ] {
            assert_eq!(presented_token_hash(&with(bad)), None, "{bad}");
        }
        let empty_pw = base64::engine::general_purpose::STANDARD.encode("user:");
        assert_eq!(
            presented_token_hash(&with(&format!("Basic {empty_pw}"))),
            None
        );
    }
}
