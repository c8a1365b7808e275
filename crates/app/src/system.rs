//! The system ports backed by the OS: time-ordered UUIDs and secrets from the OS's
//! cryptographic random source.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use billing_core::ids::ConsultationId;
use billing_core::password::{HashError, Password, PasswordHash, PasswordHasher};
use billing_core::secrets::PayToken;
use billing_core::system::{IdGenerator, PayLinkSigner, SecretGenerator};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Pay tokens as HMAC-SHA256 of the consultation and the link's generation, under a
/// key derived from the server's session key: the link can be shown again, storage
/// keeps only its hash, and without the key nobody can make one.
#[derive(Clone)]
pub struct HmacPayLinks {
    key: [u8; 32],
}

impl std::fmt::Debug for HmacPayLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacPayLinks(***)")
    }
}

impl HmacPayLinks {
    /// Keys derived from `secret` for this purpose only.
    pub fn new(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"consultpay pay links v1\0");
        h.update(secret);
        HmacPayLinks {
            key: h.finalize().into(),
        }
    }
}

impl PayLinkSigner for HmacPayLinks {
    fn pay_token(&self, consultation: ConsultationId, generation: u32) -> PayToken {
        // HMAC takes keys of any length: `new_from_slice` cannot fail for SHA-256.
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        };
        mac.update(consultation.as_uuid().as_bytes());
        mac.update(&generation.to_be_bytes());
        PayToken::from_random(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// UUID v7 identifiers (time-ordered: compact indexes).
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn new_id(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// 256 bits from the OS, base64url without padding (43 characters).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsSecrets;

impl SecretGenerator for OsSecrets {
    fn secret(&self) -> String {
        let mut bytes = [0u8; 32];
        // The OS random source does not fail on supported platforms; if it ever does,
        // serving predictable tokens would be worse than stopping.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the OS random source failed");
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

/// Staff passwords hashed with Argon2id at OWASP's parameters (19 MiB, 2 passes, one
/// lane), a 16-byte salt from the OS per hash, off the async executor. A hash keeps its
/// parameters, so raising them later still verifies older hashes.
///
/// At most one check per core runs at once; the others wait their turn. Without that
/// bound, a burst of sign-ins (each 19 MiB, and unknown e-mails are checked too) could
/// take the server's memory and cores before any rate limit sees a failure.
pub struct Argon2Passwords {
    decoy: PasswordHash,
    /// A permit per core, held by the blocking task itself (so a request that gives up
    /// does not free its turn while its hash still runs).
    running: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Argon2Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Argon2Passwords")
    }
}

fn argon2() -> argon2::Argon2<'static> {
    // OWASP's Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
    let params = argon2::Params::new(19 * 1024, 2, 1, None)
        .unwrap_or_else(|_| unreachable!("constant parameters within Argon2's bounds"));
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<PasswordHash, HashError> {
    use argon2::PasswordHasher as _;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| HashError(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| PasswordHash::from_stored(h.to_string()))
        .map_err(|e| HashError(e.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier as _;
    argon2::password_hash::PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl Argon2Passwords {
    /// The hasher, with its decoy (the hash of a random password nobody knows, made
    /// once here: about as long as one sign-in).
    pub fn new() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Argon2Passwords {
            decoy: hash_now(&OsSecrets.secret())?,
            running: Arc::new(tokio::sync::Semaphore::new(cores)),
        })
    }
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Passwords {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let turn = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            hash_now(password.expose())
        })
        .await
        .map_err(|e| HashError(e.to_string()))?
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> bool {
        let Ok(turn) = self.running.clone().acquire_owned().await else {
            return false;
        };
        let (password, hash) = (password.clone(), hash.clone());
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            verify_now(password.expose(), hash.as_str())
        })
        .await
        .unwrap_or(false)
    }

    fn decoy(&self) -> PasswordHash {
        self.decoy.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_url_safe_characters_and_differ() {
        let a = OsSecrets.secret();
        let b = OsSecrets.secret();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = UuidV7.new_id();
        let b = UuidV7.new_id();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn pay_links_are_derived_per_key_consultation_and_generation() {
        let c = ConsultationId::from_uuid(Uuid::from_u128(7));
        let other = ConsultationId::from_uuid(Uuid::from_u128(8));
        let links = HmacPayLinks::new(b"key one");
        let t = links.pay_token(c, 0);
        assert_eq!(t, links.pay_token(c, 0), "deterministic");
        assert!(PayToken::parse(t.expose()).is_ok(), "a valid pay token");
        assert_eq!(t.expose().len(), 43);
        for different in [
            links.pay_token(c, 1),
            links.pay_token(other, 0),
            HmacPayLinks::new(b"key two").pay_token(c, 0),
        ] {
            assert_ne!(t, different);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn argon2id_hashes_verify_their_password_only() {
        let hasher = Argon2Passwords::new().unwrap();
        let password = Password::parse("correct horse battery").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash:?}"
        );
        assert!(hasher.verify(&password, &hash).await);
        let wrong = Password::parse("correct horse battery!").unwrap();
        assert!(!hasher.verify(&wrong, &hash).await);
        // Salted: the same password hashes differently each time.
        assert_ne!(hasher.hash(&password).await.unwrap(), hash);
        // Nobody's password matches the decoy, which has the same parameters.
        assert!(!hasher.verify(&password, &hasher.decoy()).await);
        assert!(
            hasher
                .decoy()
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
        // A stored value the hasher cannot read is a refusal, not an error.
        let garbage = PasswordHash::from_stored("not a hash".into());
        assert!(!hasher.verify(&password, &garbage).await);
    }
}
