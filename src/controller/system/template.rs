//! The SystemCreate body of a CimiSystem: its SystemTemplate by reference (catalog name or href) or by value
//! (component descriptors whose templates are catalog references or values, with `#name` references kept as
//! CIMI's symbolic hrefs). Pure: the catalog and the Secrets' data are given.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::api::PowerState;
use crate::api::common::CatalogRef;
use crate::api::quantity::capacity_kb;
use crate::api::reasons::Reason;
use crate::api::system::{ComponentDescriptor, SystemTemplateSpec};
use crate::cimi::model::{self, Ref, RefOr, Resource as _};
use crate::controller::registry::{catalog_entries, resolve_catalog};

pub use crate::controller::registry::Catalog;

/// A problem with the spec: the reason and the message for the user.
pub type SpecError = (Reason, String);

fn lookup(catalog: &Catalog, collection: &str, reference: &CatalogRef, what: &str) -> Result<String, SpecError> {
    resolve_catalog(catalog_entries(catalog, collection), reference, what)
}

fn template_ref(
    catalog: &Catalog,
    collection: &str,
    name: &Option<String>,
    href: &Option<String>,
    what: &str,
) -> Result<Option<String>, SpecError> {
    if name.is_none() && href.is_none() {
        return Ok(None);
    }
    let reference = CatalogRef { name: name.clone(), href: href.clone() };
    lookup(catalog, collection, &reference, what).map(Some)
}

/// The `systemTemplate` of the SystemCreate: `{href}` for a provider template, else the descriptors by value.
pub fn system_template(
    template_ref: Option<&CatalogRef>,
    template: Option<&SystemTemplateSpec>,
    catalog: &Catalog,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    power: PowerState,
) -> Result<RefOr<model::SystemTemplate>, SpecError> {
    if let Some(reference) = template_ref {
        return Ok(RefOr::Ref(Ref::new(lookup(catalog, "systemTemplates", reference, "systemTemplate")?)));
    }
    let Some(template) = template else {
        return Err((Reason::InvalidSpec, "set spec.systemTemplate or spec.template".into()));
    };
    check_references(template)?;
    let mut descriptors = Vec::new();
    for c in &template.component_descriptors {
        descriptors.push(descriptor(c, catalog, secrets, power)?);
    }
    Ok(RefOr::Value(model::SystemTemplate {
        component_descriptors: Some(descriptors),
        ..model::SystemTemplate::typed()
    }))
}

/// A bare reference to `href`.
fn reference<T>(href: String) -> Option<RefOr<T>> {
    Some(RefOr::Ref(Ref::new(href)))
}

/// `{href, overrides…}` when there is an href (the value's attributes go with it as overrides), else the value.
fn by_ref_or_value<T: Serialize>(href: Option<String>, value: T) -> RefOr<T> {
    match href {
        Some(href) => {
            let extra = match serde_json::to_value(&value) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            RefOr::Ref(Ref { href, extra })
        }
        None => RefOr::Value(value),
    }
}

/// Which components a symbolic reference may name.
type ComponentKind = fn(&ComponentDescriptor) -> bool;

/// Every `#name` names a component of the right kind (admission checks it too; this guards older objects).
fn check_references(template: &SystemTemplateSpec) -> Result<(), SpecError> {
    let has =
        |name: &str, pick: ComponentKind| template.component_descriptors.iter().any(|d| d.name == name && pick(d));
    for c in &template.component_descriptors {
        let Some(m) = &c.machine_template else { continue };
        let mut refs: Vec<(&str, &str, ComponentKind)> = Vec::new();
        for n in &m.network_interfaces {
            refs.push((&n.network.href, "network", |d| d.network_template.is_some()));
        }
        for v in &m.volumes {
            refs.push((&v.volume.href, "volume", |d| d.volume_template.is_some()));
        }
        if let Some(cred) = &m.credential {
            refs.push((&cred.href, "credential", |d| d.credential_template.is_some()));
        }
        for (href, kind, pick) in refs {
            if let Some(name) = href.strip_prefix('#')
                && !has(name, pick)
            {
                return Err((
                    Reason::InvalidSpec,
                    format!("component {}: {href} names no {kind} component of the template", c.name),
                ));
            }
        }
    }
    Ok(())
}

fn descriptor(
    c: &ComponentDescriptor,
    catalog: &Catalog,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    power: PowerState,
) -> Result<model::ComponentDescriptor, SpecError> {
    let mut d = model::ComponentDescriptor {
        name: Some(c.name.clone()),
        description: c.description.clone(),
        properties: c
            .properties
            .iter()
            .flatten()
            .filter(|(k, _)| !k.starts_with("cimi.dev/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        quantity: Some(i64::from(c.quantity.unwrap_or(1))),
        ..Default::default()
    };
    let what = |field: &str| format!("component {}: {field}", c.name);
    if let Some(m) = &c.machine_template {
        let href = template_ref(catalog, "machineTemplates", &m.name, &m.href, &what("machineTemplate"))?;
        let mut t =
            model::MachineTemplate { initial_state: Some(power.cimi_state().to_string()), ..Default::default() };
        if let Some(r) = &m.machine_config {
            t.machine_config = reference(lookup(catalog, "machineConfigs", r, &what("machineConfig"))?);
        }
        if let Some(r) = &m.machine_image {
            t.machine_image = reference(lookup(catalog, "machineImages", r, &what("machineImage"))?);
        }
        if let Some(r) = &m.credential {
            t.credential = reference(r.href.clone());
        }
        if !m.network_interfaces.is_empty() {
            t.network_interfaces = Some(
                m.network_interfaces
                    .iter()
                    .map(|n| model::MachineTemplateNetworkInterface {
                        network: Some(Ref::new(n.network.href.clone())),
                        ..Default::default()
                    })
                    .collect(),
            );
        }
        if !m.volumes.is_empty() {
            t.volumes = Some(
                m.volumes
                    .iter()
                    .map(|v| model::MachineTemplateVolume {
                        href: v.volume.href.clone(),
                        initial_location: v.initial_location.clone(),
                    })
                    .collect(),
            );
        }
        d.type_ = Some(model::Machine::resource_uri());
        d.machine_template = Some(by_ref_or_value(href, t));
    } else if let Some(v) = &c.volume_template {
        let mut t = model::VolumeTemplate::default();
        let href = template_ref(catalog, "volumeTemplates", &v.name, &v.href, &what("volumeTemplate"))?;
        if href.is_none() {
            if let Some(r) = &v.volume_config {
                t.volume_config = reference(lookup(catalog, "volumeConfigs", r, &what("volumeConfig"))?);
            } else if let Some(q) = &v.capacity {
                let kb = capacity_kb(q).map_err(|e| (Reason::InvalidSpec, format!("{}: {e}", what("capacity"))))?;
                t.volume_config = Some(RefOr::Value(model::VolumeConfiguration {
                    capacity: Some(kb),
                    ..model::VolumeConfiguration::typed()
                }));
            }
        }
        d.type_ = Some(model::Volume::resource_uri());
        d.volume_template = Some(by_ref_or_value(href, t));
    } else if let Some(n) = &c.network_template {
        let mut t = model::NetworkTemplate::default();
        let href = template_ref(catalog, "networkTemplates", &n.name, &n.href, &what("networkTemplate"))?;
        if href.is_none()
            && let Some(r) = &n.network_config
        {
            t.network_config = reference(lookup(catalog, "networkConfigs", r, &what("networkConfig"))?);
        }
        d.type_ = Some(model::Network::resource_uri());
        d.network_template = Some(by_ref_or_value(href, t));
    } else if let Some(cred) = &c.credential_template {
        let mut t = model::CredentialTemplate::default();
        let href = template_ref(catalog, "credentialTemplates", &cred.name, &cred.href, &what("credentialTemplate"))?;
        if href.is_none()
            && let Some(r) = &cred.credential_secret_ref
        {
            let data = secrets.get(&r.name).ok_or_else(|| {
                (Reason::SecretNotFound, format!("{}: Secret {} does not exist", what("credentialTemplate"), r.name))
            })?;
            t.extra = data.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        }
        d.type_ = Some(model::Credential::resource_uri());
        d.credential_template = Some(by_ref_or_value(href, t));
    } else {
        return Err((Reason::InvalidSpec, format!("component {} sets no template", c.name)));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::SecretRef;
    use crate::api::provider::CatalogEntry;
    use crate::api::system::{
        ComponentCredentialTemplate, ComponentMachineTemplate, ComponentNetworkInterface, ComponentNetworkTemplate,
        ComponentRef, ComponentVolumeTemplate,
    };
    use serde_json::json;

    fn catalog() -> Catalog {
        let entry = |name: &str, href: &str| CatalogEntry { name: Some(name.into()), href: href.into() };
        BTreeMap::from([
            ("machineTemplates".into(), vec![entry("small-suse", "http://p/machineTemplates/small-suse")]),
            ("networkTemplates".into(), vec![entry("private", "http://p/networkTemplates/private")]),
            ("volumeConfigs".into(), vec![entry("10g", "http://p/volumeConfigs/10g")]),
            ("systemTemplates".into(), vec![entry("web-tier", "http://p/systemTemplates/web-tier")]),
        ])
    }

    fn template() -> SystemTemplateSpec {
        SystemTemplateSpec {
            component_descriptors: vec![
                ComponentDescriptor {
                    name: "net".into(),
                    network_template: Some(ComponentNetworkTemplate {
                        name: Some("private".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ComponentDescriptor {
                    name: "data".into(),
                    volume_template: Some(ComponentVolumeTemplate {
                        volume_config: Some(CatalogRef::by_name("10g")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ComponentDescriptor {
                    name: "admin".into(),
                    credential_template: Some(ComponentCredentialTemplate {
                        credential_secret_ref: Some(SecretRef::new("login")),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ComponentDescriptor {
                    name: "web".into(),
                    quantity: Some(2),
                    machine_template: Some(ComponentMachineTemplate {
                        name: Some("small-suse".into()),
                        credential: Some(ComponentRef { href: "#admin".into() }),
                        network_interfaces: vec![ComponentNetworkInterface {
                            network: ComponentRef { href: "#net".into() },
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn a_template_by_reference_resolves_through_the_catalog() {
        let t = system_template(
            Some(&CatalogRef::by_name("web-tier")),
            None,
            &catalog(),
            &BTreeMap::new(),
            PowerState::Started,
        )
        .expect("resolves");
        assert_eq!(serde_json::to_value(t).expect("json"), json!({"href": "http://p/systemTemplates/web-tier"}));
        let e = system_template(
            Some(&CatalogRef::by_name("nope")),
            None,
            &catalog(),
            &BTreeMap::new(),
            PowerState::Started,
        )
        .expect_err("unknown");
        assert_eq!(e.0, Reason::CatalogEntryNotFound);
    }

    #[test]
    fn a_template_by_value_keeps_symbolic_references_and_quantities() {
        let secrets =
            BTreeMap::from([("login".to_string(), BTreeMap::from([("userID".to_string(), "admin".to_string())]))]);
        let t = system_template(None, Some(&template()), &catalog(), &secrets, PowerState::Stopped).expect("builds");
        let t = serde_json::to_value(t).expect("json");
        assert_eq!(t["resourceURI"], "http://schemas.dmtf.org/cimi/1/SystemTemplate");
        let d = &t["componentDescriptors"];
        assert_eq!(d[0]["networkTemplate"]["href"], "http://p/networkTemplates/private");
        assert_eq!(d[1]["volumeTemplate"]["volumeConfig"]["href"], "http://p/volumeConfigs/10g");
        assert_eq!(d[2]["credentialTemplate"]["userID"], "admin");
        assert_eq!(d[3]["quantity"], 2);
        assert_eq!(d[3]["type"], "http://schemas.dmtf.org/cimi/1/Machine");
        assert_eq!(d[3]["machineTemplate"]["href"], "http://p/machineTemplates/small-suse");
        assert_eq!(d[3]["machineTemplate"]["networkInterfaces"][0]["network"]["href"], "#net");
        assert_eq!(d[3]["machineTemplate"]["credential"]["href"], "#admin");
        assert_eq!(d[3]["machineTemplate"]["initialState"], "STOPPED");
    }

    #[test]
    fn bad_references_and_missing_secrets_are_spec_errors() {
        let mut t = template();
        if let Some(m) = t.component_descriptors[3].machine_template.as_mut() {
            m.network_interfaces[0].network.href = "#data".into();
        }
        let e = system_template(None, Some(&t), &catalog(), &BTreeMap::new(), PowerState::Started).expect_err("bad");
        assert_eq!(e.0, Reason::InvalidSpec);
        assert!(e.1.contains("#data"), "{}", e.1);
        let e = system_template(None, Some(&template()), &catalog(), &BTreeMap::new(), PowerState::Started)
            .expect_err("no secret");
        assert_eq!(e.0, Reason::SecretNotFound);
    }
}
