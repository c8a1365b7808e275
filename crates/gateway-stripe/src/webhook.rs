//! Stripe webhook verification: `Stripe-Signature` checked before the body is read.
//!
//! The header is `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]`. The signed
//! payload is `{t}.{raw body}` with the endpoint's signing secret; any `v1` may match
//! (Stripe sends several while a secret is being rolled), each compared in constant
//! time; the timestamp must be within the tolerance (300 s) of the clock port, in
//! either direction. Only then is the body parsed, into the domain's
//! [`WebhookEvent`].
//!
//! A live Connect platform has two endpoints on one URL: the platform's and the
//! Connect one (which receives every event of the connected accounts, where direct
//! charges happen). Each has its own secret; either may sign. An event of the other
//! mode than the server's key (test and live connections share `acct_` ids) is read as
//! ignored, never applied.

use std::sync::Arc;

use billing_core::gateway::{WebhookError, WebhookEvent, WebhookVerifier};
use billing_core::system::Clock;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;
use crate::{transformers, wire};

/// Stripe's default tolerance, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Headers longer than this are not parsed (a real one is about 150 bytes).
const MAX_HEADER_LEN: usize = 4096;
/// At most this many `v1` values are tried.
const MAX_SIGNATURES: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// The [`WebhookVerifier`] for Stripe's signatures. Without a secret it refuses every
/// delivery with [`WebhookError::NotConfigured`] (that is also the sandbox's verifier
/// when no secret is configured: the sandbox hands its events over in process).
pub struct StripeWebhookVerifier {
    secrets: Vec<Secret>,
    clock: Arc<dyn Clock>,
    tolerance_secs: i64,
    livemode: Option<bool>,
}

impl std::fmt::Debug for StripeWebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeWebhookVerifier")
            .field("secrets", &self.secrets)
            .field("tolerance_secs", &self.tolerance_secs)
            .field("livemode", &self.livemode)
            .finish_non_exhaustive()
    }
}

impl StripeWebhookVerifier {
    /// A verifier for the endpoint secret `secret` (`whsec_…`); `None` or an empty
    /// secret means "not configured".
    pub fn new(secret: Option<Secret>, clock: Arc<dyn Clock>) -> Self {
        StripeWebhookVerifier {
            secrets: secret.into_iter().filter(|s| !s.is_empty()).collect(),
            clock,
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            livemode: None,
        }
    }

    /// Also accepts deliveries signed with `secret` (the Connect endpoint's, beside
    /// the platform endpoint's). An empty or absent secret adds nothing.
    pub fn with_secret(mut self, secret: Option<Secret>) -> Self {
        self.secrets
            .extend(secret.into_iter().filter(|s| !s.is_empty()));
        self
    }

    /// The server's mode (`Some(true)` live): events of the other mode are ignored.
    pub fn with_livemode(mut self, livemode: Option<bool>) -> Self {
        self.livemode = livemode;
        self
    }

    /// Changes the timestamp tolerance (seconds, either direction).
    pub fn with_tolerance(mut self, secs: i64) -> Self {
        self.tolerance_secs = secs.max(0);
        self
    }
}

impl WebhookVerifier for StripeWebhookVerifier {
    fn verify(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        if self.secrets.is_empty() {
            return Err(WebhookError::NotConfigured);
        }
        let header = signature_header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(WebhookError::MissingSignature)?;
        let parsed = parse_header(header)?;
        let mut matched = false;
        for secret in &self.secrets {
            let mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                .map_err(|_| WebhookError::NotConfigured)?
                .chain_update(parsed.timestamp_text.as_bytes())
                .chain_update(b".")
                .chain_update(body);
            // Every candidate is checked (no early exit on the first match), each in
            // constant time (`verify_slice` compares with `ctutils`).
            matched = parsed.v1.iter().fold(matched, |ok, sig| {
                mac.clone().verify_slice(sig).is_ok() | ok
            });
        }
        if !matched {
            return Err(WebhookError::BadSignature);
        }
        let now = self.clock.now().timestamp();
        if now.abs_diff(parsed.timestamp) > self.tolerance_secs.unsigned_abs() {
            return Err(WebhookError::Stale);
        }
        let event: wire::Event = serde_json::from_slice(body)
            .map_err(|e| WebhookError::MalformedEvent(e.to_string()))?;
        transformers::webhook_event(&event, self.livemode)
            .map_err(|m| WebhookError::MalformedEvent(m.0))
    }
}

struct SignatureHeader<'h> {
    timestamp: i64,
    /// The timestamp exactly as sent: it is what was signed.
    timestamp_text: &'h str,
    v1: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<SignatureHeader<'_>, WebhookError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(WebhookError::MalformedSignature);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut saw_v1 = false;
    for item in header.split(',') {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => {
                let text = value.trim();
                if timestamp.is_some()
                    || text.is_empty()
                    || text.len() > 12
                    || !text.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(WebhookError::MalformedSignature);
                }
                let t = text
                    .parse::<i64>()
                    .map_err(|_| WebhookError::MalformedSignature)?;
                timestamp = Some((t, text));
            }
            "v1" => {
                saw_v1 = true;
                // A value that is not 32 hex bytes cannot match; it is skipped, as
                // Stripe's libraries do by comparing strings.
                if let Some(sig) = decode_hex(value.trim()).filter(|s| s.len() == 32)
                    && v1.len() < MAX_SIGNATURES
                {
                    v1.push(sig);
                }
            }
            // v0 (test-mode legacy scheme) and unknown schemes are ignored.
            _ => {}
        }
    }
    let (timestamp, timestamp_text) = timestamp.ok_or(WebhookError::MalformedSignature)?;
    if !saw_v1 {
        return Err(WebhookError::MalformedSignature);
    }
    Ok(SignatureHeader {
        timestamp,
        timestamp_text,
        v1,
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp` with the
/// endpoint secret `secret`: for tests and for tools that replay events.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return format!("t={timestamp}"),
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for byte in tag.iter() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decoding_refuses_odd_lengths_and_foreign_digits() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("ABcd"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("é0"), None);
    }

    #[test]
    fn the_header_needs_one_numeric_timestamp_and_a_v1() {
        assert!(parse_header("t=1,v1=00").is_ok());
        assert!(parse_header("v1=00").is_err());
        assert!(parse_header("t=1").is_err());
        assert!(parse_header("t=1,t=2,v1=00").is_err());
        assert!(parse_header("t=-1,v1=00").is_err());
        assert!(parse_header("t=1e3,v1=00").is_err());
        assert!(parse_header(" t = 12 , v1 = 00 ").is_ok());
    }
}
