//! CimiMachineImage and CimiVolumeImage as [`StorageKind`]s. A machine image is made by POSTing a MachineImage
//! whose `imageLocation` is the source machine's href to the provider's `machineImages` (a capture, or a
//! snapshot with type SNAPSHOT), or whose `imageLocation` is the location the spec gives (a registration); a
//! volume image by POSTing a VolumeImage whose `imageLocation` is the source volume's href (a snapshot). Images
//! are held, through the `cimi.dev/in-use` finalizer, by the CimiMachines and CimiVolumes restored from them.

use std::future::Future;

use kube::ResourceExt as _;
use serde_json::Value;

use super::controller::storage_kind;
use super::kind::StorageKind;
use crate::api::conditions::{READY, is_true};
use crate::api::managed::Managed;
use crate::api::reasons::Reason;
use crate::api::{
    CimiMachine, CimiMachineImage, CimiMachineImageStatus, CimiVolume, CimiVolumeImage, CimiVolumeImageStatus,
};
use crate::cimi::model::{self, Location, Ref, Resource as _, ResourceState};
use crate::controller::context::Context;
use crate::controller::outcome::Problem;
use crate::controller::registry::Catalog;
use crate::controller::resource::reads::{boolean, text};
use crate::controller::shell::kind::ManagedKind;

/// The provider href of the object `name` of kind `K` in `namespace`, once it is Ready on `provider`; else
/// the problem that says what the create waits for (`what` names the role: `the source machine`).
pub async fn ready_href<K: ManagedKind>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    provider: &str,
    what: &str,
) -> Result<String, Problem> {
    let kind = K::kind(&());
    let objects = ctx.objects::<K>(Some(namespace)).await.map_err(Problem::from)?;
    let Some(object) = objects.iter().find(|o| o.name_any() == name) else {
        return Err(Problem::transient(
            Reason::WaitingForDependency,
            format!("{what} {kind} {name} does not exist in namespace {namespace}"),
        ));
    };
    if object.provider_key() != provider {
        return Err(Problem::stalled(
            Reason::InvalidSpec,
            format!(
                "{what} {kind} {name} is on provider {}, not {provider}: an image stays on its provider",
                object.provider_key()
            ),
        ));
    }
    let status = object.managed_status();
    let ready = status.is_some_and(|s| is_true(&s.conditions, READY));
    match status.and_then(|s| s.id.clone()) {
        Some(href) if ready => Ok(href),
        _ => Err(Problem::transient(Reason::WaitingForDependency, format!("{what} {kind} {name} is not Ready yet"))),
    }
}

storage_kind!(CimiMachineImage, CimiMachineImageStatus, "machine image", "machineImages");

impl StorageKind for CimiMachineImage {
    type Holder = CimiMachine;
    type Create = model::MachineImage;

    const READY_STATE: ResourceState = ResourceState::Available;

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn observe_into(v: &Value, status: &mut CimiMachineImageStatus) {
        status.common.state = text(v, "state").map(str::to_string);
        status.type_ = text(v, "type").map(str::to_string);
        status.image_location = location(v);
    }
    fn annotate(&self, status: &mut CimiMachineImageStatus) {
        status.source_machine = self.spec.source.as_ref().map(|s| s.machine_ref.name.clone());
    }
    fn source(&self, ctx: &Context) -> impl Future<Output = Result<Option<String>, Problem>> + Send {
        let namespace = self.namespace().unwrap_or_default();
        let provider = self.provider_key();
        async move {
            match &self.spec.source {
                Some(source) => {
                    let name = &source.machine_ref.name;
                    ready_href::<CimiMachine>(ctx, &namespace, name, &provider, "the source").await.map(Some)
                }
                None => {
                    // A registration names a location outside the provider: a location on the provider's own
                    // origins would be one of its resources (another namespace's machine, say), captured without
                    // the namespace and provider checks of spec.source.
                    if let Some(location) = &self.spec.image_location {
                        let conn = crate::controller::connection::connection(ctx, &provider, &namespace).await?;
                        if conn.client.resolve(location).await.is_ok() {
                            return Err(Problem::stalled(
                                Reason::InvalidSpec,
                                "spec.imageLocation points at the provider itself; a registration takes an image \
                                 location outside the provider (to capture a CimiMachine of this namespace, use \
                                 spec.source)",
                            ));
                        }
                    }
                    Ok(None)
                }
            }
        }
    }
    fn create_body(&self, _catalog: &Catalog, source: Option<&str>) -> Result<model::MachineImage, Problem> {
        let (location, type_) = match (source, &self.spec.source, &self.spec.image_location) {
            (Some(href), Some(how), _) => (Location::Ref(Ref::new(href)), how.method.image_type()),
            (_, None, Some(location)) => (Location::Uri(location.clone()), "IMAGE"),
            _ => {
                return Err(Problem::stalled(
                    Reason::InvalidSpec,
                    "set spec.source or spec.imageLocation (or spec.import)",
                ));
            }
        };
        Ok(model::MachineImage {
            type_: Some(type_.to_string()),
            image_location: Some(location),
            ..model::MachineImage::typed()
        })
    }
    fn record_holders(status: &mut CimiMachineImageStatus, holders: Vec<String>) {
        status.used_by = holders;
    }
    fn named_by(machine: &CimiMachine) -> Vec<String> {
        machine.spec.template.as_ref().and_then(|t| t.image_ref.as_ref()).map(|r| r.name.clone()).into_iter().collect()
    }
}

storage_kind!(CimiVolumeImage, CimiVolumeImageStatus, "volume image", "volumeImages");

impl StorageKind for CimiVolumeImage {
    type Holder = CimiVolume;
    type Create = model::VolumeImage;

    const READY_STATE: ResourceState = ResourceState::Available;

    fn spec_name(&self) -> Option<&str> {
        self.spec.name.as_deref()
    }
    fn observe_into(v: &Value, status: &mut CimiVolumeImageStatus) {
        status.common.state = text(v, "state").map(str::to_string);
        status.image_location = location(v);
        status.bootable = boolean(v, "bootable");
    }
    fn annotate(&self, status: &mut CimiVolumeImageStatus) {
        status.source_volume = self.spec.source.as_ref().map(|s| s.volume_ref.name.clone());
    }
    fn source(&self, ctx: &Context) -> impl Future<Output = Result<Option<String>, Problem>> + Send {
        let namespace = self.namespace().unwrap_or_default();
        let provider = self.provider_key();
        async move {
            match &self.spec.source {
                Some(source) => {
                    let name = &source.volume_ref.name;
                    ready_href::<CimiVolume>(ctx, &namespace, name, &provider, "the source").await.map(Some)
                }
                None => Ok(None),
            }
        }
    }
    fn create_body(&self, _catalog: &Catalog, source: Option<&str>) -> Result<model::VolumeImage, Problem> {
        let href = source.ok_or_else(|| Problem::stalled(Reason::InvalidSpec, "set spec.source (or spec.import)"))?;
        Ok(model::VolumeImage { image_location: Some(Location::Ref(Ref::new(href))), ..model::VolumeImage::typed() })
    }
    fn record_holders(status: &mut CimiVolumeImageStatus, holders: Vec<String>) {
        status.used_by = holders;
    }
    fn named_by(volume: &CimiVolume) -> Vec<String> {
        volume.spec.image_ref.as_ref().map(|r| r.name.clone()).into_iter().collect()
    }
}

/// The `imageLocation` of an image, whichever form the provider gives it in (`{"href"}` or a string).
fn location(v: &Value) -> Option<String> {
    match v.get("imageLocation")? {
        Value::String(s) => Some(s.clone()),
        other => text(other, "href").map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn machine_image(spec: Value) -> CimiMachineImage {
        serde_json::from_value(json!({"apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachineImage",
            "metadata": {"name": "golden", "namespace": "team"}, "spec": spec}))
        .expect("machine image")
    }

    #[test]
    fn a_capture_points_at_the_machine_and_a_registration_at_its_location() {
        let capture = machine_image(json!({"providerRef": {"name": "p"},
            "source": {"machineRef": {"name": "web-1"}, "method": "Snapshot"}}));
        let body =
            serde_json::to_value(capture.create_body(&Catalog::new(), Some("https://p/machines/1")).expect("body"))
                .expect("json");
        assert_eq!(
            body,
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage", "type": "SNAPSHOT",
                "imageLocation": {"href": "https://p/machines/1"}})
        );
        let registered =
            machine_image(json!({"providerRef": {"name": "p"}, "imageLocation": "nfs://images/base.qcow2"}));
        let body = serde_json::to_value(registered.create_body(&Catalog::new(), None).expect("body")).expect("json");
        assert_eq!(body["imageLocation"], json!("nfs://images/base.qcow2"));
        assert_eq!(body["type"], json!("IMAGE"));
    }

    #[test]
    fn the_location_is_read_in_either_form() {
        assert_eq!(location(&json!({"imageLocation": {"href": "h"}})).as_deref(), Some("h"));
        assert_eq!(location(&json!({"imageLocation": "u"})).as_deref(), Some("u"));
        assert_eq!(location(&json!({})), None);
    }
}
