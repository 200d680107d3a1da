//! CimiVolume as a [`StorageKind`] whose provider resource is a Volume, created from an
//! inline capacity (kB from a quantity), a VolumeConfiguration or a VolumeTemplate.

use std::future::Future;

use serde_json::Value;

use super::controller::storage_kind;
use super::kind::StorageKind;
use crate::api::managed::Managed as _;
use crate::api::quantity::{capacity_kb, capacity_quantity};
use crate::api::reasons::Reason;
use crate::api::{CimiMachine, CimiVolume, CimiVolumeImage, CimiVolumeStatus};
use crate::cimi::model::{self, Ref, RefOr, Resource as _, ResourceState};
use crate::controller::context::Context;
use crate::controller::outcome::Problem;
use crate::controller::registry::{Catalog, catalog_entries, resolve_catalog};
use crate::controller::resource::reads::{boolean, int, text};
use crate::controller::storage::image::ready_href;
use kube::ResourceExt as _;

storage_kind!(CimiVolume, CimiVolumeStatus, "volume", "volumes");

impl StorageKind for CimiVolume {
    type Create = model::VolumeCreate;

    type Holder = CimiMachine;

    const READY_STATE: ResourceState = ResourceState::Available;

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn observe_into(v: &Value, status: &mut CimiVolumeStatus) {
        status.common.state = text(v, "state").map(str::to_string);
        status.capacity = int(v, "capacity").map(capacity_quantity);
        status.type_ = text(v, "type").map(str::to_string);
        status.bootable = boolean(v, "bootable");
    }
    fn source(&self, ctx: &Context) -> impl Future<Output = Result<Option<String>, Problem>> + Send {
        let namespace = self.namespace().unwrap_or_default();
        let provider = self.provider_key();
        async move {
            match &self.spec.image_ref {
                Some(r) => {
                    ready_href::<CimiVolumeImage>(ctx, &namespace, &r.name, &provider, "the image").await.map(Some)
                }
                None => Ok(None),
            }
        }
    }
    fn create_body(&self, catalog: &Catalog, source: Option<&str>) -> Result<model::VolumeCreate, Problem> {
        let spec = &self.spec;
        let entries = |name: &str| catalog_entries(catalog, name);
        let stalled = |(reason, message): (Reason, String)| Problem::stalled(reason, message);
        let template = if let Some(image) = source {
            // A restore: the snapshot's data and capacity.
            RefOr::Value(model::VolumeTemplate {
                volume_image: Some(RefOr::Ref(Ref::new(image))),
                ..Default::default()
            })
        } else if let Some(r) = &spec.volume_template {
            RefOr::Ref(Ref::new(resolve_catalog(entries("volumeTemplates"), r, "volumeTemplate").map_err(stalled)?))
        } else {
            let config = if let Some(r) = &spec.volume_config {
                RefOr::Ref(Ref::new(resolve_catalog(entries("volumeConfigs"), r, "volumeConfig").map_err(stalled)?))
            } else {
                let capacity = spec
                    .capacity
                    .as_ref()
                    .ok_or_else(|| {
                        Problem::stalled(Reason::InvalidSpec, "set spec.capacity, volumeConfig or volumeTemplate")
                    })
                    .and_then(|q| capacity_kb(q).map_err(|e| Problem::stalled(Reason::InvalidSpec, e.to_string())))?;
                RefOr::Value(model::VolumeConfiguration {
                    capacity: Some(capacity),
                    type_: spec.type_.clone(),
                    format: spec.format.clone(),
                    ..model::VolumeConfiguration::typed()
                })
            };
            let image = match &spec.volume_image {
                Some(r) => Some(RefOr::Ref(Ref::new(
                    resolve_catalog(entries("volumeImages"), r, "volumeImage").map_err(stalled)?,
                ))),
                None => None,
            };
            RefOr::Value(model::VolumeTemplate {
                volume_config: Some(config),
                volume_image: image,
                ..Default::default()
            })
        };
        Ok(model::VolumeCreate { volume_template: Some(template), ..model::VolumeCreate::typed() })
    }
    fn record_holders(status: &mut CimiVolumeStatus, holders: Vec<String>) {
        status.attached_to = holders;
    }
    fn named_by(machine: &CimiMachine) -> Vec<String> {
        machine.spec.volumes.iter().map(|x| x.volume_ref.name.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::provider::CatalogEntry;
    use crate::controller::registry::Catalog;

    fn volume(spec: Value) -> CimiVolume {
        serde_json::from_value(json!({"apiVersion": "cimi.dev/v1alpha1", "kind": "CimiVolume",
                                      "metadata": {"name": "data", "namespace": "team"}, "spec": spec}))
        .expect("volume")
    }

    fn catalog() -> Catalog {
        let entry = |name: &str, href: &str| CatalogEntry { name: Some(name.into()), href: href.into() };
        Catalog::from([
            ("volumeConfigs".to_string(), vec![entry("10g", "https://p/vc/1")]),
            ("volumeImages".to_string(), vec![entry("base", "https://p/vi/1")]),
            ("volumeTemplates".to_string(), vec![entry("data", "https://p/vt/1")]),
        ])
    }

    #[test]
    fn an_inline_capacity_is_a_configuration_by_value_in_kilobytes() {
        let v = volume(json!({"providerRef": {"name": "p"}, "capacity": "1G", "format": "ext4",
                              "volumeImage": {"name": "base"}}));
        let body = serde_json::to_value(v.create_body(&catalog(), None).expect("body")).expect("json");
        assert_eq!(
            body,
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeCreate",
                   "volumeTemplate": {
                       "volumeConfig": {"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeConfiguration",
                                        "format": "ext4", "capacity": 1_000_000},
                       "volumeImage": {"href": "https://p/vi/1"}}})
        );
    }

    #[test]
    fn a_catalog_configuration_or_template_goes_by_reference() {
        let by_config = volume(json!({"providerRef": {"name": "p"}, "volumeConfig": {"name": "10g"}}));
        let body = serde_json::to_value(by_config.create_body(&catalog(), None).expect("body")).expect("json");
        assert_eq!(body["volumeTemplate"], json!({"volumeConfig": {"href": "https://p/vc/1"}}));
        let by_template = volume(json!({"providerRef": {"name": "p"}, "volumeTemplate": {"name": "data"}}));
        let body = serde_json::to_value(by_template.create_body(&catalog(), None).expect("body")).expect("json");
        assert_eq!(body["volumeTemplate"], json!({"href": "https://p/vt/1"}));
    }

    #[test]
    fn no_size_at_all_stalls_with_what_to_set() {
        let problem = volume(json!({"providerRef": {"name": "p"}})).create_body(&catalog(), None).expect_err("no size");
        assert_eq!(problem.reason, Reason::InvalidSpec);
        assert!(problem.message.contains("spec.capacity"), "{}", problem.message);
    }
}
