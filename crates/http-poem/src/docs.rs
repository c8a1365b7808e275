//! `/docs`: the OpenAPI document in Swagger UI, under the same protections as the
//! pages — no framing, no sniffing, no referrer, and a content security policy that
//! allows exactly the page's own inline script and style blocks (by their SHA-256),
//! nothing from elsewhere.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::endpoint::make_sync;
use poem::web::Html;
use poem::{Endpoint, EndpointExt, IntoResponse};
use sha2::{Digest, Sha256};

/// The `'sha256-…'` sources of every `<tag>…</tag>` block of `html`.
fn hashes(html: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start..];
        let Some(body_start) = after.find('>') else {
            break;
        };
        let Some(end) = after.find(&close) else {
            break;
        };
        let body = &after[body_start + 1..end];
        out.push(format!(
            "'sha256-{}'",
            STANDARD.encode(Sha256::digest(body.as_bytes()))
        ));
        rest = &after[end + close.len()..];
    }
    out
}

/// The policy for `html`: its own inline blocks, the spec fetched from here.
pub fn policy(html: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src 'self' data:; \
         connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'",
        hashes(html, "script").join(" "),
        hashes(html, "style").join(" "),
    )
}

/// Swagger UI's page (from poem-openapi) with its headers.
pub fn swagger(html: &str) -> impl Endpoint + use<> {
    let csp = policy(html);
    let html = html.to_owned();
    make_sync(move |_| {
        let mut resp = Html(html.clone()).into_response();
        let headers = resp.headers_mut();
        for (name, value) in [
            ("content-security-policy", csp.as_str()),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ] {
            if let Ok(v) = value.parse() {
                headers.insert(name, v);
            }
        }
        resp
    })
    .map_to_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_inline_block_is_allowed_by_its_own_hash_and_nothing_else() {
        let html = "<style>a{}</style><script charset=\"UTF-8\">x()</script><script>y()</script>";
        let csp = policy(html);
        let digest = |s: &str| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(s)));
        assert!(csp.contains(&format!("script-src {} {};", digest("x()"), digest("y()"))));
        assert!(csp.contains(&format!("style-src {};", digest("a{}"))));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"));
    }
}
