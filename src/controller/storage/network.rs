//! CimiNetwork as a [`StorageKind`] whose provider resource is a Network, created from an
//! inline type (and MTU, class of service), a NetworkConfiguration or a NetworkTemplate.

use serde_json::Value;

use super::controller::storage_kind;
use super::kind::StorageKind;
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiNetwork, CimiNetworkStatus};
use crate::cimi::model::{self, Ref, RefOr, Resource as _, ResourceState};
use crate::controller::outcome::Problem;
use crate::controller::registry::{Catalog, catalog_entries, resolve_catalog};
use crate::controller::resource::reads::{int, text};

storage_kind!(CimiNetwork, CimiNetworkStatus, "network", "networks");

impl StorageKind for CimiNetwork {
    type Create = model::NetworkCreate;

    type Holder = CimiMachine;

    const READY_STATE: ResourceState = ResourceState::Started;

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn observe_into(v: &Value, status: &mut CimiNetworkStatus) {
        status.common.state = text(v, "state").map(str::to_string);
        status.network_type = text(v, "networkType").map(str::to_string);
        status.mtu = int(v, "mtu");
        status.class_of_service = text(v, "classOfService").map(str::to_string);
    }
    fn create_body(&self, catalog: &Catalog, _source: Option<&str>) -> Result<model::NetworkCreate, Problem> {
        let spec = &self.spec;
        let entries = |name: &str| catalog_entries(catalog, name);
        let stalled = |(reason, message): (Reason, String)| Problem::stalled(reason, message);
        let template = if let Some(r) = &spec.network_template {
            RefOr::Ref(Ref::new(resolve_catalog(entries("networkTemplates"), r, "networkTemplate").map_err(stalled)?))
        } else {
            let config = if let Some(r) = &spec.network_config {
                RefOr::Ref(Ref::new(resolve_catalog(entries("networkConfigs"), r, "networkConfig").map_err(stalled)?))
            } else {
                RefOr::Value(model::NetworkConfiguration {
                    network_type: spec.network_type.map(|t| t.cimi_value().to_string()),
                    mtu: spec.mtu.map(i64::from),
                    class_of_service: spec.class_of_service.clone(),
                    ..model::NetworkConfiguration::typed()
                })
            };
            RefOr::Value(model::NetworkTemplate { network_config: Some(config), ..Default::default() })
        };
        Ok(model::NetworkCreate { network_template: Some(template), ..model::NetworkCreate::typed() })
    }
    fn named_by(machine: &CimiMachine) -> Vec<String> {
        machine.spec.network_interfaces.iter().map(|x| x.network_ref.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::provider::CatalogEntry;
    use crate::controller::registry::Catalog;

    fn network(spec: Value) -> CimiNetwork {
        serde_json::from_value(json!({"apiVersion": "cimi.dev/v1alpha1", "kind": "CimiNetwork",
                                      "metadata": {"name": "net", "namespace": "team"}, "spec": spec}))
        .expect("network")
    }

    #[test]
    fn an_inline_network_is_a_configuration_by_value_and_a_catalog_name_a_reference() {
        let catalog = Catalog::from([(
            "networkConfigs".to_string(),
            vec![CatalogEntry { name: Some("private".into()), href: "https://p/nc/1".into() }],
        )]);
        let inline = network(json!({"providerRef": {"name": "p"}, "networkType": "Private", "mtu": 9000}));
        assert_eq!(
            serde_json::to_value(inline.create_body(&catalog, None).expect("body")).expect("json"),
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/NetworkCreate",
                   "networkTemplate": {"networkConfig": {
                       "resourceURI": "http://schemas.dmtf.org/cimi/1/NetworkConfiguration",
                       "networkType": "PRIVATE", "mtu": 9000}}})
        );
        let named = network(json!({"providerRef": {"name": "p"}, "networkConfig": {"name": "private"}}));
        assert_eq!(
            serde_json::to_value(named.create_body(&catalog, None).expect("body")).expect("json")["networkTemplate"],
            json!({"networkConfig": {"href": "https://p/nc/1"}})
        );
        let unknown = network(json!({"providerRef": {"name": "p"}, "networkConfig": {"name": "public"}}));
        assert_eq!(
            unknown.create_body(&catalog, None).expect_err("not in the catalog").reason,
            Reason::CatalogEntryNotFound
        );
    }
}
