//! The names every part of the operator agrees on (design.md section 8): the API group and version, the field
//! manager, the finalizers, the annotations users set, and the tags the operator writes on provider resources.
//! They are re-exported at the crate root.

/// The API group of every custom resource.
pub const API_GROUP: &str = "cimi.dev";
/// The API version of every custom resource.
pub const API_VERSION: &str = "v1alpha1";
/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "cimi-operator";
/// The finalizer on managed kinds: provider cleanup before the object goes.
pub const FINALIZER_CLEANUP: &str = "cimi.dev/cleanup";
/// The finalizer on providers, and on volumes and networks held by a machine.
pub const FINALIZER_IN_USE: &str = "cimi.dev/in-use";

/// The annotation that requests a one-shot action: `<action>@<nonce>`, such as `restart@1`.
pub const ANNOTATION_ACTION: &str = "cimi.dev/action";
/// The annotation that stops reconciling an object while `"true"` (`Synced=False`, reason `Paused`).
pub const ANNOTATION_PAUSED: &str = "cimi.dev/paused";
/// The annotation that drops the finalizer without provider calls while `"true"` (recorded in an Event).
pub const ANNOTATION_FORCE_ORPHAN: &str = "cimi.dev/force-orphan";
/// Provider-side tags, in CIMI `properties` of everything the operator creates.
pub const TAG_UID: &str = "cimi.dev/uid";
/// Provider-side tag: the cluster name.
pub const TAG_CLUSTER: &str = "cimi.dev/cluster";
/// Provider-side tag: the object's namespace.
pub const TAG_NAMESPACE: &str = "cimi.dev/namespace";
/// Provider-side tag: the object's name.
pub const TAG_NAME: &str = "cimi.dev/name";
/// Provider-side tag: the object's kind (`CimiMachine`...); with the cluster, namespace and name it is the
/// object's identity, which survives a rebuild of the cluster (a UID does not).
pub const TAG_KIND: &str = "cimi.dev/kind";
