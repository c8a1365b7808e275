//! The use cases' settings: where the product is reachable and how long things last.

use chrono::Duration;

use crate::money::Currency;
use crate::secrets::{LinkToken, PayToken};
use crate::throttle::SignInThrottle;

/// Settings shared by the use cases. Built by the embedding application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BillingConfig {
    /// Public base URL of the server, without a trailing slash
    /// (`https://pay.example.org`); links given to patients and Stripe start with it.
    pub public_url: String,
    /// How long an OAuth `state` may wait for Stripe's callback.
    pub oauth_state_ttl: Duration,
    /// A hold whose deadline is this close is flagged (C10).
    pub expiring_within: Duration,
    /// A payment left in a transient state this long is re-read from the gateway.
    pub reconcile_after: Duration,
    /// A hold is placed at most this long before its consultation starts (a card hold
    /// lasts 7 days; Stripe's extended authorisation is not assumed). A patient who
    /// pays earlier saves their card, and the hold is placed off-session in time.
    pub hold_lead: Duration,
    /// A hold this close to its deadline, act not yet validated, is renewed
    /// off-session with the saved card.
    pub renew_before: Duration,
    /// Holds of consultations that started longer ago than this are no longer renewed
    /// (they lapse; the dashboard warns first).
    pub renew_until_after_start: Duration,
    /// How long after its start a consultation still admits the patient, and may
    /// still be paid if its hold lapsed.
    pub open_after_start: Duration,
    /// How long before its start a consultation's pass to the video room is valid
    /// (and the practitioner may start it).
    pub pass_open_before: Duration,
    /// The video platform's room URL, with `{room}` and `{jwt}` (e.g.
    /// `https://meet.example.org/{room}?jwt={jwt}`); `None`: the practitioner calls.
    pub video_url: Option<String>,
    /// How far back reconciliation looks at abandoned checkouts.
    pub reconcile_window: Duration,
    /// Currency of new practitioners.
    pub default_currency: Currency,
    /// A dashboard session nobody used for this long is over (signed out).
    pub session_idle: Duration,
    /// A dashboard session is over this long after sign-in, however busy.
    pub session_lifetime: Duration,
    /// How many failed sign-ins are allowed per account and per address.
    pub sign_in_throttle: SignInThrottle,
}

impl BillingConfig {
    /// Settings with the defaults (holds flagged 48 h before their deadline, placed at
    /// most 6 days ahead, renewed 12 h before it; OAuth states valid 15 minutes; EUR for
    /// new practitioners; no video platform) for a server reachable at `public_url` (a
    /// trailing `/` is removed).
    pub fn new(public_url: &str) -> Self {
        BillingConfig {
            public_url: public_url.trim_end_matches('/').to_owned(),
            oauth_state_ttl: Duration::minutes(15),
            expiring_within: Duration::hours(48),
            reconcile_after: Duration::minutes(10),
            hold_lead: Duration::days(6),
            renew_before: Duration::hours(12),
            renew_until_after_start: Duration::days(7),
            open_after_start: Duration::hours(1),
            pass_open_before: Duration::minutes(15),
            video_url: None,
            reconcile_window: Duration::hours(48),
            default_currency: Currency::Eur,
            session_idle: Duration::hours(1),
            session_lifetime: Duration::hours(12),
            sign_in_throttle: SignInThrottle::default(),
        }
    }

    /// The page where the holder of an invitation or reset link sets their password.
    pub fn password_url(&self, token: &LinkToken) -> String {
        format!("{}/dashboard/password/{}", self.public_url, token.expose())
    }

    /// The patient's pay page.
    pub fn pay_url(&self, token: &PayToken) -> String {
        format!("{}/pay/{}", self.public_url, token.expose())
    }

    /// Where a hosted checkout sends the patient back (`outcome` = success | cancel).
    pub fn checkout_return_url(&self, token: &PayToken, outcome: &str) -> String {
        format!("{}?checkout={outcome}", self.pay_url(token))
    }

    /// Stripe's OAuth `redirect_uri`.
    pub fn oauth_redirect_uri(&self) -> String {
        format!("{}/connect/stripe/callback", self.public_url)
    }

    /// Where Stripe's onboarding (Account Links) sends the practitioner back:
    /// `step` is `return` (done or left) or `refresh` (the link expired).
    pub fn onboarding_return_url(&self, step: &str) -> String {
        format!("{}/connect/stripe/onboarding?step={step}", self.public_url)
    }

    /// The practitioner dashboard.
    pub fn dashboard_url(&self) -> String {
        format!("{}/dashboard", self.public_url)
    }
}
