//! Verification against every refusal the contract names, with real
//! signatures (RS256 and ES256) and the classic forgeries.

use serde_json::json;

use super::jwks::Jwks;
use super::spec::AccountPattern;
use super::verify::{verify, Expect, JwtError};

#[path = "../../tests/common/jwt.rs"]
mod jwt;

use jwt::{claims, hs256, jwks, now, tampered, unsigned, Signer, RSA_A, RSA_B};

const ISS: &str = "https://kubernetes.default.svc.cluster.local";

fn expect(audiences: &[String]) -> Expect<'_> {
    Expect {
        issuer: ISS,
        audiences,
        now: now(),
    }
}

fn aud() -> Vec<String> {
    vec!["lgtm-proxy".to_string()]
}

#[test]
fn rs256_and_es256_tokens_verify_and_name_their_service_account() {
    let (rsa, ec) = (Signer::rsa("a", RSA_A), Signer::ec("e"));
    let keys = Jwks::parse(jwks(&[&rsa, &ec]).as_bytes()).unwrap();
    assert_eq!(keys.len(), 2);
    for s in [&rsa, &ec] {
        let v = verify(
            &s.sign(&claims(ISS, "lgtm-proxy", "monitoring", "alloy")),
            &keys,
            &expect(&aud()),
        )
        .unwrap();
        assert_eq!(v.account.to_string(), "monitoring/alloy");
    }
    // `aud` as a single string, one of several configured audiences.
    let mut c = claims(ISS, "x", "monitoring", "alloy");
    c["aud"] = json!("other");
    let two = vec!["lgtm-proxy".to_string(), "other".to_string()];
    assert!(verify(&rsa.sign(&c), &keys, &expect(&two)).is_ok());
}

#[test]
fn every_claim_and_signature_fault_is_refused() {
    let (rsa, other) = (Signer::rsa("a", RSA_A), Signer::rsa("b", RSA_B));
    let keys = Jwks::parse(jwks(&[&rsa]).as_bytes()).unwrap();
    let good = claims(ISS, "lgtm-proxy", "monitoring", "alloy");
    let check = |token: &str| verify(token, &keys, &expect(&aud()));
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good.clone();
        f(&mut c);
        rsa.sign(&c)
    };
    assert_eq!(
        check(&with(&|c| c["aud"] = json!(["grafana"]))),
        Err(JwtError::Audience)
    );
    assert_eq!(
        check(&with(&|c| c
            .as_object_mut()
            .unwrap()
            .remove("aud")
            .map(drop)
            .unwrap())),
        Err(JwtError::Audience)
    );
    assert!(matches!(
        check(&with(&|c| c["iss"] = json!("https://evil.example"))),
        Err(JwtError::Issuer(_))
    ));
    assert_eq!(
        check(&with(&|c| c["exp"] = json!(now() - 61))),
        Err(JwtError::Expired)
    );
    assert_eq!(
        check(&with(&|c| c
            .as_object_mut()
            .unwrap()
            .remove("exp")
            .map(drop)
            .unwrap())),
        Err(JwtError::Expired)
    );
    assert_eq!(
        check(&with(&|c| c["nbf"] = json!(now() + 120))),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(
        check(&with(&|c| c["iat"] = json!(now() + 120))),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(
        check(&with(&|c| c
            .as_object_mut()
            .unwrap()
            .remove("kubernetes.io")
            .map(drop)
            .unwrap())),
        Err(JwtError::NotServiceAccount)
    );
    // Within the 60 s leeway: accepted.
    assert!(check(&with(&|c| c["exp"] = json!(now() - 30))).is_ok());
    assert!(check(&with(&|c| c["nbf"] = json!(now() + 30))).is_ok());

    // Forgeries.
    assert!(matches!(check(&unsigned("a", &good)), Err(JwtError::Alg(a)) if a == "none"));
    assert!(
        matches!(check(&hs256("a", &rsa.public_bytes(), &good)), Err(JwtError::Alg(a)) if a == "HS256")
    );
    let mut elevated = good.clone();
    elevated["kubernetes.io"]["namespace"] = json!("kube-system");
    assert_eq!(
        check(&tampered(&rsa.sign(&good), &elevated)),
        Err(JwtError::Signature)
    );
    // Another key claiming the known kid; a kid the set does not hold.
    let impostor = other.sign_with_header(&json!({"alg": "RS256", "kid": "a"}), &good);
    assert_eq!(check(&impostor), Err(JwtError::Signature));
    assert!(matches!(check(&other.sign(&good)), Err(JwtError::UnknownKid(k)) if k == "b"));
    // The key's algorithm, not the token's: ES256 named over an RSA key.
    let ec = Signer::ec("a");
    let crossed = ec.sign_with_header(&json!({"alg": "ES256", "kid": "a"}), &good);
    assert!(matches!(check(&crossed), Err(JwtError::AlgMismatch { .. })));
    for junk in ["", "a.b", "a.b.c.d", "eyJ.eyJ.", &"x".repeat(20_000)] {
        assert!(check(junk).is_err(), "{junk:.20}");
    }
}

#[test]
fn a_jwks_keeps_only_keys_it_can_verify_with() {
    let rsa = Signer::rsa("a", RSA_A);
    let mut with_alg = rsa.jwk();
    with_alg["alg"] = json!("RS512");
    with_alg["kid"] = json!("wrong-alg");
    let mut enc = rsa.jwk();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut no_kid = rsa.jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    let doc = json!({"keys": [rsa.jwk(), with_alg, enc, no_kid,
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"}]});
    let keys = Jwks::parse(doc.to_string().as_bytes()).unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys.get("a").is_some());
    assert!(Jwks::parse(br#"{"keys": []}"#).is_err());
    assert!(Jwks::parse(b"not json").is_err());
}

#[test]
fn service_account_patterns_are_kubernetes_names() {
    assert_eq!(
        AccountPattern::parse("monitoring/alloy")
            .unwrap()
            .to_string(),
        "monitoring/alloy"
    );
    assert_eq!(
        AccountPattern::parse("team-a/*").unwrap().to_string(),
        "team-a/*"
    );
    for bad in [
        "alloy",
        "/alloy",
        "ns/",
        "NS/alloy",
        "ns/a b",
        "a.b/alloy",
        "ns/*x",
        "-ns/a",
        "ns/a/b",
    ] {
        assert!(AccountPattern::parse(bad).is_none(), "{bad}");
    }
}
