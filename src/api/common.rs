//! Spec and status pieces shared by every kind: references, policies, import, timeouts, Jobs, meters.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest name the API accepts for a Kubernetes object reference (a DNS subdomain).
pub const MAX_NAME_LENGTH: u32 = 253;
/// The longest provider href the API accepts.
pub const MAX_HREF_LENGTH: u32 = 2048;
/// The most user properties (CIMI `properties`) one object may carry.
pub const MAX_PROPERTIES: u32 = 64;
/// The pattern of a duration field: Go-style, such as `30s`, `5m` or `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// The kind of provider an object uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum ProviderKind {
    /// The cluster-scoped CimiProvider of the platform team (its Secrets are in the operator's namespace).
    #[default]
    CimiProvider,
    /// A CimiNamespacedProvider of the object's own namespace (a team's own provider account).
    CimiNamespacedProvider,
}

impl ProviderKind {
    /// The kind's name, as `providerRef.kind` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::CimiProvider => "CimiProvider",
            ProviderKind::CimiNamespacedProvider => "CimiNamespacedProvider",
        }
    }
}

/// The provider that serves this object: a cluster-scoped CimiProvider (the default kind), or a
/// CimiNamespacedProvider of the object's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// CimiProvider (default) or CimiNamespacedProvider.
    #[serde(default)]
    pub kind: ProviderKind,
    /// Name of the provider object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl ProviderRef {
    /// A reference to the cluster-scoped CimiProvider `name`.
    pub fn cluster(name: impl Into<String>) -> Self {
        ProviderRef { kind: ProviderKind::CimiProvider, name: name.into() }
    }
    /// A reference to the CimiNamespacedProvider `name` of the object's namespace.
    pub fn namespaced(name: impl Into<String>) -> Self {
        ProviderRef { kind: ProviderKind::CimiNamespacedProvider, name: name.into() }
    }

    /// The key of the provider this reference names from an object of `namespace`: see [`ProviderKey`].
    pub fn key(&self, namespace: &str) -> ProviderKey {
        match self.kind {
            ProviderKind::CimiProvider => ProviderKey::cluster(&self.name),
            ProviderKind::CimiNamespacedProvider => ProviderKey::namespaced(namespace, &self.name),
        }
    }

    /// Whether this reference from an object of `namespace` names the provider whose key is written `key`
    /// (as [`ProviderKey`] displays it), without building the key: a provider counts its users over every
    /// object the operator watches.
    pub fn names(&self, namespace: &str, key: &str) -> bool {
        match self.kind {
            ProviderKind::CimiProvider => key == self.name,
            ProviderKind::CimiNamespacedProvider => key.split_once('/') == Some((namespace, self.name.as_str())),
        }
    }
}

/// One provider of either kind, as the operator keys its connections, metrics and logs: `name` for a
/// CimiProvider, `namespace/name` for a CimiNamespacedProvider (a cluster-scoped name has no `/`, so the two
/// never meet).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProviderKey {
    /// Which kind of provider.
    pub kind: ProviderKind,
    /// The namespace of a CimiNamespacedProvider.
    pub namespace: Option<String>,
    /// The provider object's name.
    pub name: String,
}

impl ProviderKey {
    /// The CimiProvider `name`.
    pub fn cluster(name: &str) -> Self {
        ProviderKey { kind: ProviderKind::CimiProvider, namespace: None, name: name.to_string() }
    }
    /// The CimiNamespacedProvider `name` of `namespace`.
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        ProviderKey {
            kind: ProviderKind::CimiNamespacedProvider,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }
    /// The key written as [`fmt::Display`] writes it.
    pub fn parse(text: &str) -> Self {
        match text.split_once('/') {
            Some((namespace, name)) => ProviderKey::namespaced(namespace, name),
            None => ProviderKey::cluster(text),
        }
    }
    /// "CimiProvider demo" or "CimiNamespacedProvider team-a/demo", for messages.
    pub fn describe(&self) -> String {
        format!("{} {self}", self.kind.as_str())
    }
}

impl std::fmt::Display for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A reference to another object in the same namespace, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object, in the namespace of the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to a Secret, by name: in the namespace of the object, or for a cluster-scoped CimiProvider in
/// the operator's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl SecretRef {
    /// A reference to the Secret `name`.
    pub fn new(name: impl Into<String>) -> Self {
        SecretRef { name: name.into() }
    }
}

/// A reference to one key of a Secret in the namespace of the referring object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret whose value is used. Defaults to `userData`.
    #[serde(default = "default_user_data_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_user_data_key() -> String {
    "userData".to_string()
}

/// A resource of the provider's catalog (a configuration, an image or a template), named by its CIMI
/// `name` or by its `href`. Exactly one of the two is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.href)").message("set exactly one of name and href"))]
pub struct CatalogRef {
    /// The CIMI `name` of the catalog entry; it must match exactly one entry of the provider's collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// The href (URI) of the catalog entry, as the provider states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub href: Option<String>,
}

impl CatalogRef {
    /// A reference by CIMI name.
    pub fn by_name(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), href: None }
    }
    /// A reference by href.
    pub fn by_href(href: impl Into<String>) -> Self {
        Self { name: None, href: Some(href.into()) }
    }
}

/// What happens to the provider resource when the Kubernetes object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the provider resource, then remove the object.
    #[default]
    Delete,
    /// Leave the provider resource as it is and remove only the object.
    Orphan,
}

/// What the operator does when the provider resource an object stands for is gone (404/410, or its id now
/// names a resource without the object's UID tag) although nobody deleted the object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ResourceGonePolicy {
    /// Report it: the object turns Stalled with reason ResourceGone and waits for a human.
    #[default]
    Report,
    /// Create the resource again from the spec, as GitOps users expect of cattle VMs. What the lost resource held (its disks' data, its addresses) is lost.
    Recreate,
}

/// How far the operator acts on the provider resource.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update, power and delete the provider resource to match the spec.
    #[default]
    Managed,
    /// Only observe an existing provider resource (set by `spec.import`) and mirror it into status; never change it. Requires `deletionPolicy: Orphan`.
    ObserveOnly,
}

/// Adopt an existing provider resource instead of creating one: by href, or by a CIMI `$filter` that must match exactly one resource. Exactly one of the two is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.href) != has(self.filter)").message("import: set exactly one of href and filter"))]
pub struct ImportSpec {
    /// The href of the provider resource to adopt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub href: Option<String>,
    /// A CIMI `$filter` expression, such as `name='web-1'`, that must match exactly one resource of the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub filter: Option<String>,
}

/// How long an operation may run before the object reports `Stalled` with reason `Timeout`. Durations are Go-style strings such as `10m` or `1h30m`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Longest time for the create operation, from the POST to a stable state. Default `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub create: Option<String>,
    /// Longest time for an update or an action (start, stop, ...). Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub update: Option<String>,
    /// Longest time for the delete operation, until the provider answers 404. Default `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"), length(max = 32))]
    pub delete: Option<String>,
}

/// Parses a Go-style duration (`30s`, `1h30m`) as used in spec fields.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let parsed = kube::core::Duration::from_str(text).map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    if parsed.is_negative() {
        return Err(format!("invalid duration {text:?}: negative"));
    }
    Ok(parsed.into())
}

/// The CIMI Job that the operator follows for this object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The href of the Job.
    pub href: String,
    /// The Job's action: `add`, `edit`, `delete` or an action such as `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The Job's state: QUEUED, RUNNING, FAILED, SUCCESS, STOPPING or STOPPED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Progress in percent (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<i32>,
    /// The Job's status message, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When the operator started the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

impl JobStatus {
    /// The Job's state as a type (`QUEUED` when none was read yet).
    pub fn job_state(&self) -> crate::cimi::model::JobState {
        self.state.as_deref().map_or(crate::cimi::model::JobState::Queued, crate::cimi::model::JobState::parse)
    }
}

/// The latest sample of one provider meter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeterStatus {
    /// What the meter measures, such as `cpu` or `memory`.
    pub aspect: String,
    /// The units of the value, such as `percent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    /// The latest value, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the latest sample was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Time>,
}

/// The last provider event mirrored as a Kubernetes Event: events up to it (in the EventLog's order)
/// are never mirrored again, across operator restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventCursor {
    /// The provider's id (href) of the event.
    pub id: String,
    /// The event's timestamp, as the provider stated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// Where a one-shot action stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ActionPhase {
    /// Requested, not sent to the provider yet.
    #[default]
    Pending,
    /// Sent; its provider Job runs.
    Running,
    /// Done.
    Succeeded,
    /// The provider refused it, or its Job failed (the message says why).
    Failed,
    /// Not offered by the provider in the resource's state (the message says why); not sent.
    Rejected,
}

impl ActionPhase {
    /// The phase as status writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionPhase::Pending => "Pending",
            ActionPhase::Running => "Running",
            ActionPhase::Succeeded => "Succeeded",
            ActionPhase::Failed => "Failed",
            ActionPhase::Rejected => "Rejected",
        }
    }
}

impl PartialEq<&str> for ActionPhase {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The outcome of the latest one-shot action requested with the `cimi.dev/action` annotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastAction {
    /// The action, such as `restart` or `capture`.
    pub action: String,
    /// The nonce given with the action; a new nonce requests the action again.
    pub nonce: String,
    /// Pending, Running, Succeeded, Failed or Rejected.
    pub phase: ActionPhase,
    /// A human-readable explanation, for a failure or a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The href of the Job the action started, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The href of what the action produced, such as a captured MachineImage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// When the action finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

/// One field where the provider resource differs from the spec, as the operator last saw it. Under
/// ObserveOnly a difference is reported and never corrected; under Managed the operator corrects it, so the list
/// is empty once the object is in sync.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftedField {
    /// The field of the spec, such as `spec.description` or `spec.powerState`.
    pub field: String,
    /// What the spec asks for (maps as JSON).
    pub desired: String,
    /// What the provider shows (a short excerpt: provider text is never copied whole).
    pub observed: String,
    /// Since when the operator has seen this field differ.
    pub since: Time,
}

/// Status fields every managed kind shares; flattened into each kind's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedStatus {
    /// The href of the provider resource (its CIMI id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provider's state of the resource, such as STARTED or AVAILABLE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The CIMI Job being followed, or the last one followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobStatus>,
    /// Ready, Synced, Reconciling and Stalled; see docs/reasons.md for every reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The generation of the spec that the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the operator last read the resource from the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// The latest value of each provider meter of the resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meters: Vec<MeterStatus>,
    /// The position in the provider's EventLog up to which events were mirrored as Kubernetes Events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_cursor: Option<EventCursor>,
    /// The outcome of the latest one-shot action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
    /// Each field where the provider resource differed from the spec when last observed (ObserveOnly: never
    /// corrected); empty when it matches. `kubectl cimi drift` prints it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["field".into()]))]
    pub drift: Vec<DriftedField>,
    /// While the object is being deleted: how many operations (stop, start) the operator invoked to reach a
    /// state where the provider offers delete; at most 3, then the object is Stalled (DeleteNotOffered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_steps: Option<u32>,
    /// When the operator invoked the latest of those operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_step_time: Option<Time>,
}

/// User properties of a provider resource (CIMI `properties`). Keys starting with `cimi.dev/` are reserved for the operator's tags.
pub type Properties = BTreeMap<String, String>;
