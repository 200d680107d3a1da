//! Actions on a resource (`start`, `stop`... or any rel URI), capturing a machine into a MachineImage, and
//! attaching and detaching volumes. Each goes through an operation the resource offers now; none builds a
//! URL.

use http::Method;
use serde_json::{Map, Value};
use url::Url;

use super::core::CimiClient;
use super::hrefs::id_of;
use super::write::Accepted;
use crate::cimi::error::CimiError;
use crate::cimi::model::{self, Resource};

impl CimiClient {
    /// Invoke the action `action` (`start`, or a full rel URI) through the resource's operations, with
    /// extra `params` (`force`...). Absent or `available: false` is [`CimiError::NotAllowedNow`]; the URL is
    /// never guessed.
    pub async fn action(
        &self,
        current: &Value,
        action: &str,
        params: Map<String, Value>,
    ) -> Result<Accepted, CimiError> {
        let rel = if action.contains("://") { action.to_string() } else { model::action_uri(action) };
        let href = self.operation_href(current, &rel).await?;
        let mut body = params;
        body.insert("resourceURI".into(), Value::String(model::Action::resource_uri()));
        body.insert("action".into(), Value::String(rel));
        self.write(Method::POST, href, Some(Value::Object(body)), "action").await
    }

    /// Capture (or snapshot, with `action` `snapshot`) a machine into a new MachineImage: POST a MachineImage
    /// named `name` whose `imageLocation` is the machine to the href of the machine's `capture` (or
    /// `snapshot`) operation, normally the machineImages collection (reference §3.2). The new image's href is
    /// then [`Self::created_href`] of the answer.
    pub async fn capture(&self, machine: &Value, action: &str, name: &str) -> Result<Accepted, CimiError> {
        let href = self.operation_href(machine, &model::action_uri(action)).await?;
        let location = id_of(machine).ok_or_else(|| CimiError::Config("a machine to capture needs its id".into()))?;
        let location = self.resolve(location).await?;
        let body = serde_json::json!({
            "resourceURI": model::type_uri("MachineImage"),
            "name": name,
            "imageLocation": location.as_str(),
        });
        self.write(Method::POST, href, Some(body), "create").await
    }

    /// Invoke an action on the resource at `href` (read first for its operations).
    pub async fn action_href(
        &self,
        href: &Url,
        action: &str,
        params: Map<String, Value>,
    ) -> Result<Accepted, CimiError> {
        let current = self.get_value(href).await?;
        self.action(&current, action, params).await
    }

    /// Attach a volume: POST a MachineVolume to the `add` href of the machine's `volumes` collection.
    pub async fn attach_volume(
        &self,
        machine: &Value,
        volume: &Url,
        initial_location: &str,
    ) -> Result<Accepted, CimiError> {
        let volumes = machine
            .get("volumes")
            .and_then(|v| v.get("href"))
            .and_then(Value::as_str)
            .ok_or_else(|| CimiError::NotSupported { collection: "machine volumes".into() })?;
        let coll = self.resolve(volumes).await?;
        let body = serde_json::json!({
            "resourceURI": model::type_uri("MachineVolume"),
            "initialLocation": initial_location,
            "volume": {"href": volume.as_str()},
        });
        self.create_at(&coll, &body).await
    }

    /// Detach: delete the MachineVolume entry (a 200 with the updated collection as its body is fine).
    pub async fn detach_volume(&self, machine_volume: &Value) -> Result<Accepted, CimiError> {
        self.delete(machine_volume).await
    }
}
