//! Who may call the simulator: the `Authorization` header checked against the configured credentials, in
//! constant time, so that the time of an answer tells nothing about how much of a guess was right.

use axum::http::{HeaderMap, header};
use base64::Engine;

use super::config::Auth;

/// The `Authorization` header a well-behaved client sends (`Basic <base64 of user:password>` or
/// `Bearer <token>`): compared as a whole first, so the common case costs no decoding.
pub fn expected_authorization(auth: &Auth) -> Option<Vec<u8>> {
    match auth {
        Auth::None => None,
        Auth::Bearer(token) => Some(format!("Bearer {token}").into_bytes()),
        Auth::Basic { user, password } => Some(
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
                .into_bytes(),
        ),
    }
}

/// Whether a request's headers carry the configured credentials. `expected` is
/// [`expected_authorization`] of `auth`, computed once.
///
/// Every comparison takes constant time over the bytes compared; a header that is not the exact expected
/// form is decoded and its user and password (or token) compared one by one, both always.
pub fn authorized(auth: &Auth, expected: Option<&[u8]>, headers: &HeaderMap) -> bool {
    let raw = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    match (auth, expected) {
        (Auth::None, _) => true,
        (_, Some(expected)) if constant_time_eq(raw, expected) => true,
        (Auth::Bearer(token), _) => bearer_matches(raw, token),
        (Auth::Basic { user, password }, _) => basic_matches(raw, user, password),
    }
}

/// `Bearer <token>`, with spaces around the token allowed.
fn bearer_matches(raw: &[u8], token: &str) -> bool {
    raw.strip_prefix(b"Bearer ").is_some_and(|given| constant_time_eq(given.trim_ascii(), token.as_bytes()))
}

/// `Basic <base64 of user:password>`, with spaces around the base64 allowed; the user is what comes before the
/// first `:` (as RFC 7617 says).
fn basic_matches(raw: &[u8], user: &str, password: &str) -> bool {
    let Some(decoded) = raw
        .strip_prefix(b"Basic ")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64.trim_ascii()).ok())
    else {
        return false;
    };
    let (given_user, given_password) = match decoded.iter().position(|&b| b == b':') {
        Some(colon) => (&decoded[..colon], &decoded[colon + 1..]),
        None => (&decoded[..], &[][..]),
    };
    // `&`, not `&&`: the password is compared even when the user differs.
    constant_time_eq(given_user, user.as_bytes()) & constant_time_eq(given_password, password.as_bytes())
}

/// Whether `given` equals `expected`, in a time that depends only on the length of `given`: every byte is
/// compared (no exit at the first difference), and a length mismatch is folded into the result instead of
/// returning early, so neither which byte differs nor the expected length shows in the timing.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &g) in given.iter().enumerate() {
        // Past the end of `expected` (or when it is empty) compare with a byte of it all the same, or with 0.
        let e = match expected.len() {
            0 => 0,
            len => expected[i % len],
        };
        diff |= g ^ e;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"", b"", true),
            (b"demo", b"demo", true),
            (b"demo", b"demO", false),
            (b"Demo", b"demo", false),
            (b"dem", b"demo", false),
            (b"demoo", b"demo", false),
            (b"", b"demo", false),
            (b"demo", b"", false),
            // Same bytes repeated: the wrap-around of a longer guess must not make it equal.
            (b"abab", b"ab", false),
            (b"ab", b"abab", false),
            (b"\0", b"", false),
        ];
        for (given, expected, equal) in cases {
            assert_eq!(constant_time_eq(given, expected), *equal, "{given:?} vs {expected:?}");
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::AUTHORIZATION, v);
        }
        h
    }

    fn basic(up: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(up))
    }

    #[test]
    fn basic_credentials() {
        let auth = Auth::Basic { user: "demo".into(), password: "pa:ss".into() };
        let expected = expected_authorization(&auth);
        let check = |value: &str| authorized(&auth, expected.as_deref(), &headers(value));
        assert!(check(&basic("demo:pa:ss")));
        assert!(check(&format!("{}  ", basic("demo:pa:ss"))), "spaces around the base64");
        for wrong in ["demo:pa:sS", "demo:pa", "demO:pa:ss", "demo", "demopa:ss", ":pa:ss", "demo:pa:ss "] {
            assert!(!check(&basic(wrong)), "{wrong}");
        }
        assert!(!check("Basic !!!"), "not base64");
        assert!(!check("Bearer demo:pa:ss"));
        assert!(!authorized(&auth, expected.as_deref(), &HeaderMap::new()));
    }

    #[test]
    fn bearer_tokens() {
        let auth = Auth::Bearer("t0ken".into());
        let expected = expected_authorization(&auth);
        let check = |value: &str| authorized(&auth, expected.as_deref(), &headers(value));
        assert!(check("Bearer t0ken"));
        assert!(check("Bearer  t0ken "));
        for wrong in ["Bearer t0ke", "Bearer t0kenn", "Bearer T0KEN", "Bearer ", "t0ken", &basic("t0ken:")] {
            assert!(!check(wrong), "{wrong}");
        }
    }

    #[test]
    fn no_auth_accepts_everything() {
        assert!(authorized(&Auth::None, None, &HeaderMap::new()));
        assert!(authorized(&Auth::None, None, &headers("Basic garbage")));
    }
}
