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

/// A room name outside `[a-z0-9-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a room name is 1 to 64 characters a-z, 0-9 or -")]
pub struct InvalidRoomName;

impl RoomName {
    /// Accepts 1 to 64 characters `a-z`, `0-9` or `-`.
    ///
    /// # Errors
    ///
    /// [`InvalidRoomName`] otherwise.
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

    /// The name, as it goes in the room's URL.
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
    /// The consultation the pass is for.
    pub consultation: ConsultationId,
    /// Its room.
    pub room: RoomName,
    /// Shown to the other side in the room.
    pub display_name: String,
    /// The practitioner runs the room; the patient does not.
    pub moderator: bool,
    /// When the pass was issued.
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
#[non_exhaustive]
pub struct Pass {
    /// The signed token the platform verifies.
    pub jwt: String,
    /// The platform's URL for this room with this pass, when one is configured.
    pub url: Option<String>,
    /// The room it opens.
    pub room: RoomName,
    /// When it stops opening the room (the window's end).
    pub expires_at: DateTime<Utc>,
}

/// The platform's URL for `room` with `jwt`: `{room}` and `{jwt}` in `template`
/// replaced (both are URL-safe as they are).
pub fn room_url(template: &str, room: &RoomName, jwt: &str) -> String {
    template
        .replace("{room}", room.as_str())
        .replace("{jwt}", jwt)
}

/// Why the consultation's day refuses something now: a pass, a start, a
/// cancellation, a reschedule or a missed-consultation fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DayError {
    /// The patient's payment is not authorised (no hold in place).
    #[error("the payment is not authorised: authorise it to enter")]
    PaymentRequired,
    /// Before the consultation's window opens.
    #[error("the waiting room opens at {opens_at}")]
    TooEarly {
        /// When it opens.
        opens_at: DateTime<Utc>,
    },
    /// The window has closed, the act was validated, or the patient did not come.
    #[error("the consultation is over")]
    ConsultationOver,
    /// The consultation was cancelled.
    #[error("the consultation was cancelled")]
    ConsultationCancelled,
    /// No video platform is configured: no pass to issue.
    #[error("no video platform is configured: the practitioner will call the patient")]
    VideoNotConfigured,
    /// The patient may cancel only before the start.
    #[error("the consultation has started: it can no longer be cancelled from the link")]
    CancellationClosed,
    /// The act was validated: the day can no longer change.
    #[error("the act was already validated")]
    AlreadySettled,
    /// The consultation has started: it can no longer be rescheduled.
    #[error("the consultation has started")]
    AlreadyStarted,
    /// No missed-consultation fee applies (not a late cancellation, or the policy has no
    /// fee).
    #[error("no cancellation fee applies to this consultation")]
    NoFeeApplies,
}

impl DayError {
    /// The stable problem code (`payment_required`, `too_early`, …).
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
