//! What the doctor is given and how it probes: a URL or a CimiProvider name ([`is_url`]), credentials from a
//! file or the environment (never from the command line), and the clients it probes with (short timeouts,
//! one retry), whose transport also gives the raw answers the deviation checks look at.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::cimi::transport::{Request, Response};
use crate::cimi::{Auth, CimiClient, CimiError, ClientConfig, Format};
use crate::plugin::error::PluginError;

/// Whether the doctor's argument is a URL rather than a CimiProvider name.
pub fn is_url(target: &str) -> bool {
    target.starts_with("http://") || target.starts_with("https://")
}

/// Credentials from a YAML or JSON file (`username`/`password` or `token`).
pub fn auth_from_file(path: &Path) -> Result<Auth, PluginError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PluginError::Usage(format!("cannot read the credentials file {}: {e}", path.display())))?;
    let map: BTreeMap<String, String> = serde_yaml::from_str(&text)
        .map_err(|e| PluginError::Usage(format!("{} is not a YAML or JSON map of strings: {e}", path.display())))?;
    let data = map.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    crate::plugin::connect::auth_from_data(&data, &path.display().to_string())
        .map_err(|e| PluginError::Usage(e.to_string()))
}

/// Credentials from the environment: `CIMI_USERNAME` and `CIMI_PASSWORD`, or `CIMI_TOKEN`; none otherwise.
pub fn auth_from_env(var: impl Fn(&str) -> Option<String>) -> Auth {
    match (var("CIMI_USERNAME"), var("CIMI_PASSWORD"), var("CIMI_TOKEN")) {
        (Some(username), Some(password), _) => Auth::Basic { username, password: crate::cimi::Secret::new(password) },
        (_, _, Some(token)) => Auth::Bearer(crate::cimi::Secret::new(token)),
        _ => Auth::None,
    }
}

/// A probing copy of a client configuration: short timeouts, one retry, the given format and credentials.
pub(super) fn probe_config(base: &ClientConfig, format: Format, auth: Auth) -> ClientConfig {
    let mut c = base.clone();
    c.transport.format = format;
    c.transport.auth = auth;
    c.transport.retry.max_attempts = 2;
    c.transport.request_timeout = Duration::from_secs(15);
    c.transport.connect_timeout = Duration::from_secs(5);
    c
}

/// A client for probing, or a usage error naming what is wrong with its configuration.
pub(super) fn client(config: ClientConfig) -> Result<CimiClient, PluginError> {
    CimiClient::new(config).map_err(|e| PluginError::Usage(format!("client configuration: {e}")))
}

/// GET through the client's transport: the raw (not normalised) answer.
pub(super) async fn raw(client: &CimiClient, url: &Url) -> Result<Response, CimiError> {
    client.transport().execute(&Request::get(url.clone(), "doctor")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_a_file_or_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(
            auth_from_env(env(&[("CIMI_USERNAME", "u"), ("CIMI_PASSWORD", "p")])),
            Auth::Basic { username: "u".into(), password: crate::cimi::Secret::new("p") }
        );
        assert_eq!(auth_from_env(env(&[("CIMI_TOKEN", "t")])), Auth::Bearer(crate::cimi::Secret::new("t")));
        assert_eq!(auth_from_env(env(&[("CIMI_USERNAME", "u")])), Auth::None);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("creds.yaml");
        std::fs::write(&path, "username: demo\npassword: demo\n").expect("write");
        assert!(matches!(auth_from_file(&path), Ok(Auth::Basic { .. })));
        std::fs::write(&path, "{\"token\": \"t\"}").expect("write");
        assert!(matches!(auth_from_file(&path), Ok(Auth::Bearer(_))));
        std::fs::write(&path, "- not a map").expect("write");
        assert!(matches!(auth_from_file(&path), Err(PluginError::Usage(_))));
        assert!(is_url("https://x/") && is_url("http://x/") && !is_url("lab"));
    }
}
