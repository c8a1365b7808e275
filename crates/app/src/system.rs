//! The system ports backed by the OS: time-ordered UUIDs and secrets from the OS's
//! cryptographic random source.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use billing_core::system::{IdGenerator, SecretGenerator};
use uuid::Uuid;

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
}
