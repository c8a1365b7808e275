//! # mail-smtp
//!
//! ConsultPay's mail adapter: implements `billing-core`'s [`Mailer`] port over SMTP
//! with [lettre](https://lettre.rs) (`smtp://` plain or with `?tls=required`
//! STARTTLS, `smtps://` implicit TLS; rustls on ring, like the rest of the server).
//!
//! Every e-mail carries `Message-ID: <{outbox id}@{sender's domain}>`, the same on
//! every attempt: a message sent again after a crash between the SMTP server's
//! acceptance and the outbox's "sent" mark is recognisably the same message. The
//! server's answer decides what the outbox does next: a refusal of the recipient (a
//! 5xx answer with an enhanced status code saying the mailbox is unknown, disabled or
//! unroutable) is final; anything else — connection refused, timeouts, 4xx, and the
//! server-wide 5xx answers of a misconfiguration (authentication, TLS required, the
//! sender refused) — is retried later, so a wrong password loses nothing.

use async_trait::async_trait;
use billing_core::outbox::{Email, MailError, Mailer};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Why the mailer could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("CONSULTPAY_SMTP_URL is not a valid SMTP URL: {0}")]
    Url(String),
    #[error("CONSULTPAY_MAIL_FROM is not a mailbox (\"Name <address>\" or an address): {0}")]
    From(String),
}

/// Sends over one SMTP server, from one sender.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of Message-IDs: the sender's domain.
    id_domain: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// `Content-Language`, so mail clients know which language the message is in.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ContentLanguage(&'static str);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        match s {
            "fr" => Ok(ContentLanguage("fr")),
            "en" => Ok(ContentLanguage("en")),
            other => Err(format!("unknown language {other}").into()),
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.to_owned())
    }
}

impl SmtpMailer {
    /// A mailer for `url` (see lettre's `from_url`: `smtp://host:port`,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://user:pass@host:465`) sending
    /// from `from`. Build it inside a Tokio runtime (its connection pool lives there).
    pub fn new(url: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| SmtpConfigError::Url(e.to_string()))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e: lettre::address::AddressError| SmtpConfigError::From(e.to_string()))?;
        let id_domain = from.email.domain().to_owned();
        Ok(SmtpMailer {
            transport,
            from,
            id_domain,
        })
    }

    /// The RFC 5322 message for `email`.
    pub fn message(&self, email: &Email) -> Result<Message, MailError> {
        let to: Mailbox = email
            .to
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Permanent(e.to_string()))?;
        let builder = Message::builder()
            .message_id(Some(format!("<{}@{}>", email.id, self.id_domain)))
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentLanguage(email.lang.code()));
        let text = SinglePart::plain(email.text.clone());
        let built = if email.attachments.is_empty() {
            builder.singlepart(text)
        } else {
            let mut parts = MultiPart::mixed().singlepart(text);
            for a in &email.attachments {
                let kind = ContentType::parse(a.content_type)
                    .map_err(|e| MailError::Permanent(e.to_string()))?;
                parts =
                    parts.singlepart(Attachment::new(a.name.clone()).body(a.bytes.clone(), kind));
            }
            builder.multipart(parts)
        };
        built.map_err(|e| MailError::Permanent(e.to_string()))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = self.message(email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if refuses_the_recipient(e.is_permanent(), &e.to_string()) => {
                tracing::warn!(message = %email.id, error = %e, "the mail server refused a message");
                Err(MailError::Permanent(e.to_string()))
            }
            Err(e) => {
                tracing::warn!(message = %email.id, error = %e, "sending a message failed; it will be retried");
                Err(MailError::Temporary(e.to_string()))
            }
        }
    }
}

/// The enhanced status codes (RFC 3463) that refuse this recipient for good: unknown
/// mailbox, system or address syntax, a moved mailbox, no mail exchanger, a disabled
/// mailbox.
const RECIPIENT_REFUSALS: [&str; 6] = ["5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"];

/// Whether a failed send refused the recipient for good (lettre does not say at which
/// command an answer came, so the enhanced status code of a permanent answer decides).
fn refuses_the_recipient(permanent: bool, answer: &str) -> bool {
    permanent
        && RECIPIENT_REFUSALS.iter().any(|code| {
            answer
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .any(|word| word == *code)
        })
}

#[cfg(feature = "test-peer")]
pub mod peer;

#[cfg(test)]
mod tests;
