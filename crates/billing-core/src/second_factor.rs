//! A second factor for the dashboard: time-based one-time codes (RFC 6238: HMAC-SHA1,
//! six digits, 30-second steps, one step of skew each way), which any authenticator app
//! reads from an `otpauth://` URI, with single-use recovery codes.
//!
//! A code is accepted once: the store keeps the last time step accepted and takes a
//! code only for a later one (a conditional write, so two servers cannot both accept
//! the same code). Wrong codes count against the account's sign-in throttle, like
//! wrong passwords. Recovery codes are stored as hashes and spent by a conditional
//! write too.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::access::{AccessDenied, Actor};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::error::BillingError;
use crate::ids::UserId;
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;
use crate::staff::UserRepository;
use crate::system::{Clock, SecretGenerator, now_micros};

/// The name authenticator apps show for ConsultPay's codes.
pub const ISSUER: &str = "ConsultPay";

/// How many recovery codes a confirmation gives.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP secret: 160 random bits, kept in base32 as authenticator apps take it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(String);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(*** ***)")
    }
}

impl TotpSecret {
    /// A secret from fresh randomness (a [`SecretGenerator`]'s output): the first 160
    /// bits of its SHA-256.
    pub fn from_random(random: &str) -> Self {
        let digest = Sha256::digest(random.as_bytes());
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest[..20]);
        TotpSecret(totp_rs::Secret::from(bytes).to_base32())
    }

    /// A secret read back from storage (base32).
    pub fn from_stored(base32: String) -> Self {
        TotpSecret(base32)
    }

    /// The base32 form: stored, and typed into an app that cannot scan.
    pub fn as_base32(&self) -> &str {
        &self.0
    }

    fn totp(&self) -> Option<totp_rs::Totp> {
        let secret = totp_rs::Secret::try_from_base32(&self.0).ok()?;
        totp_rs::Builder::new().with_secret(secret).build().ok()
    }

    /// The time step (`unix time / 30`) of the step within one of `now` whose code is
    /// `code`, if any (spaces ignored).
    pub fn step_of(&self, code: &str, now: DateTime<Utc>) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let time = u64::try_from(now.timestamp()).ok()?;
        self.totp()?.check(&code, time)
    }

    /// The code an authenticator shows at `at`.
    pub fn code_at(&self, at: DateTime<Utc>) -> String {
        let time = u64::try_from(at.timestamp()).unwrap_or_default();
        self.totp()
            .map(|t| t.generate(time).to_string())
            .unwrap_or_default()
    }

    /// The `otpauth://` URI an authenticator app scans, for `account` (the e-mail or
    /// name the app shows under "ConsultPay").
    pub fn uri(&self, account: &str) -> String {
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
            issuer = ISSUER,
            account = percent_encode(account),
            secret = self.0,
        )
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A recovery code from fresh randomness: ten base32 characters (50 bits) of its
/// SHA-256, as `xxxxx-xxxxx`.
fn recovery_code(random: &str) -> String {
    let digest = Sha256::digest(random.as_bytes());
    let mut bytes = [0u8; 20];
    bytes.copy_from_slice(&digest[..20]);
    let text = totp_rs::Secret::from(bytes).to_base32().to_lowercase();
    format!("{}-{}", &text[..5], &text[5..10])
}

/// A recovery code as typed: lower case, without spaces or dashes.
fn recovery_key(code: &str) -> TokenHash {
    let typed: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    TokenHash::of(&format!("recovery:{typed}"))
}

/// A user's second factor as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecondFactorRecord {
    /// The TOTP secret.
    pub secret: TotpSecret,
    /// Confirmed with a code (only then does sign-in ask for one).
    pub confirmed: bool,
    /// The last time step whose code was accepted.
    pub last_step: Option<u64>,
}

/// Second factors and recovery codes.
///
/// # Contract
///
/// - **One per user**, pending until confirmed: [`begin_second_factor`] replaces a
///   pending one and MUST answer [`RepositoryError::Conflict`] when a confirmed one
///   exists, [`RepositoryError::NotFound`] for an unknown user.
/// - **A code once.** [`use_step`] and [`confirm_second_factor`] accept a step only
///   if it is later than the last one accepted, by a conditional write: of concurrent
///   callers with the same step, exactly one gets `true`.
/// - **A recovery code once**, the same way; they are stored as hashes, and
///   confirming replaces them all.
/// - Writes that go together (a confirmation, its codes, its audit; a removal and its
///   audit) commit together.
///
/// [`begin_second_factor`]: SecondFactorRepository::begin_second_factor
/// [`use_step`]: SecondFactorRepository::use_step
/// [`confirm_second_factor`]: SecondFactorRepository::confirm_second_factor
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SecondFactorRepository: Send + Sync {
    /// The user's second factor, pending or confirmed, if any.
    async fn second_factor(
        &self,
        user: UserId,
    ) -> Result<Option<SecondFactorRecord>, RepositoryError>;

    /// Stores `secret` as the user's pending second factor.
    async fn begin_second_factor(
        &self,
        user: UserId,
        secret: &TotpSecret,
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// Confirms the pending factor with the code of `step`, replaces the recovery
    /// codes with `recovery` and appends `audit`, together. `false` (nothing written)
    /// without a pending factor.
    async fn confirm_second_factor(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool, RepositoryError>;

    /// Accepts the confirmed factor's code of `step`, if it is later than every one
    /// accepted before.
    async fn use_step(&self, user: UserId, step: u64) -> Result<bool, RepositoryError>;

    /// Spends one of the user's recovery codes; whether it was unspent.
    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// How many unspent recovery codes the user has.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepositoryError>;

    /// Removes the user's second factor and recovery codes and appends `audit`.
    async fn remove_second_factor(
        &self,
        user: UserId,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError>;
}

/// A second factor being set up: what the authenticator app needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Enrolment {
    /// The secret, to type in.
    pub secret: TotpSecret,
    /// The `otpauth://` URI, to scan.
    pub uri: String,
}

/// Where a user's second factor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecondFactorStatus {
    /// None: a password alone signs in.
    Off,
    /// Set up, not confirmed yet.
    Pending,
    /// Asked at every password sign-in.
    On {
        /// Recovery codes left.
        recovery_left: u32,
    },
}

/// A code checked against a confirmed factor: a TOTP code (once per step) or a
/// recovery code (once).
pub(crate) async fn accept_code(
    factors: &dyn SecondFactorRepository,
    user: UserId,
    record: &SecondFactorRecord,
    code: &str,
    now: DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    if let Some(step) = record.secret.step_of(code, now) {
        return factors.use_step(user, step).await;
    }
    let digits = code.chars().filter(char::is_ascii_digit).count();
    if digits == code.chars().filter(|c| !c.is_whitespace()).count() {
        // A wrong six-digit code: not a recovery code either.
        return Ok(false);
    }
    factors
        .use_recovery_code(user, &recovery_key(code), now)
        .await
}

/// Setting up, confirming and removing a staff member's own second factor.
#[derive(Clone)]
pub struct SecondFactorService {
    factors: Arc<dyn SecondFactorRepository>,
    users: Arc<dyn UserRepository>,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretGenerator>,
}

impl fmt::Debug for SecondFactorService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondFactorService")
            .finish_non_exhaustive()
    }
}

fn staff_id(actor: &Actor) -> Result<UserId, BillingError> {
    match actor {
        Actor::Staff(u) => Ok(u.id),
        _ => Err(BillingError::Access(AccessDenied::Unauthenticated)),
    }
}

fn wrong_code() -> BillingError {
    BillingError::validation("code", "this code is not the one the app shows now")
}

impl SecondFactorService {
    /// Second factors over `factors`, secrets from `secrets`.
    pub fn new(
        factors: Arc<dyn SecondFactorRepository>,
        users: Arc<dyn UserRepository>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn SecretGenerator>,
    ) -> Self {
        SecondFactorService {
            factors,
            users,
            clock,
            secrets,
        }
    }

    /// Where the signed-in staff member's second factor stands.
    pub async fn status(&self, actor: &Actor) -> Result<SecondFactorStatus, BillingError> {
        let user = staff_id(actor)?;
        Ok(match self.factors.second_factor(user).await? {
            None => SecondFactorStatus::Off,
            Some(r) if !r.confirmed => SecondFactorStatus::Pending,
            Some(_) => SecondFactorStatus::On {
                recovery_left: self.factors.recovery_codes_left(user).await?,
            },
        })
    }

    /// Starts setting up a second factor: a new secret, pending until
    /// [`SecondFactorService::confirm`]. [`BillingError::Conflict`] when one is on.
    pub async fn enrol(&self, actor: &Actor) -> Result<Enrolment, BillingError> {
        let user = staff_id(actor)?;
        let secret = TotpSecret::from_random(&self.secrets.secret());
        let now = now_micros(self.clock.as_ref());
        self.factors.begin_second_factor(user, &secret, now).await?;
        let account = match actor {
            Actor::Staff(u) => u.name.clone(),
            _ => String::new(),
        };
        Ok(Enrolment {
            uri: secret.uri(&account),
            secret,
        })
    }

    /// Confirms the pending factor with a code from the app: from now on a password
    /// sign-in asks for a code. Returns the recovery codes, shown once.
    ///
    /// # Errors
    /// [`BillingError::Validation`] (`code`) for a wrong code; [`BillingError::Conflict`]
    /// without a pending factor.
    pub async fn confirm(&self, actor: &Actor, code: &str) -> Result<Vec<String>, BillingError> {
        let user = staff_id(actor)?;
        let now = now_micros(self.clock.as_ref());
        let pending = match self.factors.second_factor(user).await? {
            Some(r) if !r.confirmed => r,
            _ => return Err(BillingError::Conflict),
        };
        let step = pending.secret.step_of(code, now).ok_or_else(wrong_code)?;
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| recovery_code(&self.secrets.secret()))
            .collect();
        let hashes: Vec<TokenHash> = codes.iter().map(|c| recovery_key(c)).collect();
        let audit = self
            .audit(user, now, AuditAction::SecondFactorEnabled)
            .await?;
        if !self
            .factors
            .confirm_second_factor(user, step, &hashes, now, &audit)
            .await?
        {
            return Err(BillingError::Conflict);
        }
        Ok(codes)
    }

    /// Turns the second factor off, given a current code (or a recovery code).
    pub async fn disable(&self, actor: &Actor, code: &str) -> Result<(), BillingError> {
        let user = staff_id(actor)?;
        let now = now_micros(self.clock.as_ref());
        let Some(record) = self.factors.second_factor(user).await? else {
            return Ok(());
        };
        if record.confirmed && !accept_code(self.factors.as_ref(), user, &record, code, now).await?
        {
            return Err(wrong_code());
        }
        let audit = self
            .audit(user, now, AuditAction::SecondFactorDisabled)
            .await?;
        Ok(self.factors.remove_second_factor(user, &audit).await?)
    }

    async fn audit(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        action: AuditAction,
    ) -> Result<Vec<AuditEntry>, BillingError> {
        let staff = self.users.get_user(user).await?;
        Ok(staff
            .role
            .practitioners()
            .into_iter()
            .map(|p| {
                AuditEntry::new(now, p, AuditActor::User(user), action).subject(user.as_uuid())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn codes_follow_rfc_6238s_sha1_vectors() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890"; its 8-digit
        // codes end with these six digits.
        let secret = TotpSecret(totp_rs::Secret::from(*b"12345678901234567890").to_base32());
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            let at = Utc.timestamp_opt(time, 0).unwrap();
            assert_eq!(secret.code_at(at), code, "at {time}");
            assert_eq!(
                secret.step_of(code, at),
                Some(u64::try_from(time).unwrap() / 30)
            );
        }
    }

    #[test]
    fn a_code_is_good_one_step_either_side_and_no_further() {
        let secret = TotpSecret::from_random("some randomness from the generator");
        assert_eq!(secret.as_base32().len(), 32, "160 bits in base32");
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 15).unwrap();
        let code = secret.code_at(at);
        let step = u64::try_from(at.timestamp()).unwrap() / 30;
        for (offset, accepted) in [
            (-60, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let when = at + chrono::Duration::seconds(offset);
            assert_eq!(secret.step_of(&code, when).is_some(), accepted, "{offset}");
        }
        assert_eq!(
            secret.step_of(&format!("{} {}", &code[..3], &code[3..]), at),
            Some(step)
        );
        for bad in ["", "12345", "1234567", "abcdef", "12 34 5"] {
            assert_eq!(secret.step_of(bad, at), None, "{bad}");
        }
    }

    #[test]
    fn the_uri_is_what_authenticator_apps_scan() {
        let secret = TotpSecret::from_stored("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into());
        assert_eq!(
            secret.uri("Dr Estival"),
            "otpauth://totp/ConsultPay:Dr%20Estival?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\
             &issuer=ConsultPay&algorithm=SHA1&digits=6&period=30"
        );
        assert!(!format!("{secret:?}").contains("JBSW"));
    }

    #[test]
    fn recovery_codes_are_typed_loosely() {
        assert_eq!(recovery_key("abcde-fghij"), recovery_key(" ABCDE FGHIJ "));
        assert_ne!(recovery_key("abcde-fghij"), recovery_key("abcde-fghik"));
    }

    mod flow {
        use super::super::*;
        use crate::session::SignInStep;
        use crate::testing::Practice;
        use chrono::Duration;

        const EMAIL: &str = "camille@example.org";
        const PASSWORD: &str = "correct horse battery";

        async fn practice() -> (Practice, UserId) {
            let p = Practice::open().await.unwrap();
            let dr = UserId::from_uuid(p.practitioner.as_uuid());
            p.billing
                .sessions
                .set_password(dr, EMAIL, PASSWORD)
                .await
                .unwrap();
            (p, dr)
        }

        async fn password(p: &Practice) -> SignInStep {
            p.billing
                .sessions
                .sign_in_with_password(EMAIL, PASSWORD, Some("192.0.2.1"))
                .await
                .unwrap()
        }

        #[tokio::test]
        async fn once_confirmed_a_password_needs_a_code_used_once_and_recovery_codes_once() {
            let (p, _) = practice().await;
            let factor = &p.billing.second_factor;
            assert_eq!(factor.status(&p.dr).await.unwrap(), SecondFactorStatus::Off);
            let enrolment = factor.enrol(&p.dr).await.unwrap();
            assert!(
                enrolment
                    .uri
                    .starts_with("otpauth://totp/ConsultPay:Dr%20Estival?secret=")
            );
            assert_eq!(
                factor.status(&p.dr).await.unwrap(),
                SecondFactorStatus::Pending
            );
            // Pending: the password alone still signs in.
            assert!(matches!(password(&p).await, SignInStep::SignedIn(_)));
            let wrong = factor.confirm(&p.dr, "000000").await;
            assert!(matches!(
                wrong,
                Err(BillingError::Validation { field: "code", .. })
            ));
            let now = p.clock.now();
            let codes = factor
                .confirm(&p.dr, &enrolment.secret.code_at(now))
                .await
                .unwrap();
            assert_eq!(codes.len(), RECOVERY_CODES);
            assert_eq!(
                factor.status(&p.dr).await.unwrap(),
                SecondFactorStatus::On { recovery_left: 10 }
            );
            // The password now leads to a code, not to a session.
            let SignInStep::SecondFactor(pending) = password(&p).await else {
                panic!("a code is asked");
            };
            let sessions = &p.billing.sessions;
            // The code that confirmed was used: the same step is refused.
            let replay = sessions
                .complete_second_factor(&pending, &enrolment.secret.code_at(now), None)
                .await;
            assert_eq!(replay.unwrap_err().code(), "unauthenticated");
            p.clock.advance(Duration::seconds(30));
            let code = enrolment.secret.code_at(p.clock.now());
            sessions
                .complete_second_factor(&pending, &code, None)
                .await
                .unwrap();
            assert_eq!(
                sessions
                    .complete_second_factor(&pending, &code, None)
                    .await
                    .unwrap_err()
                    .code(),
                "unauthenticated",
                "a code is good once"
            );
            // A recovery code, typed loosely, works once.
            let recovery = codes[3].to_uppercase().replace('-', " ");
            sessions
                .complete_second_factor(&pending, &recovery, None)
                .await
                .unwrap();
            assert!(
                sessions
                    .complete_second_factor(&pending, &recovery, None)
                    .await
                    .is_err()
            );
            assert_eq!(
                factor.status(&p.dr).await.unwrap(),
                SecondFactorStatus::On { recovery_left: 9 }
            );
            // Five minutes later, the pending sign-in is over.
            p.clock.advance(SECOND_FACTOR);
            let late = enrolment.secret.code_at(p.clock.now());
            assert!(
                sessions
                    .complete_second_factor(&pending, &late, None)
                    .await
                    .is_err()
            );
            // Turning it off needs a code; then the password alone signs in again.
            assert!(factor.disable(&p.dr, "123456").await.is_err());
            factor.disable(&p.dr, &late).await.unwrap();
            assert!(matches!(password(&p).await, SignInStep::SignedIn(_)));
            let trail = crate::audit::AuditLog::recent(p.store.as_ref(), p.practitioner, 30)
                .await
                .unwrap();
            for action in [
                AuditAction::SecondFactorEnabled,
                AuditAction::SecondFactorDisabled,
            ] {
                assert!(trail.iter().any(|e| e.action == action), "{action:?}");
            }
        }

        const SECOND_FACTOR: Duration = crate::session::SECOND_FACTOR_WITHIN;

        #[tokio::test]
        async fn wrong_codes_throttle_the_account_like_wrong_passwords() {
            let (p, _) = practice().await;
            let factor = &p.billing.second_factor;
            let enrolment = factor.enrol(&p.dr).await.unwrap();
            factor
                .confirm(&p.dr, &enrolment.secret.code_at(p.clock.now()))
                .await
                .unwrap();
            p.clock.advance(Duration::seconds(30));
            let SignInStep::SecondFactor(pending) = password(&p).await else {
                panic!("a code is asked");
            };
            for _ in 0..5 {
                let e = p
                    .billing
                    .sessions
                    .complete_second_factor(&pending, "999999", Some("192.0.2.1"))
                    .await;
                assert_eq!(e.unwrap_err().code(), "unauthenticated");
            }
            let right = enrolment.secret.code_at(p.clock.now());
            let throttled = p
                .billing
                .sessions
                .complete_second_factor(&pending, &right, Some("192.0.2.1"))
                .await;
            assert_eq!(throttled.unwrap_err().code(), "sign_in_throttled");
            // A second factor is set up once: a new enrolment waits for turning it off.
            assert!(matches!(
                factor.enrol(&p.dr).await,
                Err(BillingError::Conflict)
            ));
        }
    }
}
