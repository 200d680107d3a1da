//! Networks (from a NetworkTemplate, with an address range of their own, STARTED or STOPPED), addresses (from
//! an AddressTemplate), network ports (from a NetworkPortTemplate on a network, listed in the network's
//! `networkPorts`, started and stopped like networks) and forwarding groups (from a ForwardingGroupTemplate
//! listing networks; each network's `forwardingGroup` points back).

use serde_json::{Map, Value, json};

use super::data::Step;
use super::data::{Store, href, now, trim_hrefs};
use super::protocol::{JobFault, Outcome};
use super::schema::{READ_ONLY, validate};
use crate::sim::error::{SimError, bad, conflict};

impl Store {
    /// POST of a NetworkCreate.
    pub(super) fn create_network(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "networkTemplate", "NetworkTemplate", "NetworkCreate")?;
        let config = match tmpl.get("networkConfig") {
            Some(c) => self.resolve(c, "NetworkConfiguration")?,
            None => Map::new(),
        };
        validate("NetworkConfiguration", &Value::Object(config.clone()), &[])?;
        let initial = tmpl.get("initialState").and_then(Value::as_str).unwrap_or("STARTED").to_string();
        let walk: Vec<&str> = match initial.as_str() {
            "STARTED" => vec!["STARTING", "STARTED"],
            "STOPPED" => vec!["STOPPED"],
            other => {
                return Err(bad(format!("{other} is not a state a network can be created into")));
            }
        };
        let at = now();
        let id = self.next_id();
        let path = format!("networks/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        for k in ["networkType", "mtu", "classOfService"] {
            if let Some(v) = config.get(k) {
                doc.insert(k.into(), v.clone());
            }
        }
        let group = match tmpl.get("forwardingGroup").and_then(href) {
            Some(h) => {
                let g = self.path_of(h);
                match self.resources.get(&g) {
                    Some(st) if st.type_name == "ForwardingGroup" => Some(g),
                    _ => return Err(bad(format!("forwarding group {h} does not exist"))),
                }
            }
            None => None,
        };
        doc.insert("networkPorts".into(), json!({"href": self.abs(&format!("{path}/networkPorts"))}));
        if let Some(g) = &group {
            doc.insert("forwardingGroup".into(), json!({"href": self.abs(g)}));
        }
        let subnet = self.colls.get("networks").map(|c| c.members.len()).unwrap_or(0) as u64 + self.seq % 7;
        self.insert(&path, "Network", "networks", doc);
        self.add_sub_collection(&path, "networkPorts", "NetworkNetworkPort");
        if let Some(g) = group {
            self.add_entry(&format!("{g}/networks"), "ForwardingGroupNetwork", "network", &path);
        }
        if let Some(st) = self.resources.get_mut(&path) {
            st.hidden.insert("subnet".into(), json!(subnet));
        }
        self.monitor_new(&path);
        let steps = walk.iter().map(|s| Step::State(path.clone(), s.to_string())).collect();
        let job = self.run_job(
            "add",
            &self.abs("networks"),
            vec![self.abs(&path)],
            steps,
            vec![(path.clone(), "ERROR".into())],
            fault,
        );
        Ok(self.created(&path, job))
    }

    /// POST of an AddressCreate.
    pub(super) fn create_address(&mut self, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "addressTemplate", "AddressTemplate", "AddressCreate")?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        for (k, v) in tmpl {
            if !READ_ONLY.contains(&k.as_str()) && !matches!(k.as_str(), "name" | "description" | "properties") {
                doc.insert(k, trim_hrefs(v));
            }
        }
        let id = self.next_id();
        let path = format!("addresses/{id}");
        self.insert(&path, "Address", "addresses", doc);
        let job =
            self.run_job("add", &self.abs("addresses"), vec![self.abs(&path)], vec![], vec![], JobFault::default());
        Ok(self.created(&path, job))
    }

    /// POST of a NetworkPortCreate.
    pub(super) fn create_network_port(
        &mut self,
        obj: &Map<String, Value>,
        fault: JobFault,
    ) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "networkPortTemplate", "NetworkPortTemplate", "NetworkPortCreate")?;
        let h = tmpl.get("network").and_then(href).ok_or_else(|| bad("a network port template needs a network"))?;
        let net = self.path_of(h);
        let state = match self.resources.get(&net) {
            Some(st) if st.type_name == "Network" => st.state().to_string(),
            _ => return Err(bad(format!("network {h} does not exist"))),
        };
        if matches!(state.as_str(), "CREATING" | "DELETING" | "ERROR") {
            return Err(conflict(format!("the network is {state}; no port can be added now")));
        }
        let config = match tmpl.get("networkPortConfig") {
            Some(c) => self.resolve(c, "NetworkPortConfiguration")?,
            None => Map::new(),
        };
        validate("NetworkPortConfiguration", &Value::Object(config.clone()), &[])?;
        let at = now();
        let id = self.next_id();
        let path = format!("networkPorts/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        doc.insert("network".into(), json!({"href": self.abs(&net)}));
        for k in ["portType", "classOfService"] {
            if let Some(v) = config.get(k) {
                doc.insert(k.into(), v.clone());
            }
        }
        self.insert(&path, "NetworkPort", "networkPorts", doc);
        let ports = format!("{net}/networkPorts");
        if self.colls.contains_key(&ports) {
            self.add_entry(&ports, "NetworkNetworkPort", "networkPort", &path);
        }
        self.monitor_new(&path);
        let steps = ["STARTING", "STARTED"].iter().map(|s| Step::State(path.clone(), s.to_string())).collect();
        let job = self.run_job(
            "add",
            &self.abs("networkPorts"),
            vec![self.abs(&path), self.abs(&net)],
            steps,
            vec![(path.clone(), "ERROR".into())],
            fault,
        );
        Ok(self.created(&path, job))
    }

    /// POST of a ForwardingGroupCreate.
    pub(super) fn create_forwarding_group(&mut self, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        let tmpl =
            self.template_of(obj, "forwardingGroupTemplate", "ForwardingGroupTemplate", "ForwardingGroupCreate")?;
        let mut nets = Vec::new();
        for n in tmpl.get("networks").and_then(Value::as_array).into_iter().flatten() {
            let h = href(n).ok_or_else(|| bad("each network of a forwarding group needs an href"))?;
            let p = self.path_of(h);
            match self.resources.get(&p) {
                Some(st) if st.type_name == "Network" => {
                    if st.doc.contains_key("forwardingGroup") {
                        return Err(conflict(format!("network {h} already belongs to a forwarding group")));
                    }
                }
                _ => return Err(bad(format!("network {h} does not exist"))),
            }
            if !nets.contains(&p) {
                nets.push(p);
            }
        }
        let at = now();
        let id = self.next_id();
        let path = format!("forwardingGroups/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("networks".into(), json!({"href": self.abs(&format!("{path}/networks"))}));
        self.insert(&path, "ForwardingGroup", "forwardingGroups", doc);
        let coll = self.add_sub_collection(&path, "networks", "ForwardingGroupNetwork");
        let mut affected = vec![self.abs(&path)];
        for n in nets {
            self.add_entry(&coll, "ForwardingGroupNetwork", "network", &n);
            let fg = json!({"href": self.abs(&path)});
            if let Some(st) = self.resources.get_mut(&n) {
                st.doc.insert("forwardingGroup".into(), fg);
            }
            affected.push(self.abs(&n));
        }
        let job = self.run_job("add", &self.abs("forwardingGroups"), affected, vec![], vec![], JobFault::default());
        Ok(self.created(&path, job))
    }

    /// Clears the `forwardingGroup` of the networks of a group being removed.
    pub(super) fn leave_forwarding_group(&mut self, group: &str) {
        let href_of_group = self.abs(group);
        let nets: Vec<String> = self
            .colls
            .get(&format!("{group}/networks"))
            .map(|c| c.members.values().cloned().collect())
            .unwrap_or_default();
        for entry in nets {
            let net =
                self.resources.get(&entry).and_then(|e| e.doc.get("network")).and_then(href).map(|h| self.path_of(h));
            if let Some(st) = net.and_then(|n| self.resources.get_mut(&n))
                && st.doc.get("forwardingGroup").and_then(href) == Some(href_of_group.as_str())
            {
                st.doc.remove("forwardingGroup");
            }
        }
    }
}
