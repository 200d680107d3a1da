//! Who holds a provider in use: the objects that reference it, in namespaces its `allowedNamespaces` admits
//! or with a provider resource already.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt as _;

use crate::api::{CimiMachine, CimiMachineImage, CimiNetwork, CimiSystem, CimiVolume, CimiVolumeImage};
use crate::controller::context::Context;

/// The objects (in this operator's scope) that hold `provider` in use, as `kind namespace/name`, sorted
/// (objects the operator cannot decode are skipped; their watch reports them)
/// (read from the controllers' stores: see [`super::stores`]).
/// With `fresh`, listed from the API instead.
///
/// An object counts when its namespace is one the provider's `allowed` namespaces admit, or when it already
/// has a provider resource (`status.id`) wherever it is: a tenant of a namespace the provider does not admit
/// cannot block the provider's deletion by merely naming it.
pub async fn references(
    ctx: &Context,
    provider: &str,
    allowed: Option<&LabelSelector>,
    fresh: bool,
) -> kube::Result<Vec<String>> {
    let mut out = referencing::<CimiMachine>(ctx, provider, allowed, fresh).await?;
    out.extend(referencing::<CimiVolume>(ctx, provider, allowed, fresh).await?);
    out.extend(referencing::<CimiNetwork>(ctx, provider, allowed, fresh).await?);
    out.extend(referencing::<CimiSystem>(ctx, provider, allowed, fresh).await?);
    out.extend(referencing::<CimiMachineImage>(ctx, provider, allowed, fresh).await?);
    out.extend(referencing::<CimiVolumeImage>(ctx, provider, allowed, fresh).await?);
    out.sort();
    Ok(out)
}

/// The objects of kind `K` in the watched namespaces that hold `provider` in use, as `Kind namespace/name`.
pub async fn referencing<K>(
    ctx: &Context,
    provider: &str,
    allowed: Option<&LabelSelector>,
    fresh: bool,
) -> kube::Result<Vec<String>>
where
    K: crate::api::managed::Managed + crate::controller::stores::Cached,
{
    let objects = if fresh { ctx.listed::<K>(None).await? } else { ctx.objects::<K>(None).await? };
    let mut out = Vec::new();
    for o in
        objects.iter().filter(|o| o.provider_ref().names(o.meta().namespace.as_deref().unwrap_or_default(), provider))
    {
        let namespace = o.namespace().unwrap_or_default();
        let has_resource = o.managed_status().and_then(|s| s.id.as_deref()).is_some_and(|id| !id.is_empty());
        let admitted = match allowed {
            None => true,
            Some(selector) => {
                let labels = ctx.namespace_labels.get(&ctx.client, &namespace).await?.unwrap_or_default();
                crate::controller::namespaces::selector_matches(selector, &labels).unwrap_or(false)
            }
        };
        if has_resource || admitted {
            out.push(format!("{} {namespace}/{}", K::kind(&()), o.name_any()));
        }
    }
    Ok(out)
}
