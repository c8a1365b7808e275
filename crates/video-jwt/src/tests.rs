use super::*;
use billing_core::video::PassClaims;
use chrono::{DateTime, Duration, TimeZone, Utc};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use ring::rand::SystemRandom;
use uuid::Uuid;

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

fn ed_pem() -> Vec<u8> {
    let der = match Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()) {
        Ok(der) => der,
        Err(e) => panic!("{e}"),
    };
    pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec())).into_bytes()
}

fn audience() -> Audience {
    Audience {
        issuer: "consultpay".into(),
        audience: "jitsi".into(),
        subject: "meet.example.org".into(),
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 14, 30, 0).unwrap()
}

fn claims(passes: &JwtPasses, moderator: bool) -> PassClaims {
    let consultation = ConsultationId::from_uuid(Uuid::from_u128(7));
    PassClaims {
        consultation,
        room: passes.room(consultation),
        display_name: "M. Martin".into(),
        moderator,
        issued_at: start() - Duration::minutes(10),
        not_before: start() - Duration::minutes(15),
        expires_at: start() + Duration::hours(1),
    }
}

/// Checks signature, issuer and audience; the times are the platform's to check
/// against its own clock (here, the pass is from 2026).
fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&["consultpay"]);
    v.set_audience(&["jitsi"]);
    v.validate_exp = false;
    v.validate_nbf = false;
    v
}

#[test]
fn an_hs256_pass_carries_jitsis_claims() {
    let passes = JwtPasses::new(
        Signing::SharedSecret(SECRET.to_vec()),
        audience(),
        b"server",
    )
    .unwrap();
    let jwt = passes.sign(&claims(&passes, false)).unwrap();
    let got = decode::<serde_json::Value>(
        &jwt,
        &DecodingKey::from_secret(SECRET),
        &validation(Algorithm::HS256),
    )
    .unwrap()
    .claims;
    assert_eq!(got["sub"], "meet.example.org");
    assert_eq!(
        got["room"],
        passes
            .room(ConsultationId::from_uuid(Uuid::from_u128(7)))
            .as_str()
    );
    assert_eq!(got["nbf"], (start() - Duration::minutes(15)).timestamp());
    assert_eq!(got["exp"], (start() + Duration::hours(1)).timestamp());
    assert_eq!(got["moderator"], false);
    assert_eq!(got["context"]["user"]["name"], "M. Martin");
    assert_eq!(got["context"]["user"]["affiliation"], "member");
    assert!(
        passes.jwks().keys.is_empty(),
        "a shared secret is never published"
    );
}

#[test]
fn a_short_shared_secret_is_refused() {
    assert!(matches!(
        JwtPasses::new(Signing::SharedSecret(vec![1; 31]), audience(), b"s"),
        Err(KeyError::ShortSecret)
    ));
}

#[test]
fn an_eddsa_pass_verifies_through_the_jwks_and_survives_a_rotation() {
    let (old, new) = (ed_pem(), ed_pem());
    let before = JwtPasses::new(
        Signing::Ed25519 {
            keys: vec![("2026-11".into(), old.clone())],
            signing: None,
        },
        audience(),
        b"server",
    )
    .unwrap();
    let issued = before.sign(&claims(&before, true)).unwrap();
    // The new key is published first, the old one still signs.
    let publishing = JwtPasses::new(
        Signing::Ed25519 {
            keys: vec![
                ("2026-11".into(), old.clone()),
                ("2026-12".into(), new.clone()),
            ],
            signing: Some("2026-11".into()),
        },
        audience(),
        b"server",
    )
    .unwrap();
    let still_old = publishing.sign(&claims(&publishing, true)).unwrap();
    assert_eq!(
        decode_header(&still_old).unwrap().kid.as_deref(),
        Some("2026-11")
    );
    assert_eq!(publishing.jwks().keys.len(), 2);
    // Then it signs; the old one stays published.
    let after = JwtPasses::new(
        Signing::Ed25519 {
            keys: vec![("2026-12".into(), new), ("2026-11".into(), old)],
            signing: None,
        },
        audience(),
        b"server",
    )
    .unwrap();
    let fresh = after.sign(&claims(&after, true)).unwrap();
    let jwks: JwkSet = serde_json::from_str(&after.jwks_json()).unwrap();
    assert_eq!(jwks.keys.len(), 2);
    for (jwt, kid) in [(issued, "2026-11"), (fresh, "2026-12")] {
        let header = decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid));
        let jwk = jwks.find(kid).unwrap();
        let got = decode::<serde_json::Value>(
            &jwt,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation(Algorithm::EdDSA),
        )
        .unwrap()
        .claims;
        assert_eq!(got["moderator"], true);
        assert_eq!(got["context"]["user"]["affiliation"], "owner");
    }
}

#[test]
fn keys_that_cannot_sign_are_refused_with_their_id() {
    let rsa_like = b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    for (kid, pem_text) in [
        ("k1", rsa_like.to_vec()),
        ("k 1", ed_pem()),
        ("k1", b"junk".to_vec()),
    ] {
        let e = JwtPasses::new(
            Signing::Ed25519 {
                keys: vec![(kid.into(), pem_text)],
                signing: None,
            },
            audience(),
            b"s",
        )
        .unwrap_err();
        assert!(e.to_string().contains(kid), "{e}");
    }
    let key = ed_pem();
    assert!(matches!(
        JwtPasses::new(
            Signing::Ed25519 {
                keys: vec![("a".into(), key.clone()), ("a".into(), key.clone())],
                signing: None,
            },
            audience(),
            b"s"
        ),
        Err(KeyError::DuplicateKid(_))
    ));
    assert!(matches!(
        JwtPasses::new(
            Signing::Ed25519 {
                keys: vec![("a".into(), key)],
                signing: Some("b".into()),
            },
            audience(),
            b"s"
        ),
        Err(KeyError::UnknownSigningKid(_))
    ));
}

#[test]
fn rooms_are_one_per_consultation_and_depend_on_the_server_key() {
    let passes = |secret: &[u8]| {
        JwtPasses::new(Signing::SharedSecret(SECRET.to_vec()), audience(), secret).unwrap()
    };
    let a = ConsultationId::from_uuid(Uuid::from_u128(1));
    let b = ConsultationId::from_uuid(Uuid::from_u128(2));
    assert_eq!(passes(b"one").room(a), passes(b"one").room(a));
    assert_ne!(passes(b"one").room(a), passes(b"one").room(b));
    assert_ne!(passes(b"one").room(a), passes(b"two").room(a));
    assert_eq!(passes(b"one").room(a).as_str().len(), 35);
}
