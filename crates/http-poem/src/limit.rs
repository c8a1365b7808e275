//! Request bodies are bounded: a declared `Content-Length` above the limit is refused
//! at once, and any body (chunked included) is read up to the limit and refused beyond
//! it — `413 payload_too_large`. Bodies here are small JSON or forms, so buffering
//! them is cheap.

use poem::error::ReadBodyError;
use poem::{Body, Endpoint, Middleware, Request, Result};

use crate::problem::Problem;

#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        BodyLimitEndpoint { next, max: self.0 }
    }
}

#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    next: E,
    max: usize,
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
        if declared.is_some_and(|n| n > self.max as u64) {
            return Err(too_large());
        }
        // Headers cannot be trusted to tell whether a body follows (HTTP/2 frames one
        // without either): read what there is, up to the limit. An empty body costs
        // nothing.
        let bytes = match req.take_body().into_bytes_limit(self.max).await {
            Ok(b) => b,
            Err(ReadBodyError::PayloadTooLarge) => return Err(too_large()),
            Err(e) => return Err(e.into()),
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
        echo.with(BodyLimit(8))
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
