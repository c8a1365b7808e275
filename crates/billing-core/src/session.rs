//! Dashboard sessions kept by the server: the browser holds a random
//! [`SessionToken`], the store its hash and who it signs in. Signing out ends the
//! session for every copy of the cookie; a revoked or rotated sign-in token ends every
//! session opened with it; sessions end after [`BillingConfig::session_idle`] unused
//! and [`BillingConfig::session_lifetime`] after sign-in.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::access::{AccessDenied, Actor, StaffUser};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::config::BillingConfig;
use crate::contact::EmailAddress;
use crate::error::BillingError;
use crate::ids::UserId;
use crate::password::{Password, PasswordHasher};
use crate::repository::RepositoryError;
use crate::second_factor::{SecondFactorRepository, accept_code};
use crate::secrets::{SessionToken, StaffToken, TokenHash};
use crate::staff::UserRepository;
use crate::system::{Clock, SecretGenerator, now_micros};
use crate::throttle::{FailedSignIns, ThrottleKey};

/// A session's last use is written at most this often (a page load within a minute
/// of the last one writes nothing).
pub const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A session as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The hash of the session's token (the token itself is only in the cookie).
    pub id: TokenHash,
    /// Who it signs in.
    pub user: UserId,
    /// The hash of the staff token the user signed in with (revoking it ends the
    /// session), or `None` for a sign-in with e-mail and password (setting a new
    /// password ends every session).
    pub credential: Option<TokenHash>,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
    /// When the session was last used (to within [`TOUCH_EVERY`]).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends whatever happens (sign-in + [`BillingConfig::session_lifetime`]).
    pub expires_at: DateTime<Utc>,
}

impl SessionRecord {
    /// Whether the session is still open at `now`: before its end, and used within
    /// `idle`.
    pub fn is_open(&self, now: DateTime<Utc>, idle: Duration) -> bool {
        now < self.expires_at && now < self.last_seen_at + idle
    }
}

/// Dashboard sessions.
///
/// # Contract
///
/// - **By hash.** Sessions are stored and found by [`TokenHash`]; a reused hash is
///   [`RepositoryError::Duplicate`], a session of a user who does not exist
///   [`RepositoryError::NotFound`], and nothing is written then.
/// - **Bound to the credential.** [`find_session`](SessionRepository::find_session)
///   does not find a session whose `credential` token has been revoked: rotating or
///   revoking a user's tokens ends their sessions at once (and
///   [`UserRepository::replace_tokens`] deletes them in its transaction, as
///   [`UserRepository::set_login`] does).
/// - **Ended is gone.** An ended session is never found again.
/// - Sessions read back equal (`==`) to what was written (timestamps at the
///   microsecond); an outage is [`RepositoryError::Unavailable`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session. MUST return [`RepositoryError::Duplicate`] if its id is
    /// taken and [`RepositoryError::NotFound`] if its user does not exist.
    async fn create_session(&self, session: &SessionRecord) -> Result<(), RepositoryError>;

    /// The session with this id and the user it signs in, if it exists and the token it
    /// was opened with (if any) is not revoked. Whether it timed out is the caller's to
    /// judge.
    async fn find_session(
        &self,
        id: &TokenHash,
    ) -> Result<Option<(SessionRecord, StaffUser)>, RepositoryError>;

    /// Records a use of the session at `at`. A session that is gone is not an error.
    async fn touch_session(&self, id: &TokenHash, at: DateTime<Utc>)
    -> Result<(), RepositoryError>;

    /// Ends the session; whether there was one.
    async fn end_session(&self, id: &TokenHash) -> Result<bool, RepositoryError>;

    /// Ends every session of `user`; how many there were.
    async fn end_sessions(&self, user: UserId) -> Result<u64, RepositoryError>;

    /// Deletes the sessions that are over at `now`: past their `expires_at`, or last
    /// used before `idle_since`. Returns how many. (Any server may run it; a session
    /// deleted twice is deleted once.)
    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, RepositoryError>;

    /// The sessions of `user` that [`find_session`](SessionRepository::find_session)
    /// would find, most recently used first.
    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, RepositoryError>;
}

/// A staff member just signed in, with the session's token to set as a cookie.
#[derive(Debug)]
#[non_exhaustive]
pub struct SignedIn {
    /// The session's token: for the cookie, shown nowhere else.
    pub token: SessionToken,
    /// Who signed in.
    pub actor: Actor,
}

/// How long a correct password waits for its second factor's code.
pub const SECOND_FACTOR_WITHIN: Duration = Duration::minutes(5);

/// What a correct password leads to.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignInStep {
    /// Signed in.
    SignedIn(SignedIn),
    /// The account asks for a one-time code too: no session yet.
    SecondFactor(PendingSecondFactor),
}

impl SignInStep {
    /// The session, if no code is needed; `None` when the account asks for one.
    pub fn signed_in(self) -> Option<SignedIn> {
        match self {
            SignInStep::SignedIn(s) => Some(s),
            SignInStep::SecondFactor(_) => None,
        }
    }
}

/// A password sign-in waiting for its one-time code (the HTTP adapter keeps it in an
/// encrypted cookie until the code comes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSecondFactor {
    /// Who typed the right password.
    pub user: UserId,
    /// The e-mail they typed (the throttle counts wrong codes against it).
    pub email: String,
    /// Until when the code is awaited ([`SECOND_FACTOR_WITHIN`] after the password).
    pub expires_at: DateTime<Utc>,
}

/// Signing in and out of the dashboard.
#[derive(Clone)]
pub struct SessionService {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    failures: Arc<dyn FailedSignIns>,
    factors: Arc<dyn SecondFactorRepository>,
    passwords: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretGenerator>,
    config: BillingConfig,
}

impl std::fmt::Debug for SessionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

fn unauthenticated() -> BillingError {
    BillingError::Access(AccessDenied::Unauthenticated)
}

impl SessionService {
    /// Sessions over `sessions`, for the users of `users` (passwords checked by
    /// `passwords`, failures counted in `failures`), with session tokens from
    /// `secrets` and the timeouts and throttle of `config`; an account with a second
    /// factor in `factors` is asked for a code after its password.
    // One argument per port, like the other services' constructors.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionRepository>,
        failures: Arc<dyn FailedSignIns>,
        factors: Arc<dyn SecondFactorRepository>,
        passwords: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn SecretGenerator>,
        config: BillingConfig,
    ) -> Self {
        SessionService {
            users,
            sessions,
            failures,
            factors,
            passwords,
            clock,
            secrets,
            config,
        }
    }

    /// Opens a session for the holder of a live staff token. A malformed, unknown or
    /// revoked token is [`AccessDenied::Unauthenticated`], all alike.
    pub async fn sign_in(&self, staff_token: &str) -> Result<SignedIn, BillingError> {
        let credential = StaffToken::parse(staff_token)
            .map_err(|_| unauthenticated())?
            .hash();
        let user = self
            .users
            .find_by_token(&credential)
            .await?
            .ok_or_else(unauthenticated)?;
        self.open(user, Some(credential)).await
    }

    /// Opens a session for the user who signs in with this e-mail and password, typed
    /// `from` a client address (as the HTTP adapter names it) — or, for an account
    /// with a second factor, answers [`SignInStep::SecondFactor`] with no session yet:
    /// [`SessionService::complete_second_factor`] takes the code. An unknown e-mail and a
    /// wrong password are the same [`AccessDenied::Unauthenticated`], and take the same
    /// time (the password is checked against a decoy hash when there is no account),
    /// so the answer says nothing about who has an account.
    ///
    /// Failures count against the e-mail typed and the address; past
    /// [`BillingConfig::sign_in_throttle`], [`BillingError::TooManyAttempts`] is the
    /// answer, before any password is checked, until the window lets a try through. A
    /// success clears the e-mail's count.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
        from: Option<&str>,
    ) -> Result<SignInStep, BillingError> {
        let mut keys = vec![ThrottleKey::account(email)];
        keys.extend(from.map(ThrottleKey::address));
        self.throttled(&keys).await?;
        match self.check_password(email, password).await {
            Err(BillingError::Access(AccessDenied::Unauthenticated)) => {
                let now = now_micros(self.clock.as_ref());
                self.failures.record_failure(&keys, now).await?;
                Err(unauthenticated())
            }
            Ok(step) => {
                self.failures.clear_failures(&keys[0]).await?;
                Ok(step)
            }
            other => other,
        }
    }

    /// Ends a password sign-in that asked for a one-time code: `code` is the
    /// authenticator's current code (accepted once) or a recovery code (once).
    /// Wrong codes count against the e-mail's and the address's throttle; a pending
    /// sign-in older than [`SECOND_FACTOR_WITHIN`], a wrong code and a factor turned
    /// off meanwhile are all [`AccessDenied::Unauthenticated`].
    pub async fn complete_second_factor(
        &self,
        pending: &PendingSecondFactor,
        code: &str,
        from: Option<&str>,
    ) -> Result<SignedIn, BillingError> {
        let now = now_micros(self.clock.as_ref());
        if now >= pending.expires_at {
            return Err(unauthenticated());
        }
        let mut keys = vec![ThrottleKey::account(&pending.email)];
        keys.extend(from.map(ThrottleKey::address));
        self.throttled(&keys).await?;
        let accepted = match self.factors.second_factor(pending.user).await? {
            Some(record) if record.confirmed => {
                accept_code(self.factors.as_ref(), pending.user, &record, code, now).await?
            }
            _ => false,
        };
        if !accepted {
            self.failures.record_failure(&keys, now).await?;
            return Err(unauthenticated());
        }
        self.failures.clear_failures(&keys[0]).await?;
        let user = self.users.get_user(pending.user).await?;
        self.open(user, None).await
    }

    /// Refuses a sign-in whose e-mail or address is over its limit.
    async fn throttled(&self, keys: &[ThrottleKey]) -> Result<(), BillingError> {
        let throttle = self.config.sign_in_throttle;
        let now = now_micros(self.clock.as_ref());
        let limits = [throttle.per_account, throttle.per_address];
        let mut retry_at = None;
        for (key, limit) in keys.iter().zip(limits) {
            let failures = self
                .failures
                .failures_since(key, now - throttle.window)
                .await?;
            retry_at = retry_at.max(throttle.retry_at(&failures, limit, now));
        }
        match retry_at {
            Some(at) => Err(BillingError::TooManyAttempts {
                retry_after: at - now,
            }),
            None => Ok(()),
        }
    }

    async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<SignInStep, BillingError> {
        // Any input is checked against a hash: a malformed one too.
        let typed = Password::parse(password).ok();
        let login = match login_key(email) {
            Some(email) => self.users.find_login(&email).await?,
            None => None,
        };
        let (hash, user) = match login {
            Some((user, hash)) => (hash, Some(user)),
            None => (self.passwords.decoy(), None),
        };
        let checked = typed.clone().unwrap_or_else(Password::placeholder);
        let matches = self.passwords.verify(&checked, &hash).await;
        let (Some(user), true, Some(email)) = (user, matches && typed.is_some(), login_key(email))
        else {
            return Err(unauthenticated());
        };
        let user_id = user.id;
        if self
            .factors
            .second_factor(user_id)
            .await?
            .is_some_and(|f| f.confirmed)
        {
            let now = now_micros(self.clock.as_ref());
            return Ok(SignInStep::SecondFactor(PendingSecondFactor {
                user: user_id,
                email: email.as_str().to_owned(),
                expires_at: now + SECOND_FACTOR_WITHIN,
            }));
        }
        let signed_in = self.open(user, None).await?;
        // The check took a while: if the password was changed or the user locked out
        // meanwhile (which ended the sessions that existed then), this one, opened
        // with the old password, ends too.
        let still = self.users.find_login(&email).await?;
        if still.is_none_or(|(u, h)| u.id != user_id || h != hash) {
            self.sessions.end_session(&signed_in.token.hash()).await?;
            return Err(unauthenticated());
        }
        Ok(SignInStep::SignedIn(signed_in))
    }

    /// Sets the e-mail and password `user` signs in with (the operator's
    /// `consultpay user set-password`, an invitation's first sign-in), and ends every
    /// session they had.
    ///
    /// # Errors
    /// [`BillingError::Validation`] for a malformed e-mail or a password outside
    /// 12–128 characters, [`BillingError::NotFound`] for an unknown user, a
    /// `Storage(Duplicate)` when another user signs in with that e-mail.
    pub async fn set_password(
        &self,
        user: UserId,
        email: &str,
        password: &str,
    ) -> Result<(), BillingError> {
        let email = login_key(email)
            .ok_or_else(|| BillingError::validation("email", "not an e-mail address"))?;
        let password =
            Password::parse(password).map_err(|e| BillingError::validation("password", e))?;
        let staff = match self.users.get_user(user).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("user")),
            other => other?,
        };
        let hash = self.passwords.hash(&password).await?;
        let now = now_micros(self.clock.as_ref());
        let audit: Vec<AuditEntry> = staff
            .role
            .practitioners()
            .into_iter()
            .map(|p| {
                AuditEntry::new(now, p, AuditActor::System, AuditAction::PasswordSet)
                    .subject(user.as_uuid())
                    .detail(staff.role.kind().as_str())
            })
            .collect();
        match self.users.set_login(user, &email, &hash, now, &audit).await {
            Err(RepositoryError::NotFound) => Err(BillingError::NotFound("user")),
            Err(RepositoryError::Duplicate(_)) => Err(BillingError::validation(
                "email",
                "another user signs in with this e-mail",
            )),
            other => Ok(other?),
        }
    }

    /// Opens a session for `user`, signed in with `credential` (a staff token's hash;
    /// `None` for a password or an OpenID identity).
    pub(crate) async fn open(
        &self,
        user: StaffUser,
        credential: Option<TokenHash>,
    ) -> Result<SignedIn, BillingError> {
        let now = now_micros(self.clock.as_ref());
        let token = SessionToken::from_random(&self.secrets.secret());
        self.sessions
            .create_session(&SessionRecord {
                id: token.hash(),
                user: user.id,
                credential,
                created_at: now,
                last_seen_at: now,
                expires_at: now + self.config.session_lifetime,
            })
            .await?;
        Ok(SignedIn {
            token,
            actor: Actor::Staff(user),
        })
    }

    /// The staff member a session token signs in, while the session is open; it is
    /// then marked used. A session that timed out is ended. Anything else (malformed,
    /// unknown, ended, its sign-in token revoked) is
    /// [`AccessDenied::Unauthenticated`].
    pub async fn resume(&self, token: &str) -> Result<Actor, BillingError> {
        let id = SessionToken::parse(token)
            .map_err(|_| unauthenticated())?
            .hash();
        let (session, user) = self
            .sessions
            .find_session(&id)
            .await?
            .ok_or_else(unauthenticated)?;
        let now = now_micros(self.clock.as_ref());
        if !session.is_open(now, self.config.session_idle) {
            self.sessions.end_session(&id).await?;
            return Err(unauthenticated());
        }
        if now - session.last_seen_at >= TOUCH_EVERY {
            self.sessions.touch_session(&id, now).await?;
        }
        Ok(Actor::Staff(user))
    }

    /// Ends the session of this token (every copy of the cookie). An unknown or
    /// malformed token has nothing to end.
    pub async fn sign_out(&self, token: &str) -> Result<(), BillingError> {
        if let Ok(token) = SessionToken::parse(token) {
            self.sessions.end_session(&token.hash()).await?;
        }
        Ok(())
    }

    /// Ends every session of the signed-in staff member, on every browser; how many.
    pub async fn sign_out_everywhere(&self, actor: &Actor) -> Result<u64, BillingError> {
        let user = signed_in(actor)?;
        Ok(self.sessions.end_sessions(user).await?)
    }

    /// Deletes every session that is over (a job: abandoned sessions are never
    /// resumed, so nothing else would delete them), and the failed sign-ins that no
    /// longer count. Returns how many sessions.
    pub async fn purge(&self) -> Result<u64, BillingError> {
        let now = now_micros(self.clock.as_ref());
        self.failures
            .purge_failures(now - self.config.sign_in_throttle.window)
            .await?;
        Ok(self
            .sessions
            .purge_sessions(now, now - self.config.session_idle)
            .await?)
    }

    /// The signed-in staff member's open sessions, most recently used first.
    pub async fn sessions(&self, actor: &Actor) -> Result<Vec<SessionRecord>, BillingError> {
        let user = signed_in(actor)?;
        let now = now_micros(self.clock.as_ref());
        let mut open = self.sessions.sessions_of(user).await?;
        open.retain(|s| s.is_open(now, self.config.session_idle));
        Ok(open)
    }
}

/// The e-mail as accounts are keyed: trimmed, in lower case.
pub(crate) fn login_key(email: &str) -> Option<EmailAddress> {
    EmailAddress::parse(&email.trim().to_lowercase()).ok()
}

fn signed_in(actor: &Actor) -> Result<UserId, BillingError> {
    match actor {
        Actor::Staff(user) => Ok(user.id),
        _ => Err(unauthenticated()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Role;
    use crate::staff::StaffService;
    use crate::testing::{FixedClock, MemoryStore, SequentialIds, SequentialSecrets, build};

    struct Practice {
        clock: Arc<FixedClock>,
        store: Arc<MemoryStore>,
        staff: StaffService,
        sessions: SessionService,
    }

    fn practice() -> Practice {
        let clock = Arc::new(FixedClock::at(build::t0()));
        let store = Arc::new(MemoryStore::new());
        let secrets = Arc::new(SequentialSecrets::default());
        let config = BillingConfig::new("https://pay.example.org");
        Practice {
            staff: StaffService::new(
                store.clone(),
                clock.clone(),
                Arc::new(SequentialIds::default()),
                secrets.clone(),
                config.clone(),
            ),
            sessions: SessionService::new(
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                Arc::new(crate::testing::FastHasher),
                clock.clone(),
                secrets,
                config,
            ),
            clock,
            store,
        }
    }

    fn denied<T: std::fmt::Debug>(result: Result<T, BillingError>) -> bool {
        matches!(
            result,
            Err(BillingError::Access(AccessDenied::Unauthenticated))
        )
    }

    #[tokio::test]
    async fn a_live_token_opens_a_session_that_signing_out_ends_for_every_copy() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        let signed_in = p.sessions.sign_in(dr.token.expose()).await.unwrap();
        let cookie = signed_in.token.expose().to_owned();
        let Actor::Staff(user) = p.sessions.resume(&cookie).await.unwrap() else {
            panic!("staff");
        };
        assert_eq!(user.role, Role::Practitioner(practitioner_of(dr.id)));
        // The stored session holds no secret: only hashes.
        let stored = p.sessions.sessions(&signed_in.actor).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_ne!(stored[0].id.as_str(), cookie);
        p.sessions.sign_out(&cookie).await.unwrap();
        assert!(
            denied(p.sessions.resume(&cookie).await),
            "a copied cookie is dead too"
        );
        // Bad or unknown credentials look alike.
        for bad in [
            "",
            "cpt_short",
            "cps_0000000000000000000000000000000000000000000",
        ] {
            assert!(denied(p.sessions.sign_in(bad).await), "{bad}");
            assert!(denied(p.sessions.resume(bad).await), "{bad}");
        }
    }

    fn practitioner_of(id: UserId) -> crate::ids::PractitionerId {
        crate::ids::PractitionerId::from_uuid(id.as_uuid())
    }

    #[tokio::test]
    async fn sessions_end_when_idle_and_at_their_lifetime_however_busy() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        let idle = p.sessions.sign_in(dr.token.expose()).await.unwrap();
        let busy = p.sessions.sign_in(dr.token.expose()).await.unwrap();
        // Busy: used every 50 minutes, open for 12 hours and not a minute more.
        for _ in 0..15 {
            p.clock.advance(Duration::minutes(50));
            let open = p.sessions.resume(busy.token.expose()).await;
            let elapsed = p.clock.now() - build::t0();
            assert_eq!(
                open.is_ok(),
                elapsed < Duration::hours(12),
                "after {elapsed}"
            );
        }
        // Idle since sign-in: over after an hour; the job deletes it.
        assert_eq!(p.sessions.purge().await.unwrap(), 1);
        assert!(denied(p.sessions.resume(idle.token.expose()).await));
        assert!(p.sessions.sessions(&busy.actor).await.unwrap().is_empty());
        let stored = p.store.sessions_of(dr.id).await.unwrap();
        assert!(
            stored.iter().all(|s| s.id != idle.token.hash()),
            "the idle one was ended"
        );
    }

    #[tokio::test]
    async fn a_used_session_is_written_at_most_once_a_minute() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        let s = p.sessions.sign_in(dr.token.expose()).await.unwrap();
        let last_seen = || async { p.store.sessions_of(dr.id).await.unwrap()[0].last_seen_at };
        p.clock.advance(Duration::seconds(59));
        p.sessions.resume(s.token.expose()).await.unwrap();
        assert_eq!(last_seen().await, build::t0());
        p.clock.advance(Duration::seconds(1));
        p.sessions.resume(s.token.expose()).await.unwrap();
        assert_eq!(last_seen().await, build::t0() + Duration::minutes(1));
    }

    #[tokio::test]
    async fn an_email_and_password_sign_in_and_a_new_password_ends_every_session() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        let before = p.sessions.sign_in(dr.token.expose()).await.unwrap();
        p.sessions
            .set_password(dr.id, " Camille@Example.org ", "correct horse battery")
            .await
            .unwrap();
        assert!(
            denied(p.sessions.resume(before.token.expose()).await),
            "a new password ends sessions"
        );
        let signed_in = p
            .sessions
            .sign_in_with_password("camille@example.ORG", "correct horse battery", None)
            .await
            .unwrap()
            .signed_in()
            .unwrap();
        assert!(p.sessions.resume(signed_in.token.expose()).await.is_ok());
        // Wrong password, unknown account, malformed input: the same refusal.
        for (email, password) in [
            ("camille@example.org", "wrong horse battery"),
            ("nobody@example.org", "correct horse battery"),
            ("not an email", "correct horse battery"),
            ("camille@example.org", "short"),
        ] {
            assert!(
                denied(
                    p.sessions
                        .sign_in_with_password(email, password, None)
                        .await
                ),
                "{email}"
            );
        }
        // Rotating the token ends every session, password ones too; signing in again
        // with the password works.
        p.staff.rotate_token(dr.id).await.unwrap();
        assert!(
            p.sessions.resume(signed_in.token.expose()).await.is_err(),
            "rotation ends every session"
        );
        let again = p
            .sessions
            .sign_in_with_password("camille@example.org", "correct horse battery", None)
            .await
            .unwrap()
            .signed_in()
            .unwrap();
        assert!(p.sessions.resume(again.token.expose()).await.is_ok());
        // Bad input is a validation error, named by field.
        let short = p
            .sessions
            .set_password(dr.id, "camille@example.org", "short")
            .await;
        assert!(matches!(
            short,
            Err(BillingError::Validation {
                field: "password",
                ..
            })
        ));
        let email = p
            .sessions
            .set_password(dr.id, "camille", "correct horse battery")
            .await;
        assert!(matches!(
            email,
            Err(BillingError::Validation { field: "email", .. })
        ));
        let other = p.staff.add_practitioner("Dr Roux", None).await.unwrap();
        let taken = p
            .sessions
            .set_password(other.id, "camille@example.org", "another long password")
            .await;
        assert!(matches!(
            taken,
            Err(BillingError::Validation { field: "email", .. })
        ));
    }

    /// A hasher that, while it checks, lets the operator change the password (as a
    /// concurrent request would).
    struct Racing {
        store: Arc<MemoryStore>,
        user: UserId,
    }

    #[async_trait]
    impl PasswordHasher for Racing {
        async fn hash(
            &self,
            p: &Password,
        ) -> Result<crate::password::PasswordHash, crate::password::HashError> {
            crate::testing::FastHasher.hash(p).await
        }
        async fn verify(&self, p: &Password, h: &crate::password::PasswordHash) -> bool {
            let matches = crate::testing::FastHasher.verify(p, h).await;
            let changed = crate::password::PasswordHash::from_stored("changed".into());
            let email = EmailAddress::parse("camille@example.org").unwrap();
            self.store
                .set_login(self.user, &email, &changed, build::t0(), &[])
                .await
                .unwrap();
            matches
        }
        fn decoy(&self) -> crate::password::PasswordHash {
            crate::testing::FastHasher.decoy()
        }
    }

    #[tokio::test]
    async fn a_password_changed_while_it_is_checked_opens_no_session() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        p.sessions
            .set_password(dr.id, "camille@example.org", "correct horse battery")
            .await
            .unwrap();
        let racing = SessionService::new(
            p.store.clone(),
            p.store.clone(),
            p.store.clone(),
            p.store.clone(),
            Arc::new(Racing {
                store: p.store.clone(),
                user: dr.id,
            }),
            p.clock.clone(),
            Arc::new(SequentialSecrets::default()),
            BillingConfig::new("https://pay.example.org"),
        );
        let result = racing
            .sign_in_with_password("camille@example.org", "correct horse battery", None)
            .await;
        assert!(denied(result));
        assert!(p.store.sessions_of(dr.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn five_wrong_passwords_throttle_the_account_whoever_tries_and_a_success_clears_it() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        p.sessions
            .set_password(dr.id, "camille@example.org", "correct horse battery")
            .await
            .unwrap();
        let sign_in = |email: &'static str, password: &'static str, from: &'static str| {
            let sessions = p.sessions.clone();
            async move {
                sessions
                    .sign_in_with_password(email, password, Some(from))
                    .await
            }
        };
        // Four failures, then a success: the count starts again.
        for _ in 0..4 {
            assert!(denied(
                sign_in("camille@example.org", "wrong horse battery", "10.0.0.1").await
            ));
        }
        assert!(
            sign_in("camille@example.org", "correct horse battery", "10.0.0.1")
                .await
                .is_ok()
        );
        // Five failures from five addresses: the account is throttled, even with the
        // right password, for 15 minutes after the first of the five.
        for i in 0..5 {
            p.clock.advance(Duration::minutes(1));
            let from = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"][i];
            assert!(denied(
                sign_in("Camille@example.org", "wrong horse battery", from).await
            ));
        }
        let throttled = sign_in("camille@example.org", "correct horse battery", "10.0.0.7").await;
        let Err(BillingError::TooManyAttempts { retry_after }) = throttled else {
            panic!("throttled: {throttled:?}");
        };
        assert_eq!(
            retry_after,
            Duration::minutes(11),
            "15 min after the first of the five"
        );
        assert_eq!(throttled.unwrap_err().code(), "sign_in_throttled");
        // An unknown account is throttled exactly alike: no enumeration.
        for _ in 0..5 {
            assert!(denied(
                sign_in("nobody@example.org", "wrong horse battery", "10.0.1.1").await
            ));
        }
        assert!(matches!(
            sign_in("nobody@example.org", "wrong horse battery", "10.0.1.2").await,
            Err(BillingError::TooManyAttempts { .. })
        ));
        // Once the window has passed, the right password works again.
        p.clock.advance(Duration::minutes(11));
        assert!(
            sign_in("camille@example.org", "correct horse battery", "10.0.0.7")
                .await
                .is_ok()
        );
        // The job forgets failures that no longer count.
        p.clock.advance(Duration::minutes(15));
        p.sessions.purge().await.unwrap();
        let left = p
            .store
            .failures_since(&ThrottleKey::account("nobody@example.org"), build::t0())
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn one_address_guessing_many_accounts_is_throttled_at_its_own_limit() {
        let p = practice();
        for i in 0..30 {
            let email = format!("guess{i}@example.org");
            let result = p
                .sessions
                .sign_in_with_password(&email, "wrong horse battery", Some("192.0.2.9"))
                .await;
            assert!(denied(result), "{i}");
        }
        let next = p
            .sessions
            .sign_in_with_password(
                "fresh@example.org",
                "wrong horse battery",
                Some("192.0.2.9"),
            )
            .await;
        assert!(
            matches!(next, Err(BillingError::TooManyAttempts { .. })),
            "{next:?}"
        );
        let elsewhere = p
            .sessions
            .sign_in_with_password(
                "fresh@example.org",
                "wrong horse battery",
                Some("192.0.2.10"),
            )
            .await;
        assert!(denied(elsewhere), "another address is not throttled");
    }

    #[tokio::test]
    async fn revoking_a_user_locks_out_their_password_too() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        p.sessions
            .set_password(dr.id, "camille@example.org", "correct horse battery")
            .await
            .unwrap();
        p.staff.revoke_tokens(dr.id).await.unwrap();
        let result = p
            .sessions
            .sign_in_with_password("camille@example.org", "correct horse battery", None)
            .await;
        assert!(denied(result));
    }

    #[tokio::test]
    async fn rotating_a_token_ends_its_sessions_and_signing_out_everywhere_ends_all() {
        let p = practice();
        let dr = p.staff.add_practitioner("Dr Estival", None).await.unwrap();
        let before = p.sessions.sign_in(dr.token.expose()).await.unwrap();
        let rotated = p.staff.rotate_token(dr.id).await.unwrap();
        assert!(denied(p.sessions.resume(before.token.expose()).await));
        assert!(denied(p.sessions.sign_in(dr.token.expose()).await));
        let a = p.sessions.sign_in(rotated.token.expose()).await.unwrap();
        let b = p.sessions.sign_in(rotated.token.expose()).await.unwrap();
        assert_eq!(p.sessions.sessions(&a.actor).await.unwrap().len(), 2);
        assert_eq!(p.sessions.sign_out_everywhere(&a.actor).await.unwrap(), 2);
        assert!(denied(p.sessions.resume(a.token.expose()).await));
        assert!(denied(p.sessions.resume(b.token.expose()).await));
        assert!(denied(
            p.sessions.sign_out_everywhere(&Actor::Anonymous).await
        ));
    }
}
