//! The operations on an existing resource: PUT (full, or partial with `$select`; the CloudEntryPoint too),
//! DELETE (refused while a resource is busy or still used; the removal then follows its Job), and actions
//! (POST of an Action, checked against the state machines of [`lifecycle`](crate::sim::lifecycle)).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::data::Step;
use super::data::{Store, href, now, stamp, trim_hrefs};
use super::protocol::{JobFault, Outcome, ReadQuery};
use super::schema::{BY_VALUE, READ_ONLY, WRITE_ONLY, check_resource_uri, parse_typed, validate};
use crate::cimi::model::{self as m, action_name, action_uri};
use crate::sim::config::{Profile, Timing};
use crate::sim::error::{SimError, bad, conflict, not_found};
use crate::sim::lifecycle::{self, ActionRefusal};
use crate::sim::query;

impl Store {
    /// The attributes of a type a consumer may write with PUT.
    pub(super) fn writable(&self, type_name: &str, allowed_in_body: &Map<String, Value>) -> Vec<String> {
        let mut names: Vec<String> = vec!["name".into(), "description".into(), "properties".into()];
        if type_name == "Credential" {
            names.extend(self.credential_attr_names());
        } else if BY_VALUE.contains(&type_name) {
            names.extend(allowed_in_body.keys().filter(|k| !READ_ONLY.contains(&k.as_str())).cloned());
        }
        names
    }

    /// PUT of a resource (full, or partial with `$select`).
    pub fn update(&mut self, path: &str, body: &Value, select: Option<&[String]>) -> Result<Outcome, SimError> {
        let obj = body.as_object().ok_or_else(|| bad("the body must be an object"))?;
        let at = now();
        if path.is_empty() {
            return self.update_cep(obj, select);
        }
        let (type_name, existing) = match self.resources.get(path) {
            Some(st) => (st.type_name.clone(), st.doc.clone()),
            None => return Err(not_found(path)),
        };
        check_resource_uri(obj, &type_name)?;
        let extra = if type_name == "Credential" { self.credential_attr_names() } else { vec![] };
        validate(&type_name, body, &extra)?;
        if type_name == "Machine" {
            let state = existing.get("state").and_then(Value::as_str).unwrap_or("");
            if !lifecycle::MACHINE_STABLE.contains(&state) {
                return Err(conflict(format!("the machine cannot be edited while {state}")));
            }
        }
        let mut candidates = existing.clone();
        for (k, v) in obj {
            candidates.insert(k.clone(), v.clone());
        }
        let writable = self.writable(&type_name, &candidates);
        let names: Vec<String> = match select {
            Some(sel) if !sel.iter().any(|s| s == "*") => {
                for k in obj.keys() {
                    if k != "resourceURI" && k != "id" && !sel.contains(k) {
                        return Err(bad(format!("{k} is in the body but not in $select")));
                    }
                }
                sel.iter().filter(|s| writable.contains(s)).cloned().collect()
            }
            _ => writable.clone(),
        };
        let partial = select.is_some_and(|s| !s.iter().any(|x| x == "*"));
        let Some(st) = self.resources.get_mut(path) else {
            return Err(not_found(path));
        };
        for name in &names {
            let is_secret = WRITE_ONLY.contains(&name.as_str()) && type_name == "Credential";
            match obj.get(name).filter(|v| !v.is_null()) {
                Some(v) if is_secret => {
                    st.hidden.insert(name.clone(), v.clone());
                }
                Some(v) => {
                    st.doc.insert(name.clone(), trim_hrefs(v.clone()));
                }
                None if is_secret && !partial => {}
                None if is_secret => {
                    st.hidden.remove(name);
                }
                None => {
                    st.doc.remove(name);
                }
            }
        }
        st.doc.insert("updated".into(), stamp(at));
        st.version += 1;
        self.model_event(path, "update");
        let job = self.run_job("edit", &self.abs(path), vec![], vec![], vec![], JobFault::default());
        let mut out = self.read(path, &ReadQuery::default())?;
        if partial && let (Some(Value::Object(doc)), Some(sel)) = (&mut out.body, select) {
            query::select(doc, sel);
        }
        out.job = job.map(|j| self.abs(&j));
        out.write = true;
        Ok(out)
    }

    /// PUT of the CloudEntryPoint (only its name, description and properties are writable).
    pub(super) fn update_cep(
        &mut self,
        obj: &Map<String, Value>,
        select: Option<&[String]>,
    ) -> Result<Outcome, SimError> {
        validate("CloudEntryPoint", &Value::Object(obj.clone()), &[])?;
        let names: Vec<String> = match select {
            Some(sel) => {
                sel.iter().filter(|s| ["name", "description", "properties"].contains(&s.as_str())).cloned().collect()
            }
            None => vec!["name".into(), "description".into(), "properties".into()],
        };
        for n in names {
            match obj.get(&n).filter(|v| !v.is_null()) {
                Some(v) => {
                    self.cep.insert(n, v.clone());
                }
                None => {
                    self.cep.remove(&n);
                }
            }
        }
        self.cep_version += 1;
        let job = self.run_job("edit", &self.base.clone(), vec![], vec![], vec![], JobFault::default());
        let mut out = self.read("", &ReadQuery::default())?;
        out.job = job.map(|j| self.abs(&j));
        out.write = true;
        Ok(out)
    }

    /// DELETE of a resource.
    pub fn delete(&mut self, path: &str, fault: JobFault) -> Result<Outcome, SimError> {
        let st = self.resources.get(path).ok_or_else(|| not_found(path))?;
        let type_name = st.type_name.clone();
        let state = st.state().to_string();
        let target = self.abs(path);
        match type_name.as_str() {
            "ResourceMetadata" | "Disk" | "MachineNetworkInterfaceAddress" => {
                Err(SimError::new(405, format!("{type_name} entries cannot be deleted")))
            }
            "MachineNetworkInterface" => {
                self.release_interface(path);
                self.remove(path);
                let job = self.run_job("delete", &target, vec![], vec![], vec![], JobFault::default());
                Ok(self.accepted(job, 200))
            }
            "MachineVolume" => {
                let vol = st.doc.get("volume").and_then(href).map(|h| self.path_of(h));
                let coll = st.coll.clone();
                self.remove(path);
                if let Some(v) = vol.and_then(|v| self.resources.get_mut(&v)) {
                    v.hidden.remove("attachedTo");
                }
                let job = self.run_job("delete", &target, vec![], vec![], vec![], JobFault::default());
                Ok(Outcome {
                    status: 200,
                    body: if self.profile == Profile::Lenient1x {
                        Some(Value::Object(self.render_collection(&coll, &ReadQuery::default())))
                    } else {
                        None
                    },
                    job: job.map(|j| self.abs(&j)),
                    write: true,
                    ..Default::default()
                })
            }
            "System" => self.delete_system(path, fault),
            "Machine" | "Volume" | "Network" | "NetworkPort" => {
                let stable = match type_name.as_str() {
                    "Machine" => lifecycle::MACHINE_STABLE.contains(&state.as_str()),
                    "Volume" => matches!(state.as_str(), "AVAILABLE" | "ERROR"),
                    _ => matches!(state.as_str(), "STARTED" | "STOPPED" | "ERROR"),
                };
                if !stable {
                    return Err(conflict(format!("the {type_name} cannot be deleted while {state}")));
                }
                if type_name == "Machine" && !self.deletable_in(&state) {
                    return Err(conflict(format!(
                        "this provider deletes only stopped machines; the machine is {state}"
                    )));
                }
                if type_name == "Volume" && st.hidden_str("attachedTo").is_some() {
                    return Err(conflict("the volume is attached to a machine; detach it first"));
                }
                if type_name == "Network" && st.hidden.get("users").and_then(Value::as_u64).unwrap_or(0) > 0 {
                    return Err(conflict("the network still has machine interfaces"));
                }
                if type_name == "Network"
                    && self.colls.get(&format!("{path}/networkPorts")).is_some_and(|c| !c.members.is_empty())
                {
                    return Err(conflict("the network still has ports; delete them first"));
                }
                self.set_state(path, "DELETING");
                let steps = vec![Step::Remove(path.to_string())];
                let job = self.run_job("delete", &target, vec![], steps, vec![(path.to_string(), state)], fault);
                Ok(self.accepted(job, 200))
            }
            "Job" => {
                self.stop_job(path, now());
                self.remove(path);
                let job = self.run_job("delete", &target, vec![], vec![], vec![], JobFault::default());
                Ok(self.accepted(job, 200))
            }
            _ => {
                // An image deleted while it is being made ends its Job, and frees what the Job held.
                self.stop_transitions_of(path, now());
                if type_name == "ForwardingGroup" {
                    self.leave_forwarding_group(path);
                }
                self.remove(path);
                let job = self.run_job("delete", &target, vec![], vec![], vec![], JobFault::default());
                Ok(self.accepted(job, 200))
            }
        }
    }

    /// The answer to an operation that may still be running: `done_status` when finished, else 202 + Job.
    pub(super) fn accepted(&self, job: Option<String>, done_status: u16) -> Outcome {
        let job_uri = job.as_ref().map(|j| self.abs(j));
        let finished = match &job {
            Some(_) => self.job_done(&job),
            None => self.timing == Timing::Instant,
        };
        if finished {
            Outcome { status: done_status, job: job_uri, write: true, ..Default::default() }
        } else {
            let body = job.as_ref().and_then(|j| self.resources.get(j).map(|st| Value::Object(self.render(j, st))));
            Outcome { status: 202, body, job: job_uri, write: true, ..Default::default() }
        }
    }

    /// Removes a resource at the end of a delete, with everything that goes with it.
    pub(super) fn remove_resource(&mut self, path: &str, _at: DateTime<Utc>) {
        let Some(type_name) = self.resources.get(path).map(|st| st.type_name.clone()) else {
            return;
        };
        self.model_event(path, "delete");
        if type_name == "Machine" {
            self.release_machine(path);
        }
        self.remove(path);
    }

    /// POST of an action to a resource.
    pub fn action(&mut self, path: &str, body: &Value, fault: JobFault) -> Result<Outcome, SimError> {
        let obj = body.as_object().ok_or_else(|| bad("the body must be an object"))?;
        check_resource_uri(obj, "Action")?;
        let action: m::Action = parse_typed(body, &[])?;
        let uri = action.action.clone().ok_or_else(|| bad("an Action needs an action URI"))?;
        let name = action_name(uri.trim()).ok_or_else(|| bad(format!("{uri} is not a CIMI action")))?.to_string();
        let st = self.resources.get(path).ok_or_else(|| not_found(path))?;
        let type_name = st.type_name.clone();
        let state = st.state().to_string();
        let refuse = |r: ActionRefusal| match r {
            ActionRefusal::Unknown => bad(format!("{type_name} has no action {name}")),
            ActionRefusal::NotAllowedNow => conflict(format!("{name} is not allowed while the {type_name} is {state}")),
        };
        let target = self.abs(path);
        match type_name.as_str() {
            "Machine" => {
                let walk = lifecycle::machine_walk(&state, &name, action.force.unwrap_or(false)).map_err(refuse)?;
                if name == "capture" {
                    let mut img = Map::new();
                    img.insert("name".into(), json!(format!("capture of {}", self.name_of(path).unwrap_or_default())));
                    img.insert("imageLocation".into(), json!({"href": target}));
                    let out = self.capture(&img, fault)?;
                    return Ok(Outcome { status: if out.status == 201 { 204 } else { 202 }, body: out.body, ..out });
                }
                if state == "STOPPING" {
                    self.stop_transitions_of(path, now());
                }
                self.walk_action(path, &target, &name, &state, walk, fault)
            }
            "Network" | "NetworkPort" => {
                let walk = lifecycle::network_walk(&state, &name).map_err(refuse)?;
                self.walk_action(path, &target, &name, &state, walk, fault)
            }
            "System" => self.system_action(path, &name, fault),
            "Volume" if name == "snapshot" => {
                // 2.0: the volume's snapshot operation makes the same VolumeImage as the 1.x POST.
                let mut img = Map::new();
                img.insert("resourceURI".into(), json!(crate::cimi::model::type_uri("VolumeImage")));
                let named = obj.get("name").and_then(Value::as_str).map(str::to_string);
                img.insert(
                    "name".into(),
                    json!(named.unwrap_or_else(|| format!("snapshot of {}", self.name_of(path).unwrap_or_default()))),
                );
                if let Some(props) = obj.get("properties") {
                    img.insert("properties".into(), props.clone());
                }
                img.insert("imageLocation".into(), json!({"href": target}));
                let out = self.snapshot_volume(&img, fault)?;
                Ok(Outcome { status: if out.status == 201 { 204 } else { 202 }, ..out })
            }
            "Job" => {
                if name != "stop" {
                    return Err(refuse(ActionRefusal::Unknown));
                }
                if !lifecycle::job_stoppable(&state) {
                    return Err(refuse(ActionRefusal::NotAllowedNow));
                }
                if !self.stop_job(path, now()) && !self.stop_parent_job(path, now()) {
                    self.set_job_state(path, "STOPPED", 100, 2, "stopped by the consumer", now());
                }
                Ok(Outcome { status: 204, job: Some(target), write: true, ..Default::default() })
            }
            _ => Err(refuse(ActionRefusal::Unknown)),
        }
    }

    /// Runs an action as a walk through states: the first at once, the rest as a Job.
    pub(super) fn walk_action(
        &mut self,
        path: &str,
        target: &str,
        name: &str,
        state: &str,
        walk: Vec<&'static str>,
        fault: JobFault,
    ) -> Result<Outcome, SimError> {
        let mut walk = walk.into_iter();
        // The first transient state shows at once; the rest follow the timing.
        let first = walk.next();
        if let Some(first) = first {
            self.set_state(path, first);
        }
        let steps: Vec<Step> = walk.map(|s| Step::State(path.to_string(), s.to_string())).collect();
        let job =
            self.run_job(&action_uri(name), target, vec![], steps, vec![(path.to_string(), state.to_string())], fault);
        Ok(self.accepted(job, 204))
    }
}
