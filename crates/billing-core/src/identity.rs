//! Sign-in with an OpenID Connect provider (Pro Santé Connect, Keycloak, a hospital's
//! identity provider): the authorization code flow with PKCE, `state` and `nonce`,
//! behind the [`IdentityProvider`] port (an adapter speaks the protocol and verifies
//! the ID token against the provider's keys).
//!
//! An identity (`iss`, `sub`) signs in only once it is linked to an account, and it is
//! linked only through an invitation or reset link of that account
//! ([`LinkRepository::redeem_link_for_identity`]): never created silently.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::error::BillingError;
use crate::invitation::LinkRepository;
use crate::repository::RepositoryError;
use crate::secrets::LinkToken;
use crate::session::{SessionService, SignedIn};
use crate::staff::UserRepository;
use crate::system::{Clock, now_micros};

/// A person as the provider vouches for them: its issuer and their subject there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The issuer URL, exactly as in the ID token's `iss`.
    pub issuer: String,
    /// The subject (`sub`): stable for one person at one issuer.
    pub subject: String,
}

/// What the browser must carry between the redirect to the provider and the way back
/// (kept in an encrypted cookie by the HTTP adapter): secrets, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The `state` sent, to compare with the one that comes back.
    pub state: String,
    /// The `nonce` sent, which the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingLogin(*** ***)")
    }
}

/// The start of a sign-in: where to send the browser, and what to keep meanwhile.
#[derive(Clone, Debug)]
pub struct OidcRequest {
    /// The provider's authorization URL, with the client, scope, state, nonce and
    /// code challenge.
    pub url: String,
    /// What to keep until the browser comes back.
    pub pending: PendingLogin,
}

/// Why an OpenID Connect sign-in did not happen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No provider is configured.
    #[error("no OpenID provider is configured")]
    NotConfigured,
    /// The provider could not be reached or answered nonsense: try again later.
    #[error("the OpenID provider is unavailable: {0}")]
    Unavailable(String),
    /// The answer is not a valid sign-in: wrong `state`, a code refused, an ID token
    /// with a wrong signature, issuer, audience or nonce, or expired.
    #[error("the OpenID sign-in was refused: {0}")]
    Rejected(String),
    /// A valid identity that no account is linked to (an invitation links one).
    #[error("no account is linked to this identity: ask for an invitation")]
    NotLinked,
}

/// An OpenID Connect provider (an adapter: discovery, the code exchange, the ID
/// token's verification).
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// A new authorization request: fresh random `state`, `nonce` and PKCE verifier.
    async fn begin(&self) -> Result<OidcRequest, IdentityError>;

    /// Exchanges `code` (with `pending`'s verifier) and verifies the ID token: its
    /// signature against the provider's keys, its issuer, its audience (this
    /// client), its expiry at `now` and its `nonce` (`pending`'s). MUST answer
    /// [`IdentityError::Rejected`] for anything that fails those checks and
    /// [`IdentityError::Unavailable`] when the provider cannot be reached.
    async fn finish(
        &self,
        code: &str,
        pending: &PendingLogin,
        now: DateTime<Utc>,
    ) -> Result<Identity, IdentityError>;
}

/// Signing in with the provider, and linking an identity to an account by one of its
/// links.
#[derive(Clone)]
pub struct OidcService {
    provider: Option<Arc<dyn IdentityProvider>>,
    users: Arc<dyn UserRepository>,
    links: Arc<dyn LinkRepository>,
    sessions: SessionService,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OidcService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcService")
            .field("configured", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

impl OidcService {
    /// Sign-in through `provider` (none: every call is
    /// [`IdentityError::NotConfigured`]), opening sessions with `sessions`.
    pub fn new(
        provider: Option<Arc<dyn IdentityProvider>>,
        users: Arc<dyn UserRepository>,
        links: Arc<dyn LinkRepository>,
        sessions: SessionService,
        clock: Arc<dyn Clock>,
    ) -> Self {
        OidcService {
            provider,
            users,
            links,
            sessions,
            clock,
        }
    }

    /// Whether a provider is configured (the sign-in page offers it then).
    pub fn is_configured(&self) -> bool {
        self.provider.is_some()
    }

    fn provider(&self) -> Result<&Arc<dyn IdentityProvider>, BillingError> {
        self.provider
            .as_ref()
            .ok_or(BillingError::Identity(IdentityError::NotConfigured))
    }

    /// Starts a sign-in: where to send the browser.
    pub async fn begin(&self) -> Result<OidcRequest, BillingError> {
        Ok(self.provider()?.begin().await?)
    }

    /// Ends a sign-in: the browser came back with `state` and `code`. The identity is
    /// verified, then either signs in the account it is linked to or, with the secret
    /// of a live invitation or reset `link`, is linked to that link's account (the
    /// link is spent) and signs it in.
    ///
    /// # Errors
    /// [`BillingError::Identity`]: `Rejected` for a `state` that is not the one sent
    /// or a token that fails verification, `NotLinked` for an identity no account
    /// has, `Unavailable` when the provider is down; [`BillingError::NotFound`]
    /// (`link`) for a link that is not live; a validation error (`identity`) when the
    /// identity is already another account's.
    pub async fn sign_in(
        &self,
        pending: &PendingLogin,
        state: &str,
        code: &str,
        link: Option<&str>,
    ) -> Result<SignedIn, BillingError> {
        let provider = self.provider()?;
        if state.is_empty() || state != pending.state {
            return Err(IdentityError::Rejected("the state is not the one sent".into()).into());
        }
        let now = now_micros(self.clock.as_ref());
        let identity = provider.finish(code, pending, now).await?;
        let user = match link {
            Some(secret) => self.link(secret, &identity).await?,
            None => self
                .users
                .find_by_identity(&identity)
                .await?
                .ok_or(BillingError::Identity(IdentityError::NotLinked))?,
        };
        self.sessions.open(user, None).await
    }

    async fn link(
        &self,
        secret: &str,
        identity: &Identity,
    ) -> Result<crate::access::StaffUser, BillingError> {
        let not_found = || BillingError::NotFound("link");
        let id = LinkToken::parse(secret).map_err(|_| not_found())?.hash();
        let now = now_micros(self.clock.as_ref());
        let (link, user) = self
            .links
            .find_link(&id, now)
            .await?
            .ok_or_else(not_found)?;
        let audit: Vec<AuditEntry> = user
            .role
            .practitioners()
            .into_iter()
            .map(|p| {
                AuditEntry::new(
                    now,
                    p,
                    AuditActor::User(user.id),
                    AuditAction::IdentityLinked,
                )
                .subject(user.id.as_uuid())
                .detail(identity.issuer.clone())
            })
            .collect();
        match self
            .links
            .redeem_link_for_identity(&link.id, now, identity, &audit)
            .await
        {
            Ok(_) => Ok(user),
            Err(RepositoryError::NotFound) => Err(not_found()),
            Err(RepositoryError::Duplicate(_)) => Err(BillingError::validation(
                "identity",
                "this identity already signs in to another account",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AccessDenied, Actor};
    use crate::ids::UserId;
    use crate::invitation::LinkPurpose;
    use crate::testing::Practice;

    /// A provider that vouches for whoever the test says, checking the nonce like a
    /// real one would.
    struct Vouching(std::sync::Mutex<Option<Identity>>);

    #[async_trait]
    impl IdentityProvider for Vouching {
        async fn begin(&self) -> Result<OidcRequest, IdentityError> {
            Ok(OidcRequest {
                url: "https://idp.example/auth?state=s1".into(),
                pending: PendingLogin {
                    state: "s1".into(),
                    nonce: "n1".into(),
                    verifier: "v1".into(),
                },
            })
        }
        async fn finish(
            &self,
            code: &str,
            pending: &PendingLogin,
            _now: DateTime<Utc>,
        ) -> Result<Identity, IdentityError> {
            if code != "good" || pending.nonce != "n1" {
                return Err(IdentityError::Rejected("bad code or nonce".into()));
            }
            self.0
                .lock()
                .unwrap()
                .clone()
                .ok_or(IdentityError::Unavailable("down".into()))
        }
    }

    fn person(sub: &str) -> Identity {
        Identity {
            issuer: "https://idp.example".into(),
            subject: sub.into(),
        }
    }

    async fn practice(vouches_for: &str) -> Practice {
        let provider = Arc::new(Vouching(std::sync::Mutex::new(Some(person(vouches_for)))));
        Practice::open_with(|b| b.identity_provider(provider))
            .await
            .unwrap()
    }

    fn code(e: Result<SignedIn, BillingError>) -> &'static str {
        e.unwrap_err().code()
    }

    #[tokio::test]
    async fn an_identity_signs_in_only_once_an_invitation_linked_it() {
        let p = practice("dr-estival").await;
        let oidc = &p.billing.oidc;
        let start = oidc.begin().await.unwrap();
        let pending = &start.pending;
        assert_eq!(
            code(oidc.sign_in(pending, "s1", "good", None).await),
            "oidc_not_linked",
            "never created silently"
        );
        let dr = UserId::from_uuid(p.practitioner.as_uuid());
        let link = p
            .billing
            .team
            .issue_link(
                &Actor::System,
                dr,
                "camille@example.org",
                LinkPurpose::Invitation,
            )
            .await
            .unwrap();
        let secret = link.url.rsplit('/').next().unwrap();
        let signed_in = oidc
            .sign_in(pending, "s1", "good", Some(secret))
            .await
            .unwrap();
        assert!(matches!(&signed_in.actor, Actor::Staff(u) if u.id == dr));
        assert_eq!(
            code(oidc.sign_in(pending, "s1", "good", Some(secret)).await),
            "not_found",
            "the link is spent"
        );
        // From now on the identity alone signs in.
        oidc.sign_in(pending, "s1", "good", None).await.unwrap();
        // A state that is not the one sent, or a code the provider refuses: refused.
        assert_eq!(
            code(oidc.sign_in(pending, "s2", "good", None).await),
            "oidc_rejected"
        );
        assert_eq!(
            code(oidc.sign_in(pending, "", "good", None).await),
            "oidc_rejected"
        );
        assert_eq!(
            code(oidc.sign_in(pending, "s1", "forged", None).await),
            "oidc_rejected"
        );
        // Locking the user out unlinks the identity.
        p.billing.staff.revoke_tokens(dr).await.unwrap();
        assert_eq!(
            code(oidc.sign_in(pending, "s1", "good", None).await),
            "oidc_not_linked"
        );
        let trail = crate::audit::AuditLog::recent(p.store.as_ref(), p.practitioner, 20)
            .await
            .unwrap();
        assert!(
            trail
                .iter()
                .any(|e| e.action == AuditAction::IdentityLinked)
        );
    }

    #[tokio::test]
    async fn an_identity_is_one_accounts_and_no_provider_means_no_oidc() {
        let p = practice("shared").await;
        let team = &p.billing.team;
        let a = team
            .invite_secretary(&p.dr, p.practitioner, "Accueil", "a@example.org")
            .await
            .unwrap();
        let b = team
            .invite_secretary(&p.dr, p.practitioner, "Remplaçante", "b@example.org")
            .await
            .unwrap();
        let oidc = &p.billing.oidc;
        let pending = oidc.begin().await.unwrap().pending;
        let secret =
            |l: &crate::invitation::IssuedLink| l.url.rsplit('/').next().unwrap().to_owned();
        oidc.sign_in(&pending, "s1", "good", Some(&secret(&a)))
            .await
            .unwrap();
        let taken = oidc
            .sign_in(&pending, "s1", "good", Some(&secret(&b)))
            .await;
        assert!(
            matches!(
                taken,
                Err(BillingError::Validation {
                    field: "identity",
                    ..
                })
            ),
            "{taken:?}"
        );
        // B's link was not spent.
        assert!(team.open_link(&secret(&b)).await.is_ok());

        let bare = Practice::open().await.unwrap();
        assert!(!bare.billing.oidc.is_configured());
        assert_eq!(
            bare.billing.oidc.begin().await.unwrap_err().code(),
            "oidc_not_configured"
        );
        let denied = bare
            .billing
            .oidc
            .sign_in(&pending, "s1", "good", None)
            .await;
        assert!(!matches!(
            denied,
            Err(BillingError::Access(AccessDenied::Unauthenticated))
        ));
    }
}
