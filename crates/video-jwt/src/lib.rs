//! # video-jwt
//!
//! ConsultPay's pass to the video room ([`billing_core::video::PassSigner`]): a JWT in
//! the format of Jitsi Meet's token authentication, so a Jitsi server configured
//! with ConsultPay's secret (or public keys) admits only patients whose hold is in
//! place, and the practitioner as moderator.
//!
//! Claims: `iss`, `aud`, `sub` (Jitsi's domain or tenant), `room`, `iat`, `nbf`,
//! `exp`, `moderator`, and `context.user` (`name`, `moderator`, `affiliation`).
//!
//! Two ways to sign ([`Signing`]):
//! - **HS256** with a shared secret: what Jitsi's `app_secret` expects.
//! - **EdDSA** (Ed25519) with keys in PKCS#8 PEM files (`openssl genpkey -algorithm
//!   ed25519`): every key is published by [`JwtPasses::jwks`] (served at
//!   `/.well-known/jwks.json`), one signs (the first, or the one named), and each pass
//!   names its key (`kid`). A new key rotates in without breaking anything: publish it
//!   first (listed, not signing) until the platforms' JWKS caches have it, then let it
//!   sign, and keep the old one listed until its passes have expired.
//!
//! Room names are `cp-` and 32 hex digits of an HMAC of the consultation id under a
//! key derived from the server's secret: one per consultation, unguessable without
//! the key, the same on every server sharing that secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use billing_core::ids::ConsultationId;
use billing_core::video::{PassClaims, PassSigner, RoomName, SignError};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the video pass secret must be at least 32 bytes")]
    ShortSecret,
    #[error("key '{kid}': {reason}")]
    Key { kid: String, reason: String },
    #[error("at least one signing key is needed")]
    NoKey,
    #[error("key id '{0}' is listed twice")]
    DuplicateKid(String),
    #[error("the signing key '{0}' is not among the keys")]
    UnknownSigningKid(String),
}

/// One Ed25519 key: its id, its private half for signing, its public half for the
/// JWKS.
struct EdKey {
    kid: String,
    encoding: EncodingKey,
    public: Vec<u8>,
}

impl EdKey {
    fn from_pem(kid: &str, pem_text: &[u8]) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::Key {
            kid: kid.to_owned(),
            reason,
        };
        if kid.is_empty()
            || !kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(bad("a key id is letters, digits, '-', '_' or '.'".into()));
        }
        let block = pem::parse(pem_text).map_err(|e| bad(e.to_string()))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(bad(format!(
                "expected a PKCS#8 'PRIVATE KEY', found '{}'",
                block.tag()
            )));
        }
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(block.contents())
            .map_err(|e| bad(format!("not an Ed25519 PKCS#8 key ({e})")))?;
        Ok(EdKey {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ed_der(block.contents()),
            public: pair.public_key().as_ref().to_vec(),
        })
    }
}

/// How passes are signed.
pub enum Signing {
    /// HS256 with the secret the video platform shares (Jitsi's `app_secret`).
    SharedSecret(Vec<u8>),
    /// EdDSA: every key `(kid, PEM)` is published; `signing` names the one that signs
    /// (default: the first).
    Ed25519 {
        keys: Vec<(String, Vec<u8>)>,
        signing: Option<String>,
    },
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signing::SharedSecret(_) => f.write_str("SharedSecret(***)"),
            Signing::Ed25519 { keys, signing } => f
                .debug_struct("Ed25519")
                .field("keys", &keys.iter().map(|(kid, _)| kid).collect::<Vec<_>>())
                .field("signing", signing)
                .finish(),
        }
    }
}

/// Who the passes are for, as the platform checks them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience {
    /// `iss`: Jitsi's `app_id`.
    pub issuer: String,
    /// `aud`: one of Jitsi's `asap_accepted_audiences`.
    pub audience: String,
    /// `sub`: Jitsi's domain (or tenant), `*` for any.
    pub subject: String,
}

enum Signer {
    Shared(EncodingKey),
    /// `keys[signing]` signs.
    Ed {
        keys: Vec<EdKey>,
        signing: usize,
    },
}

/// Signs passes and names rooms.
pub struct JwtPasses {
    signer: Signer,
    audience: Audience,
    room_key: [u8; 32],
}

impl std::fmt::Debug for JwtPasses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtPasses")
            .field("audience", &self.audience)
            .field(
                "signing",
                &match &self.signer {
                    Signer::Shared(_) => "HS256".to_owned(),
                    Signer::Ed { keys, signing } => format!("EdDSA, kid {}", keys[*signing].kid),
                },
            )
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    room: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    moderator: bool,
    context: Context<'a>,
}

#[derive(Serialize)]
struct Context<'a> {
    user: User<'a>,
}

#[derive(Serialize)]
struct User<'a> {
    name: &'a str,
    moderator: bool,
    /// Jitsi's token affiliation: the room's owner, or a member.
    affiliation: &'a str,
}

impl JwtPasses {
    /// Passes signed as `signing` says, for `audience`; rooms named under a key
    /// derived from `server_secret` for this purpose only.
    pub fn new(
        signing: Signing,
        audience: Audience,
        server_secret: &[u8],
    ) -> Result<Self, KeyError> {
        let signer = match signing {
            Signing::SharedSecret(secret) if secret.len() < 32 => {
                return Err(KeyError::ShortSecret);
            }
            Signing::SharedSecret(secret) => Signer::Shared(EncodingKey::from_secret(&secret)),
            Signing::Ed25519 {
                keys: list,
                signing,
            } => {
                let mut keys: Vec<EdKey> = Vec::with_capacity(list.len());
                for (kid, pem_text) in list {
                    if keys.iter().any(|k| k.kid == kid) {
                        return Err(KeyError::DuplicateKid(kid));
                    }
                    keys.push(EdKey::from_pem(&kid, &pem_text)?);
                }
                if keys.is_empty() {
                    return Err(KeyError::NoKey);
                }
                let signing = match signing {
                    None => 0,
                    Some(kid) => keys
                        .iter()
                        .position(|k| k.kid == kid)
                        .ok_or(KeyError::UnknownSigningKid(kid))?,
                };
                Signer::Ed { keys, signing }
            }
        };
        let mut h = Sha256::new();
        h.update(b"consultpay video rooms v1\0");
        h.update(server_secret);
        Ok(JwtPasses {
            signer,
            audience,
            room_key: h.finalize().into(),
        })
    }

    /// The public keys as a JSON Web Key Set (empty with a shared secret, which is
    /// never published).
    pub fn jwks(&self) -> JwkSet {
        let keys = match &self.signer {
            Signer::Shared(_) => Vec::new(),
            Signer::Ed { keys, .. } => keys
                .iter()
                .map(|k| Jwk {
                    common: CommonParameters {
                        public_key_use: Some(PublicKeyUse::Signature),
                        key_algorithm: Some(KeyAlgorithm::EdDSA),
                        key_id: Some(k.kid.clone()),
                        ..CommonParameters::default()
                    },
                    algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                        key_type: OctetKeyPairType::OctetKeyPair,
                        curve: EllipticCurve::Ed25519,
                        x: URL_SAFE_NO_PAD.encode(&k.public),
                    }),
                })
                .collect(),
        };
        JwkSet { keys }
    }

    /// [`JwtPasses::jwks`] as the JSON document to serve.
    pub fn jwks_json(&self) -> String {
        // A JwkSet of strings and enums always serialises.
        serde_json::to_string(&self.jwks()).unwrap_or_else(|_| r#"{"keys":[]}"#.to_owned())
    }
}

impl PassSigner for JwtPasses {
    fn room(&self, consultation: ConsultationId) -> RoomName {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.room_key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(consultation.as_uuid().as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        match RoomName::parse(&format!("cp-{hex}")) {
            Ok(room) => room,
            Err(_) => unreachable!("cp- and hex digits make a room name"),
        }
    }

    fn sign(&self, c: &PassClaims) -> Result<String, SignError> {
        let claims = Claims {
            iss: &self.audience.issuer,
            aud: &self.audience.audience,
            sub: &self.audience.subject,
            room: c.room.as_str(),
            iat: c.issued_at.timestamp(),
            nbf: c.not_before.timestamp(),
            exp: c.expires_at.timestamp(),
            moderator: c.moderator,
            context: Context {
                user: User {
                    name: &c.display_name,
                    moderator: c.moderator,
                    affiliation: if c.moderator { "owner" } else { "member" },
                },
            },
        };
        let (header, key) = match &self.signer {
            Signer::Shared(key) => (Header::new(Algorithm::HS256), key),
            Signer::Ed { keys, signing } => {
                let key = &keys[*signing];
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some(key.kid.clone());
                (header, &key.encoding)
            }
        };
        jsonwebtoken::encode(&header, &claims, key).map_err(|e| SignError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
