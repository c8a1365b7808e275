//! `405 Method Not Allowed` says which methods are (RFC 9110 requires `Allow`): the
//! API's methods per path, read once from the OpenAPI document the routes are built
//! from.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// Path patterns (`{param}` matches one segment) and their methods.
#[derive(Clone, Debug, Default)]
pub struct Allowed(Arc<Vec<(Vec<String>, String)>>);

impl Allowed {
    /// From an OpenAPI document (`paths` → methods).
    pub fn from_spec(spec: &str) -> Self {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(spec) else {
            return Allowed::default();
        };
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        let table = paths
            .iter()
            .map(|(path, ops)| {
                let mut methods: Vec<String> = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                methods.sort();
                (
                    path.split('/').map(str::to_owned).collect(),
                    methods.join(", "),
                )
            })
            .collect();
        Allowed(Arc::new(table))
    }

    /// The methods of the pattern `path` matches.
    pub fn of(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.split('/').collect();
        self.0
            .iter()
            .find(|(pattern, _)| {
                pattern.len() == segments.len()
                    && pattern
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
            })
            .map(|(_, methods)| methods.as_str())
    }
}

impl<E: Endpoint> Middleware<E> for Allowed {
    type Output = AllowEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        AllowEndpoint {
            next,
            allowed: self.clone(),
        }
    }
}

#[derive(Debug)]
pub struct AllowEndpoint<E> {
    next: E,
    allowed: Allowed,
}

impl<E: Endpoint> Endpoint for AllowEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let path = req.uri().path().to_owned();
        let mut resp = match self.next.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(methods) = self.allowed.of(&path)
            && let Ok(value) = HeaderValue::from_str(methods)
        {
            resp.headers_mut().insert("allow", value);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_patterns_methods() {
        let spec = r#"{"paths":{
            "/api/v1/consultations/{id}/validate":{"post":{}},
            "/api/v1/consultations/{id}":{"get":{}},
            "/api/v1/services/{id}":{"patch":{},"delete":{}}}}"#;
        let a = Allowed::from_spec(spec);
        assert_eq!(a.of("/api/v1/consultations/42/validate"), Some("POST"));
        assert_eq!(a.of("/api/v1/consultations/42"), Some("GET, HEAD"));
        assert_eq!(a.of("/api/v1/services/7"), Some("DELETE, PATCH"));
        assert_eq!(a.of("/api/v1/consultations//validate"), None);
        assert_eq!(a.of("/elsewhere"), None);
    }
}
