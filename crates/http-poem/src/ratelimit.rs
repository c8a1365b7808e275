//! Per-client quotas on what anyone may call without an account: pay-link look-ups
//! (the pages and `/api/v1/pay/…`), sign-in, and Stripe's webhooks.
//!
//! What counts is **failures** — a refused answer (`4xx`): a pay token that opens
//! nothing, a wrong sign-in, a webhook that fails its signature. That is what guessing
//! and brute force produce; a patient's waiting room polling its own link, or Stripe
//! delivering real events, costs nothing. A client whose failures exceed the quota is
//! refused every call of that kind — `429 rate_limited` with `Retry-After` — until the
//! quota refills; other clients are not affected.
//!
//! A client is its IP address (an IPv6 client by its /64, what one host or network
//! gets): the peer's, or — behind `trusted_proxies` reverse proxies that append to
//! `X-Forwarded-For` — the address the outermost of them saw. Quotas are kept in memory
//! per server (GCRA, `governor`), so behind a load balancer each server grants its own;
//! forgotten clients are swept from time to time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::{Method, StatusCode};
use poem::web::RemoteAddr;
use poem::{Addr, Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::problem::Problem;

/// Failures per minute per client allowed for each kind of unauthenticated call (0:
/// no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Pay pages and `/api/v1/pay/…` (pay-token look-ups that open nothing).
    pub pay_per_minute: u32,
    /// `POST /dashboard/login`.
    pub sign_in_per_minute: u32,
    /// `POST /webhooks/stripe`.
    pub webhooks_per_minute: u32,
    /// Reverse proxies in front of the server that append the client's address to
    /// `X-Forwarded-For` (0: the peer is the client).
    pub trusted_proxies: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            pay_per_minute: 120,
            sign_in_per_minute: 10,
            webhooks_per_minute: 1200,
            trusted_proxies: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Pay,
    SignIn,
    Webhook,
}

fn kind(req: &Request) -> Option<Kind> {
    let path = req.uri().path();
    if path.starts_with("/pay/") || path.starts_with("/api/v1/pay/") {
        Some(Kind::Pay)
    } else if path == "/dashboard/login" && req.method() == Method::POST {
        Some(Kind::SignIn)
    } else if path == "/webhooks/stripe" {
        Some(Kind::Webhook)
    } else {
        None
    }
}

/// The client as the sign-in throttle counts it (the same address this module keys
/// its quotas by), if the request has one.
pub(crate) fn client_key(req: &Request, trusted_proxies: usize) -> Option<String> {
    client(req, trusted_proxies).map(|ip| ip.to_string())
}

/// The client's address: the peer's, or the one the outermost trusted proxy saw.
fn client(req: &Request, trusted_proxies: usize) -> Option<IpAddr> {
    let peer = match req.remote_addr() {
        RemoteAddr(Addr::SocketAddr(a)) => Some(a.ip()),
        _ => None,
    };
    if trusted_proxies == 0 {
        return peer.map(network);
    }
    // Each trusted proxy appended the address it received from: the client's is the
    // `trusted_proxies`-th entry from the right, whatever it looks like (entries are
    // not filtered first, or a client could shift the count with entries of its own).
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(trusted_proxies)
        .and_then(|i| entries.get(i))
        .and_then(|entry| address(entry))
        .or(peer)
        .map(network)
}

/// An `X-Forwarded-For` entry's address: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:5678`.
fn address(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// What one client is: an IPv4 address, or an IPv6 /64 (one host or network can use
/// every address of its /64).
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

struct Limiters {
    pay: Option<DefaultKeyedRateLimiter<IpAddr>>,
    sign_in: Option<DefaultKeyedRateLimiter<IpAddr>>,
    webhook: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Clients over a quota, per kind, and until when.
    blocked: Mutex<HashMap<(Kind, IpAddr), Instant>>,
    trusted_proxies: usize,
    seen: AtomicU64,
}

fn limiter(per_minute: u32) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// The middleware.
#[derive(Clone)]
pub struct RateLimit(Arc<Limiters>);

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl RateLimit {
    pub fn new(limits: RateLimits) -> Self {
        RateLimit(Arc::new(Limiters {
            pay: limiter(limits.pay_per_minute),
            sign_in: limiter(limits.sign_in_per_minute),
            webhook: limiter(limits.webhooks_per_minute),
            blocked: Mutex::new(HashMap::new()),
            trusted_proxies: limits.trusted_proxies,
            seen: AtomicU64::new(0),
        }))
    }
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        RateLimitEndpoint {
            next,
            limits: self.0.clone(),
        }
    }
}

#[derive(Debug)]
pub struct RateLimitEndpoint<E> {
    next: E,
    limits: Arc<Limiters>,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters").finish_non_exhaustive()
    }
}

/// How many requests between two sweeps of forgotten clients.
const SWEEP_EVERY: u64 = 4096;

fn refused(wait: Duration) -> Response {
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        .detail(format!("too many failed attempts: retry in {seconds} s"))
        .into_response();
    resp.headers_mut().insert("retry-after", seconds.into());
    resp
}

impl Limiters {
    fn limiter(&self, kind: Kind) -> Option<&DefaultKeyedRateLimiter<IpAddr>> {
        match kind {
            Kind::Pay => self.pay.as_ref(),
            Kind::SignIn => self.sign_in.as_ref(),
            Kind::Webhook => self.webhook.as_ref(),
        }
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashMap<(Kind, IpAddr), Instant>> {
        // A panic while holding the lock leaves a map that is still a map.
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `client` is still refused calls of `kind`.
    fn refusal(&self, kind: Kind, client: IpAddr, now: Instant) -> Option<Duration> {
        let mut blocked = self.blocked();
        match blocked.get(&(kind, client)) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                blocked.remove(&(kind, client));
                None
            }
            None => None,
        }
    }

    /// Counts a failure; `Some(wait)` when it exceeds the quota (the client is
    /// refused from now on, for `wait`).
    fn failed(
        &self,
        kind: Kind,
        limiter: &DefaultKeyedRateLimiter<IpAddr>,
        client: IpAddr,
        now: Instant,
    ) -> Option<Duration> {
        let not_until = limiter.check_key(&client).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        self.blocked().insert((kind, client), now + wait);
        Some(wait)
    }

    fn sweep(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for limiter in [&self.pay, &self.sign_in, &self.webhook]
                .into_iter()
                .flatten()
            {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            let now = Instant::now();
            self.blocked().retain(|_, until| *until > now);
        }
    }
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let l = &self.limits;
        let watched = kind(&req).and_then(|kind| {
            let limiter = l.limiter(kind)?;
            Some((kind, limiter, client(&req, l.trusted_proxies)?))
        });
        let Some((kind, limiter, ip)) = watched else {
            return self.next.call(req).await.map(IntoResponse::into_response);
        };
        l.sweep();
        if let Some(wait) = l.refusal(kind, ip, Instant::now()) {
            return Ok(refused(wait));
        }
        let answer = match self.next.call(req).await {
            Ok(out) => out.into_response(),
            Err(e) => e.into_response(),
        };
        if answer.status().is_client_error()
            && let Some(wait) = l.failed(kind, limiter, ip, Instant::now())
        {
            return Ok(refused(wait));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::test::TestClient;
    use poem::{EndpointExt, Route, get, handler, post};

    #[handler]
    fn ok() -> &'static str {
        "ok"
    }

    /// `…/pay/known/access` opens; any other token is a failed guess.
    #[handler]
    fn access(poem::web::Path(token): poem::web::Path<String>) -> Response {
        if token == "known" {
            "ok".into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        }
    }

    #[handler]
    fn wrong() -> StatusCode {
        StatusCode::UNAUTHORIZED
    }

    fn app(limits: RateLimits) -> impl Endpoint {
        Route::new()
            .at("/api/v1/pay/:t/access", get(access))
            .at("/dashboard/login", post(wrong).get(ok))
            .at("/api/v1/me", get(ok))
            .with(RateLimit::new(limits))
    }

    fn limits() -> RateLimits {
        RateLimits {
            pay_per_minute: 3,
            sign_in_per_minute: 2,
            webhooks_per_minute: 0,
            trusted_proxies: 1,
        }
    }

    #[tokio::test]
    async fn failures_beyond_the_quota_refuse_the_client_and_no_one_else() {
        let cli = TestClient::new(app(limits()));
        let from = |ip: &'static str, token: &str| {
            cli.get(format!("/api/v1/pay/{token}/access"))
                .header("x-forwarded-for", ip)
        };
        // A patient polling their own link is never counted.
        for _ in 0..10 {
            from("203.0.113.1", "known")
                .send()
                .await
                .assert_status_is_ok();
        }
        for _ in 0..3 {
            from("203.0.113.1", "guess")
                .send()
                .await
                .assert_status(StatusCode::NOT_FOUND);
        }
        let refused = from("203.0.113.1", "guess").send().await;
        refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = refused
            .0
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
        // From now on, even its good link waits: the guesser learns nothing more.
        from("203.0.113.1", "known")
            .send()
            .await
            .assert_status(StatusCode::TOO_MANY_REQUESTS);
        // Another client, and another kind of call, have their own quotas.
        from("203.0.113.2", "known")
            .send()
            .await
            .assert_status_is_ok();
        cli.get("/api/v1/me").send().await.assert_status_is_ok();
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_proxys_entry_may_carry_a_port() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(address("203.0.113.9:4711"), "203.0.113.9".parse().ok());
        assert_eq!(address("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        assert_eq!(address("unknown"), None);
    }

    #[tokio::test]
    async fn only_the_address_the_trusted_proxy_saw_counts() {
        let cli = TestClient::new(app(limits()));
        // The client cannot choose its address by prepending to X-Forwarded-For: the
        // proxy's own entry (the last) is the one that counts, whatever comes before —
        // even entries that are not addresses, or that carry a port.
        let attempt = |forged: &'static str| {
            cli.post("/dashboard/login")
                .header("x-forwarded-for", format!("{forged}, 203.0.113.9:4711"))
        };
        attempt("198.51.100.1")
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        attempt("not-an-address")
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        attempt("198.51.100.3")
            .send()
            .await
            .assert_status(StatusCode::TOO_MANY_REQUESTS);
        // Reading the sign-in page is not signing in.
        cli.get("/dashboard/login")
            .send()
            .await
            .assert_status_is_ok();
    }
}
