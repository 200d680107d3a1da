//! The SystemCreate body of a CimiSystem: its SystemTemplate by reference (catalog name or href) or by value
//! (component descriptors whose templates are catalog references or values, with `#name` references kept as
//! CIMI's symbolic hrefs). Pure: the catalog and the Secrets' data are given.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api::PowerState;
use crate::api::common::CatalogRef;
use crate::api::provider::CatalogEntry;
use crate::api::quantity::capacity_kb;
use crate::api::reasons::Reason;
use crate::api::system::{ComponentDescriptor, SystemTemplateSpec};
use crate::cimi::model;
use crate::controller::registry::resolve_catalog;

/// The catalog, by CEP collection name.
pub type Catalog = BTreeMap<String, Vec<CatalogEntry>>;

/// A problem with the spec: the reason and the message for the user.
pub type SpecError = (Reason, String);

fn lookup(catalog: &Catalog, collection: &str, reference: &CatalogRef, what: &str) -> Result<String, SpecError> {
    resolve_catalog(catalog.get(collection).map(Vec::as_slice).unwrap_or(&[]), reference, what)
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
) -> Result<Value, SpecError> {
    if let Some(reference) = template_ref {
        let href = lookup(catalog, "systemTemplates", reference, "templateRef")?;
        return Ok(json!({"href": href}));
    }
    let Some(template) = template else {
        return Err((Reason::InvalidSpec, "set spec.templateRef or spec.template".into()));
    };
    check_references(template)?;
    let mut descriptors = Vec::new();
    for c in &template.component_descriptors {
        descriptors.push(descriptor(c, catalog, secrets, power)?);
    }
    Ok(json!({"resourceURI": model::type_uri("SystemTemplate"), "componentDescriptors": descriptors}))
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
) -> Result<Value, SpecError> {
    let mut d = Map::new();
    d.insert("name".into(), json!(c.name));
    if let Some(text) = &c.description {
        d.insert("description".into(), json!(text));
    }
    if let Some(p) = &c.properties {
        let user: BTreeMap<&String, &String> = p.iter().filter(|(k, _)| !k.starts_with("cimi.dev/")).collect();
        d.insert("properties".into(), json!(user));
    }
    d.insert("quantity".into(), json!(c.quantity.unwrap_or(1)));
    let what = |field: &str| format!("component {}: {field}", c.name);
    if let Some(m) = &c.machine_template {
        let mut t = Map::new();
        if let Some(href) = template_ref(catalog, "machineTemplates", &m.name, &m.href, &what("machineTemplate"))? {
            t.insert("href".into(), json!(href));
        }
        if let Some(r) = &m.machine_config {
            let href = lookup(catalog, "machineConfigs", r, &what("machineConfig"))?;
            t.insert("machineConfig".into(), json!({"href": href}));
        }
        if let Some(r) = &m.machine_image {
            let href = lookup(catalog, "machineImages", r, &what("machineImage"))?;
            t.insert("machineImage".into(), json!({"href": href}));
        }
        if let Some(r) = &m.credential {
            t.insert("credential".into(), json!({"href": r.href}));
        }
        if !m.network_interfaces.is_empty() {
            let nics: Vec<Value> =
                m.network_interfaces.iter().map(|n| json!({"network": {"href": n.network.href}})).collect();
            t.insert("networkInterfaces".into(), json!(nics));
        }
        if !m.volumes.is_empty() {
            let vols: Vec<Value> = m
                .volumes
                .iter()
                .map(|v| match &v.initial_location {
                    Some(l) => json!({"href": v.volume.href, "initialLocation": l}),
                    None => json!({"href": v.volume.href}),
                })
                .collect();
            t.insert("volumes".into(), json!(vols));
        }
        t.insert("initialState".into(), json!(power.cimi_state()));
        d.insert("type".into(), json!(model::type_uri("Machine")));
        d.insert("machineTemplate".into(), Value::Object(t));
    } else if let Some(v) = &c.volume_template {
        let mut t = Map::new();
        if let Some(href) = template_ref(catalog, "volumeTemplates", &v.name, &v.href, &what("volumeTemplate"))? {
            t.insert("href".into(), json!(href));
        } else if let Some(r) = &v.volume_config {
            let href = lookup(catalog, "volumeConfigs", r, &what("volumeConfig"))?;
            t.insert("volumeConfig".into(), json!({"href": href}));
        } else if let Some(q) = &v.capacity {
            let kb = capacity_kb(q).map_err(|e| (Reason::InvalidSpec, format!("{}: {e}", what("capacity"))))?;
            t.insert(
                "volumeConfig".into(),
                json!({"resourceURI": model::type_uri("VolumeConfiguration"), "capacity": kb}),
            );
        }
        d.insert("type".into(), json!(model::type_uri("Volume")));
        d.insert("volumeTemplate".into(), Value::Object(t));
    } else if let Some(n) = &c.network_template {
        let mut t = Map::new();
        if let Some(href) = template_ref(catalog, "networkTemplates", &n.name, &n.href, &what("networkTemplate"))? {
            t.insert("href".into(), json!(href));
        } else if let Some(r) = &n.network_config {
            let href = lookup(catalog, "networkConfigs", r, &what("networkConfig"))?;
            t.insert("networkConfig".into(), json!({"href": href}));
        }
        d.insert("type".into(), json!(model::type_uri("Network")));
        d.insert("networkTemplate".into(), Value::Object(t));
    } else if let Some(cred) = &c.credential_template {
        let mut t = Map::new();
        if let Some(href) =
            template_ref(catalog, "credentialTemplates", &cred.name, &cred.href, &what("credentialTemplate"))?
        {
            t.insert("href".into(), json!(href));
        } else if let Some(r) = &cred.secret_ref {
            let data = secrets.get(&r.name).ok_or_else(|| {
                (Reason::SecretNotFound, format!("{}: Secret {} does not exist", what("credentialTemplate"), r.name))
            })?;
            for (k, v) in data {
                t.insert(k.clone(), json!(v));
            }
        }
        d.insert("type".into(), json!(model::type_uri("Credential")));
        d.insert("credentialTemplate".into(), Value::Object(t));
    } else {
        return Err((Reason::InvalidSpec, format!("component {} sets no template", c.name)));
    }
    Ok(Value::Object(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::LocalObjectRef;
    use crate::api::system::{
        ComponentCredentialTemplate, ComponentMachineTemplate, ComponentNetworkInterface, ComponentNetworkTemplate,
        ComponentRef, ComponentVolumeTemplate,
    };

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
                        secret_ref: Some(LocalObjectRef { name: "login".into() }),
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
        assert_eq!(t, json!({"href": "http://p/systemTemplates/web-tier"}));
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
