//! Creating a machine: the MachineCreate built from the spec (a template by reference or by value: a catalog
//! configuration or an inline size, a catalog image, credentials and user data from Secrets of the machine's
//! namespace), POSTed; the href and Job go into status before anything waits on them.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;
use serde_json::{Map, Value, json};

use super::observe::related;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource as _;

use crate::api::CimiMachine;
use crate::api::conditions::{ConditionSet, READY, RECONCILING, Status};
use crate::api::machine::CimiMachineStatus;
use crate::api::quantity::{capacity_kb, memory_kib};
use crate::api::reasons::Reason;
use crate::cimi::model;
use crate::controller::context::Context;
use crate::controller::kubeops::{apply_status, publish};
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress};
use crate::controller::registry::{ProviderConnection, resolve_catalog};
use crate::controller::resource::attributes::desired_properties;
use crate::controller::resource::identity::tags;
use crate::controller::resource::jobs::job_started;

use super::observe::COLLECTION;

/// Builds the MachineCreate and POSTs it; the href and Job go into status at once.
pub async fn create(
    machine: &CimiMachine,
    ctx: &Context,
    api: &Api<CimiMachine>,
    conn: &ProviderConnection,
    status: &mut CimiMachineStatus,
) -> Result<(Progress, Duration), Problem> {
    let related = related(ctx, machine).await?;
    if let Some(waiting) = related.waiting_for {
        return Ok((Progress::Working(Reason::WaitingForDependency, waiting), Duration::from_secs(2)));
    }
    let (networks, volumes) = (related.wanted_networks, related.wanted_volumes);
    let networks: Vec<String> = networks.into_iter().map(|n| n.href).collect();
    let spec = &machine.spec;
    let mut template = Map::new();
    if let Some(reference) = &spec.template_ref {
        let href = resolve_catalog(catalog(conn, "machineTemplates"), reference, "templateRef")
            .map_err(|(reason, message)| Problem::stalled(reason, message))?;
        template.insert("href".into(), json!(href));
    } else if let Some(t) = &spec.template {
        if let Some(reference) = &t.machine_config {
            let href = resolve_catalog(catalog(conn, "machineConfigs"), reference, "machineConfig")
                .map_err(|(reason, message)| Problem::stalled(reason, message))?;
            template.insert("machineConfig".into(), json!({"href": href}));
        } else {
            let invalid = |e: crate::api::quantity::QuantityError| Problem::stalled(Reason::InvalidSpec, e.to_string());
            let memory = t.memory.as_ref().map(memory_kib).transpose().map_err(invalid)?;
            let mut disks = Vec::new();
            for d in t.disks.iter().flatten() {
                let mut disk = json!({"capacity": capacity_kb(&d.capacity).map_err(invalid)?});
                if let Some(f) = &d.format {
                    disk["format"] = json!(f);
                }
                if let Some(l) = &d.initial_location {
                    disk["initialLocation"] = json!(l);
                }
                disks.push(disk);
            }
            template.insert(
                "machineConfig".into(),
                json!({"resourceURI": model::type_uri("MachineConfiguration"), "cpu": t.cpu, "memory": memory, "disks": disks}),
            );
        }
        let image = resolve_catalog(catalog(conn, "machineImages"), &t.machine_image, "machineImage")
            .map_err(|(reason, message)| Problem::stalled(reason, message))?;
        template.insert("machineImage".into(), json!({"href": image}));
        let secrets: Api<Secret> = object_api_secret(ctx, machine);
        if let Some(r) = &t.credential_secret_ref {
            let data = secret_data(&secrets, &r.name).await?;
            let mut credential = Map::new();
            for (k, v) in data {
                credential.insert(k, json!(v));
            }
            template.insert("credential".into(), Value::Object(credential));
        }
        if let Some(r) = &t.user_data_secret_ref {
            let data = secret_data(&secrets, &r.name).await?;
            let value = data.get(&r.key).ok_or_else(|| {
                Problem::stalled(Reason::SecretNotFound, format!("Secret {} has no key {}", r.name, r.key))
            })?;
            template.insert("userData".into(), json!(base64::engine::general_purpose::STANDARD.encode(value)));
        }
        template.insert("initialState".into(), json!(spec.power_state.cimi_state()));
    }
    if !networks.is_empty() {
        let nics: Vec<Value> = networks.iter().map(|h| json!({"network": {"href": h}})).collect();
        template.insert("networkInterfaces".into(), json!(nics));
    }
    if !volumes.is_empty() {
        let vols: Vec<Value> = volumes
            .iter()
            .map(|v| match &v.initial_location {
                Some(l) => json!({"href": v.href, "initialLocation": l}),
                None => json!({"href": v.href}),
            })
            .collect();
        template.insert("volumes".into(), json!(vols));
    }
    let mut body = json!({
        "resourceURI": model::type_uri("MachineCreate"),
        "name": spec.name.clone().unwrap_or_else(|| machine.name_any()),
        "properties": desired_properties(spec.properties.as_ref(), &tags(ctx, machine)),
        "machineTemplate": template,
    });
    if let Some(d) = &spec.description {
        body["description"] = json!(d);
    }
    let client = &conn.client;
    let collection = client.collection_url(COLLECTION).await?;
    let accepted = client.create(COLLECTION, &body).await?;
    let href = client.created_href(&accepted, &collection).await?;
    status.common.id = href.map(|u| u.to_string());
    status.common.job = job_started(&accepted, "add");
    // Write-ahead: the href and the Job are in status before anything waits on them.
    let mut conds = ConditionSet::new(
        &status.common.conditions,
        machine.meta().generation,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    conds.set(READY, Status::False, Reason::Creating, "the provider is creating the machine");
    conds.set(RECONCILING, Status::True, Reason::Creating, "the provider is creating the machine");
    status.common.conditions = conds.build();
    apply_status(api, &machine.name_any(), &*status).await.map_err(Problem::from)?;
    publish(
        &ctx.recorder,
        machine,
        false,
        "Created",
        "Create",
        format!("provider machine {} requested", status.common.id.clone().unwrap_or_default()),
    )
    .await;
    Ok((Progress::Working(Reason::Creating, "the provider is creating the machine".into()), ACTIVE_REQUEUE))
}

fn catalog<'a>(conn: &'a ProviderConnection, name: &str) -> &'a [crate::api::provider::CatalogEntry] {
    conn.catalog.get(name).map(Vec::as_slice).unwrap_or(&[])
}

fn object_api_secret(ctx: &Context, machine: &CimiMachine) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &machine.namespace().unwrap_or_default())
}

/// The string values of a Secret in the machine's namespace (never logged).
async fn secret_data(secrets: &Api<Secret>, name: &str) -> Result<std::collections::BTreeMap<String, String>, Problem> {
    let secret = secrets
        .get_opt(name)
        .await?
        .ok_or_else(|| Problem::stalled(Reason::SecretNotFound, format!("Secret {name} does not exist")))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).to_string()))
        .collect())
}
