//! The dashboard as a practitioner reads it: the payments table's totals add up its
//! columns (held now, captured, released, refunded, fee, net), and the "Réussi" filter
//! says what it leaves out.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// The amounts of the `<td class="num">` cells of an HTML table row, as cents.
fn amounts(row: &str) -> Vec<i64> {
    row.split("<td class=\"num\">")
        .skip(1)
        .filter_map(|cell| cell.split('<').next())
        .map(|text| {
            let digits: String = text
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '-' || *c == '−')
                .map(|c| if c == '−' { '-' } else { c })
                .collect();
            digits
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("an amount: {text:?}"))
        })
        .collect()
}

#[tokio::test]
async fn the_payments_totals_add_up_their_columns_released_included() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, first) = t.paid_consultation().await;
    let mut consultations = vec![first];
    for _ in 0..2 {
        let (status, c) = t.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        consultations.push(c);
    }
    for c in &consultations {
        t.pay(c["pay_token"].as_str().expect("pay token"), "pm_card_visa")
            .await;
    }
    let id = |i: usize| consultations[i]["id"].as_str().expect("id").to_owned();
    // One validated at 18.00 (7.00 released), one released (25.00), one still held.
    let (status, body) = t
        .post(
            &format!("/api/v1/consultations/{}/validate", id(0)),
            Some(&dr.token),
            json!({ "amount": "18.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .post(
            &format!("/api/v1/consultations/{}/release", id(1)),
            Some(&dr.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    t.sign_in(&dr).await;
    let html = t.html("/dashboard").await;
    let table = html
        .split("<table id=\"payments\">")
        .nth(1)
        .and_then(|r| r.split("</table>").next())
        .expect("the payments table");
    let body = table
        .split("<tbody>")
        .nth(1)
        .and_then(|b| b.split("</tbody>").next())
        .expect("rows");
    let rows: Vec<Vec<i64>> = body
        .split("<tr data-payment")
        .skip(1)
        .map(amounts)
        .collect();
    assert_eq!(rows.len(), 3);
    let foot = table.split("<tfoot>").nth(1).expect("totals");
    let totals = amounts(foot);
    // Columns: held now, captured, released, refunded, fee, net.
    assert_eq!(totals.len(), 6, "{foot}");
    for (column, total) in totals.iter().enumerate() {
        let sum: i64 = rows.iter().map(|r| r[column]).sum();
        assert_eq!(sum, *total, "column {column} adds up");
    }
    assert_eq!(
        &totals[..3],
        [2500, 1800, 700 + 2500],
        "held now, captured, released"
    );

    // The held one says until when to validate it; the captured one no longer does.
    let payment_of = |i: usize| {
        body.split("<tr data-payment=\"")
            .skip(1)
            .map(|r| r.split('"').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()[i]
            .clone()
    };
    let mut saw_held = false;
    for i in 0..3 {
        let page = t
            .html(&format!("/dashboard/payments/{}", payment_of(i)))
            .await;
        if page.contains("id=\"validate-form\"") {
            saw_held = true;
            let notice = page.split("id=\"deadline\"").nth(1).expect("the deadline");
            assert!(plain(notice).contains("À valider avant le"), "{notice}");
            assert!(plain(notice).contains("sinon l'empreinte expire"));
            // The form refuses more than the hold next to the field.
            assert!(page.contains("data-max-amount=\"25.00\""));
            assert!(page.contains("id=\"validate-over\""));
        } else {
            assert!(
                !page.contains("id=\"deadline\""),
                "no deadline once settled"
            );
        }
    }
    assert!(saw_held);
    // The history has its column headers, and says who acted, by name, to another
    // member of the practice.
    let secretary = t.secretary(&[&dr]).await;
    t.sign_in(&secretary).await;
    let mut names = Vec::new();
    for i in 0..3 {
        let page = t
            .html(&format!("/dashboard/payments/{}", payment_of(i)))
            .await;
        let history = page
            .split("<table id=\"history\">")
            .nth(1)
            .expect("history");
        assert!(history.contains("<thead>"), "column headers");
        names.push(plain(history));
    }
    assert!(names.iter().any(|h| h.contains("Dr Estival")), "{names:?}");
    assert!(names.iter().all(|h| !h.contains("Cabinet")), "{names:?}");
    t.sign_in(&dr).await;
    // The fee preview computes no fee above the hold: it says why.
    let preview = t
        .client
        .get(t.url("/dashboard/fee-preview?amount=30,00&currency=EUR&max=25.00"))
        .send()
        .await
        .expect("preview")
        .text()
        .await
        .expect("text");
    assert!(preview.contains("au plus 25,00"), "{preview}");
    let fine = t
        .client
        .get(t.url("/dashboard/fee-preview?amount=18,00&currency=EUR&max=25.00"))
        .send()
        .await
        .expect("preview")
        .text()
        .await
        .expect("text");
    assert!(fine.contains("0,50"), "{fine}");

    // Filtering "Réussi" says what it leaves out.
    let filtered = t.html("/dashboard?status=captured").await;
    assert!(filtered.contains("id=\"filter-note\""));
    assert!(!t.html("/dashboard").await.contains("id=\"filter-note\""));
    t.stop().await;
}
