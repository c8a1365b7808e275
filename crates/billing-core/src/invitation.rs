//! Invitations and password-reset links: a single-use link, valid for a while, that
//! lets one staff member set the password they sign in with (and the e-mail the link
//! was made for). The link's secret ([`LinkToken`]) is in
//! the URL only; the store keeps its hash.
//!
//! A practitioner invites their secretary from the dashboard, the operator a
//! practitioner (or anyone) with `consultpay user add --email` or `user reset-password`;
//! the use cases are on [`SessionService`](crate::session::SessionService).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::access::{AccessDenied, Action, Actor, Role, StaffUser, authorize};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::config::BillingConfig;
use crate::contact::{DisplayName, EmailAddress};
use crate::error::BillingError;
use crate::ids::{PractitionerId, UserId};
use crate::password::{Password, PasswordHash, PasswordHasher};
use crate::payment::model::Lang;
use crate::repository::RepositoryError;
use crate::secrets::{LinkToken, StaffToken, TokenHash};
use crate::session::login_key;
use crate::staff::{StaffRecord, UserRepository};
use crate::system::{Clock, IdGenerator, SecretGenerator, now_micros};

/// At most one reset e-mail per account in this long.
pub const RESET_EMAIL_EVERY: Duration = Duration::minutes(15);

/// Why a link was made: it changes the page's words and how long the link lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkPurpose {
    /// A new staff member chooses their first password.
    Invitation,
    /// A staff member who lost their password chooses a new one.
    Reset,
}

impl LinkPurpose {
    /// The stable name (`invitation`, `reset`), stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Invitation => "invitation",
            LinkPurpose::Reset => "reset",
        }
    }

    /// How long a link of this purpose may be used: an invitation a week (it may wait
    /// for a Monday), a reset an hour (someone is waiting for it).
    pub fn lifetime(self) -> Duration {
        match self {
            LinkPurpose::Invitation => Duration::days(7),
            LinkPurpose::Reset => Duration::hours(1),
        }
    }
}

impl FromStr for LinkPurpose {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [LinkPurpose::Invitation, LinkPurpose::Reset]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for LinkPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginLink {
    /// The hash of the link's secret.
    pub id: TokenHash,
    /// Whose password it sets.
    pub user: UserId,
    /// Why it was made.
    pub purpose: LinkPurpose,
    /// The e-mail the user will sign in with (lower case).
    pub email: EmailAddress,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, used or not.
    pub expires_at: DateTime<Utc>,
}

/// Invitation and reset links.
///
/// # Contract
///
/// - **By hash, while live.** A link is found and redeemed by its [`TokenHash`] only
///   before its `expires_at`; a reused hash is [`RepositoryError::Duplicate`], a link
///   for a user who does not exist [`RepositoryError::NotFound`].
/// - **Single use, atomically.** [`redeem_link`](LinkRepository::redeem_link) deletes
///   the link, sets the user's login (as [`UserRepository::set_login`] does: their
///   sessions end), deletes their other links and appends the audit, all together or
///   not at all. Of concurrent redemptions of one link exactly one succeeds; the others
///   are [`RepositoryError::NotFound`].
/// - **Locked out is locked out.** [`UserRepository::replace_tokens`] without a
///   replacement deletes the user's links too.
/// - Links read back equal (`==`) to what was written (timestamps at the microsecond);
///   an outage is [`RepositoryError::Unavailable`].
///
/// [`UserRepository::set_login`]: crate::staff::UserRepository::set_login
/// [`UserRepository::replace_tokens`]: crate::staff::UserRepository::replace_tokens
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait LinkRepository: Send + Sync {
    /// Stores a new link and appends `audit`, together. MUST return
    /// [`RepositoryError::Duplicate`] if its id is taken and
    /// [`RepositoryError::NotFound`] if its user does not exist; nothing is written
    /// then.
    async fn create_link(
        &self,
        link: &LoginLink,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError>;

    /// The link with this id and its user, if it exists and is live at `now`.
    async fn find_link(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(LoginLink, StaffUser)>, RepositoryError>;

    /// Uses the link, live at `now`: sets its user's login to its e-mail and
    /// `password`, ends their sessions, deletes their links and appends `audit`,
    /// together. Returns the link used.
    /// MUST return [`RepositoryError::NotFound`] if no such link is live (never made,
    /// expired, used) and [`RepositoryError::Duplicate`] if another user signs in with
    /// its e-mail; nothing is written then.
    async fn redeem_link(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
        password: &PasswordHash,
        audit: &[AuditEntry],
    ) -> Result<LoginLink, RepositoryError>;

    /// Uses the link, live at `now`, to link `identity` to its user: deletes the
    /// link and the user's other links, stores the identity and appends `audit`,
    /// together. Returns the link used.
    /// MUST return [`RepositoryError::NotFound`] if no such link is live and
    /// [`RepositoryError::Duplicate`] if the identity is linked to another user
    /// already (linking it to the same user again is not an error); nothing is
    /// written then.
    async fn redeem_link_for_identity(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
        identity: &crate::identity::Identity,
        audit: &[AuditEntry],
    ) -> Result<LoginLink, RepositoryError>;

    /// Deletes the links that expired at or before `now`; how many. (A job: any
    /// server may run it.)
    async fn purge_links(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError>;
}

/// A link just made, with its URL to send or show (once: only its hash is stored).
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedLink {
    /// The user it is for.
    pub user: UserId,
    /// Why it was made.
    pub purpose: LinkPurpose,
    /// The e-mail its user will sign in with.
    pub email: EmailAddress,
    /// `{public URL}/dashboard/password/{secret}`.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A practice's staff accounts: inviting people, links to set a password, and the
/// practitioner's team.
#[derive(Clone)]
pub struct TeamService {
    users: Arc<dyn UserRepository>,
    links: Arc<dyn LinkRepository>,
    outbox: Arc<dyn crate::outbox::OutboxRepository>,
    passwords: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    secrets: Arc<dyn SecretGenerator>,
    config: BillingConfig,
}

impl fmt::Debug for TeamService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamService").finish_non_exhaustive()
    }
}

fn link_not_found() -> BillingError {
    BillingError::NotFound("link")
}

fn email_taken() -> BillingError {
    BillingError::validation("email", "another user signs in with this e-mail")
}

impl TeamService {
    /// Staff accounts over `users` and `links`, passwords hashed by `passwords`, new
    /// ids and secrets from `ids` and `secrets`; reset e-mails queued in `outbox`.
    // One argument per port, like the other services' constructors.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        users: Arc<dyn UserRepository>,
        links: Arc<dyn LinkRepository>,
        outbox: Arc<dyn crate::outbox::OutboxRepository>,
        passwords: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        secrets: Arc<dyn SecretGenerator>,
        config: BillingConfig,
    ) -> Self {
        TeamService {
            users,
            links,
            outbox,
            passwords,
            clock,
            ids,
            secrets,
            config,
        }
    }

    /// Makes a link for `user` to set their password and sign in with `email`.
    ///
    /// The operator ([`Actor::System`]) may make one for anyone; a practitioner only
    /// for a secretary who works for them ([`Action::ManageTeam`]); nobody else.
    ///
    /// # Errors
    /// [`BillingError::Validation`] (`email`) for a malformed e-mail or one another
    /// user signs in with; [`BillingError::NotFound`] for an unknown user (or one the
    /// actor may not see); access errors as above.
    pub async fn issue_link(
        &self,
        actor: &Actor,
        user: UserId,
        email: &str,
        purpose: LinkPurpose,
    ) -> Result<IssuedLink, BillingError> {
        let email = login_key(email)
            .ok_or_else(|| BillingError::validation("email", "not an e-mail address"))?;
        let target = match self.users.get_user(user).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("user")),
            other => other?,
        };
        may_manage(actor, &target)?;
        if let Some((owner, _)) = self.users.find_login(&email).await?
            && owner.id != user
        {
            return Err(email_taken());
        }
        let now = now_micros(self.clock.as_ref());
        let token = LinkToken::from_random(&self.secrets.secret());
        let link = LoginLink {
            id: token.hash(),
            user,
            purpose,
            email: email.clone(),
            created_at: now,
            expires_at: now + purpose.lifetime(),
        };
        let audit = audit_for(
            &target,
            now,
            AuditActor::of(actor),
            AuditAction::LinkIssued,
            purpose.as_str(),
        );
        match self.links.create_link(&link, &audit).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("user")),
            other => other?,
        }
        Ok(IssuedLink {
            user,
            purpose,
            email,
            url: self.config.password_url(&token),
            expires_at: link.expires_at,
        })
    }

    /// A practitioner invites a secretary to work for them: the account is created
    /// (with no password yet) and the invitation link returned, to send.
    ///
    /// # Errors
    /// As [`TeamService::issue_link`], and [`BillingError::Validation`] (`name`) for an
    /// empty name. The e-mail is checked before the account is created.
    pub async fn invite_secretary(
        &self,
        actor: &Actor,
        practitioner: PractitionerId,
        name: &str,
        email: &str,
    ) -> Result<IssuedLink, BillingError> {
        authorize(actor, Action::ManageTeam, practitioner)?;
        let name = DisplayName::parse(name)?;
        let key = login_key(email)
            .ok_or_else(|| BillingError::validation("email", "not an e-mail address"))?;
        if self.users.find_login(&key).await?.is_some() {
            return Err(email_taken());
        }
        let now = now_micros(self.clock.as_ref());
        let user = StaffUser {
            id: UserId::from_uuid(self.ids.new_id()),
            name: name.as_str().to_owned(),
            role: Role::Secretary(BTreeSet::from([practitioner])),
        };
        // Every user holds a token (what the API signs in with); this one is shown to
        // nobody: the secretary signs in with the password the invitation sets.
        let token = StaffToken::from_random(&self.secrets.secret());
        let audit = AuditEntry::new(
            now,
            practitioner,
            AuditActor::of(actor),
            AuditAction::UserCreated,
        )
        .subject(user.id.as_uuid())
        .detail("secretary");
        self.users
            .create_secretary(&user, &token.hash(), now, &audit)
            .await?;
        self.issue_link(actor, user.id, key.as_str(), LinkPurpose::Invitation)
            .await
    }

    /// The secretaries who work for `practitioner`, oldest first.
    pub async fn team(
        &self,
        actor: &Actor,
        practitioner: PractitionerId,
    ) -> Result<Vec<StaffRecord>, BillingError> {
        authorize(actor, Action::ManageTeam, practitioner)?;
        let mut users = self.users.list_users().await?;
        users.retain(|r| matches!(&r.user.role, Role::Secretary(of) if of.contains(&practitioner)));
        Ok(users)
    }

    /// The live link behind `token` and whose it is: the page that asks for the
    /// password. A malformed, unknown, used or expired link is
    /// [`BillingError::NotFound`] (`link`), all alike.
    pub async fn open_link(&self, token: &str) -> Result<(LoginLink, StaffUser), BillingError> {
        let id = LinkToken::parse(token)
            .map_err(|_| link_not_found())?
            .hash();
        let now = now_micros(self.clock.as_ref());
        self.links
            .find_link(&id, now)
            .await?
            .ok_or_else(link_not_found)
    }

    /// Uses the link: its user now signs in with its e-mail and `password`; every
    /// session they had ends, and the link (with any other of theirs) is spent.
    ///
    /// # Errors
    /// [`BillingError::Validation`] (`password`) for a password outside 12–128
    /// characters (the link is not spent then); [`BillingError::NotFound`] (`link`)
    /// for a link that is not live; [`BillingError::Validation`] (`email`) when another
    /// user took its e-mail meanwhile.
    pub async fn redeem(&self, token: &str, password: &str) -> Result<LoginLink, BillingError> {
        let password =
            Password::parse(password).map_err(|e| BillingError::validation("password", e))?;
        let (link, user) = self.open_link(token).await?;
        let hash = self.passwords.hash(&password).await?;
        let now = now_micros(self.clock.as_ref());
        let audit = audit_for(
            &user,
            now,
            AuditActor::User(user.id),
            AuditAction::PasswordSet,
            link.purpose.as_str(),
        );
        match self.links.redeem_link(&link.id, now, &hash, &audit).await {
            Err(RepositoryError::NotFound) => Err(link_not_found()),
            Err(RepositoryError::Duplicate(_)) => Err(email_taken()),
            other => Ok(other?),
        }
    }

    /// "Forgot your password": when someone signs in with `email`, queues an e-mail to
    /// it with a link (made when the e-mail is sent, valid an hour) to choose a new
    /// password; at most one such e-mail per account every
    /// [`RESET_EMAIL_EVERY`]. Answers the same whether or not anyone signs in with
    /// that address, so it tells nobody who has an account.
    pub async fn request_reset(&self, email: &str, lang: Lang) -> Result<(), BillingError> {
        let Some(email) = login_key(email) else {
            return Ok(());
        };
        let Some((user, _)) = self.users.find_login(&email).await? else {
            return Ok(());
        };
        let Some(practitioner) = user.role.practitioners().first().copied() else {
            return Ok(());
        };
        let now = now_micros(self.clock.as_ref());
        let window = now.timestamp() / RESET_EMAIL_EVERY.num_seconds();
        let (subject, body) = match lang {
            Lang::Fr => (
                "Choisir un nouveau mot de passe ConsultPay",
                format!(
                    "Bonjour {name},\n\nPour choisir un nouveau mot de passe, ouvrez ce lien (valable une heure, une seule fois) :\n{url}\n\nSi vous n'avez rien demandé, ignorez ce message : votre mot de passe ne change pas.\n",
                    name = user.name,
                    url = crate::outbox::PASSWORD_URL,
                ),
            ),
            Lang::En => (
                "Choose a new ConsultPay password",
                format!(
                    "Hello {name},\n\nTo choose a new password, open this link (valid for an hour, once):\n{url}\n\nIf you did not ask for it, ignore this message: your password does not change.\n",
                    name = user.name,
                    url = crate::outbox::PASSWORD_URL,
                ),
            ),
        };
        let message = crate::outbox::Message {
            id: self.ids.new_id(),
            kind: crate::outbox::MessageKind::PasswordReset,
            practitioner,
            consultation: None,
            user: Some(user.id),
            to: email,
            lang,
            subject: subject.to_owned(),
            body,
            attachment: None,
            dedupe: format!("password_reset:{}:{window}", user.id),
            created_at: now,
        };
        self.outbox.enqueue(std::slice::from_ref(&message)).await?;
        Ok(())
    }

    /// Deletes expired links (a job); how many.
    pub async fn purge(&self) -> Result<u64, BillingError> {
        let now = now_micros(self.clock.as_ref());
        Ok(self.links.purge_links(now).await?)
    }
}

/// May `actor` make a sign-in link for `target`? The operator for anyone; a
/// practitioner for a secretary of theirs (never for another practitioner, nor for
/// themselves: a stolen session must not become a new password).
fn may_manage(actor: &Actor, target: &StaffUser) -> Result<(), BillingError> {
    if matches!(actor, Actor::System) {
        return Ok(());
    }
    let practitioners = match &target.role {
        Role::Secretary(of) => of.iter().copied().collect(),
        Role::Practitioner(_) => Vec::new(),
    };
    let mut refusal = match actor {
        Actor::Staff(_) => AccessDenied::NotFound,
        _ => AccessDenied::Unauthenticated,
    };
    for p in practitioners {
        match authorize(actor, Action::ManageTeam, p) {
            Ok(()) => return Ok(()),
            Err(AccessDenied::Forbidden) => refusal = AccessDenied::Forbidden,
            Err(_) => {}
        }
    }
    Err(BillingError::Access(refusal))
}

/// One entry per practitioner `user` works for, about `user`.
fn audit_for(
    user: &StaffUser,
    now: DateTime<Utc>,
    actor: AuditActor,
    action: AuditAction,
    detail: &str,
) -> Vec<AuditEntry> {
    user.role
        .practitioners()
        .into_iter()
        .map(|p| {
            AuditEntry::new(now, p, actor.clone(), action)
                .subject(user.id.as_uuid())
                .detail(detail)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Practice;

    fn denied(e: &BillingError) -> Option<AccessDenied> {
        match e {
            BillingError::Access(a) => Some(*a),
            _ => None,
        }
    }

    /// The secret at the end of a link's URL.
    fn secret(link: &IssuedLink) -> &str {
        link.url.rsplit('/').next().unwrap()
    }

    #[tokio::test]
    async fn an_invitation_sets_the_password_once_then_the_invitee_signs_in() {
        let p = Practice::open().await.unwrap();
        let dr = UserId::from_uuid(p.practitioner.as_uuid());
        let team = &p.billing.team;
        let link = team
            .issue_link(
                &Actor::System,
                dr,
                " Camille@Example.org",
                LinkPurpose::Invitation,
            )
            .await
            .unwrap();
        assert!(
            link.url
                .starts_with("https://pay.example.org/dashboard/password/cpl_")
        );
        assert_eq!(link.email.as_str(), "camille@example.org");
        assert_eq!(
            link.expires_at,
            crate::testing::build::t0() + Duration::days(7)
        );
        let (open, user) = team.open_link(secret(&link)).await.unwrap();
        assert_eq!((open.user, user.name.as_str()), (dr, "Dr Estival"));
        // Too short: refused, and the link still works.
        let short = team.redeem(secret(&link), "short").await.unwrap_err();
        assert!(matches!(
            short,
            BillingError::Validation {
                field: "password",
                ..
            }
        ));
        team.redeem(secret(&link), "correct horse battery")
            .await
            .unwrap();
        let again = team.redeem(secret(&link), "another horse battery").await;
        assert_eq!(again.unwrap_err().code(), "not_found", "single use");
        assert_eq!(
            team.open_link(secret(&link)).await.unwrap_err().code(),
            "not_found"
        );
        p.billing
            .sessions
            .sign_in_with_password("camille@example.org", "correct horse battery", None)
            .await
            .unwrap()
            .signed_in()
            .unwrap();
        let trail = crate::audit::AuditLog::recent(p.store.as_ref(), p.practitioner, 10)
            .await
            .unwrap();
        let actions: Vec<_> = trail
            .iter()
            .map(|e| (e.action, e.detail.as_str()))
            .collect();
        assert!(
            actions.contains(&(AuditAction::LinkIssued, "invitation")),
            "{actions:?}"
        );
        assert!(
            actions.contains(&(AuditAction::PasswordSet, "invitation")),
            "{actions:?}"
        );
    }

    #[tokio::test]
    async fn a_reset_link_lasts_an_hour_and_a_newer_password_spends_every_link() {
        let p = Practice::open().await.unwrap();
        let dr = UserId::from_uuid(p.practitioner.as_uuid());
        let team = &p.billing.team;
        let first = team
            .issue_link(
                &Actor::System,
                dr,
                "camille@example.org",
                LinkPurpose::Reset,
            )
            .await
            .unwrap();
        let second = team
            .issue_link(
                &Actor::System,
                dr,
                "camille@example.org",
                LinkPurpose::Reset,
            )
            .await
            .unwrap();
        p.clock.advance(Duration::minutes(59));
        team.redeem(secret(&second), "correct horse battery")
            .await
            .unwrap();
        assert_eq!(
            team.redeem(secret(&first), "stolen horse battery")
                .await
                .unwrap_err()
                .code(),
            "not_found",
            "setting the password spends the user's other links"
        );
        let late = team
            .issue_link(
                &Actor::System,
                dr,
                "camille@example.org",
                LinkPurpose::Reset,
            )
            .await
            .unwrap();
        p.clock.advance(Duration::hours(1));
        assert_eq!(
            team.redeem(secret(&late), "late horse battery")
                .await
                .unwrap_err()
                .code(),
            "not_found",
            "expired"
        );
        assert_eq!(team.purge().await.unwrap(), 1);
        for bad in [
            "",
            "cpl_short",
            "cpt_0000000000000000000000000000000000000000000",
        ] {
            assert_eq!(team.open_link(bad).await.unwrap_err().code(), "not_found");
        }
    }

    #[tokio::test]
    async fn a_practitioner_invites_their_secretary_and_nobody_else() {
        let p = Practice::open().await.unwrap();
        let team = &p.billing.team;
        let invited = team
            .invite_secretary(&p.dr, p.practitioner, "Accueil", "accueil@example.org")
            .await
            .unwrap();
        let listed = team.team(&p.dr, p.practitioner).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].user.id, invited.user);
        team.redeem(secret(&invited), "secretary horse battery")
            .await
            .unwrap();
        let secretary = match p
            .billing
            .sessions
            .sign_in_with_password("accueil@example.org", "secretary horse battery", None)
            .await
            .unwrap()
            .signed_in()
            .unwrap()
            .actor
        {
            Actor::Staff(u) => Actor::Staff(u),
            other => panic!("{other:?}"),
        };
        // A secretary may not invite, list the team or send links.
        let e = team
            .invite_secretary(&secretary, p.practitioner, "Intrus", "intrus@example.org")
            .await
            .unwrap_err();
        assert_eq!(denied(&e), Some(AccessDenied::Forbidden));
        let e = team.team(&secretary, p.practitioner).await.unwrap_err();
        assert_eq!(denied(&e), Some(AccessDenied::Forbidden));
        let e = team
            .issue_link(
                &secretary,
                invited.user,
                "accueil@example.org",
                LinkPurpose::Reset,
            )
            .await
            .unwrap_err();
        assert_eq!(denied(&e), Some(AccessDenied::Forbidden));
        // The practitioner may send their secretary a new link, but not make one for
        // themselves (a stolen session must not become a new password).
        team.issue_link(
            &p.dr,
            invited.user,
            "accueil@example.org",
            LinkPurpose::Reset,
        )
        .await
        .unwrap();
        let me = UserId::from_uuid(p.practitioner.as_uuid());
        let e = team
            .issue_link(&p.dr, me, "camille@example.org", LinkPurpose::Reset)
            .await
            .unwrap_err();
        assert_eq!(denied(&e), Some(AccessDenied::NotFound));
        // Another practitioner sees nothing of this one's team.
        let other = p
            .billing
            .staff
            .add_practitioner("Dr Roux", None)
            .await
            .unwrap();
        let roux = p
            .billing
            .staff
            .authenticate(Some(other.token.expose()))
            .await
            .unwrap();
        let e = team.team(&roux, p.practitioner).await.unwrap_err();
        assert_eq!(denied(&e), Some(AccessDenied::NotFound));
        let e = team
            .issue_link(
                &roux,
                invited.user,
                "accueil@example.org",
                LinkPurpose::Reset,
            )
            .await
            .unwrap_err();
        assert_eq!(denied(&e), Some(AccessDenied::NotFound));
        // An e-mail somebody signs in with is refused before anyone is created.
        let e = team
            .invite_secretary(&p.dr, p.practitioner, "Doublon", "ACCUEIL@example.org")
            .await
            .unwrap_err();
        assert!(
            matches!(e, BillingError::Validation { field: "email", .. }),
            "{e:?}"
        );
        assert_eq!(team.team(&p.dr, p.practitioner).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn revoking_a_user_spends_their_links() {
        let p = Practice::open().await.unwrap();
        let team = &p.billing.team;
        let invited = team
            .invite_secretary(&p.dr, p.practitioner, "Accueil", "accueil@example.org")
            .await
            .unwrap();
        p.billing.staff.revoke_tokens(invited.user).await.unwrap();
        let e = team
            .redeem(secret(&invited), "secretary horse battery")
            .await;
        assert_eq!(e.unwrap_err().code(), "not_found");
    }

    /// A mail server that keeps what it is given.
    #[derive(Default)]
    struct Kept(std::sync::Mutex<Vec<crate::outbox::Email>>);

    #[async_trait]
    impl crate::outbox::Mailer for Kept {
        async fn send(&self, email: &crate::outbox::Email) -> Result<(), crate::outbox::MailError> {
            self.0.lock().unwrap().push(email.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_forgotten_password_is_reset_by_a_link_made_when_the_email_is_sent() {
        let mail = Arc::new(Kept::default());
        let p = Practice::open_with(|b| b.mailer(mail.clone()))
            .await
            .unwrap();
        let dr = UserId::from_uuid(p.practitioner.as_uuid());
        p.billing
            .sessions
            .set_password(dr, "camille@example.org", "correct horse battery")
            .await
            .unwrap();
        let team = &p.billing.team;
        // Unknown and malformed addresses are answered alike, and nothing is queued.
        team.request_reset("nobody@example.org", Lang::Fr)
            .await
            .unwrap();
        team.request_reset("not an address", Lang::Fr)
            .await
            .unwrap();
        team.request_reset(" Camille@Example.org ", Lang::Fr)
            .await
            .unwrap();
        team.request_reset("camille@example.org", Lang::Fr)
            .await
            .unwrap();
        // Queued once (one per account every 15 minutes), without a working link.
        let queued =
            crate::outbox::OutboxRepository::recent(p.store.as_ref(), &[p.practitioner], 10)
                .await
                .unwrap();
        let resets: Vec<_> = queued
            .iter()
            .filter(|q| q.message.kind == crate::outbox::MessageKind::PasswordReset)
            .collect();
        assert_eq!(resets.len(), 1);
        assert!(resets[0].message.body.contains(crate::outbox::PASSWORD_URL));
        let shown = p.billing.outbox.text(&resets[0].message).await.unwrap();
        assert!(
            !shown.contains("/dashboard/password/"),
            "staff never see a working link"
        );
        // Sent: the link is made then, and works once.
        p.billing.outbox.deliver_due().await.unwrap();
        let sent = mail.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to.as_str(), "camille@example.org");
        let url = sent[0]
            .text
            .split_whitespace()
            .find(|w| w.contains("/dashboard/password/cpl_"))
            .expect("a link")
            .to_owned();
        let secret = url.rsplit('/').next().unwrap();
        let (link, _) = team.open_link(secret).await.unwrap();
        assert_eq!(link.purpose, LinkPurpose::Reset);
        team.redeem(secret, "another horse battery").await.unwrap();
        p.billing
            .sessions
            .sign_in_with_password("camille@example.org", "another horse battery", None)
            .await
            .unwrap();
        // Fifteen minutes later, another may be asked.
        p.clock.advance(Duration::minutes(15));
        team.request_reset("camille@example.org", Lang::En)
            .await
            .unwrap();
        p.billing.outbox.deliver_due().await.unwrap();
        assert_eq!(mail.0.lock().unwrap().len(), 2);
    }
}
