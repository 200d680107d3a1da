//! A CIMI client for a provider (CimiProvider or CimiNamespacedProvider), made the way the operator makes it:
//! the endpoint, format and TLS settings of its spec, the credentials of its `credentialSecretRef` (keys
//! `username`/`password`, or `token`) and the CA bundle of its `caBundleSecretRef` (key `ca.crt`), read with
//! the user's own Kubernetes permissions. All provider I/O then goes through [`CimiClient`], with its origin
//! pinning and read bounds.
//!
//! The conversion itself is the operator's own: [`ProviderSettings::client_config`] and
//! [`credentials_from_secret`] in `api::provider`; only the Secrets are read here, with the user's permissions.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::error::PluginError;
use super::objects::ProviderView;
use crate::api::common::SecretRef;
use crate::api::provider::{ProviderSettings, credentials_from_secret};
use crate::cimi::{Auth, CimiClient, ClientConfig};

/// The credentials a Secret's data holds: `username` and `password` (Basic), else `token` (Bearer).
pub fn auth_from_data(data: &std::collections::BTreeMap<String, Vec<u8>>, secret: &str) -> Result<Auth, PluginError> {
    credentials_from_secret(data, secret).map_err(PluginError::Other)
}

/// The client configuration of a provider from its spec, the credentials and the CA bundle.
pub fn client_config(
    provider: &ProviderView,
    auth: Auth,
    ca_bundle_pem: Option<Vec<u8>>,
) -> Result<ClientConfig, PluginError> {
    provider
        .settings
        .client_config(&provider.key.to_string(), auth, ca_bundle_pem)
        .map_err(|e| PluginError::Other(format!("{}: {e}", provider.label())))
}

/// Reads one Secret with the user's permissions; a clear error when it is missing or not readable.
async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    r: &SecretRef,
    provider: &str,
    purpose: &str,
) -> Result<Secret, PluginError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get(&r.name).await {
        Ok(s) => Ok(s),
        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 401 => {
            Err(PluginError::Forbidden(format!(
                "cannot read Secret {namespace}/{} ({purpose} of {provider}): your Kubernetes permissions do not \
             allow `get` on it. This command reads the provider with that Secret's credentials, as the operator \
             does; ask for read access to it, or run it as someone who has it",
                r.name
            )))
        }
        Err(e) => Err(PluginError::kube(&format!("Secret {namespace}/{} ({purpose} of {provider})", r.name), e)),
    }
}

/// The client configuration of a provider, its Secrets read with the user's permissions.
pub async fn config_for(client: &kube::Client, provider: &ProviderView) -> Result<ClientConfig, PluginError> {
    let label = provider.label();
    let ns = provider.secret_namespace.as_str();
    let spec: &ProviderSettings = &provider.settings;
    let auth = match &spec.credential_secret_ref {
        Some(r) => {
            let secret = read_secret(client, ns, r, &label, "credentialSecretRef").await?;
            let data = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            auth_from_data(&data, &format!("{ns}/{}", r.name))?
        }
        None => Auth::None,
    };
    let ca = match &spec.ca_bundle_secret_ref {
        Some(r) => {
            let secret = read_secret(client, ns, r, &label, "caBundleSecretRef").await?;
            let pem = secret
                .data
                .unwrap_or_default()
                .get("ca.crt")
                .map(|v| v.0.clone())
                .ok_or_else(|| PluginError::Other(format!("Secret {ns}/{} has no key ca.crt", r.name)))?;
            Some(pem)
        }
        None => None,
    };
    client_config(provider, auth, ca)
}

/// A client of a provider that has read its CloudEntryPoint.
pub async fn connect(client: &kube::Client, provider: &ProviderView) -> Result<CimiClient, PluginError> {
    let config = config_for(client, provider).await?;
    CimiClient::connect(config).await.map_err(|e| PluginError::cimi(&provider.label(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CimiProvider;
    use crate::api::provider::RateLimit;

    fn data(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn secrets_give_basic_or_bearer_credentials() {
        let basic = auth_from_data(&data(&[("username", "demo"), ("password", "pw\n")]), "ns/s").expect("basic");
        assert_eq!(basic, Auth::Basic { username: "demo".into(), password: crate::cimi::Secret::new("pw") });
        let bearer = auth_from_data(&data(&[("token", "t")]), "ns/s").expect("bearer");
        assert_eq!(bearer, Auth::Bearer(crate::cimi::Secret::new("t")));
        let e = auth_from_data(&data(&[("username", "u")]), "ns/s").expect_err("incomplete");
        assert!(e.to_string().contains("username and password, or token"), "{e}");
    }

    #[test]
    fn the_spec_gives_the_client_configuration() {
        let mut provider: CimiProvider = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiProvider", "metadata": {"name": "lab"},
            "spec": {"endpoint": "https://cimi.example.net/", "format": "xml", "allowPlainHTTP": true,
                     "trustedOrigins": ["https://images.example.net"], "readLimits": {"maxPages": 7}}
        }))
        .expect("provider");
        provider.spec.settings.rate_limit = Some(RateLimit { requests_per_second: 5, burst: 10, max_concurrent: 2 });
        let view = ProviderView::cluster(provider, "cimi-system");
        let config = client_config(&view, Auth::None, None).expect("config");
        assert_eq!(config.endpoint.as_str(), "https://cimi.example.net/");
        assert_eq!(config.transport.format, crate::cimi::Format::Xml);
        assert_eq!(config.transport.limits.burst, 10);
        assert_eq!(config.transport.provider, "lab");
        assert!(config.transport.allow_plain_http);
        assert_eq!(config.trusted_origins, ["https://images.example.net"]);
        assert_eq!(config.transport.read_limits.max_pages, 7);
        let mut bad = view.clone();
        bad.settings.endpoint = "not a url".into();
        assert!(client_config(&bad, Auth::None, None).is_err());
    }
}
