//! The dashboard's session cookie and what is bound to it.
//!
//! - The cookie holds a random session token (`cps_…`); the server keeps the session
//!   (billing-core's `SessionService`): signing out ends it for every copy of the
//!   cookie, and rotating or revoking the staff token it was opened with ends it too.
//! - While the browser holds a session cookie, forms carry an HMAC of its token under a
//!   server key (a synchronizer token): a cookie planted by another site cannot make
//!   one, and it changes with every session. A browser without one (a patient, anyone
//!   before signing in) gets poem's double-submit token, and the sign-in form accepts
//!   poem's token in any case (another tab may have signed in meanwhile).
//! - Every state-changing form also passes an origin check: a browser's
//!   `Sec-Fetch-Site` must say the request came from the server's own pages (or, from
//!   an older browser, its `Origin` must be the server's).

use billing_core::BillingError;
use billing_core::access::{AccessDenied, Actor};
use billing_core::secrets::SessionToken;
use hmac::{Hmac, KeyInit, Mac};
use poem::Request;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use sha2::Sha256;

use crate::state::HttpState;

/// The session cookie's name.
pub const COOKIE: &str = "consultpay_session";

/// The session token the browser presents, if any.
pub fn presented(req: &Request) -> Option<String> {
    req.cookie().get(COOKIE).map(|c| c.value_str().to_owned())
}

/// The signed-in staff member of this request's session. A session that is over (or
/// a cookie that names none) is forgotten by the browser too; a storage outage
/// leaves the cookie for the next request.
pub async fn staff(req: &Request, state: &HttpState) -> Option<Actor> {
    let token = presented(req)?;
    match state.billing.sessions.resume(&token).await {
        Ok(actor @ Actor::Staff(_)) => Some(actor),
        Err(BillingError::Access(AccessDenied::Unauthenticated)) => {
            close(req.cookie(), state);
            None
        }
        _ => None,
    }
}

fn secure(state: &HttpState) -> bool {
    state.settings.public_url.starts_with("https://")
}

fn cookie(value: &str, state: &HttpState) -> Cookie {
    let mut c = Cookie::new_with_str(COOKIE, value);
    c.set_path("/");
    c.set_http_only(true);
    c.set_secure(secure(state));
    c.set_same_site(SameSite::Strict);
    c
}

/// Sets the cookie of a session just opened (a browser session cookie: the server
/// decides when the session ends).
pub fn open(jar: &CookieJar, token: &SessionToken, state: &HttpState) {
    jar.add(cookie(token.expose(), state));
}

/// Makes the browser forget the session cookie. (An expired cookie of the same name
/// and path: poem's `remove` sends one without `Path=/`, which browsers ignore.)
pub fn close(jar: &CookieJar, state: &HttpState) {
    let mut c = cookie("", state);
    c.set_max_age(std::time::Duration::ZERO);
    jar.add(c);
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], session: &str) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"consultpay csrf\0");
    mac.update(session.as_bytes());
    mac
}

/// The CSRF token of forms shown in `session`.
pub fn csrf_token(key: &[u8], session: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(mac(key, session).finalize().into_bytes())
}

/// Whether `token` is the CSRF token of `session` (compared in constant time).
pub fn csrf_valid(key: &[u8], session: &str, token: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|bytes| mac(key, session).verify_slice(&bytes).is_ok())
}

/// Whether a state-changing request may come from where it says it comes from.
/// A browser's `Sec-Fetch-Site` decides: `same-origin`, or `none` (typed by the user).
/// Without it (an older browser), an `Origin` must be `public_origin`, except `null`:
/// our `Referrer-Policy: no-referrer` makes browsers send `null` on their own forms,
/// so it says nothing. Clients that send neither (scripts) rely on the CSRF token
/// alone, as does everything here besides this check.
pub fn same_origin(req: &Request, public_origin: &str) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    header("origin").is_none_or(|origin| origin == "null" || origin == public_origin)
}

/// `scheme://host[:port]` of a URL (what browsers send as `Origin`).
pub fn origin_of(url: &str) -> String {
    let rest_at = url.find("://").map_or(0, |i| i + 3);
    let end = url[rest_at..].find('/').map_or(url.len(), |i| rest_at + i);
    url[..end].to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_is_bound_to_its_session() {
        let key = b"k".repeat(32);
        let a = csrf_token(&key, "cps_a");
        assert!(csrf_valid(&key, "cps_a", &a));
        assert!(!csrf_valid(&key, "cps_b", &a), "another session");
        assert!(!csrf_valid(b"other key", "cps_a", &a), "another server key");
        assert!(!csrf_valid(&key, "cps_a", ""));
        assert!(!csrf_valid(&key, "cps_a", "not base64!"));
    }

    #[test]
    fn only_the_servers_own_origin_may_post() {
        let origin = origin_of("https://Pay.Example.org/base");
        assert_eq!(origin, "https://pay.example.org");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        let req = |headers: &[(&str, &str)]| {
            let mut r = Request::builder().method(poem::http::Method::POST);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.finish()
        };
        assert!(same_origin(&req(&[]), &origin), "no browser headers");
        assert!(same_origin(
            &req(&[
                ("origin", "https://pay.example.org"),
                ("sec-fetch-site", "same-origin")
            ]),
            &origin
        ));
        assert!(!same_origin(
            &req(&[("origin", "https://evil.example")]),
            &origin
        ));
        // What a browser sends from our own form under `Referrer-Policy: no-referrer`;
        // alone, `null` says nothing either way.
        assert!(same_origin(
            &req(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            &origin
        ));
        assert!(same_origin(&req(&[("origin", "null")]), &origin));
        assert!(!same_origin(
            &req(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
            &origin
        ));
        assert!(!same_origin(
            &req(&[("sec-fetch-site", "cross-site")]),
            &origin
        ));
        assert!(!same_origin(
            &req(&[("sec-fetch-site", "same-site")]),
            &origin
        ));
    }
}

/// A short-lived cookie whose value is encrypted and authenticated (AES-GCM under a
/// key derived from the session secret for its `name`): what a browser carries between
/// two steps of a sign-in, which it can neither read nor forge.
#[derive(Debug, Clone, Copy)]
pub struct Sealed {
    /// The cookie's name (also what its key is derived for).
    pub name: &'static str,
    /// The only path it is sent to.
    pub path: &'static str,
    /// `Lax` when a redirect from another site must carry it, else `Strict`.
    pub same_site: SameSite,
}

impl Sealed {
    fn key(&self, state: &HttpState) -> poem::web::cookie::CookieKey {
        poem::web::cookie::CookieKey::derive_from(&super::derive(
            &state.settings.session_secret,
            self.name.as_bytes(),
        ))
    }

    fn cookie(&self, value: &str, state: &HttpState) -> Cookie {
        let mut c = Cookie::new_with_str(self.name, value);
        c.set_path(self.path);
        c.set_http_only(true);
        c.set_secure(secure(state));
        c.set_same_site(self.same_site);
        c
    }

    /// Stores `value` (as JSON) for `ttl`.
    pub fn put<T: serde::Serialize>(
        &self,
        jar: &CookieJar,
        value: &T,
        ttl: std::time::Duration,
        state: &HttpState,
    ) -> Result<(), serde_json::Error> {
        let mut c = self.cookie(&serde_json::to_string(value)?, state);
        c.set_max_age(ttl);
        jar.private_with_key(&self.key(state)).add(c);
        Ok(())
    }

    /// What the browser carries, if it is there and genuine.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        jar: &CookieJar,
        state: &HttpState,
    ) -> Option<T> {
        let key = self.key(state);
        let c = jar.private_with_key(&key).get(self.name)?;
        serde_json::from_str(c.value_str()).ok()
    }

    /// Makes the browser forget it.
    pub fn forget(&self, jar: &CookieJar, state: &HttpState) {
        let mut c = self.cookie("", state);
        c.set_max_age(std::time::Duration::ZERO);
        jar.add(c);
    }
}
