//! Staff users (practitioners and secretaries), their bearer tokens, and turning a
//! presented credential into an [`Actor`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::{Actor, Role, StaffUser};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::config::BillingConfig;
use crate::contact::{DisplayName, EmailAddress};
use crate::error::BillingError;
use crate::ids::{PractitionerId, UserId};
use crate::password::PasswordHash;
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::repository::RepositoryError;
use crate::secrets::{StaffToken, TokenHash};
use crate::system::{Clock, IdGenerator, SecretGenerator, now_micros};

/// Staff users and their hashed tokens.
///
/// # Contract
///
/// - **Only hashes.** Tokens are stored and looked up by [`TokenHash`]; a token hash
///   belongs to one user, and a reused one is [`RepositoryError::Duplicate`].
/// - **Atomicity.** A practitioner and their user (which share one id), a secretary
///   and their links to their practitioners, a token replacement and its audit
///   entries: each commits whole or not at all.
/// - **Revocation is final.** A revoked token is never found again by
///   [`find_by_token`](UserRepository::find_by_token).
/// - Users read back equal (`==`) to what was written, with their role; undecodable
///   stored data is [`RepositoryError::Corrupt`] and an outage
///   [`RepositoryError::Unavailable`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates a practitioner together with their user (same id), atomically.
    /// MUST return [`RepositoryError::Duplicate`] if the id or token hash exists.
    async fn create_practitioner(
        &self,
        practitioner: &Practitioner,
        token: &TokenHash,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError>;

    /// Creates a secretary of the practitioners in their role. MUST return
    /// [`RepositoryError::NotFound`] if one of those practitioners does not exist and
    /// [`RepositoryError::Duplicate`] if the id or token hash exists; nothing is
    /// written then.
    async fn create_secretary(
        &self,
        user: &StaffUser,
        token: &TokenHash,
        created_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError>;

    /// The user holding this token, if any (revoked tokens are not found).
    async fn find_by_token(&self, token: &TokenHash) -> Result<Option<StaffUser>, RepositoryError>;

    /// Number of staff users: zero on a fresh database.
    async fn count(&self) -> Result<u64, RepositoryError>;

    /// The staff user with this id. MUST return [`RepositoryError::NotFound`] if
    /// there is none.
    async fn get_user(&self, id: UserId) -> Result<StaffUser, RepositoryError>;

    /// Every staff user, oldest first, with how many of their tokens still open a
    /// session.
    async fn list_users(&self) -> Result<Vec<StaffRecord>, RepositoryError>;

    /// Revokes (at `at`) every token of `user` that is not yet revoked, ends every
    /// session of theirs ([`SessionRepository`](crate::session::SessionRepository))
    /// and, given a `replacement`, stores it as the user's one live token; without
    /// one, also removes their e-mail and password ([`UserRepository::set_login`]),
    /// their OpenID identities and their links, so nothing signs them in. Appends `audit`. All of it commits together or not at
    /// all. Returns how many tokens were revoked.
    /// MUST return [`RepositoryError::NotFound`] if the user does not exist and
    /// [`RepositoryError::Duplicate`] if the replacement hash exists; nothing is
    /// written then.
    async fn replace_tokens(
        &self,
        user: UserId,
        replacement: Option<TokenHash>,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<u64, RepositoryError>;

    /// Sets the e-mail `user` signs in with (given in lower case) and their password's
    /// hash, ends every session of theirs and appends `audit`, together or not at all.
    /// MUST return [`RepositoryError::NotFound`] if the user does not exist and
    /// [`RepositoryError::Duplicate`] if another user signs in with that e-mail;
    /// nothing is written then.
    async fn set_login(
        &self,
        user: UserId,
        email: &EmailAddress,
        password: &PasswordHash,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError>;

    /// Adds a personal access token (`token.id` is its hash) to `user`, with `audit`,
    /// together. MUST return [`RepositoryError::NotFound`] for an unknown user and
    /// [`RepositoryError::Duplicate`] for a hash that exists.
    async fn add_token(
        &self,
        user: UserId,
        token: &AccessToken,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError>;

    /// The user's live tokens, newest first.
    async fn tokens_of(&self, user: UserId) -> Result<Vec<AccessToken>, RepositoryError>;

    /// Revokes one live token of `user` (at `at`), with `audit`, together; whether
    /// there was one (another user's token is not theirs to revoke: `false`).
    async fn revoke_token(
        &self,
        user: UserId,
        token: &TokenHash,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool, RepositoryError>;

    /// Records a use of the token at `at` (a token that is gone is not an error).
    async fn touch_token(
        &self,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// The user an OpenID identity signs in, if one was linked to them.
    async fn find_by_identity(
        &self,
        identity: &crate::identity::Identity,
    ) -> Result<Option<StaffUser>, RepositoryError>;

    /// The user who signs in with this e-mail (given in lower case) and their
    /// password's hash, if any.
    async fn find_login(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<(StaffUser, PasswordHash)>, RepositoryError>;
}

/// The signed-in staff member, or the refusal an anonymous caller gets.
fn own(actor: &Actor) -> Result<&StaffUser, BillingError> {
    match actor {
        Actor::Staff(user) => Ok(user),
        _ => Err(BillingError::Access(
            crate::access::AccessDenied::Unauthenticated,
        )),
    }
}

/// A staff user as the operator sees them in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffRecord {
    /// The user.
    pub user: StaffUser,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// Tokens that still sign in; 0 means the user is locked out.
    pub live_tokens: u64,
}

/// An API token as its holder sees it (never the token itself: only its hash is
/// stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The token's hash: how it is stored, and named in a revocation.
    pub id: TokenHash,
    /// What its holder called it (`None` for a token the operator issued).
    pub name: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was last used (to within [`TOKEN_TOUCH_EVERY`] per server).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A token's last use is written at most this often by each server.
pub const TOKEN_TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// A personal access token just made: shown once.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewAccessToken {
    /// The token, for the `Authorization: Bearer` header.
    pub token: StaffToken,
    /// How it is listed.
    pub record: AccessToken,
}

/// A user just created, with the token to show once.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewStaff {
    /// The new user's id (a practitioner's is also their practitioner id).
    pub id: UserId,
    /// Their sign-in token: shown once, only its hash is stored.
    pub token: StaffToken,
}

/// Authentication and user management (the CLI and the demo seed use it).
#[derive(Clone)]
pub struct StaffService {
    pub(crate) users: Arc<dyn UserRepository>,
    /// When this server last wrote each token's use.
    touched: Arc<std::sync::Mutex<HashMap<TokenHash, DateTime<Utc>>>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) secrets: Arc<dyn SecretGenerator>,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for StaffService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffService").finish_non_exhaustive()
    }
}

impl StaffService {
    /// Staff management over `users`, with `ids` and `secrets` for new users and tokens.
    pub fn new(
        users: Arc<dyn UserRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        secrets: Arc<dyn SecretGenerator>,
        config: BillingConfig,
    ) -> Self {
        StaffService {
            users,
            touched: Arc::default(),
            clock,
            ids,
            secrets,
            config,
        }
    }

    /// Resolves a bearer token. No token is [`Actor::Anonymous`]; a malformed or unknown
    /// one is refused (the same way, so tokens cannot be probed).
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Actor, BillingError> {
        let Some(raw) = bearer else {
            return Ok(Actor::Anonymous);
        };
        let token = StaffToken::parse(raw.trim())
            .map_err(|_| BillingError::Access(crate::access::AccessDenied::Unauthenticated))?;
        let hash = token.hash();
        match self.users.find_by_token(&hash).await? {
            Some(user) => {
                self.touch(hash).await;
                Ok(Actor::Staff(user))
            }
            None => Err(BillingError::Access(
                crate::access::AccessDenied::Unauthenticated,
            )),
        }
    }

    /// Writes a token's use, at most once per [`TOKEN_TOUCH_EVERY`] on this server. A
    /// failed write is not the request's failure: it is tried again next time.
    async fn touch(&self, hash: TokenHash) {
        let now = now_micros(self.clock.as_ref());
        let due = {
            let touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            touched
                .get(&hash)
                .is_none_or(|last| now.signed_duration_since(*last) >= TOKEN_TOUCH_EVERY)
        };
        if due && self.users.touch_token(&hash, now).await.is_ok() {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            touched.insert(hash, now);
        }
    }

    /// Makes a personal access token for the signed-in staff member, named `name`
    /// (1 to 60 characters): it acts as them on the API. Shown once.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<NewAccessToken, BillingError> {
        let user = own(actor)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(BillingError::validation("name", "1 to 60 characters"));
        }
        let now = now_micros(self.clock.as_ref());
        let token = StaffToken::from_random(&self.secrets.secret());
        let record = AccessToken {
            id: token.hash(),
            name: Some(name.to_owned()),
            created_at: now,
            last_used_at: None,
        };
        let audit = self
            .audit_about(
                user,
                now,
                AuditActor::of(actor),
                AuditAction::TokenCreated,
                name,
            )
            .await?;
        self.users.add_token(user.id, &record, &audit).await?;
        Ok(NewAccessToken { token, record })
    }

    /// The signed-in staff member's live tokens, newest first.
    pub async fn tokens(&self, actor: &Actor) -> Result<Vec<AccessToken>, BillingError> {
        let user = own(actor)?;
        Ok(self.users.tokens_of(user.id).await?)
    }

    /// Revokes one of the signed-in staff member's tokens (by its id, the hash): the
    /// API refuses it at once, and dashboard sessions opened with it end.
    /// [`BillingError::NotFound`] for a token that is not theirs or not live.
    pub async fn revoke_own_token(&self, actor: &Actor, id: &str) -> Result<(), BillingError> {
        let user = own(actor)?;
        let now = now_micros(self.clock.as_ref());
        let hash = TokenHash::from_stored(id.to_owned());
        let audit = self
            .audit_about(
                user,
                now,
                AuditActor::of(actor),
                AuditAction::TokenRevoked,
                "",
            )
            .await?;
        if self.users.revoke_token(user.id, &hash, now, &audit).await? {
            Ok(())
        } else {
            Err(BillingError::NotFound("token"))
        }
    }

    async fn audit_about(
        &self,
        user: &StaffUser,
        now: DateTime<Utc>,
        actor: AuditActor,
        action: AuditAction,
        detail: &str,
    ) -> Result<Vec<AuditEntry>, BillingError> {
        Ok(user
            .role
            .practitioners()
            .into_iter()
            .map(|p| {
                AuditEntry::new(now, p, actor.clone(), action)
                    .subject(user.id.as_uuid())
                    .detail(detail)
            })
            .collect())
    }

    /// Creates a practitioner and their login. The practitioner id is the user id.
    pub async fn add_practitioner(
        &self,
        name: &str,
        time_zone: Option<&str>,
    ) -> Result<NewStaff, BillingError> {
        let now = now_micros(self.clock.as_ref());
        let name = DisplayName::parse(name)?;
        let time_zone = match time_zone {
            Some(tz) => tz
                .parse::<TimeZone>()
                .map_err(|e| BillingError::validation("time_zone", e))?,
            None => TimeZone::default(),
        };
        let id = PractitionerId::from_uuid(self.ids.new_id());
        let practitioner =
            Practitioner::new(id, name, time_zone, self.config.default_currency, now);
        let token = StaffToken::from_random(&self.secrets.secret());
        let audit = AuditEntry::new(now, id, AuditActor::System, AuditAction::UserCreated)
            .subject(id.as_uuid())
            .detail("practitioner");
        self.users
            .create_practitioner(&practitioner, &token.hash(), &audit)
            .await?;
        Ok(NewStaff {
            id: UserId::from_uuid(id.as_uuid()),
            token,
        })
    }

    /// Creates a secretary working for `practitioners` (at least one).
    pub async fn add_secretary(
        &self,
        name: &str,
        practitioners: &[PractitionerId],
    ) -> Result<NewStaff, BillingError> {
        let now = now_micros(self.clock.as_ref());
        let name = DisplayName::parse(name)?;
        let Some(first) = practitioners.first() else {
            return Err(BillingError::validation(
                "for",
                "a secretary works for at least one practitioner",
            ));
        };
        let user = StaffUser {
            id: UserId::from_uuid(self.ids.new_id()),
            name: name.as_str().to_owned(),
            role: Role::Secretary(practitioners.iter().copied().collect::<BTreeSet<_>>()),
        };
        let token = StaffToken::from_random(&self.secrets.secret());
        let audit = AuditEntry::new(now, *first, AuditActor::System, AuditAction::UserCreated)
            .subject(user.id.as_uuid())
            .detail("secretary");
        match self
            .users
            .create_secretary(&user, &token.hash(), now, &audit)
            .await
        {
            Err(RepositoryError::NotFound) => Err(BillingError::NotFound("practitioner")),
            other => other.map_err(BillingError::from),
        }?;
        Ok(NewStaff { id: user.id, token })
    }

    /// True when no staff user exists yet (a fresh installation).
    pub async fn is_empty(&self) -> Result<bool, BillingError> {
        Ok(self.users.count().await? == 0)
    }

    /// Every staff user, oldest first (for the operator).
    pub async fn list_users(&self) -> Result<Vec<StaffRecord>, BillingError> {
        Ok(self.users.list_users().await?)
    }

    /// Issues a new token to `user` and revokes every previous one: sessions opened
    /// with an old token end at their next request. The new token is shown once.
    pub async fn rotate_token(&self, user: UserId) -> Result<NewStaff, BillingError> {
        let token = StaffToken::from_random(&self.secrets.secret());
        self.replace_tokens(user, Some(token.hash()), AuditAction::TokenRotated)
            .await?;
        Ok(NewStaff { id: user, token })
    }

    /// Revokes every token of `user` and removes their password (someone who left the
    /// practice): nothing signs them in any more, and their open sessions end. Returns
    /// how many tokens were live. [`StaffService::rotate_token`] lets them in again.
    pub async fn revoke_tokens(&self, user: UserId) -> Result<u64, BillingError> {
        self.replace_tokens(user, None, AuditAction::TokensRevoked)
            .await
    }

    async fn replace_tokens(
        &self,
        user: UserId,
        replacement: Option<TokenHash>,
        action: AuditAction,
    ) -> Result<u64, BillingError> {
        let now = now_micros(self.clock.as_ref());
        let staff = match self.users.get_user(user).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("user")),
            other => other?,
        };
        // Each practitioner the user acts for sees the change in their audit trail.
        let audit: Vec<AuditEntry> = staff
            .role
            .practitioners()
            .into_iter()
            .map(|p| {
                AuditEntry::new(now, p, AuditActor::System, action)
                    .subject(user.as_uuid())
                    .detail(staff.role.kind().as_str())
            })
            .collect();
        match self
            .users
            .replace_tokens(user, replacement, now, &audit)
            .await
        {
            Err(RepositoryError::NotFound) => Err(BillingError::NotFound("user")),
            other => Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessDenied;
    use crate::system::{MockClock, MockIdGenerator, MockSecretGenerator};
    use chrono::TimeZone as _;
    use uuid::Uuid;

    const RANDOM: &str = "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2";

    fn service(users: MockUserRepository) -> StaffService {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(|| Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap());
        let mut ids = MockIdGenerator::new();
        ids.expect_new_id().returning(|| Uuid::from_u128(7));
        let mut secrets = MockSecretGenerator::new();
        secrets.expect_secret().returning(|| RANDOM.to_owned());
        StaffService::new(
            Arc::new(users),
            Arc::new(clock),
            Arc::new(ids),
            Arc::new(secrets),
            BillingConfig::new("http://127.0.0.1:8080"),
        )
    }

    #[tokio::test]
    async fn no_token_is_anonymous_and_a_bad_one_is_refused_without_a_lookup() {
        let svc = service(MockUserRepository::new());
        assert_eq!(svc.authenticate(None).await.unwrap(), Actor::Anonymous);
        let err = svc.authenticate(Some("not-a-token")).await.unwrap_err();
        assert!(matches!(
            err,
            BillingError::Access(AccessDenied::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn an_unknown_token_is_refused_like_a_malformed_one() {
        let mut users = MockUserRepository::new();
        users.expect_find_by_token().returning(|_| Ok(None));
        let svc = service(users);
        let token = StaffToken::from_random(RANDOM);
        let err = svc.authenticate(Some(token.expose())).await.unwrap_err();
        assert_eq!(err.code(), "unauthenticated");
    }

    #[tokio::test]
    async fn a_new_practitioners_token_is_stored_hashed_and_shown_once() {
        let mut users = MockUserRepository::new();
        let expected_hash = StaffToken::from_random(RANDOM).hash();
        users
            .expect_create_practitioner()
            .withf(move |p, hash, audit| {
                *hash == expected_hash
                    && p.name.as_str() == "Dr Estival"
                    && audit.action == AuditAction::UserCreated
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let svc = service(users);
        let created = svc.add_practitioner("Dr Estival", None).await.unwrap();
        assert_eq!(created.token.expose(), format!("cpt_{RANDOM}"));
        assert_eq!(created.id.as_uuid(), Uuid::from_u128(7));
    }

    #[tokio::test]
    async fn a_secretary_of_an_unknown_practitioner_is_refused() {
        let mut users = MockUserRepository::new();
        users
            .expect_create_secretary()
            .returning(|_, _, _, _| Err(RepositoryError::NotFound));
        let svc = service(users);
        let err = svc
            .add_secretary("Accueil", &[PractitionerId::from_uuid(Uuid::from_u128(1))])
            .await
            .unwrap_err();
        assert_eq!(err.code(), "not_found");
        let err = svc.add_secretary("Accueil", &[]).await.unwrap_err();
        assert_eq!(err.code(), "validation_failed");
    }

    fn pid(n: u128) -> PractitionerId {
        PractitionerId::from_uuid(Uuid::from_u128(n))
    }

    #[tokio::test]
    async fn rotating_a_secretarys_token_replaces_every_old_one_and_tells_each_practitioner() {
        let user = UserId::from_uuid(Uuid::from_u128(42));
        let mut users = MockUserRepository::new();
        users.expect_get_user().returning(move |id| {
            Ok(StaffUser {
                id,
                name: "Accueil".into(),
                role: Role::Secretary(BTreeSet::from([pid(2), pid(1)])),
            })
        });
        let expected_hash = StaffToken::from_random(RANDOM).hash();
        users
            .expect_replace_tokens()
            .withf(move |id, replacement, at, audit| {
                *id == user
                    && replacement.as_ref() == Some(&expected_hash)
                    && *at == Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
                    && audit.iter().map(|a| a.practitioner).collect::<Vec<_>>() == [pid(1), pid(2)]
                    && audit.iter().all(|a| {
                        a.action == AuditAction::TokenRotated
                            && a.subject == Some(user.as_uuid())
                            && a.actor == AuditActor::System
                    })
            })
            .times(1)
            .returning(|_, _, _, _| Ok(2));
        let svc = service(users);
        let issued = svc.rotate_token(user).await.unwrap();
        assert_eq!(issued.id, user);
        assert_eq!(issued.token.expose(), format!("cpt_{RANDOM}"));
    }

    #[tokio::test]
    async fn revoking_stores_no_replacement_and_reports_how_many_tokens_were_live() {
        let user = UserId::from_uuid(pid(3).as_uuid());
        let mut users = MockUserRepository::new();
        users.expect_get_user().returning(|id| {
            Ok(StaffUser {
                id,
                name: "Dr Estival".into(),
                role: Role::Practitioner(pid(3)),
            })
        });
        users
            .expect_replace_tokens()
            .withf(|_, replacement, _, audit| {
                replacement.is_none()
                    && audit.len() == 1
                    && audit[0].practitioner == pid(3)
                    && audit[0].action == AuditAction::TokensRevoked
            })
            .times(1)
            .returning(|_, _, _, _| Ok(1));
        let svc = service(users);
        assert_eq!(svc.revoke_tokens(user).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_unknown_user_is_not_found_and_nothing_is_replaced() {
        let mut users = MockUserRepository::new();
        users
            .expect_get_user()
            .returning(|_| Err(RepositoryError::NotFound));
        users.expect_replace_tokens().never();
        let svc = service(users);
        let user = UserId::from_uuid(Uuid::from_u128(9));
        assert_eq!(
            svc.rotate_token(user).await.unwrap_err().code(),
            "not_found"
        );
        assert_eq!(
            svc.revoke_tokens(user).await.unwrap_err().code(),
            "not_found"
        );
    }

    #[tokio::test]
    async fn a_personal_token_acts_as_its_maker_shows_its_last_use_and_is_revoked_alone() {
        let p = crate::testing::Practice::open().await.unwrap();
        let staff = &p.billing.staff;
        let made = staff
            .create_token(&p.dr, "  Logiciel de compta ")
            .await
            .unwrap();
        assert_eq!(made.record.name.as_deref(), Some("Logiciel de compta"));
        assert!(made.token.expose().starts_with("cpt_"));
        for bad in ["", "   ", &"x".repeat(61)] {
            let e = staff.create_token(&p.dr, bad).await.unwrap_err();
            assert!(
                matches!(e, BillingError::Validation { field: "name", .. }),
                "{bad:?}"
            );
        }
        let e = staff
            .create_token(&Actor::Anonymous, "x")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unauthenticated");
        // It signs in as its maker; its use is written at most once a minute.
        let acting = staff.authenticate(Some(made.token.expose())).await.unwrap();
        assert_eq!(acting, p.dr);
        let last_use = || async { staff.tokens(&p.dr).await.unwrap()[0].last_used_at };
        let first = p.clock.now();
        assert_eq!(last_use().await, Some(first));
        p.clock.advance(chrono::Duration::seconds(59));
        staff.authenticate(Some(made.token.expose())).await.unwrap();
        assert_eq!(last_use().await, Some(first));
        p.clock.advance(chrono::Duration::seconds(1));
        staff.authenticate(Some(made.token.expose())).await.unwrap();
        assert_eq!(last_use().await, Some(p.clock.now()));
        // Two tokens: the newest first, and revoking one leaves the other working.
        assert_eq!(staff.tokens(&p.dr).await.unwrap().len(), 2);
        let id = made.record.id.as_str().to_owned();
        let other = staff.add_practitioner("Dr Roux", None).await.unwrap();
        let roux = staff
            .authenticate(Some(other.token.expose()))
            .await
            .unwrap();
        assert_eq!(
            staff.revoke_own_token(&roux, &id).await.unwrap_err().code(),
            "not_found"
        );
        staff.revoke_own_token(&p.dr, &id).await.unwrap();
        assert_eq!(
            staff.revoke_own_token(&p.dr, &id).await.unwrap_err().code(),
            "not_found"
        );
        let refused = staff
            .authenticate(Some(made.token.expose()))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "unauthenticated");
        assert_eq!(
            staff.tokens(&p.dr).await.unwrap().len(),
            1,
            "the first one stays"
        );
    }
}
