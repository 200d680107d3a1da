//! The provider connection an object may use: the provider (a CimiProvider, or a CimiNamespacedProvider of
//! the object's namespace) must exist, admit the object's namespace (`spec.allowedNamespaces` of a
//! CimiProvider; no provider call is made otherwise) and be Ready.

use std::time::Duration;

use super::context::Context;
use super::outcome::Problem;
use super::registry::{ProviderConnection, read_provider};
use crate::api::common::ProviderKey;
use crate::api::reasons::Reason;

/// The provider connection of `provider` (a [`ProviderKey`] as text) for an object of `namespace`, or the
/// problem that keeps it from being used: the provider does not exist, does not admit the namespace
/// (`spec.allowedNamespaces`; no provider call is made then), or is not Ready.
pub async fn connection(ctx: &Context, provider: &str, namespace: &str) -> Result<ProviderConnection, Problem> {
    let key = ProviderKey::parse(provider);
    let known = ctx.providers.get(provider);
    let allowed = match &known {
        Some(c) => c.allowed_namespaces.clone(),
        None => match read_provider(&ctx.client, &key).await {
            Ok(None) => {
                let place = match &key.namespace {
                    Some(ns) => format!(" in namespace {ns}"),
                    None => String::new(),
                };
                return Err(Problem::stalled(
                    Reason::ProviderNotFound,
                    format!("no {} named {}{place}", key.kind.as_str(), key.name),
                ));
            }
            Ok(Some(p)) => p.allowed_namespaces,
            Err(_) => None,
        },
    };
    if let Some(selector) = &allowed {
        super::namespaces::admit(&ctx.namespace_labels, &ctx.client, provider, selector, namespace).await?;
    }
    match known {
        Some(c) if c.ready => Ok(c),
        Some(c) => {
            Err(Problem::transient(Reason::ProviderNotReady, format!("{} is not Ready: {}", key.describe(), c.message)))
        }
        None => Err(Problem::transient(Reason::ProviderNotReady, format!("{} is not connected yet", key.describe()))),
    }
}

/// The provider's pollInterval (default 30 s).
pub async fn poll_interval(ctx: &Context, provider: &str) -> Duration {
    match read_provider(&ctx.client, &ProviderKey::parse(provider)).await {
        Ok(Some(p)) => crate::api::common::parse_duration(&p.settings.poll_interval).unwrap_or(Duration::from_secs(30)),
        _ => Duration::from_secs(30),
    }
    .max(Duration::from_secs(1))
}
