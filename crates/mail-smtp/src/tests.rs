//! The adapter against a real SMTP server (aiosmtpd): what arrives, and what the
//! outbox is told when the server is down.

use std::time::Duration;

use billing_core::Lang;
use billing_core::contact::EmailAddress;
use billing_core::outbox::{Email, FileAttachment, MailError, Mailer};

use crate::SmtpMailer;
use crate::peer::SmtpPeer;

fn email(lang: Lang) -> Email {
    Email {
        id: "0190f7f6-1b4c-7000-8000-000000000001".parse().unwrap(),
        to: EmailAddress::parse("helene.martin@example.org").unwrap(),
        lang,
        subject: "Votre note d'honoraires – téléconsultation du 03/11/2026".into(),
        text: "Bonjour Hélène,\n\n18,00\u{a0}€ ont été débités.\n".into(),
        attachments: vec![FileAttachment {
            name: "note-d-honoraires-2026-000001.pdf".into(),
            content_type: "application/pdf",
            bytes: b"%PDF-1.7 fake".to_vec(),
        }],
    }
}

#[tokio::test]
async fn an_email_arrives_whole_with_its_message_id_language_and_attachment() {
    let Some(peer) = SmtpPeer::start() else {
        return;
    };
    let mailer = SmtpMailer::new(&peer.url(), "Cabinet Estival <cabinet@example.org>").unwrap();
    mailer.send(&email(Lang::Fr)).await.unwrap();
    let got = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        m.message_id.as_deref(),
        Some("0190f7f6-1b4c-7000-8000-000000000001@example.org")
    );
    assert_eq!(m.from.as_deref(), Some("cabinet@example.org"));
    assert_eq!(m.to.as_deref(), Some("helene.martin@example.org"));
    assert_eq!(
        m.subject.as_deref(),
        Some("Votre note d'honoraires – téléconsultation du 03/11/2026")
    );
    assert_eq!(m.content_language.as_deref(), Some("fr"));
    assert!(
        m.text.contains("18,00\u{a0}€ ont été débités"),
        "{}",
        m.text
    );
    assert_eq!(
        m.attachments,
        vec![(
            "note-d-honoraires-2026-000001.pdf".to_owned(),
            b"%PDF-1.7 fake".to_vec()
        )]
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_a_temporary_failure() {
    let Some(mut peer) = SmtpPeer::start() else {
        return;
    };
    peer.stop();
    let mailer = SmtpMailer::new(&peer.url(), "cabinet@example.org").unwrap();
    match mailer.send(&email(Lang::En)).await {
        Err(MailError::Temporary(_)) => {}
        other => panic!("expected a temporary failure, got {other:?}"),
    }
    peer.resume();
    mailer.send(&email(Lang::En)).await.unwrap();
    let got = peer.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].content_language.as_deref(), Some("en"));
}

#[tokio::test]
async fn bad_settings_are_refused_at_start() {
    assert!(SmtpMailer::new("http://example.org", "a@example.org").is_err());
    assert!(SmtpMailer::new("smtp://127.0.0.1:2525", "not a mailbox").is_err());
}

#[test]
fn only_a_refused_recipient_is_final() {
    use crate::refuses_the_recipient as final_;
    assert!(final_(
        true,
        "permanent error (550): 5.1.1 <x@example.org>: user unknown"
    ));
    assert!(final_(
        true,
        "permanent error (550): 5.2.1 mailbox disabled"
    ));
    assert!(
        !final_(true, "permanent error (535): 5.7.8 authentication failed"),
        "a wrong password"
    );
    assert!(!final_(
        true,
        "permanent error (530): 5.7.0 must issue STARTTLS first"
    ));
    assert!(
        !final_(true, "permanent error (550): sender rejected"),
        "no code: retried"
    );
    assert!(!final_(false, "transient error (451): 4.1.1 try later"));
    assert!(
        !final_(true, "permanent error (554): 5.1.11 something"),
        "5.1.1 as a prefix only"
    );
}
