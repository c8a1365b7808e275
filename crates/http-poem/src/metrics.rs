//! Prometheus metrics: requests and latencies by route, payments by transition.

use std::time::Instant;

use billing_core::payment::ledger::{PaymentObserver, StatusChange};
use poem::http::Method;
use poem::middleware::ReqId;
use poem::{Endpoint, IntoResponse, Middleware, PathPattern, Request, Response, Result};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tracing::Instrument;

/// The server's metrics. Cheap to clone (the collectors are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    transitions: IntCounterVec,
    webhooks: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("consultpay".into()), None)
            .unwrap_or_else(|_| Registry::new());
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let transitions = IntCounterVec::new(
            Opts::new("payment_transitions_total", "Payment status changes"),
            &["from", "to"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let webhooks = IntCounterVec::new(
            Opts::new(
                "webhook_events_total",
                "Verified Stripe events by outcome (applied, duplicate, ignored) and, for \
                 ignored ones, why",
            ),
            &["outcome", "reason"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(transitions.clone()),
            Box::new(webhooks.clone()),
        ] {
            // Registration only fails for duplicate names, which these are not.
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            requests,
            latency,
            transitions,
            webhooks,
        }
    }

    /// Counts a verified webhook event by what became of it. The labels are a closed
    /// set (outcomes, and `IgnoreReason` names).
    pub fn webhook(&self, outcome: &'static str, reason: &'static str) {
        self.webhooks.with_label_values(&[outcome, reason]).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Every committed payment status change, whatever caused it (a request, a webhook,
/// reconciliation), counted by `from` and `to`.
impl PaymentObserver for Metrics {
    fn status_changed(&self, change: &StatusChange) {
        self.transitions
            .with_label_values(&[change.from.as_str(), change.to.as_str()])
            .inc();
    }
}

/// Middleware that counts, times and logs every request by its route pattern — never
/// by its raw path or query, which carry pay tokens, OAuth codes and states. Each
/// request runs in a `request` span with its method and request id, and ends with one
/// `response` line (route, status, duration).
#[derive(Clone, Debug)]
pub struct Observe(pub Metrics);

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        ObserveEndpoint {
            next,
            metrics: self.0.clone(),
        }
    }
}

pub struct ObserveEndpoint<E> {
    next: E,
    metrics: Metrics,
}

impl<E> std::fmt::Debug for ObserveEndpoint<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveEndpoint").finish_non_exhaustive()
    }
}

/// A method label from a closed set: any method a client invents is `OTHER`, so label
/// values (and the registry's memory) stay bounded.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let method = method_label(req.method());
        let request_id = req
            .extensions()
            .get::<ReqId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let span = tracing::info_span!("request", method, request_id = %request_id);
        async move {
            let started = Instant::now();
            let result = self.next.call(req).await.map(IntoResponse::into_response);
            let elapsed = started.elapsed();
            let (status, route) = match &result {
                Ok(resp) => (
                    resp.status(),
                    resp.data::<PathPattern>().map(|p| p.0.to_string()),
                ),
                Err(err) => (
                    err.status(),
                    err.data::<PathPattern>().map(|p| p.0.to_string()),
                ),
            };
            let route = route.unwrap_or_else(|| "unmatched".to_owned());
            self.metrics
                .requests
                .with_label_values(&[method, &route, status.as_str()])
                .inc();
            self.metrics
                .latency
                .with_label_values(&[method, &route])
                .observe(elapsed.as_secs_f64());
            tracing::info!(route, status = status.as_u16(), duration = ?elapsed, "response");
            result
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"M1").unwrap()), "OTHER");
        assert_eq!(method_label(&Method::from_bytes(b"M2").unwrap()), "OTHER");
    }

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_are_logged_and_counted_by_route_never_by_token_or_query() {
        use poem::middleware::RequestId;
        use poem::test::TestClient;
        use poem::{EndpointExt, Route, get, handler};

        #[handler]
        fn pay() -> &'static str {
            "ok"
        }

        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let metrics = Metrics::new();
        let app = Route::new()
            .at("/pay/:token", get(pay))
            .with(Observe(metrics.clone()))
            .with(RequestId::default());
        TestClient::new(app)
            .get("/pay/tok_patient_secret?code=ac_oauth_secret&state=st_secret")
            .send()
            .await
            .assert_status_is_ok();

        let logged = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("/pay/:token"), "{logged}");
        assert!(logged.contains("request_id="), "{logged}");
        for secret in ["tok_patient_secret", "ac_oauth_secret", "st_secret"] {
            assert!(!logged.contains(secret), "{secret} in {logged}");
        }
        let exposed = metrics.render();
        assert!(exposed.contains(r#"route="/pay/:token""#), "{exposed}");
        assert!(!exposed.contains("tok_patient_secret"));
    }
}
