//! Per-client rate limits on what anyone may call without an account: pay-link
//! look-ups (the pages and `/api/v1/pay/…`), sign-in, and Stripe's webhooks. Beyond
//! its quota a client gets `429 rate_limited` with `Retry-After`; other clients are
//! not affected.
//!
//! A client is its IP address: the peer's, or — behind `trusted_proxies` reverse
//! proxies that append to `X-Forwarded-For` — the address the outermost of them saw.
//! Quotas are kept in memory per server (GCRA, `governor`), so behind a load balancer
//! each server grants its own quota; forgotten clients are swept from time to time.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use poem::http::{Method, StatusCode};
use poem::web::RemoteAddr;
use poem::{Addr, Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::problem::Problem;

/// Requests per minute per client for each kind of unauthenticated call (0: none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Pay pages and `/api/v1/pay/…` (pay-token look-ups).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// The client's address: the peer's, or the one the outermost trusted proxy saw.
fn client(req: &Request, trusted_proxies: usize) -> Option<IpAddr> {
    let peer = match req.remote_addr() {
        RemoteAddr(Addr::SocketAddr(a)) => Some(a.ip()),
        _ => None,
    };
    if trusted_proxies == 0 {
        return peer;
    }
    // Each trusted proxy appended the address it received from: the client's is the
    // `trusted_proxies`-th from the right. Anything further left was sent by the
    // client and proves nothing.
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .len()
        .checked_sub(trusted_proxies)
        .and_then(|i| forwarded.get(i).copied())
        .or(peer)
}

struct Limiters {
    pay: Option<DefaultKeyedRateLimiter<IpAddr>>,
    sign_in: Option<DefaultKeyedRateLimiter<IpAddr>>,
    webhook: Option<DefaultKeyedRateLimiter<IpAddr>>,
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

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let l = &self.limits;
        let limiter = match kind(&req) {
            Some(Kind::Pay) => l.pay.as_ref(),
            Some(Kind::SignIn) => l.sign_in.as_ref(),
            Some(Kind::Webhook) => l.webhook.as_ref(),
            None => None,
        };
        if let (Some(limiter), Some(ip)) = (limiter, client(&req, l.trusted_proxies)) {
            if l.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                for limiter in [&l.pay, &l.sign_in, &l.webhook].into_iter().flatten() {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
            if let Err(not_until) = limiter.check_key(&ip) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited")
                    .detail(format!("too many requests: retry in {seconds} s"))
                    .into_response();
                resp.headers_mut()
                    .insert("retry-after", seconds.max(1).into());
                return Ok(resp);
            }
        }
        self.next.call(req).await.map(IntoResponse::into_response)
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

    fn app(limits: RateLimits) -> impl Endpoint {
        Route::new()
            .at("/api/v1/pay/:t/access", get(ok))
            .at("/dashboard/login", post(ok).get(ok))
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
    async fn a_client_beyond_its_quota_is_told_when_to_come_back_and_others_are_not() {
        let cli = TestClient::new(app(limits()));
        let from = |ip: &'static str| {
            cli.get("/api/v1/pay/t/access")
                .header("x-forwarded-for", ip)
        };
        for _ in 0..3 {
            from("203.0.113.1").send().await.assert_status_is_ok();
        }
        let refused = from("203.0.113.1").send().await;
        refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = refused
            .0
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!((1..=20).contains(&retry), "{retry}");
        // Another client, and another kind of call, have their own quotas.
        from("203.0.113.2").send().await.assert_status_is_ok();
        cli.get("/api/v1/me").send().await.assert_status_is_ok();
    }

    #[tokio::test]
    async fn only_the_address_the_trusted_proxy_saw_counts() {
        let cli = TestClient::new(app(limits()));
        // The client cannot choose its address by prepending to X-Forwarded-For: the
        // proxy's own entry (the last) is the one that counts, whatever comes before.
        let attempt = |forged: &'static str| {
            cli.post("/dashboard/login")
                .header("x-forwarded-for", format!("{forged}, 203.0.113.9"))
        };
        attempt("198.51.100.1").send().await.assert_status_is_ok();
        attempt("198.51.100.2").send().await.assert_status_is_ok();
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
