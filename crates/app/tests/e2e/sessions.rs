//! Dashboard sessions as a hostile user tries them: a copied cookie after sign-out, a
//! planted CSRF cookie, a form posted from another site, an idle session, browsers
//! signed out everywhere, and answers a cache could keep.

use chrono::Duration;
use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::helpers::*;

/// Signs `who` in on a fresh client without a cookie store and returns the session
/// cookie (`name=value`) the server set.
async fn session_cookie(t: &TestApp, who: &Staff) -> String {
    let bare = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let page = bare
        .get(t.url("/dashboard/login"))
        .send()
        .await
        .expect("login page");
    let csrf_cookie: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect();
    let csrf = csrf_token(&page.text().await.expect("html"));
    let resp = bare
        .post(t.url("/dashboard/login"))
        .header("cookie", csrf_cookie.join("; "))
        .form(&[("csrf_token", csrf.as_str()), ("token", who.token.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "signed in");
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("consultpay_session="))
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let pair = set.split(';').next().unwrap_or_default().to_owned();
    assert!(
        pair.starts_with("consultpay_session=cps_"),
        "a random session token, not the staff token: {pair}"
    );
    assert!(!pair.contains(&who.token));
    pair
}

/// `GET path` with exactly `cookie`, no redirect followed.
async fn get_with(t: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .get(t.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .expect("page")
}

#[tokio::test]
async fn signing_out_ends_the_session_for_every_copy_of_its_cookie() {
    for backend in backends() {
        let Some(t) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = t.practitioner("Dr Estival").await;
        let cookie = session_cookie(&t, &dr).await;
        let copied = cookie.clone();
        let page = get_with(&t, "/dashboard", &cookie).await;
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_token(&page.text().await.expect("html"));
        let out = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client")
            .post(t.url("/dashboard/logout"))
            .header("cookie", &cookie)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .expect("sign out");
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        let forget = out
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("consultpay_session="))
            .expect("the browser is told to forget the cookie")
            .to_owned();
        assert!(
            forget.contains("Max-Age=0") && forget.contains("Path=/"),
            "{forget}"
        );
        // The copy an attacker kept opens nothing any more.
        let after = get_with(&t, "/dashboard", &copied).await;
        assert_eq!(after.status(), StatusCode::SEE_OTHER);
        t.stop().await;
    }
}

#[tokio::test]
async fn a_planted_csrf_cookie_does_not_pass_a_signed_in_form() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let victim = session_cookie(&t, &dr).await;
    // The attacker's own visit gives a valid pair of poem's double-submit cookie and
    // form token; they plant the cookie in the victim's browser and post the token.
    let page = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .get(t.url("/dashboard/login"))
        .send()
        .await
        .expect("login page");
    let planted = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("consultpay_csrf="))
        .expect("poem's CSRF cookie")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let token = csrf_token(&page.text().await.expect("html"));
    let forged = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .post(t.url("/dashboard/sessions/end-all"))
        .header("cookie", format!("{victim}; {planted}"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .expect("forged form");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // Still signed in: the form did nothing.
    assert_eq!(
        get_with(&t, "/dashboard", &victim).await.status(),
        StatusCode::OK
    );
    t.stop().await;
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_even_with_a_valid_token() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let cookie = session_cookie(&t, &dr).await;
    let page = get_with(&t, "/dashboard/sessions", &cookie).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_token(&page.text().await.expect("html"));
    let post = |headers: Vec<(&'static str, String)>| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        let url = t.url("/dashboard/sessions/end-all");
        async move {
            let mut req = reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client")
                .post(url)
                .header("cookie", cookie)
                .form(&[("csrf_token", csrf.as_str())]);
            for (name, value) in headers {
                req = req.header(name, value);
            }
            req.send().await.expect("form").status()
        }
    };
    assert_eq!(
        post(vec![("origin", "https://evil.example".into())]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(vec![("sec-fetch-site", "cross-site".into())]).await,
        StatusCode::FORBIDDEN
    );
    // From the dashboard itself, as a browser sends it: every session ends.
    let own = t.url("");
    let own = own.trim_end_matches('/').to_owned();
    assert_eq!(
        post(vec![
            ("origin", own),
            ("sec-fetch-site", "same-origin".into())
        ])
        .await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get_with(&t, "/dashboard", &cookie).await.status(),
        StatusCode::SEE_OTHER
    );
    t.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_an_hour_unused_and_signing_out_everywhere_ends_every_browser() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let laptop = session_cookie(&t, &dr).await;
    let phone = session_cookie(&t, &dr).await;
    let list = get_with(&t, "/dashboard/sessions", &laptop).await;
    let html = list.text().await.expect("html");
    assert_eq!(
        html.matches("<tr").count() - 1,
        2,
        "two sessions listed: {html}"
    );

    // The phone is used every 50 minutes; the laptop is left alone.
    t.advance_clock(Duration::minutes(50)).await;
    assert_eq!(
        get_with(&t, "/dashboard", &phone).await.status(),
        StatusCode::OK
    );
    t.advance_clock(Duration::minutes(11)).await;
    assert_eq!(
        get_with(&t, "/dashboard", &laptop).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = get_with(&t, "/dashboard/sessions", &phone).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert_eq!(
        html.matches("<tr").count() - 1,
        1,
        "the laptop's is over: {html}"
    );

    let laptop = session_cookie(&t, &dr).await;
    let csrf = csrf_token(&html);
    let out = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
        .post(t.url("/dashboard/sessions/end-all"))
        .header("cookie", &phone)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("sign out everywhere");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    for cookie in [&phone, &laptop] {
        assert_eq!(
            get_with(&t, "/dashboard", cookie).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn answers_with_personal_or_payment_data_are_never_stored_by_a_cache() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let cookie = session_cookie(&t, &dr).await;
    let no_store = |resp: &reqwest::Response| {
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-store"))
    };
    for path in ["/dashboard", "/dashboard/sessions", "/dashboard/login"] {
        let resp = get_with(&t, path, &cookie).await;
        assert!(no_store(&resp), "{path}");
    }
    let api = t
        .client
        .get(t.url(&format!("/api/v1/practitioners/{}/preferences", dr.id)))
        .bearer_auth(&dr.token)
        .send()
        .await
        .expect("api");
    assert_eq!(api.status(), StatusCode::OK);
    assert!(no_store(&api));
    // Static assets stay cacheable.
    let css = t
        .client
        .get(t.url("/static/app.css"))
        .send()
        .await
        .expect("css");
    assert!(!no_store(&css));
    t.stop().await;
}

#[tokio::test]
async fn a_practitioner_signs_in_with_an_email_and_password_and_a_new_password_ends_sessions() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let id = dr.id.parse().expect("user id");
    let sessions = &t.app.billing.sessions;
    sessions
        .set_password(id, "camille@example.org", "correct horse battery")
        .await
        .expect("password set");
    let form = |email: &str, password: &str| {
        let (email, password) = (email.to_owned(), password.to_owned());
        let url = t.url("/dashboard/login");
        async move {
            let client = reqwest::Client::builder()
                .redirect(Policy::none())
                .cookie_store(true)
                .build()
                .expect("client");
            let page = client.get(&url).send().await.expect("login page");
            let csrf = csrf_token(&page.text().await.expect("html"));
            let resp = client
                .post(&url)
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("email", email.as_str()),
                    ("password", password.as_str()),
                ])
                .send()
                .await
                .expect("sign in");
            let cookie = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with("consultpay_session=cps_"))
                .map(|v| v.split(';').next().unwrap_or_default().to_owned());
            (resp.status(), resp.text().await.unwrap_or_default(), cookie)
        }
    };
    let (status, _, cookie) = form("Camille@example.org", "correct horse battery").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.expect("a session");
    assert_eq!(
        get_with(&t, "/dashboard", &cookie).await.status(),
        StatusCode::OK
    );
    // A wrong password and an unknown e-mail get the same answer.
    let (wrong, wrong_page, none) = form("camille@example.org", "wrong horse battery").await;
    let (unknown, unknown_page, _) = form("nobody@example.org", "correct horse battery").await;
    assert_eq!(
        (wrong, unknown),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert!(none.is_none());
    let alert = |page: &str| {
        page.split("id=\"login-failed\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .map(str::to_owned)
    };
    assert!(alert(&wrong_page).is_some());
    assert_eq!(alert(&wrong_page), alert(&unknown_page));
    // A new password ends the session opened with the old one.
    sessions
        .set_password(id, "camille@example.org", "another horse battery")
        .await
        .expect("password changed");
    assert_eq!(
        get_with(&t, "/dashboard", &cookie).await.status(),
        StatusCode::SEE_OTHER
    );
    t.stop().await;
}

#[tokio::test]
async fn the_root_leads_to_the_dashboard_and_from_there_to_sign_in() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let location = |resp: &reqwest::Response| {
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let root = t.client.get(t.url("/")).send().await.expect("root");
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&root), "/dashboard");
    let dashboard = t
        .client
        .get(t.url("/dashboard"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(location(&dashboard), "/dashboard/login");
    t.stop().await;
}

#[tokio::test]
async fn a_sign_in_form_left_open_in_another_tab_still_signs_in() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    // Tab A shows the sign-in form; tab B (same browser) signs in meanwhile.
    let tab_a = csrf_token(&t.html("/dashboard/login").await);
    t.sign_in(&dr).await;
    let resp = t
        .submit(
            "/dashboard/login",
            &[("csrf_token", tab_a.as_str()), ("token", dr.token.as_str())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        t.client
            .get(t.url("/dashboard"))
            .send()
            .await
            .expect("page")
            .status(),
        StatusCode::OK
    );
    t.stop().await;
}
