//! The CimiNetwork controller: a [`SimpleKind`] whose provider resource is a Network, created from an
//! inline type (and MTU, class of service), a NetworkConfiguration or a NetworkTemplate.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::outcome::Problem;
use super::registry::{ProviderConnection, resolve_catalog};
use super::simple::{self, SimpleKind};
use crate::api::common::ManagedStatus;
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiNetwork, CimiNetworkStatus};
use crate::cimi::model;

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    simple::run::<CimiNetwork>(ctx, shutdown).await;
}

impl SimpleKind for CimiNetwork {
    type Status = CimiNetworkStatus;
    const COLLECTION: &'static str = "networks";
    const READY_STATE: &'static str = "STARTED";
    const NOUN: &'static str = "network";

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn status_now(&self) -> CimiNetworkStatus {
        self.status.clone().unwrap_or_default()
    }
    fn common(status: &mut CimiNetworkStatus) -> &mut ManagedStatus {
        &mut status.common
    }
    fn observe_into(v: &Value, status: &mut CimiNetworkStatus) {
        status.common.state = v.get("state").and_then(Value::as_str).map(str::to_string);
        status.network_type = v.get("networkType").and_then(Value::as_str).map(str::to_string);
        status.mtu = v.get("mtu").and_then(Value::as_i64);
        status.class_of_service = v.get("classOfService").and_then(Value::as_str).map(str::to_string);
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
