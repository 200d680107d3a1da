//! Which origins a client may talk to (design.md §9.2): the provider endpoint's own origin and those its
//! CimiProvider explicitly trusts, nothing else.
//!
//! Every URL the client is about to request — the CloudEntryPoint, an href the provider returned (`baseURI`,
//! collections, ids, operations, `Location`, `CIMI-Job-URI`, next pages) or one a user wrote in a spec — is
//! checked by [`OriginPolicy::check`] first. A URL that fails is refused without a request, so neither the
//! provider's credentials nor a request of any kind reach another server. Origins are compared parsed
//! (scheme and host lowercased by the URL parser, default ports made explicit), never as string prefixes;
//! hrefs with user info, or with a scheme other than `http` and `https`, are refused outright.

use std::fmt;

use url::Url;

use super::error::{CimiError, redact_url};

/// The origin of a URL: scheme, host and port, the unit browsers and this client trust by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url`, or why it cannot carry a request of ours (user info, another scheme, no host).
    pub fn of(url: &Url) -> Result<Origin, String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!("the scheme {scheme:?} is not http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("it carries user info (user@host), which could send credentials elsewhere".into());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| "it has no host".to_string())?;
        let port = url.port_or_known_default().ok_or_else(|| "it has no port".to_string())?;
        Ok(Origin { scheme: scheme.to_string(), host: host.to_ascii_lowercase(), port })
    }

    /// An origin written by a user (`spec.trustedOrigins`): `scheme://host[:port]`, optionally with a
    /// trailing `/`; a path, query, fragment or user info is refused so that nobody believes it narrows
    /// the trust to a path.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url = Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if url.path() != "/" && !url.path().is_empty() || url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{text:?} is not an origin: write only scheme://host[:port]"));
        }
        Origin::of(&url).map_err(|why| format!("{text:?} is not a usable origin: {why}"))
    }

    /// Whether requests to this origin travel in clear text.
    pub fn is_plain_http(&self) -> bool {
        self.scheme == "http"
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// The origins one provider's client may request: the endpoint's and the explicitly trusted ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPolicy {
    endpoint: Origin,
    trusted: Vec<Origin>,
}

impl OriginPolicy {
    /// The policy of a provider whose CloudEntryPoint is `endpoint`, trusting `trusted` origins besides.
    pub fn new(endpoint: &Url, trusted: &[String]) -> Result<Self, CimiError> {
        let endpoint = Origin::of(endpoint).map_err(|why| CimiError::Config(format!("the endpoint: {why}")))?;
        let trusted = trusted
            .iter()
            .map(|t| Origin::parse(t).map_err(|why| CimiError::Config(format!("trustedOrigins: {why}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OriginPolicy { endpoint, trusted })
    }

    /// The endpoint's origin.
    pub fn endpoint(&self) -> &Origin {
        &self.endpoint
    }

    /// Every origin that may be requested, the endpoint's first.
    pub fn origins(&self) -> impl Iterator<Item = &Origin> {
        std::iter::once(&self.endpoint).chain(self.trusted.iter())
    }

    /// Whether `url` may be requested.
    pub fn allows(&self, url: &Url) -> bool {
        Origin::of(url).is_ok_and(|o| self.origins().any(|t| *t == o))
    }

    /// `Ok` when `url` may be requested; otherwise [`CimiError::UntrustedHref`] naming the href, why, and
    /// the fix.
    pub fn check(&self, url: &Url) -> Result<(), CimiError> {
        let href = redact_url(url);
        let origin = Origin::of(url).map_err(|why| CimiError::UntrustedHref { href: href.clone(), reason: why })?;
        if self.origins().any(|t| *t == origin) {
            return Ok(());
        }
        let downgrade = origin.is_plain_http()
            && self.origins().any(|t| !t.is_plain_http() && t.host == origin.host)
            && !self.trusted.iter().any(|t| *t == origin);
        let reason = if downgrade {
            format!(
                "it would downgrade {} to plain http; a provider that really serves {origin} must be listed in \
                 spec.trustedOrigins",
                self.endpoint
            )
        } else {
            format!(
                "its origin {origin} is not the provider's ({}) and not in spec.trustedOrigins; add it there only \
                 if the provider really serves it",
                self.endpoint
            )
        };
        Err(CimiError::UntrustedHref { href, reason })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(endpoint: &str, trusted: &[&str]) -> OriginPolicy {
        let trusted: Vec<String> = trusted.iter().map(|s| (*s).to_string()).collect();
        OriginPolicy::new(&Url::parse(endpoint).unwrap(), &trusted).unwrap()
    }

    /// Resolves `href` against the endpoint as the client does, then checks it.
    fn verdict(p: &OriginPolicy, endpoint: &str, href: &str) -> bool {
        match Url::parse(endpoint).unwrap().join(href) {
            Ok(u) => p.check(&u).is_ok(),
            Err(_) => false,
        }
    }

    #[test]
    fn origins_are_compared_parsed_never_as_prefixes() {
        let ep = "https://p/cimi/cloudEntryPoint";
        let p = policy(ep, &[]);
        let table: &[(&str, bool)] = &[
            ("https://p:443/", true),
            ("https://p/machines/1", true),
            ("HTTPS://P/machines/1", true),
            ("machines/1", true),
            ("/other/path", true),
            ("https://p.evil/", false),
            ("https://p.evil.example/cimi/", false),
            ("https://p@evil/", false),
            ("https://user:pw@p/", false),
            ("//evil/x", false),
            ("http://p/", false),
            ("https://p:8443/", false),
            ("ftp://p/", false),
            ("file:///etc/passwd", false),
            ("javascript:alert(1)", false),
        ];
        for (href, ok) in table {
            assert_eq!(verdict(&p, ep, href), *ok, "{href}");
        }
    }

    #[test]
    fn explicit_default_ports_equal_implicit_ones() {
        let p = policy("https://p:443/cep", &["http://jobs.example:80"]);
        assert!(p.allows(&Url::parse("https://p/x").unwrap()));
        assert!(p.allows(&Url::parse("http://jobs.example/j/1").unwrap()));
        assert!(!p.allows(&Url::parse("http://jobs.example:8080/j/1").unwrap()));
        assert_eq!(p.endpoint().to_string(), "https://p");
    }

    #[test]
    fn trusted_origins_extend_the_endpoint_and_nothing_more() {
        let p = policy("https://p/cep", &["https://jobs.example/", "https://Images.Example:8443"]);
        assert!(p.allows(&Url::parse("https://jobs.example/jobs/1").unwrap()));
        assert!(p.allows(&Url::parse("https://images.example:8443/i/1").unwrap()));
        assert!(!p.allows(&Url::parse("https://images.example/i/1").unwrap()));
        assert!(!p.allows(&Url::parse("https://jobs.example.evil/jobs/1").unwrap()));
    }

    #[test]
    fn a_downgrade_says_so() {
        let p = policy("https://p/cep", &[]);
        let e = p.check(&Url::parse("http://p/machines/1").unwrap()).unwrap_err();
        assert!(matches!(&e, CimiError::UntrustedHref { reason, .. } if reason.contains("downgrade")), "{e}");
        let e = p.check(&Url::parse("https://evil/m").unwrap()).unwrap_err();
        assert!(e.to_string().contains("https://evil") && e.to_string().contains("trustedOrigins"), "{e}");
    }

    #[test]
    fn user_info_is_refused_and_never_shown() {
        let p = policy("https://p/cep", &[]);
        let e = p.check(&Url::parse("https://joe:s3cret@p/x").unwrap()).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn trusted_origins_must_be_origins() {
        for bad in ["https://p/path", "https://p/?q=1", "https://u@p", "ftp://p", "not a url", "https://p/#f"] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
        assert!(Origin::parse("https://p/").is_ok());
        assert!(Origin::parse("http://127.0.0.1:8780").is_ok());
        assert!(Origin::parse("https://[::1]:8443").is_ok());
    }
}
