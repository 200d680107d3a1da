//! CimiVolume as a [`StorageKind`] whose provider resource is a Volume, created from an
//! inline capacity (kB from a quantity), a VolumeConfiguration or a VolumeTemplate.

use std::future::Future;
use std::time::Duration;

use kube::api::Api;
use serde_json::{Map, Value, json};

use super::controller;
use super::kind::StorageKind;
use crate::api::common::ManagedStatus;
use crate::api::quantity::{capacity_kb, format_capacity_kb};
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiVolume, CimiVolumeStatus};
use crate::cimi::model;
use crate::controller::context::Context;
use crate::controller::outcome::{Problem, Progress};
use crate::controller::registry::{ProviderConnection, resolve_catalog};
use crate::controller::resource::reads::{boolean, int, text};
use crate::controller::shell::error::Error;
use crate::controller::shell::kind::{Guard, KindStatus, ManagedKind};

impl KindStatus for CimiVolumeStatus {
    fn common(&self) -> &ManagedStatus {
        &self.common
    }
    fn common_mut(&mut self) -> &mut ManagedStatus {
        &mut self.common
    }
}

impl ManagedKind for CimiVolume {
    type Status = CimiVolumeStatus;
    const NOUN: &'static str = "volume";
    const COLLECTION: &'static str = "volumes";

    fn status_now(&self) -> CimiVolumeStatus {
        self.status.clone().unwrap_or_default()
    }

    fn guard(&self, ctx: &Context, api: &Api<Self>) -> impl Future<Output = Result<Guard, Error>> + Send {
        controller::guard(self, ctx, api)
    }

    fn sync(
        &self,
        ctx: &Context,
        api: &Api<Self>,
        status: &mut CimiVolumeStatus,
    ) -> impl Future<Output = Result<(Progress, Duration), Problem>> + Send {
        controller::sync(self, ctx, api, status)
    }
}

impl StorageKind for CimiVolume {
    const READY_STATE: &'static str = "AVAILABLE";

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn observe_into(v: &Value, status: &mut CimiVolumeStatus) {
        status.common.state = text(v, "state").map(str::to_string);
        status.capacity = int(v, "capacity");
        status.capacity_display = status.capacity.map(format_capacity_kb);
        status.type_ = text(v, "type").map(str::to_string);
        status.bootable = boolean(v, "bootable");
    }
    fn create_body(&self, conn: &ProviderConnection) -> Result<Value, Problem> {
        let spec = &self.spec;
        let entries = |name: &str| conn.catalog.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let stalled = |(reason, message): (Reason, String)| Problem::stalled(reason, message);
        let template = if let Some(r) = &spec.volume_template {
            json!({"href": resolve_catalog(entries("volumeTemplates"), r, "volumeTemplate").map_err(stalled)?})
        } else {
            let mut t = Map::new();
            if let Some(r) = &spec.volume_config {
                let href = resolve_catalog(entries("volumeConfigs"), r, "volumeConfig").map_err(stalled)?;
                t.insert("volumeConfig".into(), json!({"href": href}));
            } else {
                let capacity = spec
                    .capacity
                    .as_ref()
                    .ok_or_else(|| {
                        Problem::stalled(Reason::InvalidSpec, "set spec.capacity, volumeConfig or volumeTemplate")
                    })
                    .and_then(|q| capacity_kb(q).map_err(|e| Problem::stalled(Reason::InvalidSpec, e.to_string())))?;
                let mut config = json!({"resourceURI": model::type_uri("VolumeConfiguration"), "capacity": capacity});
                if let Some(t) = &spec.type_ {
                    config["type"] = json!(t);
                }
                if let Some(f) = &spec.format {
                    config["format"] = json!(f);
                }
                t.insert("volumeConfig".into(), config);
            }
            if let Some(r) = &spec.volume_image {
                let href = resolve_catalog(entries("volumeImages"), r, "volumeImage").map_err(stalled)?;
                t.insert("volumeImage".into(), json!({"href": href}));
            }
            Value::Object(t)
        };
        Ok(json!({"resourceURI": model::type_uri("VolumeCreate"), "volumeTemplate": template}))
    }
    fn named_by(machine: &CimiMachine) -> Vec<String> {
        machine.spec.volumes.iter().map(|x| x.volume_ref.name.clone()).collect()
    }
}
