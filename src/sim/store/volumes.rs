//! Volumes and images: volumes created from a VolumeTemplate (capacity from its config, bootable from its
//! image), attached to machines (MachineVolume; a volume is never shared), snapshots (a VolumeImage whose
//! `imageLocation` is a volume: the volume goes CAPTURING, the image is added to its `images`), and machine
//! captures (a MachineImage whose `imageLocation` is a machine).

use serde_json::{Map, Value, json};

use super::data::Step;
use super::data::{Store, href, now, trim_hrefs};
use super::protocol::{JobFault, Outcome};
use super::schema::{check_resource_uri, validate};
use crate::cimi::model::{NS, action_uri};
use crate::sim::error::{SimError, bad, conflict};
use crate::sim::lifecycle;

impl Store {
    /// POST of a VolumeCreate.
    pub(super) fn create_volume(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        let tmpl = self.template_of(obj, "volumeTemplate", "VolumeTemplate", "VolumeCreate")?;
        // A snapshot restores the source's data and capacity; a config may size it (not below the source).
        let restored = match tmpl.get("volumeImage") {
            Some(img) => self.available_image(img, "VolumeImage")?,
            None => None,
        };
        let image_capacity = restored.as_ref().and_then(|(_, hidden)| hidden.get("capacity").cloned());
        let config = match (tmpl.get("volumeConfig"), &image_capacity) {
            (Some(c), _) => self.resolve(c, "VolumeConfiguration")?,
            (None, Some(capacity)) => {
                let mut config = Map::new();
                config.insert("capacity".into(), capacity.clone());
                config
            }
            (None, None) => return Err(bad("the volume template needs a volumeConfig")),
        };
        validate("VolumeConfiguration", &Value::Object(config.clone()), &[])?;
        let capacity = config.get("capacity").cloned().ok_or_else(|| bad("the volume config needs a capacity"))?;
        let capacity = match (&image_capacity, capacity.as_i64()) {
            (Some(source), Some(asked)) if source.as_i64().is_some_and(|s| s > asked) => source.clone(),
            _ => capacity,
        };
        let bootable = match tmpl.get("volumeImage") {
            Some(img) => self.resolve(img, "VolumeImage")?.get("bootable").cloned().unwrap_or(json!(false)),
            None => json!(false),
        };
        let image = tmpl.get("volumeImage").and_then(href).map(|h| self.path_of(h));
        let at = now();
        let id = self.next_id();
        let path = format!("volumes/{id}");
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        doc.insert("type".into(), config.get("type").cloned().unwrap_or_else(|| json!(format!("{NS}/mapped"))));
        doc.insert("capacity".into(), capacity);
        doc.insert("bootable".into(), bootable);
        doc.insert("images".into(), json!({"href": self.abs(&format!("{path}/images"))}));
        if let Some((image, _)) = &restored {
            // The simulated data continuity: the volume says which snapshot it holds.
            doc.insert("restoredFrom".into(), json!({"href": self.abs(image)}));
        }
        self.insert(&path, "Volume", "volumes", doc);
        let images = self.add_sub_collection(&path, "images", "VolumeVolumeImage");
        if let Some(image) = image {
            self.add_entry(&images, "VolumeVolumeImage", "volumeImage", &image);
        }
        self.monitor_new(&path);
        let steps = vec![Step::State(path.clone(), "AVAILABLE".into())];
        let job = self.run_job(
            "add",
            &self.abs("volumes"),
            vec![self.abs(&path)],
            steps,
            vec![(path.clone(), "ERROR".into())],
            fault,
        );
        Ok(self.created(&path, job))
    }

    /// Refuses a volume that does not exist, is not AVAILABLE or is attached already.
    pub(super) fn check_attachable(&self, volume: &str) -> Result<(), SimError> {
        let st = self
            .resources
            .get(volume)
            .filter(|s| s.type_name == "Volume")
            .ok_or_else(|| bad(format!("volume /{volume} does not exist")))?;
        if st.state() != "AVAILABLE" {
            return Err(conflict(format!("volume /{volume} is {}, not AVAILABLE", st.state())));
        }
        if st.hidden_str("attachedTo").is_some() {
            return Err(conflict(format!("volume /{volume} is already attached (volumes are not shared)")));
        }
        Ok(())
    }

    /// Attaches a volume to a machine (a MachineVolume); returns its path.
    pub(super) fn do_attach(&mut self, machine: &str, volume: &str, loc: Option<Value>) -> String {
        let coll = format!("{machine}/volumes");
        let id = self.next_id();
        let path = format!("{coll}/{id}");
        let mut doc = Map::new();
        if let Some(loc) = loc.filter(|l| !l.is_null()) {
            doc.insert("initialLocation".into(), loc);
        }
        doc.insert("volume".into(), json!({"href": self.abs(volume)}));
        self.insert(&path, "MachineVolume", &coll, doc);
        if let Some(st) = self.resources.get_mut(volume) {
            st.hidden.insert("attachedTo".into(), json!(path));
        }
        path
    }

    /// POST of a MachineVolume to a machine's `volumes`.
    pub(super) fn attach_volume(&mut self, coll: &str, obj: &Map<String, Value>) -> Result<Outcome, SimError> {
        check_resource_uri(obj, "MachineVolume")?;
        validate("MachineVolume", &Value::Object(obj.clone()), &[])?;
        let machine = coll.strip_suffix("/volumes").unwrap_or(coll).to_string();
        let state = self.resources.get(&machine).map(|s| s.state().to_string()).unwrap_or_default();
        if matches!(state.as_str(), "CREATING" | "DELETING") {
            return Err(conflict(format!("the machine is {state}")));
        }
        let h = obj.get("volume").and_then(href).ok_or_else(|| bad("a MachineVolume needs volume.href"))?;
        let vp = self.path_of(h);
        self.check_attachable(&vp)?;
        let path = self.do_attach(&machine, &vp, obj.get("initialLocation").cloned());
        let job = self.run_job(
            "add",
            &self.abs(coll),
            vec![self.abs(&path), self.abs(&vp)],
            vec![],
            vec![],
            JobFault::default(),
        );
        Ok(self.created(&path, job))
    }

    /// POST of a MachineImage whose `imageLocation` is a machine: a capture of that machine.
    pub(super) fn capture(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        validate("MachineImage", &Value::Object(obj.clone()), &[])?;
        let loc = obj.get("imageLocation").and_then(|l| l.as_str().or_else(|| href(l))).unwrap_or_default();
        let machine = self.path_of(loc);
        let state = self.resources.get(&machine).map(|s| s.state().to_string()).unwrap_or_default();
        lifecycle::machine_walk(&state, "capture", false)
            .map_err(|_| conflict(format!("capture is not allowed while the machine is {state}")))?;
        let at = now();
        let mut doc = Self::common_from(obj, at);
        doc.insert("state".into(), json!("CREATING"));
        doc.insert("type".into(), obj.get("type").cloned().unwrap_or_else(|| json!("IMAGE")));
        doc.insert("imageLocation".into(), json!({"href": self.abs(&machine)}));
        let id = self.next_id();
        let path = format!("machineImages/{id}");
        self.insert(&path, "MachineImage", "machineImages", doc);
        let disks: Vec<Value> = self
            .resources
            .iter()
            .filter(|(p, st)| st.type_name == "Disk" && p.starts_with(&format!("{machine}/disks/")))
            .map(|(_, st)| {
                let mut disk = Map::new();
                for k in ["capacity", "format", "initialLocation"] {
                    if let Some(v) = st.doc.get(k) {
                        disk.insert(k.into(), v.clone());
                    }
                }
                Value::Object(disk)
            })
            .collect();
        if let Some(st) = self.resources.get_mut(&path) {
            st.hidden.insert("disks".into(), Value::Array(disks));
        }
        let steps = vec![Step::State(path.clone(), "AVAILABLE".into())];
        let affected = vec![self.abs(&path)];
        let job = self.run_job(
            &action_uri("capture"),
            &self.abs(&machine),
            affected,
            steps,
            vec![(path.clone(), "ERROR".into())],
            fault,
        );
        Ok(self.created(&path, job))
    }

    /// POST of a VolumeImage whose `imageLocation` is a volume: a snapshot of that volume.
    pub(super) fn snapshot_volume(&mut self, obj: &Map<String, Value>, fault: JobFault) -> Result<Outcome, SimError> {
        check_resource_uri(obj, "VolumeImage")?;
        super::validate("VolumeImage", &Value::Object(obj.clone()), &[])?;
        let loc = obj.get("imageLocation").and_then(|l| l.as_str().or_else(|| href(l))).unwrap_or_default();
        let volume = self.path_of(loc);
        let (state, bootable, capacity) = match self.resources.get(&volume) {
            Some(st) => (st.state().to_string(), st.doc.get("bootable").cloned(), st.doc.get("capacity").cloned()),
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
        if let (Some(st), Some(capacity)) = (self.resources.get_mut(&path), capacity) {
            st.hidden.insert("capacity".into(), capacity);
        }
        let images = format!("{volume}/images");
        if self.colls.contains_key(&images) {
            self.add_entry(&images, "VolumeVolumeImage", "volumeImage", &path);
        }
        self.set_state(&volume, "CAPTURING");
        let steps =
            vec![Step::State(volume.clone(), "AVAILABLE".into()), Step::State(path.clone(), "AVAILABLE".into())];
        // A snapshot that fails, is stopped or whose image is deleted gives the volume back as it was.
        let revert = vec![(path.clone(), "ERROR".into()), (volume.clone(), state)];
        let job = self.run_job(
            "add",
            &self.abs("volumeImages"),
            vec![self.abs(&path), self.abs(&volume)],
            steps,
            revert,
            fault,
        );
        Ok(self.created(&path, job))
    }
}
