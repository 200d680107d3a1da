//! Creating a machine: the MachineCreate built from the spec (a template by reference or by value: a catalog
//! configuration or an inline size, a catalog image, credentials and user data from Secrets of the machine's
//! namespace), POSTed; the href and Job go into status before anything waits on them.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::Api;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::observe::{Related, related};

use crate::api::machine::CimiMachineStatus;
use crate::api::managed::Managed as _;
use crate::api::quantity::{capacity_kb, memory_kib};
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiMachineImage};
use crate::cimi::model::{self, Ref, RefOr, Resource as _};
use crate::controller::context::Context;
use crate::controller::outcome::{ACTIVE_REQUEUE, Problem, Progress};
use crate::controller::registry::{Catalog, ProviderConnection, catalog_entries, resolve_catalog};
use crate::controller::resource::attributes::desired_properties;
use crate::controller::resource::identity::tags;
use crate::controller::resource::jobs::post_create;
use crate::controller::shell::reconcile::retry_key;
use crate::controller::storage::image::ready_href;

use super::observe::COLLECTION;

/// Builds the MachineCreate and POSTs it; the href and Job go into status at once.
pub async fn create(
    machine: &CimiMachine,
    ctx: &Context,
    conn: &ProviderConnection,
    status: &mut CimiMachineStatus,
) -> Result<(Progress, Duration), Problem> {
    let related = related(ctx, machine).await?;
    if let Some(waiting) = related.waiting_for {
        return Ok((Progress::Working(Reason::WaitingForDependency, waiting), Duration::from_secs(2)));
    }
    // Reads first (the Secrets the template names), then the body: a pure function of what was read.
    let mut secrets = TemplateSecrets::default();
    if let Some(r) = machine.spec.template.as_ref().and_then(|t| t.image_ref.as_ref()) {
        let namespace = machine.namespace().unwrap_or_default();
        let provider = machine.provider_key();
        match ready_href::<CimiMachineImage>(ctx, &namespace, &r.name, &provider, "the image").await {
            Ok(href) => secrets.image = Some(href),
            Err(p) if p.reason == Reason::WaitingForDependency => {
                return Ok((Progress::Working(p.reason, p.message), Duration::from_secs(2)));
            }
            Err(p) => return Err(p),
        }
    }
    if let Some(t) = &machine.spec.template {
        let api: Api<Secret> = object_api_secret(ctx, machine);
        if let Some(r) = &t.credential_secret_ref {
            secrets.credential = Some(secret_data(&api, &r.name).await?);
        }
        if let Some(r) = &t.user_data_secret_ref {
            let data = secret_data(&api, &r.name).await?;
            let value = data.get(&r.key).ok_or_else(|| {
                Problem::stalled(Reason::SecretNotFound, format!("Secret {} has no key {}", r.name, r.key))
            })?;
            secrets.user_data = Some(value.clone());
        }
    }
    let body = machine_create(machine, &tags(ctx, machine), &conn.catalog, &related, secrets)?;
    let retry_key = retry_key::<CimiMachine>(&machine.namespace().unwrap_or_default(), &machine.name_any());
    (status.common.id, status.common.job) =
        post_create(&ctx.failures, &conn.client, &retry_key, COLLECTION, &body).await?;
    // The href and the Job go into status at the end of this pass, before anything waits on them (the shell's
    // write, which also publishes `Created`); were that write lost, the next pass finds the machine by its tags.
    Ok((Progress::Working(Reason::Creating, "the provider is creating the machine".into()), ACTIVE_REQUEUE))
}

/// What the Secrets named by a machine's template hold (never logged), and the href of the CimiMachineImage it
/// boots from.
#[derive(Default)]
struct TemplateSecrets {
    /// The provider href of the CimiMachineImage of `template.imageRef`.
    image: Option<String>,
    /// The credential's attributes.
    credential: Option<BTreeMap<String, String>>,
    /// The user data, before base64.
    user_data: Option<String>,
}

/// The MachineCreate for `machine`: name, description, properties with our `tags`; the template by reference
/// (with the interfaces and volumes as overrides) or by value (a catalog configuration or an inline size, a
/// catalog image, the credential and user data read from Secrets, the initial power state).
fn machine_create(
    machine: &CimiMachine,
    tags: &BTreeMap<String, String>,
    catalog: &Catalog,
    related: &Related,
    secrets: TemplateSecrets,
) -> Result<model::MachineCreate, Problem> {
    let spec = &machine.spec;
    let stalled = |(reason, message): (Reason, String)| Problem::stalled(reason, message);
    let mut template = model::MachineTemplate::default();
    if !related.wanted_networks.is_empty() {
        template.network_interfaces = Some(
            related
                .wanted_networks
                .iter()
                .map(|n| model::MachineTemplateNetworkInterface {
                    network: Some(Ref::new(n.href.clone())),
                    ..Default::default()
                })
                .collect(),
        );
    }
    if !related.wanted_volumes.is_empty() {
        template.volumes = Some(
            related
                .wanted_volumes
                .iter()
                .map(|v| model::MachineTemplateVolume {
                    href: v.href.clone(),
                    initial_location: v.initial_location.clone(),
                })
                .collect(),
        );
    }
    let template = if let Some(reference) = &spec.machine_template {
        let href = resolve_catalog(catalog_entries(catalog, "machineTemplates"), reference, "machineTemplate")
            .map_err(stalled)?;
        // By reference: what the spec adds goes with the href as overrides.
        let overrides = match serde_json::to_value(&template) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        RefOr::Ref(Ref { href, extra: overrides })
    } else if let Some(t) = &spec.template {
        template.machine_config = Some(if let Some(reference) = &t.machine_config {
            RefOr::Ref(Ref::new(
                resolve_catalog(catalog_entries(catalog, "machineConfigs"), reference, "machineConfig")
                    .map_err(stalled)?,
            ))
        } else {
            let invalid = |e: crate::api::quantity::QuantityError| Problem::stalled(Reason::InvalidSpec, e.to_string());
            let mut disks = Vec::new();
            for d in t.disks.iter().flatten() {
                disks.push(model::DiskConfig {
                    capacity: capacity_kb(&d.capacity).map_err(invalid)?,
                    format: d.format.clone(),
                    initial_location: d.initial_location.clone(),
                    extra: Map::new(),
                });
            }
            RefOr::Value(model::MachineConfiguration {
                cpu: t.cpu.map(i64::from),
                memory: t.memory.as_ref().map(memory_kib).transpose().map_err(invalid)?,
                disks: Some(disks),
                ..model::MachineConfiguration::typed()
            })
        });
        let image = match (&secrets.image, &t.machine_image) {
            (Some(href), _) => href.clone(),
            (None, Some(reference)) => {
                resolve_catalog(catalog_entries(catalog, "machineImages"), reference, "machineImage")
                    .map_err(stalled)?
            }
            (None, None) => {
                return Err(Problem::stalled(Reason::InvalidSpec, "template needs machineImage or imageRef"));
            }
        };
        template.machine_image = Some(RefOr::Ref(Ref::new(image)));
        if let Some(data) = secrets.credential {
            let extra = data.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            template.credential = Some(RefOr::Value(model::Credential { extra, ..Default::default() }));
        }
        template.user_data = secrets.user_data.map(|v| base64::engine::general_purpose::STANDARD.encode(v));
        template.initial_state = Some(spec.power_state.cimi_state().to_string());
        RefOr::Value(template)
    } else {
        RefOr::Value(template)
    };
    let mut body = model::MachineCreate { machine_template: Some(template), ..model::MachineCreate::typed() };
    body.describe(
        spec.name.clone().unwrap_or_else(|| machine.name_any()),
        spec.description.clone(),
        desired_properties(spec.properties.as_ref(), tags),
    );
    Ok(body)
}

fn object_api_secret(ctx: &Context, machine: &CimiMachine) -> Api<Secret> {
    Api::namespaced(ctx.client.clone(), &machine.namespace().unwrap_or_default())
}

/// The string values of a Secret in the machine's namespace (never logged).
async fn secret_data(secrets: &Api<Secret>, name: &str) -> Result<BTreeMap<String, String>, Problem> {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::provider::CatalogEntry;
    use crate::controller::machine::plan::{WantedNetwork, WantedVolume};

    fn catalog() -> Catalog {
        let entry = |name: &str, href: &str| CatalogEntry { name: Some(name.into()), href: href.into() };
        BTreeMap::from([
            ("machineConfigs".to_string(), vec![entry("small", "https://p/configs/1")]),
            ("machineImages".to_string(), vec![entry("linux", "https://p/images/1")]),
            ("machineTemplates".to_string(), vec![entry("web", "https://p/templates/1")]),
        ])
    }

    fn machine(spec: Value) -> CimiMachine {
        serde_json::from_value(json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine",
            "metadata": {"name": "web-1", "namespace": "team"}, "spec": spec
        }))
        .expect("machine")
    }

    fn related() -> Related {
        Related {
            wanted_volumes: vec![WantedVolume {
                name: "data".into(),
                href: "https://p/volumes/7".into(),
                initial_location: Some("/dev/vdb".into()),
            }],
            wanted_networks: vec![WantedNetwork { name: "net".into(), href: "https://p/networks/3".into() }],
            ..Related::default()
        }
    }

    fn tags() -> BTreeMap<String, String> {
        BTreeMap::from([("cimi.dev/uid".to_string(), "u1".to_string())])
    }

    #[test]
    fn a_template_by_value_names_catalog_entries_secrets_and_the_initial_state() {
        let m = machine(json!({"providerRef": {"name": "p"}, "description": "front", "powerState": "Stopped",
            "properties": {"team": "shop"},
            "template": {"machineConfig": {"name": "small"}, "machineImage": {"name": "linux"},
                         "credentialSecretRef": {"name": "c"}, "userDataSecretRef": {"name": "u", "key": "k"}}}));
        let secrets = TemplateSecrets {
            credential: Some(BTreeMap::from([("userID".to_string(), "admin".to_string())])),
            user_data: Some("#cloud-config".into()),
            image: None,
        };
        let body = machine_create(&m, &tags(), &catalog(), &related(), secrets).expect("body");
        assert_eq!(
            serde_json::to_value(&body).expect("json"),
            json!({
                "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate",
                "name": "web-1", "description": "front",
                "properties": {"team": "shop", "cimi.dev/uid": "u1"},
                "machineTemplate": {
                    "initialState": "STOPPED",
                    "machineConfig": {"href": "https://p/configs/1"},
                    "machineImage": {"href": "https://p/images/1"},
                    "credential": {"userID": "admin"},
                    "volumes": [{"href": "https://p/volumes/7", "initialLocation": "/dev/vdb"}],
                    "networkInterfaces": [{"network": {"href": "https://p/networks/3"}}],
                    "userData": "I2Nsb3VkLWNvbmZpZw=="
                }
            })
        );
    }

    #[test]
    fn an_inline_size_is_a_configuration_by_value_memory_in_kib_disks_in_kb() {
        let m = machine(json!({"providerRef": {"name": "p"},
            "template": {"cpu": 2, "memory": "1Gi", "disks": [{"capacity": "10Gi", "format": "ext4"}],
                         "machineImage": {"href": "https://p/images/9"}}}));
        let body =
            machine_create(&m, &tags(), &catalog(), &Related::default(), TemplateSecrets::default()).expect("body");
        let json = serde_json::to_value(&body).expect("json");
        assert_eq!(
            json["machineTemplate"]["machineConfig"],
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineConfiguration", "cpu": 2,
                   "memory": 1_048_576, "disks": [{"capacity": 10_737_419, "format": "ext4"}]})
        );
        assert_eq!(json["machineTemplate"]["machineImage"], json!({"href": "https://p/images/9"}));
        assert!(
            json["machineTemplate"].get("credential").is_none() && json["machineTemplate"].get("userData").is_none()
        );
    }

    #[test]
    fn a_template_by_reference_carries_the_interfaces_and_volumes_as_overrides() {
        let m = machine(json!({"providerRef": {"name": "p"}, "machineTemplate": {"name": "web"}}));
        let body = machine_create(&m, &tags(), &catalog(), &related(), TemplateSecrets::default()).expect("body");
        assert_eq!(
            serde_json::to_value(&body).expect("json")["machineTemplate"],
            json!({"href": "https://p/templates/1",
                   "volumes": [{"href": "https://p/volumes/7", "initialLocation": "/dev/vdb"}],
                   "networkInterfaces": [{"network": {"href": "https://p/networks/3"}}]})
        );
    }

    #[test]
    fn a_name_the_catalog_does_not_hold_stalls_with_the_reason() {
        let m = machine(json!({"providerRef": {"name": "p"},
            "template": {"machineConfig": {"name": "huge"}, "machineImage": {"name": "linux"}}}));
        let problem = machine_create(&m, &tags(), &catalog(), &Related::default(), TemplateSecrets::default())
            .expect_err("no such config");
        assert_eq!(problem.reason, Reason::CatalogEntryNotFound);
        assert!(problem.message.contains("machineConfig \"huge\""), "{}", problem.message);
    }
}
