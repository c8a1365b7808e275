//! The patient's side after the act, through HTTP on SQLite and PostgreSQL: the pay
//! page at each status in French and English, the note d'honoraires and credit notes
//! as PDF (read back with poppler's `pdftotext`), and gap-free numbering under
//! concurrent captures.

use billing_core::Lang;
use chrono::{Datelike, Duration};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Staff, TestApp, pdf_text, plain, squash};
use crate::on_every_backend;

async fn get_bytes(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = app.client.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, resp.bytes().await.expect("body").to_vec())
}

async fn validate(app: &TestApp, dr: &Staff, consultation: &str, amount: &str) -> Value {
    let (status, p) = app
        .post(
            &format!("/api/v1/consultations/{consultation}/validate"),
            Some(&dr.token),
            json!({ "amount": amount }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    p
}

async fn refund(app: &TestApp, dr: &Staff, payment: &str, amount: &str) -> Value {
    let (status, r) = app
        .post(
            &format!("/api/v1/payments/{payment}/refunds"),
            Some(&dr.token),
            json!({ "amount": amount }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    r
}

/// The pay page's text in `lang`, no-break spaces made plain.
async fn page(app: &TestApp, token: &str, lang: &str) -> String {
    plain(&app.html(&format!("/pay/{token}?lang={lang}")).await)
}

fn ids(scheduled: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().expect("string").to_owned();
    (
        s(&scheduled["pay_token"]),
        s(&scheduled["id"]),
        s(&scheduled["payment"]["id"]),
    )
}

fn today(app: &TestApp, lang: Lang) -> String {
    plain(&billing_core::format::date(
        app.clock_now(),
        billing_core::practitioner::model::TimeZone::default().tz(),
        lang,
    ))
}

#[tokio::test]
async fn the_pay_page_tells_the_patient_what_happened_at_each_step_in_both_languages() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let (token, consultation, payment) = ids(&scheduled);

        // Before paying: the hold, the time zone, how long a hold lasts, cancellation;
        // no word about Stripe's fees (the patient would read it as an extra charge).
        let fr = page(&app, &token, "fr").await;
        for expected in [
            "Montant de l'empreinte bancaire",
            "25,00 €",
            "(Europe/Paris)",
            "reste valable 7 jours",
            "Si la consultation est annulée, l'empreinte est libérée",
            "Payer maintenant",
        ] {
            assert!(fr.contains(expected), "missing {expected:?} in\n{fr}");
        }
        assert!(!fr.contains("Des frais sont appliqués par Stripe"), "{fr}");
        let en = page(&app, &token, "en").await;
        for expected in [
            "A card hold lasts at most 7 days",
            "If the consultation is cancelled",
            "€25.00",
        ] {
            assert!(en.contains(expected), "missing {expected:?} in\n{en}");
        }
        assert!(!en.contains("Stripe charges a fee"), "{en}");

        // Held: the waiting room.
        app.pay(&token, "pm_card_visa").await;
        let fr = page(&app, &token, "fr").await;
        assert!(fr.contains("Entrer en salle d'attente"), "{fr}");
        assert!(fr.contains(r#"id="enter-waiting-room""#), "{fr}");

        // After the act: what was charged and released, in words, with the receipt;
        // no hold wording and no waiting room.
        validate(&app, &dr, &consultation, "18.00").await;
        let day_fr = today(&app, Lang::Fr);
        let fr = page(&app, &token, "fr").await;
        assert!(fr.contains(&format!("18,00 € débités le {day_fr}")), "{fr}");
        assert!(fr.contains("7,00 € libérés"), "{fr}");
        assert!(
            fr.contains("Télécharger la note d'honoraires (PDF)"),
            "{fr}"
        );
        for gone in [
            "Montant de l'empreinte",
            "votre carte n'est pas débitée",
            "Entrer en salle d'attente",
            "reste valable 7 jours",
        ] {
            assert!(
                !fr.contains(gone),
                "{gone:?} still shown after the act:\n{fr}"
            );
        }
        let (status, _, _) = get_bytes(&app, &format!("/pay/{token}/waiting-room"), None).await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "the waiting room is closed after the act"
        );
        let en = page(&app, &token, "en").await;
        assert!(
            en.contains(&format!("€18.00 charged on {}", today(&app, Lang::En))),
            "{en}"
        );
        assert!(en.contains("€7.00 released (never charged)"), "{en}");
        assert!(en.contains("Download the receipt (PDF)"), "{en}");

        // A refund: the amount and its date, and the credit note.
        refund(&app, &dr, &payment, "5.00").await;
        let fr = page(&app, &token, "fr").await;
        assert!(
            fr.contains(&format!("5,00 € remboursés le {day_fr}")),
            "{fr}"
        );
        assert!(fr.contains("Télécharger l'avoir"), "{fr}");
        let en = page(&app, &token, "en").await;
        assert!(en.contains("€5.00 refunded on"), "{en}");

        // Released: nothing was charged.
        let (status, other) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        assert_eq!(status, StatusCode::CREATED, "{other}");
        let (other_token, other_consultation, _) = ids(&other);
        app.pay(&other_token, "pm_card_visa").await;
        validate(&app, &dr, &other_consultation, "0").await;
        let fr = page(&app, &other_token, "fr").await;
        assert!(fr.contains("rien n'a été débité"), "{fr}");
        assert!(!fr.contains("Entrer en salle d'attente"), "{fr}");
        let en = page(&app, &other_token, "en").await;
        assert!(en.contains("nothing was charged"), "{en}");

        // Declined: what to do.
        let (_, third) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        let (third_token, _, _) = ids(&third);
        let page_url = app.open_checkout(&third_token).await;
        app.submit_card(&page_url, "pm_card_chargeDeclined").await;
        let fr = page(&app, &third_token, "fr").await;
        assert!(fr.contains("Votre carte a été refusée"), "{fr}");
        assert!(fr.contains("Essayez avec une autre carte"), "{fr}");

        // Held, but the consultation's time is over: no waiting room, the practitioner
        // will validate.
        app.pay(&third_token, "pm_card_visa").await;
        app.advance_clock(Duration::hours(4)).await;
        let fr = page(&app, &third_token, "fr").await;
        assert!(fr.contains("L'heure de la consultation est passée"), "{fr}");
        assert!(!fr.contains(r#"id="enter-waiting-room""#), "{fr}");
        let (_, access) = app
            .get(&format!("/api/v1/pay/{third_token}/access"), None)
            .await;
        assert_eq!(
            access["can_enter"], true,
            "the gate itself stays the hold (C4)"
        );

        // Expired: renewed holds stop a week after the consultation; the last one
        // lapses unvalidated.
        app.advance_clock(Duration::days(16)).await;
        let fr = page(&app, &third_token, "fr").await;
        assert!(
            fr.contains("L'empreinte bancaire a expiré sans être débitée"),
            "{fr}"
        );
        assert!(!fr.contains("Payer maintenant"), "{fr}");
        let en = page(&app, &third_token, "en").await;
        assert!(
            en.contains("The hold on your card expired without being charged"),
            "{en}"
        );
    });
}

#[tokio::test]
async fn receipts_and_credit_notes_are_pdfs_that_never_change() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let (token, consultation, payment) = ids(&scheduled);
        let profile = format!("/api/v1/practitioners/{}/profile", dr.id);
        let (status, saved) = app
            .put(
                &profile,
                Some(&dr.token),
                json!({
                    "profession": "Psychologue",
                    "address": "Hôpital Saint-Éloi\n34000 Montpellier",
                    "health_id": "10000000009",
                    "siret": "732 829 320 00074",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["health_register"], "RPPS");
        assert_eq!(
            saved["vat_mention"],
            "TVA non applicable, article 261-4-1° du CGI"
        );
        let (status, bad) = app
            .put(
                &profile,
                Some(&dr.token),
                json!({ "siret": "12345678901234" }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(bad["code"], "validation_failed");
        let secretary = app.secretary(&[&dr]).await;
        let (status, _) = app
            .put(
                &profile,
                Some(&secretary.token),
                json!({ "profession": "x" }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a secretary cannot change it"
        );

        // Nothing before the capture.
        app.pay(&token, "pm_card_visa").await;
        let receipt_api = format!("/api/v1/payments/{payment}/receipt.pdf");
        let (status, _, body) = get_bytes(&app, &receipt_api, Some(&dr.token)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let problem: Value = serde_json::from_slice(&body).expect("problem");
        assert_eq!(problem["code"], "receipt_not_issued");
        let (status, _, _) = get_bytes(&app, &format!("/pay/{token}/receipt.pdf"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        validate(&app, &dr, &consultation, "18.00").await;
        let year = app.clock_now().year();
        let (status, kind, pdf) =
            get_bytes(&app, &format!("/pay/{token}/receipt.pdf?lang=fr"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kind, "application/pdf");
        if let Some(text) = pdf_text(&pdf) {
            for expected in [
                "Note d'honoraires".to_owned(),
                format!("N° {year}-000001"),
                "Dr Estival".to_owned(),
                "Psychologue".to_owned(),
                "Hôpital Saint-Éloi".to_owned(),
                "RPPS 10000000009".to_owned(),
                "SIRET 73282932000074".to_owned(),
                "Patient : M. Dupont".to_owned(),
                "Téléconsultation".to_owned(),
                "Carte bancaire, via Stripe".to_owned(),
                "Montant réglé".to_owned(),
                "18,00 €".to_owned(),
                format!("Date du paiement {}", today(&app, Lang::Fr)),
                "TVA non applicable, article 261-4-1° du CGI".to_owned(),
            ] {
                assert!(
                    squash(&text).contains(&squash(&expected)),
                    "missing {expected:?} in\n{text}"
                );
            }
        }
        let (_, _, pdf_en) =
            get_bytes(&app, &format!("/pay/{token}/receipt.pdf?lang=en"), None).await;
        if let Some(text_en) = pdf_text(&pdf_en) {
            assert!(text_en.contains("Receipt (note d'honoraires)"), "{text_en}");
            assert!(text_en.contains("€18.00"), "{text_en}");
        }
        let html = plain(&app.html(&format!("/pay/{token}/receipt?lang=fr")).await);
        assert!(html.contains(&format!("N° {year}-000001")), "{html}");

        // Editing the profile later does not rewrite the receipt.
        let (status, _) = app
            .put(
                &profile,
                Some(&dr.token),
                json!({ "address": "1 place Neuve, Lyon" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, _, again) = get_bytes(&app, &receipt_api, Some(&dr.token)).await;
        if let Some(again) = pdf_text(&again) {
            assert!(
                again.contains("Hôpital Saint-Éloi") && !again.contains("Lyon"),
                "{again}"
            );
        }

        // A refund issues a credit note that refers to the receipt.
        refund(&app, &dr, &payment, "5.00").await;
        let (status, detail) = app
            .get(&format!("/api/v1/payments/{payment}"), Some(&dr.token))
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let docs = detail["documents"].as_array().expect("documents");
        assert_eq!(docs.len(), 2, "{detail}");
        assert_eq!(docs[0]["kind"], "receipt");
        assert_eq!(docs[1]["kind"], "credit_note");
        let note = format!("{year}-000002");
        assert_eq!(docs[1]["number"], note.as_str());
        assert_eq!(docs[1]["refers_to"], format!("{year}-000001").as_str());
        assert_eq!(docs[1]["amount"], "5.00");
        let url = docs[1]["pdf_url"].as_str().expect("pdf_url");
        let (status, _, pdf) = get_bytes(&app, url, Some(&dr.token)).await;
        assert_eq!(status, StatusCode::OK);
        if let Some(text) = pdf_text(&pdf) {
            for expected in [
                "Avoir".to_owned(),
                format!("N° {note}"),
                "Montant remboursé".to_owned(),
                "5,00 €".to_owned(),
                format!("Avoir sur la note d'honoraires n° {year}-000001"),
            ] {
                assert!(
                    squash(&text).contains(&squash(&expected)),
                    "missing {expected:?} in\n{text}"
                );
            }
        }
        let (status, _, _) =
            get_bytes(&app, &format!("/pay/{token}/credit-notes/{note}.pdf"), None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the patient gets the credit note too"
        );

        // The accountant's export: the receipt number in both formats; the French one
        // as French Excel reads it.
        let (status, _, csv) =
            get_bytes(&app, "/api/v1/payments.csv?format=fr", Some(&dr.token)).await;
        assert_eq!(status, StatusCode::OK);
        let csv = String::from_utf8(csv).expect("utf-8");
        assert!(
            csv.starts_with("\u{feff}Paiement;Consultation;Créé le;"),
            "{csv}"
        );
        let line = csv
            .lines()
            .find(|l| l.starts_with(&payment))
            .expect("the payment's line");
        let cells: Vec<&str> = line.split(';').collect();
        assert_eq!(cells[8], "18,00", "{line}");
        assert_eq!(cells[9], "5,00", "{line}");
        assert_eq!(cells[14], format!("{year}-000001"), "{line}");
        assert!(
            cells[2].contains('/') && cells[2].len() == "27/11/2026 14:30".len(),
            "{line}"
        );
        let (_, _, standard) = get_bytes(&app, "/api/v1/payments.csv", Some(&dr.token)).await;
        let standard = String::from_utf8(standard).expect("utf-8");
        assert!(
            standard
                .lines()
                .next()
                .unwrap_or_default()
                .ends_with(",receipt_number")
        );
        assert!(
            standard.contains(",18.00,5.00,") && standard.contains(&format!(",{year}-000001")),
            "{standard}"
        );

        // Nobody else gets them.
        let other = app.practitioner("Dr Autre").await;
        let (status, _, _) = get_bytes(&app, &receipt_api, Some(&other.token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get_bytes(&app, url, Some(&other.token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = get_bytes(&app, &receipt_api, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (_, other_scheduled) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        let (other_token, _, _) = ids(&other_scheduled);
        let (status, _, _) = get_bytes(
            &app,
            &format!("/pay/{other_token}/credit-notes/{note}.pdf"),
            None,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "a pay token opens its own documents only"
        );
        let (status, _, _) = get_bytes(
            &app,
            &format!("/api/v1/payments/{payment}/credit-notes/not-a-number.pdf"),
            Some(&dr.token),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    });
}

#[tokio::test]
async fn receipt_numbers_have_no_gap_under_concurrent_captures() {
    const CAPTURES: usize = 50;
    on_every_backend!(|app| {
        let dr = app.practitioner("Dr Estival").await;
        app.link_stripe(&dr).await;
        app.set_amounts(&dr, "25.00", "25.00").await;
        let mut consultations = Vec::new();
        for _ in 0..CAPTURES {
            let (status, s) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
            assert_eq!(status, StatusCode::CREATED, "{s}");
            let (token, consultation, payment) = ids(&s);
            app.pay(&token, "pm_card_visa").await;
            consultations.push((consultation, payment));
        }
        let tasks: Vec<_> = consultations
            .iter()
            .map(|(consultation, _)| {
                let (client, url, token) = (
                    app.client.clone(),
                    app.url(&format!("/api/v1/consultations/{consultation}/validate")),
                    dr.token.clone(),
                );
                tokio::spawn(async move {
                    client
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({ "amount": "18.00" }))
                        .send()
                        .await
                        .expect("validate")
                        .status()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("task"), StatusCode::OK);
        }
        let mut seqs = Vec::new();
        for (_, payment) in &consultations {
            let (_, detail) = app
                .get(&format!("/api/v1/payments/{payment}"), Some(&dr.token))
                .await;
            let number = detail["documents"][0]["number"]
                .as_str()
                .expect("number")
                .to_owned();
            seqs.push(
                number
                    .split_once('-')
                    .expect("YYYY-N")
                    .1
                    .parse::<u32>()
                    .expect("seq"),
            );
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=CAPTURES as u32).collect::<Vec<_>>());
    });
}
