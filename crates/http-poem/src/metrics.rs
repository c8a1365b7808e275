//! Prometheus metrics: requests and latencies by route, payments by transition.

use std::time::Instant;

use billing_core::payment::ledger::{PaymentObserver, StatusChange};
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The server's metrics. Cheap to clone (the collectors are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    transitions: IntCounterVec,
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
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(transitions.clone()),
        ] {
            // Registration only fails for duplicate names, which these are not.
            let _ = registry.register(c);
        }
        Metrics {
            registry,
            requests,
            latency,
            transitions,
        }
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

/// Middleware counting requests and timing them by route pattern (never by raw path,
/// which would put tokens and ids in label values).
#[derive(Clone, Debug)]
pub struct MetricsLayer(pub Metrics);

impl<E: Endpoint> Middleware<E> for MetricsLayer {
    type Output = MetricsEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        MetricsEndpoint {
            next,
            metrics: self.0.clone(),
        }
    }
}

pub struct MetricsEndpoint<E> {
    next: E,
    metrics: Metrics,
}

impl<E> std::fmt::Debug for MetricsEndpoint<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint").finish_non_exhaustive()
    }
}

impl<E: Endpoint> Endpoint for MetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let method = req.method().to_string();
        let started = Instant::now();
        let result = self.next.call(req).await.map(IntoResponse::into_response);
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
            .with_label_values(&[&method, &route, status.as_str()])
            .inc();
        self.metrics
            .latency
            .with_label_values(&[&method, &route])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
