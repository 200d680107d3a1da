//! The plugin's one error type; each variant has the exit code that `--help` documents.

use crate::cimi::CimiError;

/// What can end a command unsuccessfully.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// A wrong command line, or an action the target does not support (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The object, provider or Secret does not exist (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// The provider ended the action FAILED, or the operator rejected it (exit 4).
    #[error("{0}")]
    ActionFailed(String),
    /// `--wait` ran out of time (exit 5).
    #[error("{0}")]
    Timeout(String),
    /// The user's Kubernetes permissions do not allow it (exit 6).
    #[error("{0}")]
    Forbidden(String),
    /// The provider is unreachable or refused the credentials (exit 7).
    #[error("{0}")]
    Provider(String),
    /// doctor: the operator cannot use the endpoint (exit 8).
    #[error("{0}")]
    Incompatible(String),
    /// Anything else: the Kubernetes API failed, an unexpected answer (exit 1).
    #[error("{0}")]
    Other(String),
}

impl PluginError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            PluginError::Other(_) => 1,
            PluginError::Usage(_) => 2,
            PluginError::NotFound(_) => 3,
            PluginError::ActionFailed(_) => 4,
            PluginError::Timeout(_) => 5,
            PluginError::Forbidden(_) => 6,
            PluginError::Provider(_) => 7,
            PluginError::Incompatible(_) => 8,
        }
    }

    /// A Kubernetes API error, with what was being done: 404 is not found, 401/403 forbidden.
    pub fn kube(what: &str, error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 404 => PluginError::NotFound(format!("{what}: not found")),
            kube::Error::Api(status) if status.code == 403 || status.code == 401 => {
                PluginError::Forbidden(format!("{what}: forbidden: {}", status.message))
            }
            kube::Error::Api(status) => PluginError::Other(format!("{what}: {} ({})", status.message, status.code)),
            other => PluginError::Other(format!("{what}: {other}")),
        }
    }

    /// A CIMI client error, with what was being done: unreachable and refused credentials are provider
    /// errors (exit 7).
    pub fn cimi(what: &str, error: CimiError) -> Self {
        match &error {
            CimiError::Unauthorized { status, .. } => PluginError::Provider(format!(
                "{what}: the provider refused the credentials ({status}); check the CimiProvider's Secret"
            )),
            CimiError::Unavailable { .. } | CimiError::Timeout { .. } | CimiError::RateLimited { .. } => {
                PluginError::Provider(format!("{what}: {error}"))
            }
            CimiError::NotFound { .. } => PluginError::NotFound(format!("{what}: {error}")),
            CimiError::UntrustedHref { .. } | CimiError::ReadLimit { .. } => {
                PluginError::Provider(format!("{what}: refused by the client: {error}"))
            }
            _ => PluginError::Other(format!("{what}: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code, message: "denied".into(), ..Default::default() }))
    }

    #[test]
    fn kubernetes_and_provider_errors_map_to_documented_exit_codes() {
        assert_eq!(PluginError::kube("get x", api(404)).exit_code(), 3);
        assert_eq!(PluginError::kube("get x", api(403)).exit_code(), 6);
        assert_eq!(PluginError::kube("get x", api(500)).exit_code(), 1);
        let unauthorized = CimiError::Unauthorized { href: "h".into(), status: 401 };
        assert_eq!(PluginError::cimi("list", unauthorized).exit_code(), 7);
        let down = CimiError::Unavailable { href: "h".into(), status: None, message: "m".into(), retry_after: None };
        assert_eq!(PluginError::cimi("list", down).exit_code(), 7);
        let codes: Vec<u8> = [
            PluginError::Other(String::new()),
            PluginError::Usage(String::new()),
            PluginError::NotFound(String::new()),
            PluginError::ActionFailed(String::new()),
            PluginError::Timeout(String::new()),
            PluginError::Forbidden(String::new()),
            PluginError::Provider(String::new()),
            PluginError::Incompatible(String::new()),
        ]
        .iter()
        .map(PluginError::exit_code)
        .collect();
        assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7, 8], "the codes of --help");
    }
}
