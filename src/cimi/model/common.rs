//! What every CIMI resource of the model shares: the namespace and the URIs built on it (types, actions,
//! capabilities), the core operation rels, references ([`Ref`], [`RefOr`], [`Location`]), [`Operation`], and
//! the [`Resource`] trait the typed structs implement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The CIMI 1.x XML namespace, also the prefix of every resource, action and capability URI.
pub const NS: &str = "http://schemas.dmtf.org/cimi/1";

/// The `resourceURI` of a type: `http://schemas.dmtf.org/cimi/1/<Type>`.
pub fn type_uri(type_name: &str) -> String {
    format!("{NS}/{type_name}")
}

/// The operation rel of an action: `http://schemas.dmtf.org/cimi/1/action/<name>`.
pub fn action_uri(action: &str) -> String {
    format!("{NS}/action/{action}")
}

/// The URI of a capability: `http://schemas.dmtf.org/cimi/1/capability/<Resource>/<Name>`.
pub fn capability_uri(resource: &str, name: &str) -> String {
    format!("{NS}/capability/{resource}/{name}")
}

/// The action name of an operation rel: `start` for `…/action/start`, `None` for the core rels and foreign URIs.
pub fn action_name(rel: &str) -> Option<&str> {
    rel.strip_prefix(NS)?.strip_prefix("/action/")
}

/// The rel of the core operation that adds to a collection.
pub const REL_ADD: &str = "add";
/// The rel of the core operation that replaces or edits a resource.
pub const REL_EDIT: &str = "edit";
/// The rel of the core operation that deletes a resource.
pub const REL_DELETE: &str = "delete";

/// A reference to another resource: `{"href": …}`.
///
/// When a reference is expanded (`$expand`) or carries overrides (create by reference), the other attributes
/// are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ref {
    /// The absolute or base-relative URI of the referenced resource.
    pub href: String,
    /// Expanded attributes or overrides that came with the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Ref {
    /// A bare reference to `href`.
    pub fn new(href: impl Into<String>) -> Self {
        Ref { href: href.into(), extra: Map::new() }
    }
}

/// One operation a consumer may invoke now: a rel (`add`, `edit`, `delete` or an action URI) and its href.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// `add`, `edit`, `delete`, or an action URI such as `http://schemas.dmtf.org/cimi/1/action/start`.
    pub rel: String,
    /// Where to send the operation.
    pub href: String,
}

impl Operation {
    /// An operation with the given rel and href.
    pub fn new(rel: impl Into<String>, href: impl Into<String>) -> Self {
        Operation { rel: rel.into(), href: href.into() }
    }
}

/// Something that is either a bare reference or an inline value (templates, configs, images, credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RefOr<T> {
    /// By reference (`{"href": …}` with optional overrides in `extra`).
    Ref(Ref),
    /// By value.
    Value(T),
}

/// A URI that 1.x providers wrote either as a plain string or as `{"href": …}` (MachineImage `imageLocation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Location {
    /// `{"href": …}`, as the Primer writes it.
    Ref(Ref),
    /// A plain URI string, as the 1.x XSD writes it.
    Uri(String),
}

impl Location {
    /// The URI, whichever form it came in.
    pub fn uri(&self) -> &str {
        match self {
            Location::Ref(r) => &r.href,
            Location::Uri(u) => u,
        }
    }
}

/// A CIMI resource type of this model.
pub trait Resource {
    /// The type name, e.g. `Machine`; the `resourceURI` is [`NS`]`/<TYPE_NAME>`.
    const TYPE_NAME: &'static str;
    /// The name of the entry array in the type's collection, e.g. `machines`, `machineConfigurations`.
    const COLLECTION_KEY: &'static str;

    /// The `resourceURI` of this type.
    fn resource_uri() -> String {
        type_uri(Self::TYPE_NAME)
    }
    /// The resource's `id`, when it has one.
    fn id(&self) -> Option<&str>;
    /// The attributes this model does not know, as received.
    fn extra(&self) -> &Map<String, Value>;
    /// Sets what every create body carries: its `resourceURI` and the consumer-writable `name`, `description`
    /// and `properties`.
    fn describe(&mut self, name: String, description: Option<String>, properties: BTreeMap<String, String>);
    /// An empty value of this type with its `resourceURI` set: the start of a body or of a part given by value.
    fn typed() -> Self
    where
        Self: Sized;
    /// The `resourceURI` of this type's collection.
    fn collection_uri() -> String {
        type_uri(&format!("{}Collection", Self::TYPE_NAME))
    }
}

/// True when a JSON value counts as empty output (empty string, array or object), which CIMI omits.
pub fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}
