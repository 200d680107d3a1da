//! Network ports (created from a NetworkPortTemplate on a network, listed in the network's `networkPorts`,
//! started and stopped like networks), forwarding groups (created from a ForwardingGroupTemplate listing
//! networks; each network's `forwardingGroup` points back), and volume snapshots (a VolumeImage whose
//! `imageLocation` is a volume: the volume goes CAPTURING, the image is added to its `images`).

use serde_json::{Map, Value, json};

use super::{JobFault, Outcome, SimError, Step, Store, bad, conflict, href, now, trim_hrefs};

impl Store {
    /// Adds `{key: {href: target}}` to the collection `coll` and remembers the entry on `target`, so that the
    /// entry goes when the target does (see [`Store::remove`]).
    pub(super) fn add_entry(&mut self, coll: &str, item_type: &str, key: &str, target: &str) -> String {
        let id = self.next_id();
        let entry = format!("{coll}/{id}");
        let mut doc = Map::new();
        doc.insert(key.into(), json!({"href": self.abs(target)}));
        self.insert(&entry, item_type, coll, doc);
        if let Some(st) = self.resources.get_mut(target) {
            let list = st.hidden.entry("entries").or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                a.push(json!(entry));
            }
        }
        entry
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
        super::validate("NetworkPortConfiguration", &Value::Object(config.clone()), &[])?;
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
            Some((path.clone(), "ERROR".into())),
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
        let job = self.run_job("add", &self.abs("forwardingGroups"), affected, vec![], None, JobFault::default());
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

    /// POST of a VolumeImage whose `imageLocation` is a volume: a snapshot of that volume.
    pub(super) fn snapshot_volume(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        Self::check_resource_uri(obj, "VolumeImage")?;
        super::validate("VolumeImage", &Value::Object(obj.clone()), &[])?;
        let loc = obj.get("imageLocation").and_then(|l| l.as_str().or_else(|| href(l))).unwrap_or_default();
        let volume = self.path_of(loc);
        let (state, bootable) = match self.resources.get(&volume) {
            Some(st) => (st.state().to_string(), st.doc.get("bootable").cloned()),
            None => return Err(bad(format!("volume {loc} does not exist"))),
        };
        if state != "AVAILABLE" {
            return Err(conflict(format!("a snapshot needs an AVAILABLE volume; this one is {state}")));
        }
        let at = now();
        let mut doc = Self::common_from(obj, at);
        for (k, v) in obj {
            if matches!(k.as_str(), "bootable") {
                doc.insert(k.clone(), trim_hrefs(v.clone()));
            }
        }
        doc.insert("state".into(), json!("CREATING"));
        doc.insert("imageLocation".into(), json!({"href": self.abs(&volume)}));
        if !doc.contains_key("bootable")
            && let Some(b) = bootable
        {
            doc.insert("bootable".into(), b);
        }
        let id = self.next_id();
        let path = format!("volumeImages/{id}");
        self.insert(&path, "VolumeImage", "volumeImages", doc);
        let images = format!("{volume}/images");
        if self.colls.contains_key(&images) {
            self.add_entry(&images, "VolumeVolumeImage", "volumeImage", &path);
        }
        self.set_state(&volume, "CAPTURING");
        let steps =
            vec![Step::State(volume.clone(), "AVAILABLE".into()), Step::State(path.clone(), "AVAILABLE".into())];
        let job = self.run_job(
            "add",
            &self.abs("volumeImages"),
            vec![self.abs(&path), self.abs(&volume)],
            steps,
            Some((path.clone(), "ERROR".into())),
            fault,
        );
        Ok(self.created(&path, job))
    }
}
