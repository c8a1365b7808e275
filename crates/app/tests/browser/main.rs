//! The pages in a real headless Chromium (Debian's `chromium` + `chromium-driver`),
//! driven over WebDriver, against the server on 127.0.0.1 in sandbox mode. A
//! screenshot of each page is saved under `target/screenshots/` at the end of its step.
//!
//! Without Chromium the test is skipped with a note, except under `CI=true`.

#[allow(dead_code)]
#[path = "../e2e/helpers.rs"]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use helpers::{Backend, Staff, TestApp};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const NBSP: char = '\u{a0}';

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn chromium_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!("note: Chromium or chromedriver is not installed; the browser test is skipped");
    }
    present
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url }
}

/// A fresh headless browser: `phone` gives a 390 × 844 viewport; `lang` its
/// Accept-Language.
async fn browser(driver: &Driver, phone: bool, lang: &str, profile: &Path) -> Client {
    let size = if phone { "390,844" } else { "1280,900" };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                format!("--window-size={size}"), format!("--lang={lang}"),
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": { "intl.accept_languages": lang },
        }),
    );
    if phone {
        // A window cannot be narrower than 500 px; a phone's viewport is.
        if let Some(options) = caps
            .get_mut("goog:chromeOptions")
            .and_then(|o| o.as_object_mut())
        {
            options.insert(
                "mobileEmulation".into(),
                json!({ "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 1.0 } }),
            );
        }
    }
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn find(c: &Client, css: &str) -> Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} not found: {e}"))
}

async fn absent(c: &Client, css: &str) -> bool {
    c.find(Locator::Css(css)).await.is_err()
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.expect("text")
}

/// Waits until the element's text is `expected` (spaces of any kind compared equal).
async fn wait_text(c: &Client, css: &str, expected: &str) {
    let norm = |s: &str| s.replace([NBSP, '\u{202f}'], " ").trim().to_owned();
    let mut last = String::new();
    for _ in 0..50 {
        last = text(c, css).await;
        if norm(&last) == norm(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} shows {last:?}, expected {expected:?}");
}

async fn body_text(c: &Client) -> String {
    text(c, "body").await
}

async fn sign_in(c: &Client, app: &TestApp, who: &Staff) {
    c.goto(&app.url("/dashboard/login"))
        .await
        .expect("login page");
    find(c, "#token")
        .await
        .send_keys(&who.token)
        .await
        .expect("type token");
    find(c, "#sign-in").await.click().await.expect("sign in");
    find(c, "#sign-out").await;
}

async fn schedule_paid(c: &Client, app: &TestApp, patient: &str) -> String {
    c.goto(&app.url("/dashboard/schedule"))
        .await
        .expect("schedule page");
    find(c, "#patient")
        .await
        .send_keys(patient)
        .await
        .expect("patient");
    find(c, "#email")
        .await
        .send_keys("patient@example.org")
        .await
        .expect("email");
    find(c, "#mode-online").await.click().await.expect("online");
    find(c, "#schedule-submit")
        .await
        .click()
        .await
        .expect("schedule");
    let link = find(c, "#pay-link")
        .await
        .prop("value")
        .await
        .expect("value")
        .expect("a pay link");
    assert!(link.starts_with(&app.url("/pay/")), "{link}");
    link
}

async fn pay_on_phone(c: &Client, pay_link: &str, card: &str) {
    c.goto(pay_link).await.expect("pay page");
    find(c, "#pay-now").await.click().await.expect("pay now");
    find(c, card).await.click().await.expect("choose card");
    find(c, "#pay").await.click().await.expect("authorise");
}

#[tokio::test]
async fn the_seeds_flows_in_a_real_browser() {
    if !chromium_available() {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = app.practitioner("Dr Camille Martin").await;
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().expect("profiles");

    // 1. The practitioner signs in, links Stripe through the sandbox consent page,
    //    sets 25,00 €, schedules a paid consultation and copies the pay link.
    let desk = browser(&driver, false, "fr-FR", &profiles.path().join("desk")).await;
    sign_in(&desk, &app, &dr).await;
    assert_eq!(text(&desk, "#stripe-status").await, "Non lié");
    find(&desk, "#stripe-link")
        .await
        .click()
        .await
        .expect("link with Stripe");
    find(&desk, "#approve").await;
    // Consent happens on another site, as at connect.stripe.com (localhost is not
    // 127.0.0.1's site): the way back is a cross-site navigation that withholds the
    // SameSite=Strict session cookie until our hop page leads on.
    let here = desk.current_url().await.expect("consent url").to_string();
    assert!(here.contains("://127.0.0.1:"), "{here}");
    desk.goto(&here.replacen("://127.0.0.1:", "://localhost:", 1))
        .await
        .expect("consent on another site");
    find(&desk, "#approve").await;
    shot(&desk, "1a-sandbox-consent").await;
    find(&desk, "#approve")
        .await
        .click()
        .await
        .expect("approve");
    // The callback page leads back to the dashboard.
    let status = find(&desk, "#stripe-status").await;
    assert_eq!(status.text().await.expect("status"), "Lié");
    assert!(text(&desk, "#stripe-account").await.starts_with("acct_"));
    desk.goto(&app.url("/dashboard/preferences"))
        .await
        .expect("preferences");
    for (field, value) in [("#default-amount", "25,00"), ("#max-amount", "25,00")] {
        let input = find(&desk, field).await;
        input.clear().await.expect("clear");
        input.send_keys(value).await.expect("type");
    }
    wait_text(&desk, "#fee-preview", "25,00 € → frais 0,60 €, net 24,40 €").await;
    find(&desk, "#save-preferences")
        .await
        .click()
        .await
        .expect("save");
    find(&desk, "#flash").await;
    shot(&desk, "1b-preferences").await;
    let pay_link = schedule_paid(&desk, &app, "M. Dupont").await;
    shot(&desk, "1c-scheduled").await;

    // 2. The patient, on a phone in French, sees 25,00 €, pays with the test card and
    //    comes back to "Entrer en salle d'attente".
    let phone = browser(&driver, true, "fr-FR", &profiles.path().join("phone")).await;
    phone.goto(&pay_link).await.expect("pay page");
    wait_text(&phone, "#amount", "25,00 €").await;
    assert!(
        body_text(&phone)
            .await
            .contains("Seule une empreinte bancaire est prise maintenant")
    );
    shot(&phone, "2a-pay-page-phone").await;
    find(&phone, "#pay-now")
        .await
        .click()
        .await
        .expect("pay now");
    find(&phone, "#card-visa").await;
    shot(&phone, "2b-sandbox-checkout").await;
    find(&phone, "#card-visa")
        .await
        .click()
        .await
        .expect("visa");
    find(&phone, "#pay").await.click().await.expect("authorise");
    let enter = find(&phone, "#enter-waiting-room").await;
    assert_eq!(
        enter.text().await.expect("text"),
        "Entrer en salle d'attente"
    );
    shot(&phone, "2c-pay-page-authorised-phone").await;

    // 3. A declined card shows the decline message and no waiting-room button.
    let declined_link = schedule_paid(&desk, &app, "Mme Roux").await;
    let phone2 = browser(&driver, true, "fr-FR", &profiles.path().join("phone2")).await;
    pay_on_phone(&phone2, &declined_link, "#card-declined").await;
    let alert = find(&phone2, "#declined").await;
    assert!(
        alert
            .text()
            .await
            .expect("text")
            .contains("Votre carte a été refusée")
    );
    assert!(absent(&phone2, "#enter-waiting-room").await);
    shot(&phone2, "3-declined-phone").await;

    // 4. The practitioner validates 18,00 € (preview: frais 0,50 €, net 17,50 €); the
    //    table says "Réussi"; the CSV has the row.
    desk.goto(&app.url("/dashboard")).await.expect("dashboard");
    let validate = find(&desk, "#payments a.btn").await;
    validate.click().await.expect("open the payment");
    let amount = find(&desk, "#amount").await;
    amount.clear().await.expect("clear");
    amount.send_keys("18,00").await.expect("type");
    wait_text(
        &desk,
        "#validate-preview",
        "18,00 € → frais 0,50 €, net 17,50 €",
    )
    .await;
    shot(&desk, "4a-validate").await;
    find(&desk, "#validate")
        .await
        .click()
        .await
        .expect("validate");
    find(&desk, "#flash").await;
    assert_eq!(text(&desk, "#payment-status").await, "Réussi");
    let captured_page = desk.current_url().await.expect("url").to_string();
    desk.goto(&app.url("/dashboard")).await.expect("dashboard");
    assert!(text(&desk, "#payments").await.contains("Réussi"));
    shot(&desk, "4b-dashboard").await;
    let csv_href = find(&desk, "#csv")
        .await
        .attr("href")
        .await
        .expect("attr")
        .expect("href");
    let csv = desk
        .execute(
            "return fetch(arguments[0], { credentials: 'same-origin' }).then(r => r.text());",
            vec![json!(csv_href)],
        )
        .await
        .expect("csv");
    let csv = csv.as_str().unwrap_or_default();
    assert!(
        csv.lines()
            .any(|l| l.contains("captured,Réussi,25.00,18.00,0.00,0.50,17.50,EUR")),
        "{csv}"
    );

    // 4c. The patient's link, after the act: what was charged and released, in words,
    //     the note d'honoraires to download, no waiting room.
    phone.goto(&pay_link).await.expect("pay page after the act");
    let settlement = text(&phone, "#settlement").await;
    assert!(settlement.contains("18,00 € débités le"), "{settlement}");
    assert!(settlement.contains("7,00 € libérés"), "{settlement}");
    assert!(absent(&phone, "#enter-waiting-room").await);
    assert!(
        absent(&phone, "#amount").await,
        "no hold amount after the act"
    );
    let receipt_href = find(&phone, "#receipt-link")
        .await
        .attr("href")
        .await
        .expect("attr")
        .expect("href");
    let fetched = phone
        .execute(
            "return fetch(arguments[0]).then(r => r.status + ' ' + r.headers.get('content-type'));",
            vec![json!(receipt_href)],
        )
        .await
        .expect("receipt");
    assert_eq!(fetched, json!("200 application/pdf"));
    shot(&phone, "4c-pay-page-after-the-act-phone").await;
    phone
        .goto(&format!("{pay_link}/receipt"))
        .await
        .expect("receipt page");
    assert_eq!(text(&phone, "#receipt-title").await, "Note d'honoraires");
    assert!(text(&phone, "#receipt-total").await.contains("18,00"));
    shot(&phone, "4d-receipt-phone").await;
    desk.goto(&captured_page).await.expect("captured payment");
    find(&desk, "#receipt-link").await;
    desk.goto(&app.url("/dashboard/messages"))
        .await
        .expect("messages");
    find(&desk, "#not-sending").await;
    assert!(
        text(&desk, "#messages")
            .await
            .contains("Votre téléconsultation avec Dr Camille Martin"),
        "the pay link waits in the outbox without SMTP"
    );
    shot(&desk, "4e-messages").await;

    // 5. A secretary has no Stripe or validate controls; forms without the CSRF token
    //    are refused. The secretary schedules (which they may do) a consultation whose
    //    card is then held, so there is a hold to validate or release on the page.
    let sec = app.secretary(&[&dr]).await;
    let front = browser(&driver, false, "fr-FR", &profiles.path().join("front")).await;
    sign_in(&front, &app, &sec).await;
    assert!(absent(&front, "#stripe-panel").await);
    let held_link = schedule_paid(&front, &app, "M. Bernard").await;
    let phone3 = browser(&driver, true, "fr-FR", &profiles.path().join("phone3")).await;
    pay_on_phone(&phone3, &held_link, "#card-visa").await;
    find(&phone3, "#enter-waiting-room").await;

    // The practitioner has the controls (so their absence below means something).
    desk.goto(&app.url("/dashboard")).await.expect("dashboard");
    let held_page = find(&desk, "#payments a.btn")
        .await
        .attr("href")
        .await
        .expect("attr")
        .expect("the hold's validate link");
    desk.goto(&app.url(&held_page)).await.expect("held payment");
    find(&desk, "#validate-form").await;
    find(&desk, "#release-form").await;
    desk.goto(&captured_page).await.expect("captured payment");
    find(&desk, "#refund-form").await;

    front.goto(&app.url("/dashboard")).await.expect("dashboard");
    assert!(text(&front, "#payments").await.contains("Non capturé"));
    assert!(
        absent(&front, "#payments a.btn").await,
        "no validate button for a secretary"
    );
    assert!(text(&front, "#payments").await.contains("Réussi"));
    shot(&front, "5a-secretary-dashboard").await;
    front
        .goto(&app.url(&held_page))
        .await
        .expect("held payment");
    assert_eq!(text(&front, "#payment-status").await, "Non capturé");
    assert!(absent(&front, "#validate-form").await && absent(&front, "#release-form").await);
    shot(&front, "5b-secretary-held-payment").await;
    front.goto(&captured_page).await.expect("captured payment");
    assert!(absent(&front, "#refund-form").await);

    // A form the secretary may send (scheduling), with a forged token: refused.
    let forged = front
        .execute(
            "return fetch('/dashboard/schedule', { method: 'POST', credentials: 'same-origin', \
             headers: { 'content-type': 'application/x-www-form-urlencoded' }, \
             body: 'csrf_token=forged&patient=X&starts_at=2030-01-01T10%3A00&mode=none' }).then(r => r.status);",
            vec![],
        )
        .await
        .expect("forged form");
    assert_eq!(forged, json!(403));
    let no_token = desk
        .execute(
            "return fetch('/dashboard/stripe/verify', { method: 'POST', credentials: 'same-origin', \
             headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' }).then(r => r.status);",
            vec![],
        )
        .await
        .expect("form without token");
    assert!(
        no_token.as_u64().is_some_and(|s| (400..500).contains(&s)),
        "{no_token}"
    );

    // English, switched on the page, sticks.
    front
        .goto(&app.url("/dashboard?lang=en"))
        .await
        .expect("english");
    front
        .goto(&app.url("/dashboard"))
        .await
        .expect("dashboard again");
    assert!(text(&front, "#payments").await.contains("Succeeded"));
    shot(&front, "5c-secretary-dashboard-en").await;

    for c in [desk, phone, phone2, phone3, front] {
        let _ = c.close().await;
    }
    app.stop().await;
}

/// The waiting room on a phone, in French and in English: the practitioner, the
/// time, a countdown and "your practitioner will let you in", turning by itself into
/// "Join" once the practitioner starts.
#[tokio::test]
async fn the_waiting_room_turns_into_join_when_the_practitioner_starts() {
    if !chromium_available() {
        return;
    }
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.video_url = Some("https://meet.example.org/{room}?jwt={jwt}".into());
        c.video_jwt_secret = Some(app::config::Secret::new(
            "a jitsi app_secret of 32 bytes or more",
        ));
    })
    .await
    else {
        return;
    };
    let dr = app.practitioner("Dr Camille Martin").await;
    app.link_stripe(&dr).await;
    app.set_amounts(&dr, "25.00", "25.00").await;
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().expect("profiles");
    for (lang, waiting, countdown, join) in [
        (
            "fr-FR",
            "Votre praticien va vous faire entrer",
            "Début dans",
            "Rejoindre",
        ),
        (
            "en-GB",
            "Your practitioner will let you in",
            "Starts in",
            "Join",
        ),
    ] {
        let (_, scheduled) = app
            .schedule_at(
                &dr,
                &dr,
                json!({ "mode": "online" }),
                app.clock_now() + chrono::Duration::minutes(10),
            )
            .await;
        let token = scheduled["pay_token"].as_str().expect("token").to_owned();
        let id = scheduled["id"].as_str().expect("id").to_owned();
        app.pay(&token, "pm_card_visa").await;

        let phone = browser(&driver, true, lang, &profiles.path().join(lang)).await;
        phone
            .goto(&app.url(&format!("/pay/{token}")))
            .await
            .expect("pay page");
        find(&phone, "#enter-waiting-room")
            .await
            .click()
            .await
            .expect("enter");
        assert!(text(&phone, "#waiting").await.contains(waiting));
        assert_eq!(text(&phone, "#practitioner").await, "Dr Camille Martin");
        assert!(text(&phone, "#starts-at").await.contains("Europe/Paris"));
        let ticking = text(&phone, "#countdown").await;
        assert!(ticking.starts_with(countdown), "{ticking}");
        assert_eq!(text(&phone, "#join").await, "", "hidden until the start");
        shot(&phone, &format!("6-waiting-room-{lang}")).await;

        let (status, started) = app
            .post(
                &format!("/api/v1/consultations/{id}/start"),
                Some(&dr.token),
                json!({}),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{started}");
        // The page follows the access check by itself.
        let norm = |s: String| s.trim().to_owned();
        let mut shown = String::new();
        for _ in 0..100 {
            shown = norm(text(&phone, "#join").await);
            if shown == join {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(shown, join);
        let href = find(&phone, "#join")
            .await
            .attr("href")
            .await
            .expect("href")
            .expect("a link");
        assert!(href.ends_with(&format!("/pay/{token}/join")), "{href}");
        assert!(
            text(&phone, "#waiting").await.is_empty(),
            "the waiting text is gone"
        );
        shot(&phone, &format!("6-waiting-room-{lang}-started")).await;
        let _ = phone.close().await;
    }
    app.stop().await;
}

/// `/docs` renders the API in Swagger UI under a strict content security policy (its
/// own inline blocks by hash, nothing else).
#[tokio::test]
async fn the_api_docs_render_under_their_content_security_policy() {
    if !chromium_available() {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let headers = reqwest::get(app.url("/docs")).await.expect("docs");
    let csp = headers.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(headers.headers()["x-frame-options"], "DENY");
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().expect("profiles");
    let desk = browser(&driver, false, "en-GB", &profiles.path().join("docs")).await;
    desk.goto(&app.url("/docs")).await.expect("docs");
    let title = text(&desk, ".swagger-ui .info .title").await;
    assert!(title.starts_with("ConsultPay"), "{title}");
    find(&desk, ".opblock").await;
    shot(&desk, "7-api-docs").await;
    let _ = desk.close().await;
    app.stop().await;
}

/// No page scrolls sideways at this viewport's width (tables scroll inside their own
/// box).
async fn fits_width(c: &Client, page: &str) {
    let widths = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .expect("widths");
    let (scroll, inner) = (widths[0].as_u64(), widths[1].as_u64());
    assert!(
        scroll.is_some() && scroll <= inner,
        "{page} scrolls sideways: {widths}"
    );
}

/// The practice's side, in French and in English: sign-in with e-mail and password,
/// the totals that add up, a validation refused above the hold next to the field, a
/// refund confirmed with its amount and Stripe's fee kept; then every staff page on a
/// 390 px phone without sideways scrolling.
#[tokio::test]
async fn the_practice_side_in_both_languages_and_on_a_phone() {
    if !chromium_available() {
        return;
    }
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, first) = app.paid_consultation().await;
    let (_, second) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
    for c in [&first, &second] {
        app.pay(c["pay_token"].as_str().expect("pay token"), "pm_card_visa")
            .await;
    }
    let (status, body) = app
        .post(
            &format!(
                "/api/v1/consultations/{}/validate",
                first["id"].as_str().expect("id")
            ),
            Some(&dr.token),
            json!({ "amount": "18.00" }),
        )
        .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    app.set_password(&dr, "camille@example.org", "correct horse battery")
        .await;
    let first_id = first["id"].as_str().expect("id");
    let captured = format!(
        "/dashboard/payments/{}",
        app.consultation(&dr, first_id).await["payment"]["id"]
            .as_str()
            .expect("payment id")
    );
    let driver = start_driver().await;
    let profiles = tempfile::tempdir().expect("profiles");
    let words = [
        (
            "fr-FR",
            "Connexion",
            "Confirmer le remboursement",
            "au plus",
            "5,00",
        ),
        ("en-GB", "Sign in", "Confirm the refund", "at most", "5.00"),
    ];
    for (lang, sign_in_title, confirm_title, over, five) in words {
        let c = browser(&driver, false, lang, &profiles.path().join(lang)).await;
        c.goto(&app.url("/dashboard/login")).await.expect("login");
        assert!(text(&c, "h1").await.contains(sign_in_title));
        find(&c, "#email")
            .await
            .send_keys("camille@example.org")
            .await
            .expect("email");
        find(&c, "#password")
            .await
            .send_keys("correct horse battery")
            .await
            .expect("pw");
        find(&c, "#sign-in").await.click().await.expect("sign in");
        find(&c, "#sign-out").await;
        shot(&c, &format!("7a-dashboard-{lang}")).await;
        // The totals are the sums of the columns above them.
        let sums = c
            .execute(
                "const num = t => Number(t.replace(/[^0-9−-]/g, '').replace('−', '-'));\
                 const rows = [...document.querySelectorAll('#payments tbody tr[data-payment]')];\
                 const foot = [...document.querySelectorAll('#payments tfoot td.num')].map(td => num(td.textContent));\
                 const cols = foot.map((_, i) => rows.reduce((s, r) => s + num(r.querySelectorAll('td.num')[i].textContent), 0));\
                 return [cols, foot];",
                vec![],
            )
            .await
            .expect("sums");
        assert_eq!(sums[0], sums[1], "{lang}: {sums}");
        // On the hold: 30 is refused next to the field, and no fee is previewed for it.
        let held = find(&c, "#payments a.btn")
            .await
            .attr("href")
            .await
            .expect("attr")
            .expect("href");
        c.goto(&app.url(&held)).await.expect("held payment");
        let amount = find(&c, "#amount").await;
        amount.clear().await.expect("clear");
        amount.send_keys("30,00").await.expect("type");
        find(&c, "#validate-over:not([hidden])").await;
        let mut preview = String::new();
        for _ in 0..50 {
            preview = text(&c, "#validate-preview").await;
            if preview.contains(over) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(preview.contains(over), "{lang}: {preview}");
        let valid = c
            .execute(
                "return document.getElementById('amount').checkValidity();",
                vec![],
            )
            .await
            .expect("validity");
        assert_eq!(valid, json!(false), "the browser will not send it");
        shot(&c, &format!("7b-validate-over-{lang}")).await;
        // The refund asks for confirmation, with the amount and Stripe's fee kept.
        c.goto(&app.url("/dashboard?status=captured"))
            .await
            .expect("captured");
        find(&c, "#filter-note").await;
        c.goto(&app.url(&captured)).await.expect("captured payment");
        assert_eq!(
            find(&c, "#refund-amount")
                .await
                .prop("value")
                .await
                .expect("value")
                .unwrap_or_default(),
            ""
        );
        find(&c, "#refund-amount")
            .await
            .send_keys(five)
            .await
            .expect("amount");
        find(&c, "#refund").await.click().await.expect("refund");
        // The confirmation page (waited for by an element only it has).
        assert!(text(&c, "#refund-confirm-amount").await.contains(five));
        assert!(text(&c, "h1").await.contains(confirm_title));
        find(&c, "#refund-confirm-fee").await;
        shot(&c, &format!("7c-refund-confirm-{lang}")).await;
        find(&c, "#refund-confirm")
            .await
            .click()
            .await
            .expect("confirm");
        find(&c, "#payment-status").await;
        let _ = c.close().await;
    }
    // Every staff page on a phone: nothing scrolls sideways.
    let phone = browser(&driver, true, "fr-FR", &profiles.path().join("phone")).await;
    sign_in(&phone, &app, &dr).await;
    let pages = [
        "/dashboard",
        captured.as_str(),
        "/dashboard/schedule",
        "/dashboard/preferences",
        "/dashboard/services",
        "/dashboard/team",
        "/dashboard/messages",
        "/dashboard/sessions",
        "/dashboard/security",
        "/dashboard/tokens",
    ];
    for (i, page) in pages.iter().enumerate() {
        phone.goto(&app.url(page)).await.expect("page");
        find(&phone, "h1").await;
        fits_width(&phone, page).await;
        shot(&phone, &format!("7d-phone-{i}")).await;
    }
    let _ = phone.close().await;
    app.stop().await;
}
