//! The adapter against a real OpenID provider: panva's certified `oidc-provider`
//! (npm, installed by `cargo xtask peers` under `target/peers/oidc`), started on
//! 127.0.0.1 for each test with two clients (`identity_oidc::peer`).

use billing_core::identity::{IdentityError, IdentityProvider, PendingLogin};
use chrono::Utc;
use identity_oidc::peer::{OidcPeer, PeerClient, query_of, sign_in_at_provider};
use identity_oidc::{OidcProvider, OidcSettings};

const REDIRECT: &str = "http://127.0.0.1:9/dashboard/oidc/callback";
const SECRET: &str = "a-client-secret-of-forty-characters-long";

/// The provider, with ConsultPay's client and another application's.
async fn provider() -> Option<OidcPeer> {
    let client = |id: &str| PeerClient {
        id: id.into(),
        secret: SECRET.into(),
        redirect_uri: REDIRECT.into(),
    };
    OidcPeer::start(&[client("consultpay"), client("another-app")]).await
}

fn adapter(peer: &OidcPeer, client_id: &str) -> OidcProvider {
    OidcProvider::new(&OidcSettings {
        issuer: peer.issuer.clone(),
        client_id: client_id.into(),
        client_secret: SECRET.into(),
        redirect_url: REDIRECT.into(),
    })
    .expect("adapter")
}

/// Signs in at the provider as `login` and returns the query of the way back.
async fn sign_in(url: &str, login: &str) -> Vec<(String, String)> {
    query_of(&sign_in_at_provider(url, login, REDIRECT).await)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} in {query:?}"))
}

/// A raw ID token issued to `client_id` for `login`, with the nonce it carries.
async fn id_token(peer: &OidcPeer, client_id: &str, login: &str) -> (String, String) {
    let start = adapter(peer, client_id).begin().await.expect("begin");
    let back = sign_in(&start.url, login).await;
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/token", peer.issuer))
        .basic_auth(client_id, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", param(&back, "code")),
            ("redirect_uri", REDIRECT),
            ("code_verifier", start.pending.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("token response");
    let raw = tokens["id_token"].as_str().expect("an ID token").to_owned();
    (raw, start.pending.nonce)
}

#[tokio::test]
async fn a_sign_in_at_the_real_provider_gives_the_verified_identity() {
    let Some(peer) = provider().await else {
        return;
    };
    let oidc = adapter(&peer, "consultpay");
    let start = oidc.begin().await.expect("begin");
    for part in [
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(start.url.contains(part), "{part} in {}", start.url);
    }
    let back = sign_in(&start.url, "dr.estival").await;
    assert_eq!(param(&back, "state"), start.pending.state);
    let identity = oidc
        .finish(param(&back, "code"), &start.pending, Utc::now())
        .await
        .expect("verified");
    assert_eq!(identity.issuer, peer.issuer);
    assert_eq!(identity.subject, "dr.estival");
    // A code is good once.
    let again = oidc
        .finish(param(&back, "code"), &start.pending, Utc::now())
        .await;
    assert!(
        matches!(again, Err(IdentityError::Rejected(_))),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_wrong_verifier_a_wrong_nonce_another_audience_or_an_expired_token_is_refused() {
    let Some(peer) = provider().await else {
        return;
    };
    let oidc = adapter(&peer, "consultpay");
    // PKCE: the code is refused with another verifier.
    let start = oidc.begin().await.expect("begin");
    let back = sign_in(&start.url, "dr.estival").await;
    let stolen = PendingLogin {
        verifier: "another-verifier-another-verifier-another-verifier".into(),
        ..start.pending.clone()
    };
    let refused = oidc.finish(param(&back, "code"), &stolen, Utc::now()).await;
    assert!(
        matches!(refused, Err(IdentityError::Rejected(_))),
        "{refused:?}"
    );

    // Real tokens from the provider, each checked with one thing wrong.
    let (ours, nonce) = id_token(&peer, "consultpay", "dr.estival").await;
    let now = Utc::now();
    let fine = oidc
        .verify(&ours, &nonce, now)
        .await
        .expect("the control passes");
    assert_eq!(fine.subject, "dr.estival");
    let wrong_nonce = oidc.verify(&ours, "not-the-nonce-sent", now).await;
    assert!(
        matches!(wrong_nonce, Err(IdentityError::Rejected(_))),
        "{wrong_nonce:?}"
    );
    let expired = oidc
        .verify(&ours, &nonce, now + chrono::Duration::hours(2))
        .await;
    assert!(
        matches!(expired, Err(IdentityError::Rejected(_))),
        "{expired:?}"
    );
    let (theirs, their_nonce) = id_token(&peer, "another-app", "dr.estival").await;
    let audience = oidc.verify(&theirs, &their_nonce, now).await;
    assert!(
        matches!(audience, Err(IdentityError::Rejected(_))),
        "{audience:?}"
    );
    // One character of the signature changed (in the middle: every bit of it counts).
    let at = ours.rfind('.').expect("three parts") + 10;
    let swapped = if &ours[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{swapped}{}", &ours[..at], &ours[at + 1..]);
    let signature = oidc.verify(&tampered, &nonce, now).await;
    assert!(
        matches!(signature, Err(IdentityError::Rejected(_))),
        "{signature:?}"
    );
}

#[tokio::test]
async fn a_provider_that_does_not_answer_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let oidc = OidcProvider::new(&OidcSettings {
        issuer: format!("http://127.0.0.1:{port}"),
        client_id: "consultpay".into(),
        client_secret: SECRET.into(),
        redirect_url: REDIRECT.into(),
    })
    .expect("adapter");
    let down = oidc.begin().await;
    assert!(
        matches!(down, Err(IdentityError::Unavailable(_))),
        "{down:?}"
    );
}
