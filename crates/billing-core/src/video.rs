//! The pass to the video room: a short-lived token, signed by the server, that a
//! video platform verifies before admitting anyone (Jitsi Meet's token
//! authentication, or any platform that checks a JWT against a JWKS).
//!
//! The domain decides *who* gets a pass and for *when* ([`PassClaims`]); the
//! [`PassSigner`] port turns the claims into the platform's token format. A pass is
//! issued only while the gate is open (the hold is in place, or no payment is needed)
//! and only within the consultation's window: [`BillingConfig::pass_open_before`]
//! before the start until [`BillingConfig::open_after_start`] after it.
//!
//! [`BillingConfig::pass_open_before`]: crate::config::BillingConfig::pass_open_before
//! [`BillingConfig::open_after_start`]: crate::config::BillingConfig::open_after_start

use chrono::{DateTime, Utc};

use crate::ids::ConsultationId;

/// A room on the video platform: one per consultation, unguessable, in the characters
/// every platform accepts in a URL path (`[a-z0-9-]`, 1 to 64).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a room name is 1 to 64 characters a-z, 0-9 or -")]
pub struct InvalidRoomName;

impl RoomName {
    pub fn parse(name: &str) -> Result<Self, InvalidRoomName> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(RoomName(name.to_owned()))
        } else {
            Err(InvalidRoomName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RoomName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a pass says, before signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassClaims {
    pub consultation: ConsultationId,
    pub room: RoomName,
    /// Shown to the other side in the room.
    pub display_name: String,
    /// The practitioner runs the room; the patient does not.
    pub moderator: bool,
    pub issued_at: DateTime<Utc>,
    /// Not valid before (the window's opening).
    pub not_before: DateTime<Utc>,
    /// Not valid after (the window's end).
    pub expires_at: DateTime<Utc>,
}

/// Signing failed (a key that cannot sign): a server fault, never the caller's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the pass could not be signed: {0}")]
pub struct SignError(pub String);

/// Turns claims into the platform's token, and names rooms.
#[cfg_attr(test, mockall::automock)]
pub trait PassSigner: Send + Sync {
    /// The consultation's room: MUST be deterministic for one key and unguessable
    /// without it (knowing a consultation id does not give its room).
    fn room(&self, consultation: ConsultationId) -> RoomName;

    /// The signed token. MUST carry every claim, and a key id when keys rotate.
    fn sign(&self, claims: &PassClaims) -> Result<String, SignError>;
}

/// A signed pass, and where it opens the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    pub jwt: String,
    /// The platform's URL for this room with this pass, when one is configured.
    pub url: Option<String>,
    pub room: RoomName,
    pub expires_at: DateTime<Utc>,
}

/// The platform's URL for `room` with `jwt`: `{room}` and `{jwt}` in `template`
/// replaced (both are URL-safe as they are).
pub fn room_url(template: &str, room: &RoomName, jwt: &str) -> String {
    template
        .replace("{room}", room.as_str())
        .replace("{jwt}", jwt)
}

/// Why no pass is issued now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DayError {
    #[error("the payment is not authorised: authorise it to enter")]
    PaymentRequired,
    #[error("the waiting room opens at {opens_at}")]
    TooEarly { opens_at: DateTime<Utc> },
    #[error("the consultation is over")]
    ConsultationOver,
    #[error("the consultation was cancelled")]
    ConsultationCancelled,
    #[error("no video platform is configured: the practitioner will call the patient")]
    VideoNotConfigured,
    #[error("the consultation has started: it can no longer be cancelled from the link")]
    CancellationClosed,
    #[error("the act was already validated")]
    AlreadySettled,
    #[error("the consultation has started")]
    AlreadyStarted,
    #[error("no cancellation fee applies to this consultation")]
    NoFeeApplies,
}

impl DayError {
    pub const fn code(&self) -> &'static str {
        match self {
            DayError::PaymentRequired => "payment_required",
            DayError::TooEarly { .. } => "too_early",
            DayError::ConsultationOver => "consultation_over",
            DayError::ConsultationCancelled => "consultation_cancelled",
            DayError::VideoNotConfigured => "video_not_configured",
            DayError::CancellationClosed => "cancellation_closed",
            DayError::AlreadySettled => "already_settled",
            DayError::AlreadyStarted => "consultation_started",
            DayError::NoFeeApplies => "no_fee_applies",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_url_safe_and_bounded() {
        assert!(RoomName::parse("cp-4f2a9c").is_ok());
        for bad in ["", "Room", "a/b", "a b", &"a".repeat(65), "é"] {
            assert_eq!(RoomName::parse(bad), Err(InvalidRoomName), "{bad:?}");
        }
    }

    #[test]
    fn the_url_template_takes_the_room_and_the_pass() {
        let room = RoomName::parse("cp-abc").unwrap();
        assert_eq!(
            room_url("https://meet.example.org/{room}?jwt={jwt}", &room, "x.y.z"),
            "https://meet.example.org/cp-abc?jwt=x.y.z"
        );
    }
}
