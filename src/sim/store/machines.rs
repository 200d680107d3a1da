//! Machines: created from a MachineTemplate (config, image, credential, volumes and interfaces resolved and
//! checked before anything is created), with their disks, volumes and network interfaces as sub-collections;
//! interfaces (each with an Address on its network and a MAC address) added and released; what a deleted
//! machine frees; and many machines at once for benchmarks.

use rand::Rng;
use serde_json::{Map, Value, json};

use super::data::Step;
use super::data::{Store, href, now, stamp};
use super::protocol::{JobFault, Outcome};
use super::schema::{check_resource_uri, validate};
use crate::sim::error::{SimError, bad, conflict};
use crate::sim::lifecycle;

/// The MAC prefix of simulated interfaces (locally administered).
const MAC_PREFIX: &str = "02:c1:41";

impl Store {
    /// POST of a MachineCreate.
    pub(super) fn create_machine(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "machineTemplate", "MachineTemplate", "MachineCreate")?;
        let config = tmpl
            .get("machineConfig")
            .ok_or_else(|| bad("the machine template needs a machineConfig"))
            .and_then(|c| self.resolve(c, "MachineConfiguration"))?;
        validate("MachineConfiguration", &Value::Object(config.clone()), &[])?;
        let image = tmpl.get("machineImage").ok_or_else(|| bad("the machine template needs a machineImage"))?;
        // A captured image brings the captured machine's disks.
        let captured_disks =
            self.available_image(image, "MachineImage")?.and_then(|(_, hidden)| hidden.get("disks").cloned());
        let image = self.resolve(image, "MachineImage")?;
        validate("MachineImage", &Value::Object(image.clone()), &[])?;
        if let Some(cred) = tmpl.get("credential") {
            let cred = self.resolve(cred, "Credential")?;
            validate("Credential", &Value::Object(cred), &self.credential_attr_names())?;
        }
        let initial = tmpl.get("initialState").and_then(Value::as_str).unwrap_or("STOPPED").to_string();
        let walk = lifecycle::machine_create_walk(&initial)
            .ok_or_else(|| bad(format!("{initial} is not a state a machine can be created into")))?;
        // Volumes and networks must be usable before anything is created.
        let mut attach = Vec::new();
        for v in tmpl.get("volumes").and_then(Value::as_array).into_iter().flatten() {
            let h = href(v).ok_or_else(|| bad("a template volume needs an href"))?;
            let vp = self.path_of(h);
            self.check_attachable(&vp)?;
            attach.push((vp, v.get("initialLocation").cloned()));
        }
        let mut nets = Vec::new();
        for nic in tmpl.get("networkInterfaces").and_then(Value::as_array).into_iter().flatten() {
            let h = nic.get("network").and_then(href).ok_or_else(|| bad("a network interface needs a network"))?;
            let np = self.path_of(h);
            match self.resources.get(&np) {
                Some(st) if st.type_name == "Network" => {}
                _ => return Err(bad(format!("network {h} does not exist"))),
            }
            nets.push((np, nic.clone()));
        }
        let at = now();
        let id = self.next_id();
        let path = format!("machines/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        for k in ["cpu", "memory", "cpuArch", "cpuSpeed"] {
            if let Some(v) = config.get(k) {
                doc.insert(k.into(), v.clone());
            }
        }
        for sub in ["disks", "volumes", "networkInterfaces"] {
            doc.insert(sub.into(), json!({"href": self.abs(&format!("{path}/{sub}"))}));
        }
        self.insert(&path, "Machine", "machines", doc);
        if let (Some(st), Some(ud)) = (self.resources.get_mut(&path), tmpl.get("userData")) {
            st.hidden.insert("userData".into(), ud.clone());
        }
        let disks = self.add_sub_collection(&path, "disks", "Disk");
        self.add_sub_collection(&path, "volumes", "MachineVolume");
        let nics = self.add_sub_collection(&path, "networkInterfaces", "MachineNetworkInterface");
        let disk_specs = captured_disks.or_else(|| config.get("disks").cloned());
        for (i, d) in disk_specs.as_ref().and_then(Value::as_array).into_iter().flatten().enumerate() {
            let mut disk = Map::new();
            for k in ["capacity", "format"] {
                if let Some(v) = d.get(k) {
                    disk.insert(k.into(), v.clone());
                }
            }
            let loc = d
                .get("initialLocation")
                .cloned()
                .unwrap_or_else(|| json!(format!("/dev/vd{}", (b'a' + (i as u8 % 26)) as char)));
            disk.insert("initialLocation".into(), loc);
            let dp = format!("{disks}/{}", i + 1);
            self.insert(&dp, "Disk", &disks, disk);
        }
        let mut affected = vec![self.abs(&path)];
        for (vp, loc) in attach {
            let mv = self.do_attach(&path, &vp, loc);
            affected.push(self.abs(&mv));
        }
        for (i, (np, nic)) in nets.into_iter().enumerate() {
            let nicp = self.add_nic(&path, &nics, i + 1, &np, &nic);
            affected.push(self.abs(&nicp));
        }
        self.monitor_new(&path);
        let steps: Vec<Step> = walk.iter().map(|s| Step::State(path.clone(), s.to_string())).collect();
        let revert = vec![(path.clone(), "ERROR".to_string())];
        let job = self.run_job("add", &self.abs("machines"), affected, steps, revert, fault);
        Ok(self.created(&path, job))
    }

    /// Creates interface `n` of a machine on a network, with an Address from the network and a MAC address.
    pub(super) fn add_nic(&mut self, machine: &str, nics: &str, n: usize, net: &str, tmpl: &Value) -> String {
        let (subnet, host, mtu) = {
            let st = self.resources.get_mut(net);
            let (subnet, host, mtu) = match st {
                Some(st) => {
                    let subnet = st.hidden.get("subnet").and_then(Value::as_u64).unwrap_or(0);
                    let host = st.hidden.get("nextHost").and_then(Value::as_u64).unwrap_or(2);
                    st.hidden.insert("nextHost".into(), json!(host + 1));
                    let users = st.hidden.get("users").and_then(Value::as_u64).unwrap_or(0);
                    st.hidden.insert("users".into(), json!(users + 1));
                    (subnet, host, st.doc.get("mtu").cloned())
                }
                None => (0, 2, None),
            };
            (subnet, host, mtu)
        };
        let ip = format!("10.{}.{}.{}", 10 + subnet / 256, subnet % 256, host % 254);
        let gateway = format!("10.{}.{}.1", 10 + subnet / 256, subnet % 256);
        let at = now();
        let aid = self.next_id();
        let addr_path = format!("addresses/{aid}");
        let addr = json!({
            "name": ip, "created": stamp(at), "updated": stamp(at), "ip": ip, "allocation": "dynamic",
            "protocol": "IPv4", "mask": "255.255.255.0", "defaultGateway": gateway,
            "network": {"href": self.abs(net)}, "resource": {"href": self.abs(machine)}
        });
        if let Value::Object(addr) = addr {
            self.insert(&addr_path, "Address", "addresses", addr);
        }
        let mac_n: u32 = self.rng.random_range(0..0x00ff_ffff);
        let mac = format!("{MAC_PREFIX}:{:02x}:{:02x}:{:02x}", (mac_n >> 16) & 0xff, (mac_n >> 8) & 0xff, mac_n & 0xff);
        let nic_path = format!("{nics}/{n}");
        let mut nic = Map::new();
        nic.insert("network".into(), json!({"href": self.abs(net)}));
        nic.insert("state".into(), tmpl.get("state").cloned().unwrap_or_else(|| json!("ACTIVE")));
        nic.insert("macAddress".into(), json!(mac));
        if let Some(mtu) = tmpl.get("mtu").cloned().or(mtu) {
            nic.insert("mtu".into(), mtu);
        }
        nic.insert("addresses".into(), json!({"href": self.abs(&format!("{nic_path}/addresses"))}));
        self.insert(&nic_path, "MachineNetworkInterface", nics, nic);
        let addrs = self.add_sub_collection(&nic_path, "addresses", "MachineNetworkInterfaceAddress");
        let entry = json!({"address": {"href": self.abs(&addr_path)}});
        if let Value::Object(entry) = entry {
            self.insert(&format!("{addrs}/1"), "MachineNetworkInterfaceAddress", &addrs, entry);
        }
        if let Some(st) = self.resources.get_mut(&nic_path) {
            st.hidden.insert("address".into(), json!(addr_path));
            st.hidden.insert("network".into(), json!(net));
        }
        nic_path
    }

    /// POST of a MachineNetworkInterface to a machine's `networkInterfaces`: a new interface, with an
    /// address, on an existing network.
    pub(super) fn add_interface(&mut self, coll: &str, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        check_resource_uri(obj, "MachineNetworkInterface")?;
        let machine = coll.strip_suffix("/networkInterfaces").unwrap_or(coll).to_string();
        let state = self.resources.get(&machine).map(|s| s.state().to_string()).unwrap_or_default();
        if matches!(state.as_str(), "CREATING" | "DELETING") {
            return Err(conflict(format!("the machine is {state}")));
        }
        let h = obj.get("network").and_then(href).ok_or_else(|| bad("a network interface needs network.href"))?;
        let np = self.path_of(h);
        match self.resources.get(&np) {
            Some(st) if st.type_name == "Network" => {}
            _ => return Err(bad(format!("network {h} does not exist"))),
        }
        let n: usize = self.next_id().parse().unwrap_or_default();
        let path = self.add_nic(&machine, coll, n, &np, &Value::Object(obj.clone()));
        let job = self.run_job(
            "add",
            &self.abs(coll),
            vec![self.abs(&path), self.abs(&np)],
            vec![],
            vec![],
            JobFault::default(),
        );
        Ok(self.created(&path, job))
    }

    /// Frees what an interface holds: its address, and its place among the network's users.
    pub(super) fn release_interface(&mut self, nic: &str) {
        let (addr, net) = match self.resources.get(nic) {
            Some(s) => (s.hidden_str("address").map(str::to_string), s.hidden_str("network").map(str::to_string)),
            None => (None, None),
        };
        if let Some(a) = addr {
            self.remove(&a);
        }
        if let Some(n) = net.and_then(|n| self.resources.get_mut(&n)) {
            let users = n.hidden.get("users").and_then(Value::as_u64).unwrap_or(1);
            n.hidden.insert("users".into(), json!(users.saturating_sub(1)));
        }
    }

    /// Frees what a machine being removed holds: its volumes are detached, its interfaces' addresses freed.
    pub(super) fn release_machine(&mut self, machine: &str) {
        let members = |s: &Self, sub: &str| -> Vec<String> {
            s.colls.get(&format!("{machine}/{sub}")).map(|c| c.members.values().cloned().collect()).unwrap_or_default()
        };
        for mv in members(self, "volumes") {
            let vol = self.resources.get(&mv).and_then(|s| s.doc.get("volume")).and_then(href).map(|h| self.path_of(h));
            if let Some(v) = vol.and_then(|v| self.resources.get_mut(&v)) {
                v.hidden.remove("attachedTo");
            }
        }
        for nic in members(self, "networkInterfaces") {
            self.release_interface(&nic);
        }
    }

    /// Creates `n` stopped machines quickly (benchmarks and tests).
    pub fn bulk_machines(&mut self, n: usize) {
        let at = now();
        for i in 0..n {
            let id = self.next_id();
            let path = format!("machines/{id}");
            let doc = json!({"name": format!("bulk{i}"), "created": stamp(at), "updated": stamp(at),
                "state": if i % 2 == 0 { "STARTED" } else { "STOPPED" }, "cpu": 1 + (i % 4), "memory": 4000000});
            if let Value::Object(doc) = doc {
                self.insert(&path, "Machine", "machines", doc);
            }
        }
    }
}
