//! Systems: created from a SystemTemplate's component descriptors (`quantity` naming `name1..N`, symbolic
//! `{"href": "#name"}` references), with a parent Job whose nested Jobs are the components'; the state is
//! that of its machines, or MIXED; actions apply to every machine that allows them.
//!
//! A Job fault (`jobFails`, `jobHangs`) on a system create or a system action falls on the last nested Job
//! only: the components before it succeed, so the failure comes midway, as a real provider's would.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::data::Step;
use super::data::{Store, href, now};
use super::protocol::{JobFault, Outcome};
use crate::cimi::model::action_uri;
use crate::sim::error::{SimError, bad, conflict};
use crate::sim::lifecycle;

/// Component kinds in creation order: template key, component type, system sub-collection, association type.
const COMPONENTS: &[(&str, &str, &str, &str)] = &[
    ("credentialTemplate", "Credential", "credentials", "SystemCredential"),
    ("networkTemplate", "Network", "networks", "SystemNetwork"),
    ("forwardingGroupTemplate", "ForwardingGroup", "forwardingGroups", "SystemForwardingGroup"),
    ("networkPortTemplate", "NetworkPort", "networkPorts", "SystemNetworkPort"),
    ("volumeTemplate", "Volume", "volumes", "SystemVolume"),
    ("addressTemplate", "Address", "addresses", "SystemAddress"),
    ("machineTemplate", "Machine", "machines", "SystemMachine"),
    ("systemTemplate", "System", "systems", "SystemSystem"),
];

/// Replaces `{"href": "#name"}` by the href of the component created under that name.
fn resolve_symbols(v: &Value, names: &HashMap<String, String>) -> Result<Value, SimError> {
    Ok(match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                let x = match (k.as_str(), x) {
                    ("href", Value::String(s)) if s.trim().starts_with('#') => {
                        let name = s.trim().trim_start_matches('#');
                        Value::String(
                            names.get(name).cloned().ok_or_else(|| bad(format!("no component named {name}")))?,
                        )
                    }
                    _ => resolve_symbols(x, names)?,
                };
                out.insert(k.clone(), x);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve_symbols(x, names)).collect::<Result<_, _>>()?),
        other => other.clone(),
    })
}

impl Store {
    /// POST of a SystemCreate.
    pub(super) fn create_system(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "systemTemplate", "SystemTemplate", "SystemCreate")?;
        let descriptors = tmpl.get("componentDescriptors").and_then(Value::as_array).cloned().unwrap_or_default();
        let at = now();
        let id = self.next_id();
        let path = format!("systems/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        for (_, _, sub, _) in COMPONENTS {
            doc.insert(sub.to_string(), json!({"href": self.abs(&format!("{path}/{sub}"))}));
        }
        self.insert(&path, "System", "systems", doc);
        for (_, _, sub, assoc) in COMPONENTS {
            self.add_sub_collection(&path, sub, assoc);
        }
        self.monitor_new(&path);
        let job = self.run_job("add", &self.abs("systems"), vec![self.abs(&path)], vec![], vec![], JobFault::default());
        let mut names: HashMap<String, String> = HashMap::new();
        let mut nested = Vec::new();
        let mut failure = None;
        // The fault falls on the last component only (see the module documentation).
        let total: u64 = COMPONENTS
            .iter()
            .flat_map(|(key, ..)| descriptors.iter().filter(move |d| d.get(*key).is_some()))
            .map(|d| d.get("quantity").and_then(Value::as_u64).unwrap_or(1).max(1))
            .sum();
        let mut made = 0u64;
        'kinds: for (key, _, sub, assoc) in COMPONENTS {
            for d in descriptors.iter().filter(|d| d.get(*key).is_some()) {
                let base_name = d.get("name").and_then(Value::as_str).unwrap_or("component").to_string();
                let quantity = d.get("quantity").and_then(Value::as_u64).unwrap_or(1).max(1);
                for i in 1..=quantity {
                    let name = if quantity > 1 { format!("{base_name}{i}") } else { base_name.clone() };
                    let template = match d.get(*key).map(|t| resolve_symbols(t, &names)) {
                        Some(Ok(t)) => t,
                        Some(Err(e)) => {
                            failure = Some(e);
                            break 'kinds;
                        }
                        None => continue,
                    };
                    let mut body = Map::new();
                    body.insert("name".into(), json!(name));
                    for k in ["description", "properties"] {
                        if let Some(v) = d.get(k) {
                            body.insert(k.into(), v.clone());
                        }
                    }
                    body.insert(key.to_string(), template);
                    made += 1;
                    let fault = if made == total { fault } else { JobFault::default() };
                    let created = match *key {
                        "machineTemplate" => self.create_machine(&body, fault),
                        "networkTemplate" => self.create_network(&body, fault),
                        "networkPortTemplate" => self.create_network_port(&body, fault),
                        "forwardingGroupTemplate" => self.create_forwarding_group(&body),
                        "volumeTemplate" => self.create_volume(&body, fault),
                        "credentialTemplate" => self.create_credential(&body),
                        "addressTemplate" => self.create_address(&body),
                        _ => self.create_system(&body, fault),
                    };
                    let out = match created {
                        Ok(out) => out,
                        Err(e) => {
                            failure = Some(SimError::new(e.status, format!("component {name}: {}", e.message)));
                            break 'kinds;
                        }
                    };
                    let Some(location) = out.location.clone() else {
                        continue;
                    };
                    names.entry(name.clone()).or_insert_with(|| location.clone());
                    if quantity > 1 {
                        names.entry(base_name.clone()).or_insert_with(|| location.clone());
                    }
                    let coll = format!("{path}/{sub}");
                    let field = sub.trim_end_matches('s').replace("addresse", "address");
                    let entry = json!({ field: {"href": location} });
                    let aid = self.next_id();
                    if let Value::Object(entry) = entry {
                        self.insert(&format!("{coll}/{aid}"), assoc, &coll, entry);
                    }
                    if let (Some(parent), Some(child)) = (&job, out.job.as_deref()) {
                        let child = self.path_of(child);
                        if let Some(st) = self.resources.get_mut(&child) {
                            st.doc.insert("parentJob".into(), json!({"href": self.base.clone() + parent}));
                        }
                        nested.push(json!({"href": self.abs(&child)}));
                    }
                }
            }
        }
        if let Some(err) = failure {
            // Undo: a failed system create leaves nothing behind but its (failed) Job.
            self.delete_components(&path);
            self.remove(&path);
            if let Some(j) = &job {
                self.set_job_state(j, "FAILED", 100, i64::from(err.status), &err.message, now());
            }
            return Err(err);
        }
        if let Some(j) = &job {
            if let Some(st) = self.resources.get_mut(j) {
                st.doc.insert("nestedJobs".into(), Value::Array(nested));
            }
            self.parents.push((j.clone(), path.clone()));
        } else {
            self.parents.push((String::new(), path.clone()));
        }
        self.check_parents(now());
        Ok(self.created(&path, job))
    }

    /// Completes parent Jobs whose nested Jobs have all finished, and settles their systems' state.
    pub(super) fn check_parents(&mut self, at: DateTime<Utc>) {
        let parents = std::mem::take(&mut self.parents);
        let mut keep = Vec::new();
        for (job, system) in parents {
            let components = self.system_members(&system, "machines");
            let busy = components.iter().any(|m| self.busy(m))
                || ["networks", "volumes"].iter().any(|s| self.system_members(&system, s).iter().any(|r| self.busy(r)));
            let nested = self.nested_jobs(&job);
            let states: Vec<String> =
                nested.iter().filter_map(|n| self.resources.get(n).map(|s| s.state().to_string())).collect();
            let done = states.iter().all(|s| matches!(s.as_str(), "SUCCESS" | "FAILED" | "STOPPED"));
            if !done || busy {
                if !job.is_empty() {
                    let progress =
                        (states.iter().filter(|s| *s == "SUCCESS").count() * 100 / states.len().max(1)) as i64;
                    self.set_job_state(&job, "RUNNING", progress.min(99), 0, "creating components", at);
                }
                keep.push((job, system));
                continue;
            }
            let failed = states.iter().any(|s| s != "SUCCESS");
            if !job.is_empty() {
                if failed {
                    self.set_job_state(&job, "FAILED", 100, 1, "a component failed", at);
                } else {
                    self.set_job_state(&job, "SUCCESS", 100, 0, "completed", at);
                }
            }
            let final_state = if failed { "ERROR" } else { "STARTED" };
            if self.resources.get(&system).is_some_and(|s| s.state() == "CREATING") {
                self.set_state(&system, final_state);
            }
        }
        keep.append(&mut self.parents);
        self.parents = keep;
    }

    /// Stops a system's running parent Job: its nested Jobs still running are stopped (what each holds
    /// reverts), a system still being created is left in ERROR with the components made so far, and the parent
    /// is STOPPED (it no longer follows its nested Jobs). False when the Job is no running parent.
    pub(super) fn stop_parent_job(&mut self, job: &str, at: DateTime<Utc>) -> bool {
        let Some(idx) = self.parents.iter().position(|(j, _)| j == job) else {
            return false;
        };
        let (_, system) = self.parents.remove(idx);
        for n in &self.nested_jobs(job) {
            self.stop_job(n, at);
        }
        if self.resources.get(&system).is_some_and(|s| s.state() == "CREATING") {
            self.set_state(&system, "ERROR");
        }
        self.set_job_state(job, "STOPPED", 100, 2, "stopped by the consumer", at);
        true
    }

    /// The paths of a parent Job's nested Jobs.
    fn nested_jobs(&self, job: &str) -> Vec<String> {
        self.resources
            .get(job)
            .and_then(|j| j.doc.get("nestedJobs"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(href).map(|h| self.path_of(h)).collect())
            .unwrap_or_default()
    }

    /// The component paths of one system sub-collection (`machines`, `volumes`, …).
    fn system_members(&self, system: &str, sub: &str) -> Vec<String> {
        let field = sub.trim_end_matches('s').replace("addresse", "address");
        self.colls
            .get(&format!("{system}/{sub}"))
            .map(|c| {
                c.members
                    .values()
                    .filter_map(|a| self.resources.get(a))
                    .filter_map(|a| a.doc.get(&field).and_then(href).map(|h| self.path_of(h)))
                    // A member removed by a delete Job that failed before its end is no member any more.
                    .filter(|m| self.resources.contains_key(m))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The state of a system as served: CREATING, DELETING and ERROR as stored; otherwise the common state of
    /// its machines, or MIXED.
    pub(super) fn system_state(&self, path: &str, stored: &str) -> String {
        if matches!(stored, "CREATING" | "DELETING" | "ERROR") {
            return stored.to_string();
        }
        let mut states: Vec<String> = self
            .system_members(path, "machines")
            .iter()
            .filter_map(|m| self.resources.get(m).map(|s| s.state().to_string()))
            .collect();
        states.dedup();
        match states.as_slice() {
            [] => stored.to_string(),
            [one] => one.clone(),
            _ => {
                let first = &states[0];
                if states.iter().all(|s| s == first) { first.clone() } else { "MIXED".to_string() }
            }
        }
    }

    /// The actions a system offers now: those that at least one of its machines allows.
    pub(super) fn system_actions(&self, path: &str) -> Vec<&'static str> {
        let machines = self.system_members(path, "machines");
        ["start", "stop", "restart", "pause", "suspend"]
            .into_iter()
            .filter(|a| {
                machines.iter().any(|m| {
                    self.resources.get(m).is_some_and(|s| lifecycle::machine_walk(s.state(), a, false).is_ok())
                })
            })
            .collect()
    }

    /// A recursive action: every machine that allows it runs it; one parent Job with nested Jobs.
    pub(super) fn system_action(&mut self, path: &str, name: &str, fault: JobFault) -> Result<Outcome, SimError> {
        if !["start", "stop", "restart", "pause", "suspend"].contains(&name) {
            return Err(bad(format!("System has no action {name}")));
        }
        let machines: Vec<String> = self
            .system_members(path, "machines")
            .into_iter()
            .filter(|m| self.resources.get(m).is_some_and(|s| lifecycle::machine_walk(s.state(), name, false).is_ok()))
            .collect();
        if machines.is_empty() {
            return Err(conflict(format!("no machine of the system can {name} now")));
        }
        let job = self.run_job(&action_uri(name), &self.abs(path), vec![], vec![], vec![], JobFault::default());
        let mut nested = Vec::new();
        let last = machines.len().saturating_sub(1);
        for (i, m) in machines.into_iter().enumerate() {
            let fault = if i == last { fault } else { JobFault::default() };
            let state = self.resources.get(&m).map(|s| s.state().to_string()).unwrap_or_default();
            let walk = lifecycle::machine_walk(&state, name, false).unwrap_or_default();
            let target = self.abs(&m);
            let out = self.walk_action(&m, &target, name, &state, walk, fault)?;
            if let (Some(parent), Some(child)) = (&job, out.job) {
                let child = self.path_of(&child);
                if let Some(st) = self.resources.get_mut(&child) {
                    st.doc.insert("parentJob".into(), json!({"href": self.base.clone() + parent}));
                }
                nested.push(json!({"href": self.abs(&child)}));
            }
        }
        if let Some(j) = &job {
            if let Some(st) = self.resources.get_mut(j) {
                st.doc.insert("nestedJobs".into(), Value::Array(nested));
            }
            self.parents.push((j.clone(), path.to_string()));
        }
        self.check_parents(now());
        Ok(self.accepted(job, 204))
    }

    /// DELETE of a system: its machines first, then its other components, then the system.
    pub(super) fn delete_system(&mut self, path: &str, fault: JobFault) -> Result<Outcome, SimError> {
        let machines = self.system_members(path, "machines");
        for m in &machines {
            let state = self.resources.get(m).map(|s| s.state().to_string()).unwrap_or_default();
            if !lifecycle::MACHINE_STABLE.contains(&state.as_str()) {
                return Err(conflict(format!("machine /{m} is {state}; the system cannot be deleted now")));
            }
        }
        let state = self.resources.get(path).map(|s| s.state().to_string()).unwrap_or_default();
        if matches!(state.as_str(), "CREATING" | "DELETING") {
            return Err(conflict(format!("the system cannot be deleted while {state}")));
        }
        if !self.deletable_in(&self.system_state(path, &state)) {
            return Err(conflict(format!("this provider deletes only stopped systems; the system is {state}")));
        }
        let mut steps = Vec::new();
        for m in &machines {
            self.set_state(m, "DELETING");
            steps.push(Step::Remove(m.clone()));
        }
        for sub in ["volumes", "networks", "addresses", "credentials", "systems"] {
            for r in self.system_members(path, sub) {
                steps.push(Step::Remove(r));
            }
        }
        steps.push(Step::Remove(path.to_string()));
        self.set_state(path, "DELETING");
        let target = self.abs(path);
        let job = self.run_job("delete", &target, vec![], steps, vec![(path.to_string(), state)], fault);
        Ok(self.accepted(job, 200))
    }

    /// Removes every component at once (a failed create).
    fn delete_components(&mut self, path: &str) {
        for sub in [
            "machines",
            "volumes",
            "networkPorts",
            "forwardingGroups",
            "networks",
            "addresses",
            "credentials",
            "systems",
        ] {
            for r in self.system_members(path, sub) {
                if sub == "forwardingGroups" {
                    self.leave_forwarding_group(&r);
                }
                self.remove_resource(&r, now());
            }
        }
    }
}
