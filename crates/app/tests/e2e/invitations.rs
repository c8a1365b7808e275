//! Staff accounts through HTTP: a practitioner invites a secretary, who sets a
//! password from the link, signs in and out (the copied cookie is then refused); a
//! secretary is told why the team page is not for her; wrong passwords throttle the
//! account with a 429 that says how long; the operator's CLI prints invitation and
//! reset links.

use chrono::Duration;
use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::helpers::*;

/// A browser of its own: a cookie store, no redirect followed.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

/// The value of the `id="{id}"` input (or the text of the element) in `html`.
fn value_of(html: &str, id: &str) -> Option<String> {
    let rest = html.split(&format!("id=\"{id}\"")).nth(1)?;
    if let Some(v) = rest.split("value=\"").nth(1)
        && rest.find("value=\"") < rest.find('>')
    {
        return v.split('"').next().map(str::to_owned);
    }
    rest.split('>').nth(1)?.split('<').next().map(str::to_owned)
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Posts the sign-in form with an e-mail and password on `client`.
async fn sign_in(
    t: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = client
        .get(t.url("/dashboard/login"))
        .send()
        .await
        .expect("login page");
    let csrf = csrf_token(&page.text().await.expect("html"));
    client
        .post(t.url("/dashboard/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("sign in")
}

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("consultpay_session=cps_"))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn an_invited_secretary_sets_a_password_signs_in_and_out_and_the_copied_cookie_dies() {
    for backend in backends() {
        let Some(t) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = t.practitioner("Dr Estival").await;
        t.sign_in(&dr).await;
        // The practitioner invites her secretary from the team page.
        let csrf = csrf_token(&t.html("/dashboard/team").await);
        let invited = t
            .submit(
                "/dashboard/team/invite",
                &[
                    ("csrf_token", &csrf),
                    ("name", "Accueil"),
                    ("email", "Accueil@Example.org"),
                ],
            )
            .await;
        assert_eq!(invited.status(), StatusCode::OK);
        let page = invited.text().await.expect("html");
        let url = value_of(&page, "issued-url").expect("the invitation link is shown");
        let path = url
            .strip_prefix(&t.url(""))
            .unwrap_or_else(|| panic!("{url} is on the server"))
            .to_owned();
        assert!(path.starts_with("/dashboard/password/cpl_"), "{path}");
        assert!(
            page.contains("accueil@example.org"),
            "the e-mail, in lower case"
        );
        assert!(plain(&page).contains("Accueil"), "the team lists her");

        // The secretary opens the link in her own browser.
        let secretary = browser();
        let form = secretary.get(t.url(&path)).send().await.expect("link");
        assert_eq!(form.status(), StatusCode::OK);
        let html = form.text().await.expect("html");
        assert_eq!(value_of(&html, "account-name").as_deref(), Some("Accueil"));
        let csrf = csrf_token(&html);
        let post = |password: &'static str, confirm: &'static str| {
            let (client, url, csrf) = (secretary.clone(), t.url(&path), csrf.clone());
            async move {
                client
                    .post(url)
                    .form(&[
                        ("csrf_token", csrf.as_str()),
                        ("password", password),
                        ("confirm", confirm),
                    ])
                    .send()
                    .await
                    .expect("set password")
            }
        };
        let mismatch = post("secretary horse battery", "secretary horse batterie").await;
        assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            mismatch
                .text()
                .await
                .unwrap_or_default()
                .contains("id=\"password-error\"")
        );
        let short = post("short", "short").await;
        assert_eq!(short.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let set = post("secretary horse battery", "secretary horse battery").await;
        assert_eq!(set.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&set), "/dashboard/login?flash=password_set");
        let login = secretary
            .get(t.url("/dashboard/login?flash=password_set"))
            .send()
            .await
            .expect("login");
        assert!(
            login
                .text()
                .await
                .unwrap_or_default()
                .contains("id=\"login-notice\"")
        );
        // Single use.
        let again = secretary
            .get(t.url(&path))
            .send()
            .await
            .expect("link again");
        assert_eq!(again.status(), StatusCode::NOT_FOUND);
        let reuse = post("stolen horse battery", "stolen horse battery").await;
        assert_eq!(reuse.status(), StatusCode::NOT_FOUND);

        // She signs in with her e-mail and password.
        let signed_in = sign_in(
            &t,
            &secretary,
            "accueil@example.org",
            "secretary horse battery",
        )
        .await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let cookie = session_cookie(&signed_in).expect("a session");
        let copied = cookie.clone();
        let dashboard = secretary
            .get(t.url("/dashboard"))
            .send()
            .await
            .expect("dashboard");
        assert_eq!(dashboard.status(), StatusCode::OK);
        let html = dashboard.text().await.expect("html");
        assert!(
            !html.contains("href=\"/dashboard/team\""),
            "no team link for her"
        );
        // The team page tells her it is the practitioner's, rather than redirecting.
        let team = secretary
            .get(t.url("/dashboard/team"))
            .send()
            .await
            .expect("team");
        assert_eq!(team.status(), StatusCode::FORBIDDEN);
        assert!(team.text().await.unwrap_or_default().contains("praticien"));
        let csrf = csrf_token(&html);
        let refused = secretary
            .post(t.url("/dashboard/team/invite"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("name", "Intrus"),
                ("email", "intrus@example.org"),
            ])
            .send()
            .await
            .expect("invite");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);

        // She signs out: the copy of her cookie opens nothing.
        let out = secretary
            .post(t.url("/dashboard/logout"))
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .expect("sign out");
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        let stolen = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client")
            .get(t.url("/dashboard"))
            .header("cookie", &copied)
            .send()
            .await
            .expect("dashboard");
        assert_eq!(stolen.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&stolen), "/dashboard/login");

        // The practitioner sends her a new link; another practitioner cannot.
        let members = t.app.billing.staff.list_users().await.expect("users");
        let sec_id = members
            .iter()
            .find(|r| r.user.name == "Accueil")
            .expect("secretary")
            .user
            .id
            .to_string();
        let csrf = csrf_token(&t.html("/dashboard/team").await);
        let fresh = t
            .submit(
                &format!("/dashboard/team/{sec_id}/link"),
                &[("csrf_token", &csrf), ("email", "accueil@example.org")],
            )
            .await;
        assert_eq!(fresh.status(), StatusCode::OK);
        assert!(value_of(&fresh.text().await.expect("html"), "issued-url").is_some());
        let roux = t.practitioner("Dr Roux").await;
        t.sign_in(&roux).await;
        let csrf = csrf_token(&t.html("/dashboard/team").await);
        let foreign = t
            .submit(
                &format!("/dashboard/team/{sec_id}/link"),
                &[("csrf_token", &csrf), ("email", "pirate@example.org")],
            )
            .await;
        assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
        t.stop().await;
    }
}

#[tokio::test]
async fn wrong_passwords_throttle_the_account_with_a_429_that_says_how_long() {
    // The per-server quota per address (a minute of real time) stays out of the way:
    // this is the stored throttle, per account, on the sandbox clock.
    let Some(t) = TestApp::spawn_with(Backend::Sqlite, |c| c.rate_limit_sign_in = 100).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    t.set_password(&dr, "camille@example.org", "correct horse battery")
        .await;
    for _ in 0..5 {
        let resp = sign_in(&t, &browser(), "camille@example.org", "wrong horse battery").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits, and the page says for how long.
    let throttled = sign_in(
        &t,
        &browser(),
        "camille@example.org",
        "correct horse battery",
    )
    .await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("900")
    );
    assert!(session_cookie(&throttled).is_none());
    let text = value_of(&throttled.text().await.expect("html"), "login-throttled").expect("alert");
    assert!(text.contains("15 minute"), "{text}");
    // An unknown e-mail is throttled the same way: nothing tells who has an account.
    for _ in 0..5 {
        sign_in(&t, &browser(), "nobody@example.org", "wrong horse battery").await;
    }
    let unknown = sign_in(&t, &browser(), "nobody@example.org", "wrong horse battery").await;
    assert_eq!(unknown.status(), StatusCode::TOO_MANY_REQUESTS);
    // Fifteen minutes later (the sandbox clock), the right password works.
    t.advance_clock(Duration::minutes(15)).await;
    let ok = sign_in(
        &t,
        &browser(),
        "camille@example.org",
        "correct horse battery",
    )
    .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    t.stop().await;
}

/// The public URL the OpenID tests give the server: what a reverse proxy would serve,
/// registered at the provider. The test is the browser, and takes each URL under it
/// to the server it started.
const PROXY: &str = "http://127.0.0.1:9";

#[tokio::test]
async fn an_invitation_links_an_openid_identity_which_then_signs_in_alone() {
    use identity_oidc::peer::{OidcPeer, PeerClient, sign_in_at_provider};
    let secret = "an-openid-client-secret-for-the-e2e-tests";
    let Some(peer) = OidcPeer::start(&[PeerClient {
        id: "consultpay".into(),
        secret: secret.into(),
        redirect_uri: format!("{PROXY}/dashboard/oidc/callback"),
    }])
    .await
    else {
        return;
    };
    for backend in backends() {
        let issuer = peer.issuer.clone();
        let Some(t) = TestApp::spawn_with(backend, |c| {
            c.public_url = Some(PROXY.into());
            c.oidc_issuer = Some(issuer);
            c.oidc_client_id = Some("consultpay".into());
            c.oidc_client_secret = Some(app::config::Secret::new(secret));
        })
        .await
        else {
            continue;
        };
        let local = |url: &str| t.url(url.strip_prefix(PROXY).unwrap_or(url));
        // Through the provider and back to our callback; returns the callback's answer.
        let via_provider = |browser: reqwest::Client, start: String, login: &'static str| {
            let callback_prefix = format!("{PROXY}/dashboard/oidc/callback");
            let local_start = local(&start);
            let base = t.url("");
            async move {
                let to_provider = browser.get(&local_start).send().await.expect("start");
                assert_eq!(to_provider.status(), StatusCode::SEE_OTHER);
                let at_provider = location(&to_provider);
                let back = sign_in_at_provider(&at_provider, login, &callback_prefix).await;
                let back = back.replacen(PROXY, base.trim_end_matches('/'), 1);
                browser.get(back).send().await.expect("callback")
            }
        };

        let dr = t.practitioner("Dr Estival").await;
        t.sign_in(&dr).await;
        let csrf = csrf_token(&t.html("/dashboard/team").await);
        let page = t
            .submit(
                "/dashboard/team/invite",
                &[
                    ("csrf_token", &csrf),
                    ("name", "Accueil"),
                    ("email", "accueil@example.org"),
                ],
            )
            .await
            .text()
            .await
            .expect("html");
        let invite = value_of(&page, "issued-url").expect("the invitation link");

        // The sign-in page offers the provider; an identity nobody linked is refused.
        let stranger = browser();
        let login = stranger
            .get(t.url("/dashboard/login"))
            .send()
            .await
            .expect("login");
        assert!(
            login
                .text()
                .await
                .unwrap_or_default()
                .contains("id=\"sign-in-oidc\"")
        );
        let refused = via_provider(stranger, "/dashboard/oidc/start".into(), "accueil.idp").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(plain(&refused.text().await.unwrap_or_default()).contains("invitation"));

        // From the invitation page, she links her identity at the provider instead of
        // choosing a password: she is signed in, and the link is spent.
        let secretary = browser();
        let html = secretary
            .get(local(&invite))
            .send()
            .await
            .expect("invite")
            .text()
            .await
            .expect("html");
        let start = html
            .split("id=\"link-oidc\"")
            .next()
            .and_then(|before| before.rsplit("href=\"").next())
            .and_then(|rest| rest.split('"').next())
            .expect("the link-your-identity button")
            .replace("&amp;", "&");
        assert!(
            start.starts_with("/dashboard/oidc/start?link=cpl_"),
            "{start}"
        );
        let linked = via_provider(secretary.clone(), start.clone(), "accueil.idp").await;
        assert_eq!(linked.status(), StatusCode::OK);
        assert!(
            linked
                .text()
                .await
                .unwrap_or_default()
                .contains("url=/dashboard")
        );
        let dashboard = secretary
            .get(t.url("/dashboard"))
            .send()
            .await
            .expect("dashboard");
        assert_eq!(dashboard.status(), StatusCode::OK, "signed in");
        assert_eq!(
            secretary
                .get(local(&invite))
                .send()
                .await
                .expect("invite")
                .status(),
            StatusCode::NOT_FOUND
        );

        // Later, in another browser, the identity alone signs her in.
        let elsewhere = browser();
        let again = via_provider(
            elsewhere.clone(),
            "/dashboard/oidc/start".into(),
            "accueil.idp",
        )
        .await;
        assert_eq!(again.status(), StatusCode::OK);
        let html = elsewhere
            .get(t.url("/dashboard"))
            .send()
            .await
            .expect("dashboard");
        assert_eq!(html.status(), StatusCode::OK);
        assert!(html.text().await.unwrap_or_default().contains("Accueil"));

        // A callback without the cookie the start set (another browser, a replay) is
        // refused, and so is a state that is not the one sent.
        let replay = browser()
            .get(t.url("/dashboard/oidc/callback?code=abc&state=xyz"))
            .send()
            .await
            .expect("callback");
        assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
        let forger = browser();
        let started = forger
            .get(t.url("/dashboard/oidc/start"))
            .send()
            .await
            .expect("start");
        assert_eq!(started.status(), StatusCode::SEE_OTHER);
        let forged = forger
            .get(t.url("/dashboard/oidc/callback?code=abc&state=not-the-one-sent"))
            .send()
            .await
            .expect("callback");
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
        t.stop().await;
    }
}

#[tokio::test]
async fn a_second_factor_is_set_up_on_the_dashboard_then_asked_at_every_password_sign_in() {
    use billing_core::second_factor::TotpSecret;
    for backend in backends() {
        let Some(t) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = t.practitioner("Dr Estival").await;
        t.set_password(&dr, "camille@example.org", "correct horse battery")
            .await;
        let me = browser();
        let signed_in = sign_in(&t, &me, "camille@example.org", "correct horse battery").await;
        assert_eq!(
            signed_in.status(),
            StatusCode::SEE_OTHER,
            "no code asked yet"
        );
        let sessions = me
            .get(t.url("/dashboard/sessions"))
            .send()
            .await
            .expect("sessions");
        assert!(
            sessions
                .text()
                .await
                .unwrap_or_default()
                .contains("href=\"/dashboard/security\"")
        );
        let page = me
            .get(t.url("/dashboard/security"))
            .send()
            .await
            .expect("security");
        let html = page.text().await.expect("html");
        assert!(html.contains("data-status=\"off\""));

        // Set up: a QR code and the key; a wrong first code is refused.
        let post = |path: &'static str, fields: Vec<(&'static str, String)>, csrf: String| {
            let (client, url) = (me.clone(), t.url(path));
            async move {
                let mut form = vec![("csrf_token", csrf)];
                form.extend(fields);
                client.post(url).form(&form).send().await.expect("form")
            }
        };
        let enrolled = post("/dashboard/security/totp", vec![], csrf_token(&html)).await;
        assert_eq!(enrolled.status(), StatusCode::OK);
        let html = enrolled.text().await.expect("html");
        assert!(html.contains("<svg"), "a QR code");
        let key = value_of(&html, "totp-key").expect("the key to type");
        let secret = TotpSecret::from_stored(key);
        let wrong = post(
            "/dashboard/security/totp/confirm",
            vec![("code", "000000".into())],
            csrf_token(&html),
        )
        .await;
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let code = secret.code_at(t.clock_now());
        let confirmed = post(
            "/dashboard/security/totp/confirm",
            vec![("code", code)],
            csrf_token(&html),
        )
        .await;
        assert_eq!(confirmed.status(), StatusCode::OK);
        let html = confirmed.text().await.expect("html");
        assert!(html.contains("data-status=\"on\""));
        let recovery: Vec<String> = html
            .split("<li><code>")
            .skip(1)
            .filter_map(|r| r.split('<').next().map(str::to_owned))
            .collect();
        assert_eq!(recovery.len(), 10, "{recovery:?}");

        // Now a password leads to the code form, not to a session.
        let other = browser();
        let asked = sign_in(&t, &other, "camille@example.org", "correct horse battery").await;
        assert_eq!(asked.status(), StatusCode::OK);
        assert!(
            session_cookie(&asked).is_none(),
            "no session before the code"
        );
        let html = asked.text().await.expect("html");
        assert!(html.contains("id=\"verify-code\""));
        let submit = |client: &reqwest::Client, html: &str, code: String| {
            let (client, url, csrf) = (
                client.clone(),
                t.url("/dashboard/login/code"),
                csrf_token(html),
            );
            async move {
                client
                    .post(url)
                    .form(&[("csrf_token", csrf.as_str()), ("code", code.as_str())])
                    .send()
                    .await
                    .expect("code")
            }
        };
        // The code that confirmed was used: the same step is refused; the next one
        // (thirty seconds later on the sandbox clock) signs in, once.
        let replay = submit(&other, &html, secret.code_at(t.clock_now())).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        t.advance_clock(Duration::seconds(30)).await;
        let next = secret.code_at(t.clock_now());
        let ok = submit(&other, &html, next.clone()).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        assert!(session_cookie(&ok).is_some());
        let third = browser();
        let asked = sign_in(&t, &third, "camille@example.org", "correct horse battery").await;
        let html = asked.text().await.expect("html");
        assert_eq!(
            submit(&third, &html, next).await.status(),
            StatusCode::UNAUTHORIZED
        );
        // A recovery code works, once.
        let ok = submit(&third, &html, recovery[0].clone()).await;
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let fourth = browser();
        let asked = sign_in(&t, &fourth, "camille@example.org", "correct horse battery").await;
        let html = asked.text().await.expect("html");
        assert_eq!(
            submit(&fourth, &html, recovery[0].clone()).await.status(),
            StatusCode::UNAUTHORIZED
        );
        // A code form without the password's cookie goes back to the start.
        let stray = browser();
        let page = stray
            .get(t.url("/dashboard/login"))
            .send()
            .await
            .expect("login");
        let html = page.text().await.expect("html");
        let lost = submit(&stray, &html, "123456".into()).await;
        assert_eq!(lost.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&lost), "/dashboard/login");
        t.stop().await;
    }
}

#[tokio::test]
async fn a_personal_token_made_on_the_dashboard_works_on_the_api_until_revoked() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    t.sign_in(&dr).await;
    let csrf = csrf_token(&t.html("/dashboard/tokens").await);
    let made = t
        .submit(
            "/dashboard/tokens",
            &[("csrf_token", &csrf), ("name", "Logiciel de compta")],
        )
        .await;
    assert_eq!(made.status(), StatusCode::OK);
    let html = made.text().await.expect("html");
    let token = value_of(&html, "new-token").expect("shown once");
    assert!(token.starts_with("cpt_"));
    assert!(html.contains("Logiciel de compta"));
    let path = format!("/api/v1/practitioners/{}/stripe", dr.id);
    let (status, _) = t.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "it acts as its maker");
    // The page says when it was last used; the token itself is never shown again.
    let html = t.html("/dashboard/tokens").await;
    assert!(!html.contains(&token));
    let row = html
        .split("Logiciel de compta")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("its row")
        .to_owned();
    assert!(!plain(&row).contains("jamais"), "used: {row}");
    let id = row
        .split("name=\"id\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("its id")
        .to_owned();
    // Another practitioner cannot revoke it; its maker can, and the API refuses it.
    let roux = t.practitioner("Dr Roux").await;
    t.sign_in(&roux).await;
    let csrf = csrf_token(&t.html("/dashboard/tokens").await);
    let foreign = t
        .submit(
            "/dashboard/tokens/revoke",
            &[("csrf_token", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    assert_eq!(t.get(&path, Some(&token)).await.0, StatusCode::OK);
    t.sign_in(&dr).await;
    let csrf = csrf_token(&t.html("/dashboard/tokens").await);
    let revoked = t
        .submit(
            "/dashboard/tokens/revoke",
            &[("csrf_token", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(t.get(&path, Some(&token)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.get(&path, Some(&dr.token)).await.0,
        StatusCode::OK,
        "the first one stays"
    );
    t.stop().await;
}
