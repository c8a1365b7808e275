//! A masking wrapper for the platform's secrets (API key, webhook signing secret).

use std::fmt;

/// A secret string (Stripe API key, webhook endpoint secret). `Debug` prints
/// `*** ***`; there is no `Display`, so a secret cannot end up in a log line or an
/// error message by accident. [`Secret::expose`] is the one way to read it, used only
/// where it is sent to Stripe or fed to HMAC.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*** ***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Blanks anything in `text` that looks like a Stripe secret (`sk_…`, `rk_…`, `whsec_…`),
/// even the partly masked forms Stripe echoes in some error messages, so gateway
/// messages can be logged and shown safely.
pub(crate) fn redact(text: &str) -> String {
    const PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let next = PREFIXES
            .iter()
            .filter_map(|p| rest.find(p).map(|at| (at, *p)))
            .min_by_key(|(at, _)| *at);
        let Some((at, prefix)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        out.push_str(prefix);
        out.push_str("***");
        let tail = &rest[at + prefix.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '*'))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let s = Secret::new("sk_test_51Hxyz");
        assert_eq!(format!("{s:?}"), "*** ***");
    }

    #[test]
    fn stripe_keys_are_blanked_in_messages() {
        assert_eq!(
            redact("Invalid API Key provided: sk_test_********************ab12."),
            "Invalid API Key provided: sk_test_***."
        );
        assert_eq!(
            redact("key 'sk_live_abc' and whsec_def, then rk_test_x"),
            "key 'sk_live_***' and whsec_***, then rk_test_***"
        );
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("ends with sk_test_"), "ends with sk_test_***");
    }
}
