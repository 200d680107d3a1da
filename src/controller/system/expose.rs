//! `spec.exposeMembers`: each member of a system shown as a read-only CimiMachine, CimiVolume or CimiNetwork
//! (`managementPolicy: ObserveOnly`, `deletionPolicy: Orphan`, `spec.import.href` = the member's href), owned by
//! the CimiSystem so that the control plane's garbage collector removes them with it. They carry the system's
//! labels (so the same operator instance watches them) and `cimi.dev/system: <name>`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::plan::exposed_name;
use crate::api::common::{DeletionPolicy, ImportSpec, ManagementPolicy, ProviderRef};
use crate::api::system::{CimiSystemStatus, SystemMember};
use crate::api::{CimiMachine, CimiMachineSpec, CimiNetwork, CimiNetworkSpec, CimiSystem, CimiVolume, CimiVolumeSpec};
use crate::controller::context::Context;
use crate::controller::outcome::Problem;

/// The label that names the CimiSystem an exposed member belongs to.
pub const LABEL_SYSTEM: &str = "cimi.dev/system";

/// The metadata of an exposed member object.
fn metadata(system: &CimiSystem, name: &str) -> kube::api::ObjectMeta {
    let mut labels: BTreeMap<String, String> = system.labels().clone();
    labels.insert(LABEL_SYSTEM.to_string(), system.name_any());
    kube::api::ObjectMeta {
        name: Some(name.to_string()),
        namespace: system.namespace(),
        labels: Some(labels),
        owner_references: system.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    }
}

fn import(member: &SystemMember) -> Option<ImportSpec> {
    Some(ImportSpec { href: Some(member.href.clone()), filter: None })
}

fn provider(system: &CimiSystem) -> ProviderRef {
    system.spec.provider_ref.clone()
}

/// The objects wanted for the members listed in status, by name.
fn wanted<'a, K>(
    system: &CimiSystem,
    members: impl Iterator<Item = &'a SystemMember>,
    build: impl Fn(&SystemMember) -> K,
) -> BTreeMap<String, K>
where
    K: Resource<DynamicType = ()>,
{
    let mut out = BTreeMap::new();
    for m in members {
        let label = m.name.clone().unwrap_or_else(|| m.href.rsplit('/').next().unwrap_or_default().to_string());
        if let Some(name) = exposed_name(&system.name_any(), &label) {
            let mut object = build(m);
            *object.meta_mut() = metadata(system, &name);
            out.insert(name, object);
        }
    }
    out
}

/// Creates the missing member objects and deletes those no longer wanted (only ones this system owns).
async fn converge<K>(api: &Api<K>, system: &CimiSystem, wanted: BTreeMap<String, K>) -> Result<Vec<String>, Problem>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Serialize + Debug,
{
    let selector = format!("{LABEL_SYSTEM}={}", system.name_any());
    let existing = api.list(&ListParams::default().labels(&selector)).await?;
    let uid = system.uid();
    let owned: BTreeSet<String> = existing
        .items
        .iter()
        .filter(|o| o.owner_references().iter().any(|r| Some(&r.uid) == uid.as_ref()))
        .map(|o| o.name_any())
        .collect();
    for name in owned.iter().filter(|n| !wanted.contains_key(*n)) {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut names = Vec::new();
    for (name, object) in wanted {
        if !owned.contains(&name) {
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    return Err(Problem::stalled(
                        crate::api::reasons::Reason::InvalidSpec,
                        format!("exposeMembers: {} {name} exists and does not belong to this CimiSystem", K::kind(&())),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        names.push(format!("{}/{name}", K::kind(&())));
    }
    Ok(names)
}

/// Makes the exposed member objects match `spec.exposeMembers` and the members in status.
pub async fn sync_exposed(ctx: &Context, system: &CimiSystem, status: &mut CimiSystemStatus) -> Result<(), Problem> {
    let ns = system.namespace().unwrap_or_default();
    let expose = system.spec.expose_members && status.common.id.is_some();
    if !expose && status.exposed.is_empty() {
        return Ok(());
    }
    // Not exposed (any more): no member is wanted, and those shown are removed.
    let limit = if expose { usize::MAX } else { 0 };
    let machines = status.machines.iter().map(|m| &m.member).take(limit);
    let volumes = status.volumes.iter().map(|v| &v.member).take(limit);
    let networks = status.networks.iter().take(limit);
    let observe = |m: &SystemMember| (provider(system), import(m));
    let machine_objects = wanted(system, machines, |m| {
        let (provider_ref, import) = observe(m);
        CimiMachine::new(
            "",
            CimiMachineSpec {
                provider_ref,
                import,
                management_policy: ManagementPolicy::ObserveOnly,
                deletion_policy: DeletionPolicy::Orphan,
                power_state: system.spec.power_state,
                ..Default::default()
            },
        )
    });
    let volume_objects = wanted(system, volumes, |m| {
        let (provider_ref, import) = observe(m);
        CimiVolume::new(
            "",
            CimiVolumeSpec {
                provider_ref,
                import,
                management_policy: ManagementPolicy::ObserveOnly,
                deletion_policy: DeletionPolicy::Orphan,
                ..Default::default()
            },
        )
    });
    let network_objects = wanted(system, networks, |m| {
        let (provider_ref, import) = observe(m);
        CimiNetwork::new(
            "",
            CimiNetworkSpec {
                provider_ref,
                import,
                management_policy: ManagementPolicy::ObserveOnly,
                deletion_policy: DeletionPolicy::Orphan,
                ..Default::default()
            },
        )
    });
    let mut exposed =
        converge(&Api::<CimiMachine>::namespaced(ctx.client.clone(), &ns), system, machine_objects).await?;
    exposed.extend(converge(&Api::<CimiVolume>::namespaced(ctx.client.clone(), &ns), system, volume_objects).await?);
    exposed.extend(converge(&Api::<CimiNetwork>::namespaced(ctx.client.clone(), &ns), system, network_objects).await?);
    status.exposed = exposed;
    Ok(())
}
