//! Staff passwords: what a user types ([`Password`]: its length checked, never shown),
//! what is stored ([`PasswordHash`]: the hasher's self-describing string), and the port
//! that turns one into the other ([`PasswordHasher`]: Argon2id in the server).

use std::fmt;

use async_trait::async_trait;

/// The shortest password accepted (NIST SP 800-63B asks at least 8, and 15 when it is
/// the only factor; 12 is the floor here, and a passphrase is welcome).
pub const MIN_CHARS: usize = 12;
/// The longest password accepted (hashing a very long input is work an attacker
/// would choose).
pub const MAX_CHARS: usize = 128;

/// A password as typed: 12 to 128 characters, any of them. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// Why a password is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Fewer than [`MIN_CHARS`] characters.
    #[error("a password has at least {MIN_CHARS} characters")]
    TooShort,
    /// More than [`MAX_CHARS`] characters.
    #[error("a password has at most {MAX_CHARS} characters")]
    TooLong,
}

impl Password {
    /// A password from what was typed, as typed (spaces are characters like any).
    ///
    /// # Errors
    /// [`PasswordError::TooShort`], [`PasswordError::TooLong`].
    pub fn parse(typed: &str) -> Result<Self, PasswordError> {
        match typed.chars().count() {
            n if n < MIN_CHARS => Err(PasswordError::TooShort),
            n if n > MAX_CHARS => Err(PasswordError::TooLong),
            _ => Ok(Password(typed.to_owned())),
        }
    }

    /// A password of no one, checked when the typed one is malformed, so that a
    /// refusal takes as long whatever was typed.
    pub(crate) fn placeholder() -> Self {
        Password("x".repeat(MIN_CHARS))
    }

    /// The password, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(*** ***)")
    }
}

/// A stored password hash: the hasher's self-describing string (for Argon2id, the PHC
/// format `$argon2id$v=19$m=…,t=…,p=…$salt$hash`), opaque to the domain.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// A hash as the hasher wrote it, or as it was stored.
    pub fn from_stored(s: String) -> Self {
        PasswordHash(s)
    }

    /// The string to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// The hasher could not hash (its own failure, never the password's).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Hashes and checks passwords. Slow on purpose (a memory-hard function with a salt of
/// its own per hash), so an adapter runs it off the async executor.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A new hash of `password`, with a fresh random salt.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;

    /// Whether `password` is the one `hash` was made from. A hash the hasher cannot
    /// read is `false`. It MUST take about as long as a real check when given
    /// [`PasswordHasher::decoy`], so that an unknown account answers as slowly as a
    /// known one.
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> bool;

    /// A hash of no one's password, with the hasher's current parameters: checked
    /// against when the account does not exist.
    fn decoy(&self) -> PasswordHash;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_twelve_to_a_hundred_and_twenty_eight_characters() {
        assert_eq!(Password::parse("short"), Err(PasswordError::TooShort));
        assert_eq!(Password::parse("elevenchars"), Err(PasswordError::TooShort));
        assert!(Password::parse("twelve chars").is_ok());
        assert!(
            Password::parse(&"é".repeat(128)).is_ok(),
            "characters, not bytes"
        );
        assert_eq!(
            Password::parse(&"a".repeat(129)),
            Err(PasswordError::TooLong)
        );
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(*** ***)");
        assert_eq!(p.expose(), "correct horse battery");
    }
}
