//! Bearer secrets and their stored form.
//!
//! A secret is shown once (to the patient in the pay link, to the operator on the
//! command line) and only its SHA-256 [`TokenHash`] is stored; look-ups go by hash.
//! `Debug` never prints the secret.

use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 of a secret, hex-encoded: what storage keeps and indexes.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TokenHash(String);

impl TokenHash {
    pub(crate) fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest.iter() {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        TokenHash(hex)
    }

    /// Rebuilds a hash read back from storage.
    pub fn from_stored(hex: String) -> Self {
        TokenHash(hex)
    }

    /// The 64 lower-case hex digits, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Malformed secret text (wrong length or characters): answered like an unknown one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {0}")]
pub struct MalformedSecret(&'static str);

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps freshly generated randomness (see
            /// [`SecretGenerator`](crate::system::SecretGenerator)).
            pub fn from_random(random: &str) -> Self {
                Self(format!(concat!($prefix, "{}"), random))
            }

            /// Parses a secret presented by a client. Only the shape is checked here;
            /// whether it is known is for storage to say, by hash.
            pub fn parse(s: &str) -> Result<Self, MalformedSecret> {
                let body = s.strip_prefix($prefix).ok_or(MalformedSecret($kind))?;
                let ok = (32..=128).contains(&body.len())
                    && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok { Ok(Self(s.to_owned())) } else { Err(MalformedSecret($kind)) }
            }

            /// The SHA-256 that storage keeps and looks the secret up by.
            pub fn hash(&self) -> TokenHash {
                TokenHash::of(&self.0)
            }

            /// The secret itself, to show once or put in a URL.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(*** ***)"))
            }
        }
    };
}

secret!(
    /// The patient's pay-link token: opens exactly one consultation's pay page.
    PayToken,
    "pay token",
    ""
);
secret!(
    /// A staff bearer token (practitioner or secretary). The prefix lets secret
    /// scanners recognise a leaked one.
    StaffToken,
    "staff token",
    "cpt_"
);
secret!(
    /// A browser's sign-in session on the dashboard: the cookie holds it, the store
    /// only its hash. It names a session the server keeps, so signing out ends it.
    SessionToken,
    "session",
    "cps_"
);
secret!(
    /// An invitation or password-reset link's secret: single use, it lets its holder
    /// set the password of one staff account.
    LinkToken,
    "sign-in link",
    "cpl_"
);
secret!(
    /// The OAuth `state` that binds a Stripe consent to the practitioner who asked.
    OAuthState,
    "OAuth state",
    ""
);

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: &str = "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2";

    #[test]
    fn debug_never_prints_the_secret() {
        let t = StaffToken::from_random(RANDOM);
        assert!(!format!("{t:?}").contains(RANDOM));
        assert_eq!(format!("{t:?}"), "StaffToken(*** ***)");
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        // sha256("abc") from FIPS 180-2.
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn presented_secrets_are_shape_checked() {
        let t = StaffToken::from_random(RANDOM);
        assert_eq!(StaffToken::parse(t.expose()), Ok(t.clone()));
        assert!(StaffToken::parse(RANDOM).is_err(), "missing prefix");
        assert!(PayToken::parse("short").is_err());
        assert!(PayToken::parse(&format!("{RANDOM}/..")).is_err());
        assert_eq!(
            PayToken::parse(RANDOM).unwrap().hash(),
            PayToken::from_random(RANDOM).hash()
        );
    }
}
