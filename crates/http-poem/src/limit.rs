//! Request bodies are bounded: a declared `Content-Length` above the limit is refused
//! at once, and any body (chunked included) is read up to the limit and refused beyond
//! it — `413 payload_too_large`; a body that does not arrive within the read timeout
//! (a client that sends part of it and then nothing) is `408 request_timeout`. Bodies
//! here are small JSON or forms, so buffering them is cheap.

use std::time::Duration;

use poem::error::ReadBodyError;
use poem::{Body, Endpoint, Middleware, Request, Result};

use crate::problem::Problem;

#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    /// Largest body, in bytes.
    pub max: usize,
    /// The whole body must arrive within this.
    pub read_timeout: Duration,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        BodyLimitEndpoint { next, limit: *self }
    }
}

#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    next: E,
    limit: BodyLimit,
}

fn too_large() -> poem::Error {
    Problem::new(
        poem::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .into()
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let max = self.limit.max;
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        // Headers cannot be trusted to tell whether a body follows (HTTP/2 frames one
        // without either): read what there is, up to the limit. An empty body costs
        // nothing.
        let read = req.take_body().into_bytes_limit(max);
        let bytes = match tokio::time::timeout(self.limit.read_timeout, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(ReadBodyError::PayloadTooLarge)) => return Err(too_large()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(Problem::new(
                    poem::http::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                )
                .into());
            }
        };
        req.set_body(Body::from_bytes(bytes));
        self.next.call(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::StatusCode;
    use poem::test::TestClient;
    use poem::{EndpointExt, IntoResponse, handler};

    #[handler]
    async fn echo(body: Vec<u8>) -> String {
        body.len().to_string()
    }

    fn app() -> impl Endpoint {
        echo.with(BodyLimit {
            max: 8,
            read_timeout: Duration::from_millis(200),
        })
        .catch_all_error(|e| async move { Problem::from_poem(e).into_response() })
    }

    #[tokio::test]
    async fn bodies_within_the_limit_and_bodiless_requests_pass() {
        let cli = TestClient::new(app());
        cli.get("/").send().await.assert_text("0").await;
        cli.post("/")
            .body("12345678")
            .send()
            .await
            .assert_text("8")
            .await;
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_is_refused_with_408() {
        let cli = TestClient::new(app());
        let first = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"123"))
        });
        let then_nothing = futures_util::stream::pending();
        let resp = cli
            .post("/")
            .header("transfer-encoding", "chunked")
            .body(Body::from_bytes_stream(futures_util::StreamExt::chain(
                first,
                then_nothing,
            )))
            .send()
            .await;
        resp.assert_status(StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_with_413() {
        let cli = TestClient::new(app());
        cli.post("/")
            .body("123456789")
            .send()
            .await
            .assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        let chunk = || Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"123456"));
        let chunks = futures_util::stream::iter(vec![chunk(), chunk(), chunk()]);
        cli.post("/")
            .header("transfer-encoding", "chunked")
            .body(Body::from_bytes_stream(chunks))
            .send()
            .await
            .assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    }
}
