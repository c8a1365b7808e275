//! Who the practitioner is on a note d'honoraires: profession, professional address,
//! RPPS or ADELI number, SIRET and the VAT mention. Each field is checked here once;
//! receipts copy the profile as it was when they were issued.

use std::fmt;

use crate::contact::{ContactError, EmailAddress};

/// The VAT mention printed when the practitioner sets none: medical care is exempt.
pub const DEFAULT_VAT_MENTION: &str = "TVA non applicable, article 261-4-1° du CGI";

/// Why a field of the profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// A text field is longer than its limit.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The field (`profession`, `address`, `vat_mention`).
        field: &'static str,
        /// Its limit, in characters.
        max: usize,
    },
    /// A text field has control characters, or line breaks where one line is expected;
    /// carries the field.
    #[error("{0} contains control characters")]
    ControlCharacters(&'static str),
    /// Not an RPPS (11 digits) or ADELI (9 digits) number.
    #[error("an RPPS number has 11 digits and an ADELI number 9")]
    HealthId,
    /// Not 14 digits with a valid Luhn check digit.
    #[error("a SIRET number has 14 digits and a valid check digit")]
    Siret,
    /// The notification address is not an e-mail address.
    #[error(transparent)]
    Email(#[from] ContactError),
}

/// Trimmed free text of at most `max` characters; line breaks allowed where
/// `multiline`; `None` when blank.
fn text(
    field: &'static str,
    s: &str,
    max: usize,
    multiline: bool,
) -> Result<Option<String>, ProfileError> {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let joined = lines.join("\n");
    if joined.is_empty() {
        return Ok(None);
    }
    if joined.chars().count() > max {
        return Err(ProfileError::TooLong { field, max });
    }
    let bad = |c: char| c.is_control() && !(multiline && c == '\n');
    if joined.chars().any(bad) || (!multiline && lines.len() > 1) {
        return Err(ProfileError::ControlCharacters(field));
    }
    Ok(Some(joined))
}

/// The national identifier of a health professional in France.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HealthId {
    /// Répertoire partagé des professionnels de santé: 11 digits.
    Rpps(String),
    /// The older ADELI register: 9 digits (or 8 digits and a letter for Corsica's
    /// 2A/2B departments, written with their digits here).
    Adeli(String),
}

impl HealthId {
    /// Accepts digits with spaces between them.
    pub fn parse(s: &str) -> Result<Self, ProfileError> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(ProfileError::HealthId);
        }
        match digits.len() {
            11 => Ok(HealthId::Rpps(digits)),
            9 => Ok(HealthId::Adeli(digits)),
            _ => Err(ProfileError::HealthId),
        }
    }

    /// The digits, without spaces.
    pub fn number(&self) -> &str {
        match self {
            HealthId::Rpps(n) | HealthId::Adeli(n) => n,
        }
    }

    /// `RPPS` or `ADELI`.
    pub const fn register(&self) -> &'static str {
        match self {
            HealthId::Rpps(_) => "RPPS",
            HealthId::Adeli(_) => "ADELI",
        }
    }
}

impl fmt::Display for HealthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.register(), self.number())
    }
}

/// A SIRET number: 14 digits whose Luhn checksum holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Siret(String);

impl Siret {
    /// Accepts 14 digits with spaces between them, whose Luhn checksum holds.
    ///
    /// # Errors
    ///
    /// [`ProfileError::Siret`].
    pub fn parse(s: &str) -> Result<Self, ProfileError> {
        let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let ok = digits.len() == 14 && digits.chars().all(|c| c.is_ascii_digit()) && {
            let sum: u32 = digits
                .bytes()
                .rev()
                .enumerate()
                .map(|(i, b)| {
                    let d = u32::from(b - b'0');
                    if i % 2 == 1 {
                        let twice = d * 2;
                        if twice > 9 { twice - 9 } else { twice }
                    } else {
                        d
                    }
                })
                .sum();
            sum.is_multiple_of(10)
        };
        if ok {
            Ok(Siret(digits))
        } else {
            Err(ProfileError::Siret)
        }
    }

    /// The 14 digits, without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Siret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The practitioner's professional identity, as notes d'honoraires print it. Every
/// field is optional until the practitioner fills it in; the VAT mention defaults to
/// [`DEFAULT_VAT_MENTION`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    profession: Option<String>,
    address: Option<String>,
    health_id: Option<HealthId>,
    siret: Option<Siret>,
    vat_mention: Option<String>,
    /// Where ConsultPay writes to the practitioner (holds about to lapse, failed
    /// refunds, disputes).
    email: Option<EmailAddress>,
}

/// The profile as typed in a form or sent to the API: blank means not set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileInput {
    /// "Médecin généraliste", … (one line, at most [`Profile::PROFESSION_MAX`]).
    pub profession: String,
    /// The professional address, lines separated by `\n` (at most
    /// [`Profile::ADDRESS_MAX`]).
    pub address: String,
    /// The RPPS or ADELI number (spaces allowed).
    pub health_id: String,
    /// The SIRET number (spaces allowed).
    pub siret: String,
    /// The VAT mention; blank prints [`DEFAULT_VAT_MENTION`].
    pub vat_mention: String,
    /// Where the practitioner's notifications go.
    pub email: String,
}

impl Profile {
    /// The most characters of the profession.
    pub const PROFESSION_MAX: usize = 80;
    /// The most characters of the address, line breaks included.
    pub const ADDRESS_MAX: usize = 300;
    /// The most characters of the VAT mention.
    pub const VAT_MENTION_MAX: usize = 200;

    /// Checks every field; the first error found is returned with its field name.
    pub fn parse(input: &ProfileInput) -> Result<Self, (&'static str, ProfileError)> {
        let profession = text("profession", &input.profession, Self::PROFESSION_MAX, false)
            .map_err(|e| ("profession", e))?;
        let address =
            text("address", &input.address, Self::ADDRESS_MAX, true).map_err(|e| ("address", e))?;
        let health_id = Some(input.health_id.trim())
            .filter(|s| !s.is_empty())
            .map(HealthId::parse)
            .transpose()
            .map_err(|e| ("health_id", e))?;
        let siret = Some(input.siret.trim())
            .filter(|s| !s.is_empty())
            .map(Siret::parse)
            .transpose()
            .map_err(|e| ("siret", e))?;
        let vat_mention = text(
            "vat_mention",
            &input.vat_mention,
            Self::VAT_MENTION_MAX,
            false,
        )
        .map_err(|e| ("vat_mention", e))?;
        let email = Some(input.email.trim())
            .filter(|s| !s.is_empty())
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|e| ("email", ProfileError::Email(e)))?;
        Ok(Profile {
            profession,
            address,
            health_id,
            siret,
            vat_mention,
            email,
        })
    }

    /// The input that parses back to this profile (for forms and storage).
    pub fn to_input(&self) -> ProfileInput {
        ProfileInput {
            profession: self.profession.clone().unwrap_or_default(),
            address: self.address.clone().unwrap_or_default(),
            health_id: self
                .health_id
                .as_ref()
                .map(|h| h.number().to_owned())
                .unwrap_or_default(),
            siret: self.siret.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            vat_mention: self.vat_mention.clone().unwrap_or_default(),
            email: self
                .email
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
        }
    }

    /// Where the practitioner's notifications go, if set.
    pub fn email(&self) -> Option<&EmailAddress> {
        self.email.as_ref()
    }

    /// The profession, if set.
    pub fn profession(&self) -> Option<&str> {
        self.profession.as_deref()
    }
    /// The address, lines separated by `\n`, if set.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }
    /// The RPPS or ADELI number, if set.
    pub fn health_id(&self) -> Option<&HealthId> {
        self.health_id.as_ref()
    }
    /// The SIRET number, if set.
    pub fn siret(&self) -> Option<&Siret> {
        self.siret.as_ref()
    }
    /// The practitioner's own mention, if set.
    pub fn custom_vat_mention(&self) -> Option<&str> {
        self.vat_mention.as_deref()
    }
    /// What receipts print.
    pub fn vat_mention(&self) -> &str {
        self.vat_mention.as_deref().unwrap_or(DEFAULT_VAT_MENTION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProfileInput {
        ProfileInput {
            profession: " Psychologue ".into(),
            address: "12 rue des Lilas\r\n\n 75011 Paris ".into(),
            health_id: "100 0000 0009".into(),
            siret: "732 829 320 00074".into(),
            vat_mention: String::new(),
            email: " cabinet@example.org ".into(),
        }
    }

    #[test]
    fn a_full_profile_is_trimmed_and_kept() {
        let p = Profile::parse(&input()).unwrap();
        assert_eq!(p.profession(), Some("Psychologue"));
        assert_eq!(p.address(), Some("12 rue des Lilas\n75011 Paris"));
        assert_eq!(p.health_id().unwrap().to_string(), "RPPS 10000000009");
        assert_eq!(p.siret().unwrap().as_str(), "73282932000074");
        assert_eq!(p.vat_mention(), DEFAULT_VAT_MENTION);
        assert_eq!(
            p.email().map(EmailAddress::as_str),
            Some("cabinet@example.org")
        );
        assert_eq!(Profile::parse(&p.to_input()).unwrap(), p);
    }

    #[test]
    fn blank_fields_are_unset() {
        let p = Profile::parse(&ProfileInput::default()).unwrap();
        assert_eq!(p, Profile::default());
        assert_eq!(p.vat_mention(), DEFAULT_VAT_MENTION);
    }

    #[test]
    fn adeli_numbers_have_nine_digits() {
        assert_eq!(
            HealthId::parse("75 1 23456 7").unwrap(),
            HealthId::Adeli("751234567".into())
        );
        for bad in ["1234", "1000000000A", "123456789012"] {
            assert_eq!(HealthId::parse(bad), Err(ProfileError::HealthId), "{bad}");
        }
    }

    #[test]
    fn siret_check_digit_is_verified() {
        assert!(Siret::parse("73282932000074").is_ok());
        assert_eq!(Siret::parse("73282932000075"), Err(ProfileError::Siret));
        assert_eq!(Siret::parse("7328293200007"), Err(ProfileError::Siret));
    }

    #[test]
    fn over_long_or_multiline_single_fields_are_refused() {
        let mut i = input();
        i.profession = "x".repeat(81);
        assert!(matches!(Profile::parse(&i), Err(("profession", _))));
        let mut i = input();
        i.vat_mention = "TVA\nnon".into();
        assert!(matches!(Profile::parse(&i), Err(("vat_mention", _))));
        let mut i = input();
        i.siret = "123".into();
        assert_eq!(Profile::parse(&i), Err(("siret", ProfileError::Siret)));
        let mut i = input();
        i.email = "not an address".into();
        assert!(matches!(Profile::parse(&i), Err(("email", _))));
    }
}
