//! Staff sign-in with an OpenID Connect provider: billing-core's
//! [`IdentityProvider`] port on the [`openidconnect`] crate.
//!
//! - **Discovery** on every sign-in (`/.well-known/openid-configuration` and the JWKS):
//!   sign-ins are rare, and a provider that rotates its keys is then followed at once.
//! - **The authorization code flow** with PKCE (S256), a random `state` and `nonce`
//!   (the caller keeps them, see [`PendingLogin`]), scope `openid`.
//! - **The ID token** is verified by openidconnect: signature against the provider's
//!   keys, issuer, audience (this client), expiry — at the time the domain gives
//!   (the sandbox's test clock in tests), not the machine's — and nonce.
//! - HTTP goes through a reqwest client that follows no redirect (the provider's
//!   endpoints are taken as discovered) and gives up after ten seconds.
//!
//! Configured by `CONSULTPAY_OIDC_ISSUER`, `CONSULTPAY_OIDC_CLIENT_ID` and
//! `CONSULTPAY_OIDC_CLIENT_SECRET`; the redirect URI to register at the provider is
//! `{public URL}/dashboard/oidc/callback`.

#[cfg(feature = "test-peer")]
pub mod peer;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use billing_core::identity::{
    Identity, IdentityError, IdentityProvider, OidcRequest, PendingLogin,
};
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, TokenResponse,
};

/// The client as discovery makes it: authorization endpoint set, token endpoint
/// maybe.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why the adapter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer or the redirect URI is not a URL.
    #[error("{0} is not a valid URL: {1}")]
    Url(&'static str, String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
}

/// How ConsultPay is registered at the provider.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer URL (`https://auth.esante.gouv.fr/auth/realms/esante-wallet`, …).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret (`client_secret_basic`).
    pub client_secret: String,
    /// Where the provider sends the browser back: `{public URL}/dashboard/oidc/callback`.
    pub redirect_url: String,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// The adapter.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    http: Http,
}

/// Our reqwest client as openidconnect's HTTP client.
#[derive(Debug, Clone)]
struct Http(reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = reqwest::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, reqwest::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.0.execute(request).await?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await?.to_vec();
            // Status and headers come from a response that parsed: they are valid.
            Ok(builder.body(body).unwrap_or_default())
        })
    }
}

fn unavailable(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unavailable(e.to_string())
}

fn rejected(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Rejected(e.to_string())
}

impl OidcProvider {
    /// The adapter for `settings`. Nothing is fetched yet.
    ///
    /// # Errors
    /// [`ConfigError`] for a malformed URL, or a client that cannot be built.
    pub fn new(settings: &OidcSettings) -> Result<Self, ConfigError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| ConfigError::Url("CONSULTPAY_OIDC_ISSUER", e.to_string()))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| ConfigError::Url("the OpenID redirect URI", e.to_string()))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ConfigError::Http(e.to_string()))?;
        Ok(OidcProvider {
            issuer,
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: ClientSecret::new(settings.client_secret.clone()),
            redirect,
            http: Http(http),
        })
    }

    /// The provider's metadata and keys, and the client on them.
    async fn client(&self) -> Result<Client, IdentityError> {
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(unavailable)?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone()))
    }

    /// Verifies an ID token issued to this client: signature against the provider's
    /// current keys, issuer, audience, expiry at `now` and `nonce`. Returns who it
    /// names. (What [`IdentityProvider::finish`] does once it has the token.)
    ///
    /// # Errors
    /// [`IdentityError::Rejected`] for a token that fails a check,
    /// [`IdentityError::Unavailable`] when the provider's keys cannot be read.
    pub async fn verify(
        &self,
        id_token: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<Identity, IdentityError> {
        let client = self.client().await?;
        let token: CoreIdToken = id_token.parse().map_err(rejected)?;
        verify_with(&client, &token, nonce, now)
    }
}

fn verify_with(
    client: &Client,
    token: &CoreIdToken,
    nonce: &str,
    now: DateTime<Utc>,
) -> Result<Identity, IdentityError> {
    let verifier = client.id_token_verifier().set_time_fn(move || now);
    let claims = token
        .claims(&verifier, &Nonce::new(nonce.to_owned()))
        .map_err(rejected)?;
    Ok(Identity {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
    })
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    async fn begin(&self) -> Result<OidcRequest, IdentityError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        Ok(OidcRequest {
            url: url.to_string(),
            pending: PendingLogin {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                verifier: verifier.secret().clone(),
            },
        })
    }

    async fn finish(
        &self,
        code: &str,
        pending: &PendingLogin,
        now: DateTime<Utc>,
    ) -> Result<Identity, IdentityError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(unavailable)?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => rejected(r),
                other => unavailable(other),
            })?;
        let token = response
            .id_token()
            .ok_or_else(|| rejected("the token response has no ID token"))?;
        verify_with(&client, token, &pending.nonce, now)
    }
}
