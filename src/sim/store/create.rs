//! POST to a collection: the dispatch by item type (each kind's own room does the work), references and
//! templates resolved (`{href, overrides…}` or a value), the resources created by value (templates,
//! configurations, images) and credentials (from a CredentialTemplate), and the answer: 201 with the resource,
//! or 202 with its Job while it is being created.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::data::{Store, href, now, stamp, trim_hrefs};
use super::protocol::{JobFault, Outcome, Target};
use super::schema::{BY_VALUE, READ_ONLY, WRITE_ONLY, check_resource_uri, validate};
use crate::cimi::model as m;
use crate::sim::config::Timing;
use crate::sim::error::{SimError, bad, not_found};

/// An AVAILABLE image a template names: its path, and what the simulator kept aside for restores.
pub(super) type AvailableImage = (String, Map<String, Value>);

impl Store {
    /// POST to a collection.
    pub fn create(&mut self, coll_path: &str, body: &Value, fault: JobFault) -> Result<Outcome, SimError> {
        let coll_path = if let Some(owner) = coll_path.strip_suffix("/volumeAttachments") {
            format!("{owner}/volumes")
        } else {
            coll_path.to_string()
        };
        let item = self.colls.get(&coll_path).map(|c| c.item_type.clone()).ok_or_else(|| not_found(&coll_path))?;
        let obj = body.as_object().ok_or_else(|| bad("the body must be an object"))?;
        match item.as_str() {
            "Machine" => self.create_machine(obj, fault),
            "Credential" => self.create_credential(obj),
            "Volume" => self.create_volume(obj, fault),
            "Network" => self.create_network(obj, fault),
            "NetworkPort" => self.create_network_port(obj, fault),
            "ForwardingGroup" => self.create_forwarding_group(obj),
            "Address" => self.create_address(obj),
            "System" => self.create_system(obj, fault),
            "MachineVolume" => self.attach_volume(&coll_path, obj),
            "MachineNetworkInterface" => self.add_interface(&coll_path, obj),
            "MachineImage"
                if obj.get("imageLocation").and_then(|l| l.as_str().or_else(|| href(l))).is_some_and(
                    |l| matches!(self.target(&self.path_of(l)), Target::Resource(t) if t == "Machine"),
                ) =>
            {
                self.capture(obj, fault)
            }
            "VolumeImage"
                if obj
                    .get("imageLocation")
                    .and_then(|l| l.as_str().or_else(|| href(l)))
                    .is_some_and(|l| matches!(self.target(&self.path_of(l)), Target::Resource(t) if t == "Volume")) =>
            {
                self.snapshot_volume(obj, fault)
            }
            t if BY_VALUE.contains(&t) => self.create_by_value(&coll_path, t, obj),
            t => Err(SimError::new(405, format!("{t} resources cannot be created here"))),
        }
    }

    /// The answer to a create: 201 with the resource when it exists already, else 202 with its Job.
    pub(super) fn created(&self, path: &str, job: Option<String>) -> Outcome {
        let job_uri = job.as_ref().map(|j| self.abs(j));
        let done = job.is_none() && self.timing == Timing::Instant || self.job_done(&job);
        let st = self.resources.get(path);
        let busy = self.busy(path);
        if done || (job.is_none() && !busy) {
            Outcome {
                status: 201,
                body: st.map(|st| Value::Object(self.render(path, st))),
                location: Some(self.abs(path)),
                job: job_uri,
                etag: self.etag(path),
                write: true,
                raw: None,
            }
        } else {
            let body = job.as_ref().and_then(|j| self.resources.get(j).map(|st| Value::Object(self.render(j, st))));
            Outcome {
                status: 202,
                body,
                location: Some(self.abs(path)),
                job: job_uri,
                etag: None,
                write: true,
                raw: None,
            }
        }
    }

    /// Resolves `{href, overrides…}` or a value into the attributes of a stored `expected_type` resource.
    /// The image a template names by href (`v`), checked AVAILABLE (409 otherwise, in every profile): its path and
    /// what the simulator kept aside for restores (the source's capacity, the captured machine's disks). None for
    /// an image given by value.
    pub(super) fn available_image(&self, v: &Value, expected_type: &str) -> Result<Option<AvailableImage>, SimError> {
        let Some(h) = v.get("href").and_then(Value::as_str) else { return Ok(None) };
        let path = self.path_of(h);
        let Some(st) = self.resources.get(&path).filter(|st| st.type_name == expected_type) else {
            return Err(bad(format!("{expected_type} {} does not exist", h.trim())));
        };
        let state = st.state();
        if state != "AVAILABLE" {
            return Err(crate::sim::error::conflict(format!(
                "the {expected_type} {} is {state}: only an AVAILABLE image can be used",
                h.trim()
            )));
        }
        Ok(Some((path, st.hidden.clone())))
    }

    pub(super) fn resolve(&self, v: &Value, expected_type: &str) -> Result<Map<String, Value>, SimError> {
        let obj = v.as_object().ok_or_else(|| bad(format!("{expected_type} must be an object")))?;
        let Some(h) = obj.get("href").and_then(Value::as_str) else {
            return Ok(obj.clone());
        };
        let path = self.path_of(h);
        let st =
            self.resources.get(&path).ok_or_else(|| bad(format!("{expected_type} {} does not exist", h.trim())))?;
        if st.type_name != expected_type {
            return Err(bad(format!("{} is a {}, not a {expected_type}", h.trim(), st.type_name)));
        }
        let mut base = st.doc.clone();
        for (k, v) in &st.hidden {
            if WRITE_ONLY.contains(&k.as_str()) {
                base.insert(k.clone(), v.clone());
            }
        }
        for (k, val) in obj {
            if k == "href" {
                continue;
            }
            if val.is_null() {
                base.remove(k);
            } else {
                base.insert(k.clone(), val.clone());
            }
        }
        for k in ["created", "updated", "state", "name", "description", "properties"] {
            if !obj.contains_key(k) {
                base.remove(k);
            }
        }
        Ok(base)
    }

    /// The common attributes of a new resource: name, description and properties from the body, and timestamps.
    pub(super) fn common_from(body: &Map<String, Value>, at: DateTime<Utc>) -> Map<String, Value> {
        let mut doc = Map::new();
        for k in ["name", "description", "properties"] {
            if let Some(v) = body.get(k).filter(|v| !m::is_empty_value(v)) {
                doc.insert(k.into(), v.clone());
            }
        }
        doc.insert("created".into(), stamp(at));
        doc.insert("updated".into(), stamp(at));
        doc
    }

    /// The template of a `<Type>Create` body (`key`, by reference or by value), resolved and checked.
    pub(super) fn template_of(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        template_type: &str,
        create_type: &str,
    ) -> Result<Map<String, Value>, SimError> {
        check_resource_uri(obj, create_type)?;
        validate(create_type, &Value::Object(obj.clone()), &[])?;
        let t = obj.get(key).ok_or_else(|| bad(format!("{create_type} needs {key}")))?;
        let tmpl = self.resolve(t, template_type)?;
        let extra = if template_type == "CredentialTemplate" { self.credential_attr_names() } else { vec![] };
        validate(template_type, &Value::Object(tmpl.clone()), &extra)?;
        Ok(tmpl)
    }

    /// POST of a resource by value (a template, a configuration, an image…).
    pub(super) fn create_by_value(
        &mut self,
        coll: &str,
        type_name: &str,
        obj: &Map<String, Value>,
    ) -> Result<Outcome, SimError> {
        check_resource_uri(obj, type_name)?;
        validate(type_name, &Value::Object(obj.clone()), &[])?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        for (k, v) in obj {
            if !READ_ONLY.contains(&k.as_str()) && !doc.contains_key(k) && !v.is_null() {
                doc.insert(k.clone(), trim_hrefs(v.clone()));
            }
        }
        if matches!(type_name, "MachineImage" | "VolumeImage") {
            doc.insert("state".into(), json!("AVAILABLE"));
        }
        if type_name == "MachineImage" && !doc.contains_key("type") {
            doc.insert("type".into(), json!("IMAGE"));
        }
        let id = self.next_id();
        let path = format!("{coll}/{id}");
        self.insert(&path, type_name, coll, doc);
        let job = self.run_job("add", &self.abs(coll), vec![self.abs(&path)], vec![], vec![], JobFault::default());
        Ok(self.created(&path, job))
    }

    /// POST of a CredentialCreate: the template's attributes, the write-only ones kept aside.
    pub(super) fn create_credential(&mut self, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "credentialTemplate", "CredentialTemplate", "CredentialCreate")?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        let mut hidden = Map::new();
        for attr in &self.credential_attrs {
            match tmpl.get(&attr.name) {
                Some(v) if !v.is_null() => {
                    if WRITE_ONLY.contains(&attr.name.as_str()) {
                        hidden.insert(attr.name.clone(), v.clone());
                    } else {
                        doc.insert(attr.name.clone(), v.clone());
                    }
                }
                _ if attr.required == Some(true) => {
                    return Err(bad(format!("the Credential attribute {} is required", attr.name)));
                }
                _ => {}
            }
        }
        let id = self.next_id();
        let path = format!("credentials/{id}");
        self.insert(&path, "Credential", "credentials", doc);
        if let Some(st) = self.resources.get_mut(&path) {
            st.hidden = hidden;
        }
        let job =
            self.run_job("add", &self.abs("credentials"), vec![self.abs(&path)], vec![], vec![], JobFault::default());
        Ok(self.created(&path, job))
    }
}
