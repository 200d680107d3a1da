//! A provider's settings: its Secrets (in the operator's namespace for a CimiProvider, in its own for a
//! CimiNamespacedProvider; never logged), the client made from them and its spec, and the refusal of
//! credentials over plain http.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use super::kind::ProviderObject;
use crate::api::provider::{ProviderSettings, credentials_from_secret};
use crate::cimi::{Auth, CimiClient, CimiError};
use crate::controller::context::Context;
use crate::controller::registry::fingerprint;
use crate::runtime::Shard;

/// What the provider's Secrets hold (never logged).
pub struct Settings {
    pub auth: Auth,
    pub ca_bundle_pem: Option<Vec<u8>>,
    pub fingerprint: u64,
}

pub async fn read_settings<P: ProviderObject>(ctx: &Context, provider: &P) -> Result<Settings, String> {
    let ns = &provider.secret_namespace(ctx);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let spec = provider.settings();
    let mut auth = Auth::None;
    let mut parts: Vec<Vec<u8>> = vec![
        spec.endpoint.as_bytes().to_vec(),
        format!("{:?}{}", spec.format, spec.insecure_skip_tls_verify).into_bytes(),
        format!("{:?}", spec.rate_limit).into_bytes(),
        format!(
            "{:?}{}{:?}{}",
            spec.trusted_origins, spec.allow_plain_http, spec.read_limits, spec.ca_bundle_replaces_system_roots
        )
        .into_bytes(),
    ];
    if let Some(r) = &spec.credential_secret_ref {
        let secret = secrets
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", r.name))?
            .ok_or_else(|| format!("Secret {ns}/{} does not exist", r.name))?;
        let data: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        auth = credentials_from_secret(&data, &format!("{ns}/{}", r.name))?;
        for k in ["username", "password", "token"] {
            parts.push(data.get(k).cloned().unwrap_or_default());
        }
    }
    let mut ca_bundle_pem = None;
    if let Some(r) = &spec.ca_bundle_secret_ref {
        let secret = secrets
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", r.name))?
            .ok_or_else(|| format!("Secret {ns}/{} does not exist", r.name))?;
        let pem = secret
            .data
            .unwrap_or_default()
            .get("ca.crt")
            .map(|v| v.0.clone())
            .ok_or_else(|| format!("Secret {ns}/{} has no key ca.crt", r.name))?;
        parts.push(pem.clone());
        ca_bundle_pem = Some(pem);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(Settings { auth, ca_bundle_pem, fingerprint: fingerprint(&refs) })
}

/// The client of the provider `key` with `spec` and what its Secrets hold, for `shard`: when the objects are
/// split between shards, each has its share of the provider's rate budget (`rateLimit` divided by the shard
/// count, rounded up) and says which shard it is in its user agent.
pub fn client_for(
    key: &str,
    spec: &ProviderSettings,
    settings: Settings,
    metrics: &crate::cimi::ClientMetrics,
    shard: Shard,
) -> Result<CimiClient, CimiError> {
    let mut config = spec.client_config(key, settings.auth, settings.ca_bundle_pem)?;
    // Probes and reconciles requeue on their own; keep in-call retries short.
    config.transport.retry.max_attempts = 2;
    config.transport.request_timeout = Duration::from_secs(15);
    config.transport.connect_timeout = Duration::from_secs(5);
    if shard.is_sharded() {
        let limits = &mut config.transport.limits;
        limits.requests_per_second = shard.share(limits.requests_per_second);
        limits.burst = u32::try_from(shard.share_of(u64::from(limits.burst))).unwrap_or(u32::MAX);
        limits.max_concurrent =
            usize::try_from(shard.share_of(u64::try_from(limits.max_concurrent).unwrap_or(u64::MAX))).unwrap_or(1);
        config.transport.user_agent = Some(shard.user_agent());
    }
    CimiClient::with_metrics(config, metrics.clone())
}

/// Why the operator will not connect: credentials would go over plain http (the endpoint or a trusted
/// origin) without `spec.allowPlainHTTP`. `None` when it may.
pub fn plain_http_refusal(spec: &ProviderSettings, auth: &Auth) -> Option<String> {
    if *auth == Auth::None || spec.allow_plain_http {
        return None;
    }
    let plain: Vec<&str> = std::iter::once(spec.endpoint.as_str())
        .chain(spec.trusted_origins.iter().map(String::as_str))
        .filter(|u| u.trim().to_ascii_lowercase().starts_with("http://"))
        .collect();
    (!plain.is_empty()).then(|| {
        format!(
            "{} is plain http: the credentials would travel in clear text; use https, or set spec.allowPlainHTTP: \
             true if the network to the provider is trusted",
            plain.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(endpoint: &str, trusted: &[&str], allow: bool) -> ProviderSettings {
        let spec = serde_json::json!({"endpoint": endpoint, "trustedOrigins": trusted, "allowPlainHTTP": allow});
        serde_json::from_value(spec).expect("spec")
    }

    #[test]
    fn plain_http_needs_an_explicit_opt_in() {
        let basic = Auth::Basic { username: "u".into(), password: crate::cimi::Secret::new("p") };
        let refusal = plain_http_refusal(&provider("http://lab:8780/", &[], false), &basic).expect("refused");
        assert!(refusal.contains("http://lab:8780/") && refusal.contains("allowPlainHTTP"), "{refusal}");
        assert_eq!(plain_http_refusal(&provider("http://lab:8780/", &[], true), &basic), None);
        assert_eq!(plain_http_refusal(&provider("https://lab/", &[], false), &basic), None);
        assert_eq!(plain_http_refusal(&provider("http://lab/", &[], false), &Auth::None), None, "no credentials");
        let refusal =
            plain_http_refusal(&provider("https://lab/", &["http://jobs.lab"], false), &basic).expect("refused");
        assert!(refusal.contains("http://jobs.lab"), "a plain-http trusted origin counts too: {refusal}");
    }
}
