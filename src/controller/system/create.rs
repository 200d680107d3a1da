//! Creating a system: the SystemCreate from a SystemTemplate by reference or by value (credentials and user
//! data of its machines from Secrets of the system's namespace); the href and Job go into status at once.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;

use crate::api::CimiSystem;
use crate::api::managed::Managed as _;
use crate::api::reasons::Reason;
use crate::api::system::CimiSystemStatus;
use crate::cimi::model::{self, Resource as _};
use crate::controller::context::Context;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress};
use crate::controller::registry::ProviderConnection;
use crate::controller::resource::attributes::desired_properties;
use crate::controller::resource::identity::tags;
use crate::controller::resource::jobs::post_create;
use crate::controller::shell::kind::ManagedKind;
use crate::controller::shell::reconcile::retry_key;

use super::jobs::start_job;
use super::template;

/// The string values of the Secrets the template by value names (never logged).
pub async fn template_secrets(
    ctx: &Context,
    system: &CimiSystem,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Problem> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &system.namespace().unwrap_or_default());
    let mut out = BTreeMap::new();
    let names = system
        .spec
        .template
        .iter()
        .flat_map(|t| t.component_descriptors.iter())
        .filter_map(|c| c.credential_template.as_ref().and_then(|t| t.credential_secret_ref.as_ref()))
        .map(|r| r.name.clone());
    for name in names {
        if let Some(secret) = api.get_opt(&name).await? {
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
                .collect();
            out.insert(name, data);
        }
    }
    Ok(out)
}

/// Builds the SystemCreate and POSTs it; the href and Job go into status at once.
pub async fn create(
    system: &CimiSystem,
    ctx: &Context,
    conn: &ProviderConnection,
    status: &mut CimiSystemStatus,
) -> Result<(Progress, Duration), Problem> {
    let spec = &system.spec;
    let secrets = template_secrets(ctx, system).await?;
    let template = template::system_template(
        spec.system_template.as_ref(),
        spec.template.as_ref(),
        &conn.catalog,
        &secrets,
        spec.power_state,
    )
    .map_err(|(reason, message)| Problem::stalled(reason, message))?;
    let mut body = model::SystemCreate { system_template: Some(template), ..model::SystemCreate::typed() };
    body.describe(
        system.cimi_name(),
        spec.description.clone(),
        desired_properties(spec.properties.as_ref(), &tags(ctx, system)),
    );
    let retry_key = retry_key::<CimiSystem>(&system.namespace().unwrap_or_default(), &system.name_any());
    let collection = <CimiSystem as ManagedKind>::COLLECTION;
    let (id, job) = post_create(&ctx.failures, &conn.client, &retry_key, collection, &body).await?;
    status.common.id = id;
    start_job(status, job);
    // The href and the Job go into status at the end of this pass (see the machine's create).
    Ok((Progress::Working(Reason::Creating, "the provider is creating the system".into()), ACTIVE_REQUEUE))
}
