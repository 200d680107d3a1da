//! CimiNetwork as a [`StorageKind`] whose provider resource is a Network, created from an
//! inline type (and MTU, class of service), a NetworkConfiguration or a NetworkTemplate.

use std::future::Future;
use std::time::Duration;

use kube::api::Api;
use serde_json::{Map, Value, json};

use super::controller;
use super::kind::StorageKind;
use crate::api::common::ManagedStatus;
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiNetwork, CimiNetworkStatus};
use crate::cimi::model;
use crate::controller::context::Context;
use crate::controller::outcome::{Problem, Progress};
use crate::controller::registry::{ProviderConnection, resolve_catalog};
use crate::controller::resource::reads::{int, text};
use crate::controller::shell::error::Error;
use crate::controller::shell::kind::{Guard, KindStatus, ManagedKind};

impl KindStatus for CimiNetworkStatus {
    fn common(&self) -> &ManagedStatus {
        &self.common
    }
    fn common_mut(&mut self) -> &mut ManagedStatus {
        &mut self.common
    }
}

impl ManagedKind for CimiNetwork {
    type Status = CimiNetworkStatus;
    const NOUN: &'static str = "network";
    const COLLECTION: &'static str = "networks";

    fn status_now(&self) -> CimiNetworkStatus {
        self.status.clone().unwrap_or_default()
    }

    fn guard(&self, ctx: &Context, api: &Api<Self>) -> impl Future<Output = Result<Guard, Error>> + Send {
        controller::guard(self, ctx, api)
    }

    fn sync(
        &self,
        ctx: &Context,
        api: &Api<Self>,
        status: &mut CimiNetworkStatus,
    ) -> impl Future<Output = Result<(Progress, Duration), Problem>> + Send {
        controller::sync(self, ctx, api, status)
    }
}

impl StorageKind for CimiNetwork {
    const READY_STATE: &'static str = "STARTED";

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn observe_into(v: &Value, status: &mut CimiNetworkStatus) {
        status.common.state = text(v, "state").map(str::to_string);
        status.network_type = text(v, "networkType").map(str::to_string);
        status.mtu = int(v, "mtu");
        status.class_of_service = text(v, "classOfService").map(str::to_string);
    }
    fn create_body(&self, conn: &ProviderConnection) -> Result<Value, Problem> {
        let spec = &self.spec;
        let entries = |name: &str| conn.catalog.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let stalled = |(reason, message): (Reason, String)| Problem::stalled(reason, message);
        let template = if let Some(r) = &spec.network_template {
            json!({"href": resolve_catalog(entries("networkTemplates"), r, "networkTemplate").map_err(stalled)?})
        } else if let Some(r) = &spec.network_config {
            let href = resolve_catalog(entries("networkConfigs"), r, "networkConfig").map_err(stalled)?;
            json!({"networkConfig": {"href": href}})
        } else {
            let mut config = Map::new();
            config.insert("resourceURI".into(), json!(model::type_uri("NetworkConfiguration")));
            if let Some(t) = spec.network_type {
                config.insert("networkType".into(), json!(t.cimi_value()));
            }
            if let Some(mtu) = spec.mtu {
                config.insert("mtu".into(), json!(mtu));
            }
            if let Some(c) = &spec.class_of_service {
                config.insert("classOfService".into(), json!(c));
            }
            json!({"networkConfig": config})
        };
        Ok(json!({"resourceURI": model::type_uri("NetworkCreate"), "networkTemplate": template}))
    }
    fn named_by(machine: &CimiMachine) -> Vec<String> {
        machine.spec.network_interfaces.iter().map(|x| x.network_ref.name.clone()).collect()
    }
}
