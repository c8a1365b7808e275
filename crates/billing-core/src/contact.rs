//! Names and e-mail addresses: the only personal data ConsultPay keeps (a patient
//! reference, never health data).

use std::fmt;

/// Why a name or an e-mail address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactError {
    /// The name is empty once trimmed.
    #[error("the name is empty")]
    EmptyName,
    /// The name is longer than the limit it carries ([`DisplayName::MAX_CHARS`]).
    #[error("the name is longer than {0} characters")]
    NameTooLong(usize),
    /// The name contains control characters (line breaks, NUL, …).
    #[error("the name contains control characters")]
    ControlCharacters,
    /// Not the shape of an e-mail address; carries the text, cut to 64 characters.
    #[error("'{0}' is not an e-mail address")]
    InvalidEmail(String),
}

/// A display name: trimmed, 1–120 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    /// The most characters (not bytes) a name may have.
    pub const MAX_CHARS: usize = 120;

    /// A name from what was typed, trimmed.
    ///
    /// # Errors
    ///
    /// [`ContactError::EmptyName`], [`ContactError::NameTooLong`] or
    /// [`ContactError::ControlCharacters`].
    pub fn parse(s: &str) -> Result<Self, ContactError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ContactError::EmptyName);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(ContactError::NameTooLong(Self::MAX_CHARS));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ContactError::ControlCharacters);
        }
        Ok(DisplayName(trimmed.to_owned()))
    }

    /// The name, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({:?})", self.0)
    }
}

/// An e-mail address, checked for shape only (one `@`, a dotted domain, ≤ 254 bytes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// An address from what was typed, trimmed. Only the shape is checked (one `@`, a
    /// local part of 1–64 bytes, a dotted domain with no empty label, no whitespace, at
    /// most 254 bytes): whether mail reaches it is for the mail server to say.
    ///
    /// # Errors
    ///
    /// [`ContactError::InvalidEmail`].
    pub fn parse(s: &str) -> Result<Self, ContactError> {
        let trimmed = s.trim();
        let invalid = || ContactError::InvalidEmail(trimmed.chars().take(64).collect());
        if trimmed.len() > 254 || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = trimmed.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(EmailAddress(trimmed.to_owned()))
    }

    /// The address, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Dr Estival ").unwrap().as_str(),
            "Dr Estival"
        );
        assert_eq!(DisplayName::parse(" "), Err(ContactError::EmptyName));
        assert_eq!(
            DisplayName::parse(&"x".repeat(121)),
            Err(ContactError::NameTooLong(120))
        );
        assert_eq!(
            DisplayName::parse("a\u{0}b"),
            Err(ContactError::ControlCharacters)
        );
        assert!(
            DisplayName::parse(&"é".repeat(120)).is_ok(),
            "counted in characters"
        );
    }

    #[test]
    fn email_addresses_are_shape_checked() {
        for ok in ["moi@monentreprise.fr", "a.b+c@x.co.uk"] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "no-at", "@x.fr", "a@", "a@b", "a@@b.fr", "a b@c.fr", "a@b..fr",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
