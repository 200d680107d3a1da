//! The provider connection an object may use: the CimiProvider must exist, admit the object's namespace
//! (`spec.allowedNamespaces`; no provider call is made otherwise) and be Ready.

use std::time::Duration;

use super::context::Context;
use super::outcome::Problem;
use super::registry::ProviderConnection;
use crate::api::CimiProvider;
use crate::api::reasons::Reason;

/// The provider connection for an object of `namespace`, or the problem that keeps it from being
/// used: the provider does not exist, does not admit the namespace (`spec.allowedNamespaces`; no
/// provider call is made then), or is not Ready.
pub async fn connection(ctx: &Context, provider: &str, namespace: &str) -> Result<ProviderConnection, Problem> {
    let known = ctx.providers.get(provider);
    let allowed = match &known {
        Some(c) => c.allowed_namespaces.clone(),
        None => {
            let api: kube::Api<CimiProvider> = kube::Api::all(ctx.client.clone());
            match api.get_opt(provider).await {
                Ok(None) => {
                    return Err(Problem::stalled(
                        Reason::ProviderNotFound,
                        format!("no CimiProvider named {provider}"),
                    ));
                }
                Ok(Some(p)) => p.spec.allowed_namespaces,
                Err(_) => None,
            }
        }
    };
    if let Some(selector) = &allowed {
        super::namespaces::admit(&ctx.namespace_labels, &ctx.client, provider, selector, namespace).await?;
    }
    match known {
        Some(c) if c.ready => Ok(c),
        Some(c) => Err(Problem::transient(
            Reason::ProviderNotReady,
            format!("CimiProvider {provider} is not Ready: {}", c.message),
        )),
        None => {
            Err(Problem::transient(Reason::ProviderNotReady, format!("CimiProvider {provider} is not connected yet")))
        }
    }
}

/// The provider's pollInterval (default 30 s).
pub async fn poll_interval(ctx: &Context, provider: &str) -> Duration {
    let api: kube::Api<CimiProvider> = kube::Api::all(ctx.client.clone());
    match api.get_opt(provider).await {
        Ok(Some(p)) => crate::api::common::parse_duration(&p.spec.poll_interval).unwrap_or(Duration::from_secs(30)),
        _ => Duration::from_secs(30),
    }
    .max(Duration::from_secs(1))
}
