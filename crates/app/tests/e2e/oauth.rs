//! Connect OAuth's return leg: the account is linked to the practitioner signed in on
//! the browser that comes back, and only if the state was issued to them.

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn the_callback_hops_through_a_page_of_ours_then_needs_the_practitioner_signed_in() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let callback = t.approve_oauth(&dr).await;

    // Back from Stripe without the (SameSite=Strict) session cookie: our page leads
    // to the same callback again, a same-site navigation that carries it.
    let first = t.client.get(&callback).send().await.expect("callback");
    assert_eq!(first.status(), StatusCode::OK);
    let html = first.text().await.expect("html");
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    assert!(html.contains("hop=1"), "{html}");
    assert_eq!(t.link_status(&dr).await, "unlinked");

    // Still nobody signed in on the second pass: refused, and the state is kept.
    let second = format!("{callback}&hop=1");
    let refused = t.client.get(&second).send().await.expect("callback");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(t.link_status(&dr).await, "unlinked");

    t.sign_in(&dr).await;
    let done = t.client.get(&second).send().await.expect("callback");
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(t.link_status(&dr).await, "linked");
    t.stop().await;
}

#[tokio::test]
async fn an_authorize_url_completed_in_another_practitioners_browser_links_nobody() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let issuer = t.practitioner("Dr Issuer").await;
    let victim = t.practitioner("Dr Victim").await;
    // The issuer's authorize URL, approved at Stripe by the victim (their account).
    let callback = t.approve_oauth(&issuer).await;
    t.sign_in(&victim).await;
    let refused = t.client.get(&callback).send().await.expect("callback");
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert_eq!(t.link_status(&issuer).await, "unlinked");
    assert_eq!(t.link_status(&victim).await, "unlinked");

    // The state is burnt: not even its issuer can use it afterwards.
    t.sign_in(&issuer).await;
    let replay = t.client.get(&callback).send().await.expect("callback");
    assert!(replay.status().is_client_error(), "{}", replay.status());
    assert_eq!(t.link_status(&issuer).await, "unlinked");
    t.stop().await;
}

#[tokio::test]
async fn an_api_client_follows_the_callback_with_its_bearer_token_and_only_its_own() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let issuer = t.practitioner("Dr Issuer").await;
    let other = t.practitioner("Dr Other").await;
    let callback = t.approve_oauth(&issuer).await;
    let bearer = |token: &str| {
        t.client
            .get(&callback)
            .header("authorization", format!("Bearer {token}"))
    };

    // A token that is nobody's: a problem, and the state is kept.
    let unknown = bearer("cp_unknown").send().await.expect("callback");
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(t.link_status(&issuer).await, "unlinked");

    // Another practitioner's token: refused, and the state is burnt.
    let foreign = bearer(&other.token).send().await.expect("callback");
    assert!(foreign.status().is_client_error(), "{}", foreign.status());
    assert_eq!(t.link_status(&other).await, "unlinked");

    let callback = t.approve_oauth(&issuer).await;
    let done = t
        .client
        .get(&callback)
        .header("authorization", format!("Bearer {}", issuer.token))
        .send()
        .await
        .expect("callback");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(
        done.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/dashboard?stripe=linked")
    );
    assert_eq!(t.link_status(&issuer).await, "linked");
    t.stop().await;
}

#[tokio::test]
async fn a_callback_without_any_query_hops_to_a_url_of_ours_not_a_broken_path() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let page = t
        .client
        .get(t.url("/connect/stripe/callback"))
        .send()
        .await
        .expect("callback");
    let html = page.text().await.expect("html");
    assert!(html.contains("/connect/stripe/callback?hop=1"), "{html}");
    t.stop().await;
}

#[tokio::test]
async fn back_from_stripe_onboarding_a_page_of_ours_leads_to_the_dashboard_with_a_word() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let (status, body) = t
        .post(
            &format!("/api/v1/practitioners/{}/stripe/account-link", dr.id),
            Some(&dr.token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (step, flash) in [
        ("return", "onboarding_back"),
        ("refresh", "onboarding_expired"),
    ] {
        // What Stripe sends the browser to (no session cookie on that hop).
        let bounce = t
            .client
            .get(t.url(&format!("/connect/stripe/onboarding?step={step}")))
            .send()
            .await
            .expect("return page");
        assert_eq!(bounce.status(), StatusCode::OK);
        let html = bounce.text().await.expect("html");
        assert!(html.contains("http-equiv=\"refresh\""), "{html}");
        assert!(
            html.contains(&format!("/dashboard?flash={flash}")),
            "{html}"
        );
    }
    t.sign_in(&dr).await;
    let html = t
        .client
        .get(t.url("/dashboard?flash=onboarding_expired"))
        .send()
        .await
        .expect("dashboard")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Stripe a expiré"), "{html}");
    t.stop().await;
}

#[tokio::test]
async fn a_practitioner_unlinks_then_relinks_and_payments_follow_the_link() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    t.link_stripe(&dr).await;
    t.set_amounts(&dr, "25.00", "25.00").await;
    let stripe = format!("/api/v1/practitioners/{}/stripe", dr.id);

    // No hold outstanding: unlinking succeeds and says so.
    let (status, link) = t
        .call(reqwest::Method::DELETE, &stripe, Some(&dr.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_ne!(link["status"], "linked", "{link}");
    assert_eq!(t.link_status(&dr).await, link["status"].as_str().unwrap());
    // Online payment now needs a link again.
    let (status, refused) = t
        .schedule(&dr, &dr, serde_json::json!({ "mode": "online" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "stripe_not_linked");

    // Relinking through the same consent flow brings online payment back.
    t.link_stripe(&dr).await;
    let (status, scheduled) = t
        .schedule(&dr, &dr, serde_json::json!({ "mode": "online" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{scheduled}");
    t.stop().await;
}

#[tokio::test]
async fn onboarding_again_while_linked_is_refused_and_keeps_the_working_account() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    t.link_stripe(&dr).await;
    let stripe = format!("/api/v1/practitioners/{}/stripe", dr.id);
    let (_, before) = t.get(&stripe, Some(&dr.token)).await;
    let (status, refused) = t
        .post(
            &format!("{stripe}/account-link"),
            Some(&dr.token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "stripe_already_linked");
    let (_, after) = t.get(&stripe, Some(&dr.token)).await;
    assert_eq!(after["status"], "linked");
    assert_eq!(
        after["account_id"], before["account_id"],
        "the same account"
    );
    t.stop().await;
}
