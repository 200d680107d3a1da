//! What the four managed kinds have in common, for machinery shared by their controllers: the
//! provider reference, policies, import, timeouts and common status, plus the provider-side tags and
//! the operator's annotations.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::ResourceExt;

use super::common::{
    DeletionPolicy, ImportSpec, ManagedStatus, ManagementPolicy, Properties, ResourceGonePolicy, Timeouts,
    parse_duration,
};
use super::{CimiMachine, CimiMachineImage, CimiNetwork, CimiSystem, CimiVolume, CimiVolumeImage};

/// Default limit of a create operation.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default limit of an update or an action.
pub const DEFAULT_UPDATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default limit of a delete operation.
pub const DEFAULT_DELETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A kind whose objects each stand for one provider resource.
pub trait Managed: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    /// The reference to the provider that serves the object.
    fn provider_ref(&self) -> &super::common::ProviderRef;
    /// The key of the provider that serves the object (`name`, or `namespace/name` for a
    /// CimiNamespacedProvider, which is always in the object's namespace).
    fn provider_key(&self) -> String {
        self.provider_ref().key(self.meta().namespace.as_deref().unwrap_or_default()).to_string()
    }
    /// The CIMI `name` to give the provider resource (the spec's, else the object's name).
    fn cimi_name(&self) -> String;
    /// The CIMI `description`, if any.
    fn cimi_description(&self) -> Option<&str>;
    /// The user's CIMI `properties`, without the operator's tags.
    fn user_properties(&self) -> Option<&Properties>;
    /// What happens to the provider resource when the object is deleted.
    fn deletion_policy(&self) -> DeletionPolicy;
    /// Managed or ObserveOnly.
    fn management_policy(&self) -> ManagementPolicy;
    /// The provider resource to adopt, if any.
    fn import_spec(&self) -> Option<&ImportSpec>;
    /// The spec's operation limits, if any.
    fn timeouts(&self) -> Option<&Timeouts>;
    /// The status fields every managed kind shares, if the object has a status.
    fn managed_status(&self) -> Option<&ManagedStatus>;
    /// What to do when the provider resource is gone behind the operator's back.
    fn resource_gone_policy(&self) -> ResourceGonePolicy;

    /// The limit of a create operation (spec or default).
    fn create_timeout(&self) -> Duration {
        timeout_or(self.timeouts().and_then(|t| t.create.as_deref()), DEFAULT_CREATE_TIMEOUT)
    }
    /// The limit of an update or an action (spec or default).
    fn update_timeout(&self) -> Duration {
        timeout_or(self.timeouts().and_then(|t| t.update.as_deref()), DEFAULT_UPDATE_TIMEOUT)
    }
    /// The limit of a delete operation (spec or default).
    fn delete_timeout(&self) -> Duration {
        timeout_or(self.timeouts().and_then(|t| t.delete.as_deref()), DEFAULT_DELETE_TIMEOUT)
    }
}

fn timeout_or(text: Option<&str>, default: Duration) -> Duration {
    text.and_then(|t| parse_duration(t).ok()).filter(|d| !d.is_zero()).unwrap_or(default)
}

macro_rules! impl_managed {
    ($kind:ty) => {
        impl Managed for $kind {
            fn provider_ref(&self) -> &super::common::ProviderRef {
                &self.spec.provider_ref
            }
            fn cimi_name(&self) -> String {
                self.spec.name.clone().unwrap_or_else(|| self.name_any())
            }
            fn cimi_description(&self) -> Option<&str> {
                self.spec.description.as_deref()
            }
            fn user_properties(&self) -> Option<&Properties> {
                self.spec.properties.as_ref()
            }
            fn deletion_policy(&self) -> DeletionPolicy {
                self.spec.deletion_policy
            }
            fn management_policy(&self) -> ManagementPolicy {
                self.spec.management_policy
            }
            fn import_spec(&self) -> Option<&ImportSpec> {
                self.spec.import.as_ref()
            }
            fn timeouts(&self) -> Option<&Timeouts> {
                self.spec.timeouts.as_ref()
            }
            fn managed_status(&self) -> Option<&ManagedStatus> {
                self.status.as_ref().map(|s| &s.common)
            }
            fn resource_gone_policy(&self) -> ResourceGonePolicy {
                self.spec.resource_gone_policy
            }
        }
    };
}

impl_managed!(CimiMachine);
impl_managed!(CimiVolume);
impl_managed!(CimiNetwork);
impl_managed!(CimiSystem);
impl_managed!(CimiMachineImage);
impl_managed!(CimiVolumeImage);

/// The provider-side tags of an object: its UID (`cimi.dev/uid`) and its identity, which survives a rebuild of
/// the cluster (`cimi.dev/cluster`, `cimi.dev/kind`, `cimi.dev/namespace`, `cimi.dev/name`).
pub fn provider_tags<K: kube::Resource<DynamicType = ()>>(object: &K, cluster: &str) -> BTreeMap<String, String> {
    let meta = object.meta();
    let mut tags = BTreeMap::new();
    tags.insert(crate::names::TAG_UID.to_string(), meta.uid.clone().unwrap_or_default());
    tags.insert(crate::names::TAG_CLUSTER.to_string(), cluster.to_string());
    tags.insert(crate::names::TAG_KIND.to_string(), K::kind(&()).to_string());
    tags.insert(crate::names::TAG_NAMESPACE.to_string(), meta.namespace.clone().unwrap_or_default());
    tags.insert(crate::names::TAG_NAME.to_string(), meta.name.clone().unwrap_or_default());
    tags
}

/// The CIMI `properties` to send: the user's, then the tags (a PUT of properties replaces the map,
/// so the tags go in every time; a user key can never shadow a tag).
pub fn properties_with_tags<K: Managed>(object: &K, cluster: &str) -> BTreeMap<String, String> {
    let mut properties: BTreeMap<String, String> = object
        .user_properties()
        .map(|p| p.iter().filter(|(k, _)| !k.starts_with("cimi.dev/")).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    properties.extend(provider_tags(object, cluster));
    properties
}

/// True when provider `properties` carry this object's UID tag (the test for "this is ours").
pub fn is_tagged_for<K: kube::Resource>(object: &K, properties: &BTreeMap<String, String>) -> bool {
    match object.meta().uid.as_deref() {
        Some(uid) if !uid.is_empty() => properties.get(crate::names::TAG_UID).map(String::as_str) == Some(uid),
        _ => false,
    }
}

/// A one-shot action requested with `cimi.dev/action: <action>@<nonce>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRequest {
    /// The action, such as `restart`, `capture` or `snapshot`.
    pub action: String,
    /// The nonce; a new nonce requests the action again.
    pub nonce: String,
}

/// Parses the action annotation's value, `<action>@<nonce>`; both parts must be non-empty and the
/// action made of letters, digits and `-`.
pub fn parse_action(value: &str) -> Result<ActionRequest, String> {
    let (action, nonce) = value.split_once('@').ok_or_else(|| format!("{:?} is not <action>@<nonce>", value))?;
    let (action, nonce) = (action.trim(), nonce.trim());
    if action.is_empty() || !action.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("{action:?} is not an action name"));
    }
    if nonce.is_empty() {
        return Err(format!("{:?} has an empty nonce", value));
    }
    Ok(ActionRequest { action: action.to_string(), nonce: nonce.to_string() })
}

/// The object's action request, if it has the annotation (an invalid value is an `Err`).
pub fn action_request<K: kube::Resource>(object: &K) -> Option<Result<ActionRequest, String>> {
    object.meta().annotations.as_ref()?.get(crate::names::ANNOTATION_ACTION).map(|v| parse_action(v))
}

fn annotation_is_true<K: kube::Resource>(object: &K, key: &str) -> bool {
    object.meta().annotations.as_ref().and_then(|a| a.get(key)).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// True when the object carries `cimi.dev/paused: "true"`.
pub fn is_paused<K: kube::Resource>(object: &K) -> bool {
    annotation_is_true(object, crate::names::ANNOTATION_PAUSED)
}

/// True when the object carries `cimi.dev/force-orphan: "true"`.
pub fn is_force_orphan<K: kube::Resource>(object: &K) -> bool {
    annotation_is_true(object, crate::names::ANNOTATION_FORCE_ORPHAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::ProviderRef;
    use crate::api::{CimiMachine, CimiMachineSpec};

    fn machine() -> CimiMachine {
        let mut m = CimiMachine::new(
            "web-1",
            CimiMachineSpec { provider_ref: ProviderRef::cluster("lab"), ..Default::default() },
        );
        m.metadata.namespace = Some("team-a".into());
        m.metadata.uid = Some("u-1".into());
        m
    }

    #[test]
    fn managed_accessors_and_defaults() {
        let mut m = machine();
        assert_eq!(m.provider_key(), "lab");
        assert_eq!(m.cimi_name(), "web-1");
        assert_eq!(m.deletion_policy(), DeletionPolicy::Delete);
        assert_eq!(m.management_policy(), ManagementPolicy::Managed);
        assert_eq!(m.create_timeout(), DEFAULT_CREATE_TIMEOUT);
        m.spec.name = Some("front".into());
        m.spec.timeouts = Some(Timeouts { create: Some("2m".into()), ..Default::default() });
        assert_eq!(m.cimi_name(), "front");
        assert_eq!(m.create_timeout(), Duration::from_secs(120));
        assert_eq!(m.delete_timeout(), DEFAULT_DELETE_TIMEOUT);
    }

    #[test]
    fn tags_always_win_over_user_properties() {
        let mut m = machine();
        let mut user = Properties::new();
        user.insert("env".into(), "prod".into());
        user.insert("cimi.dev/uid".into(), "forged".into());
        m.spec.properties = Some(user);
        let properties = properties_with_tags(&m, "c1");
        assert_eq!(properties["env"], "prod");
        assert_eq!(properties["cimi.dev/uid"], "u-1");
        assert_eq!(properties["cimi.dev/cluster"], "c1");
        assert_eq!(properties["cimi.dev/namespace"], "team-a");
        assert_eq!(properties["cimi.dev/name"], "web-1");
        assert_eq!(properties["cimi.dev/kind"], "CimiMachine");
        assert!(is_tagged_for(&m, &properties));
        let mut other = properties.clone();
        other.insert("cimi.dev/uid".into(), "u-2".into());
        assert!(!is_tagged_for(&m, &other));
    }

    #[test]
    fn annotations_are_read() {
        let mut m = machine();
        assert!(!is_paused(&m) && !is_force_orphan(&m) && action_request(&m).is_none());
        let annotations = m.metadata.annotations.get_or_insert_with(Default::default);
        annotations.insert("cimi.dev/paused".into(), "true".into());
        annotations.insert("cimi.dev/force-orphan".into(), "false".into());
        annotations.insert("cimi.dev/action".into(), "restart@7".into());
        assert!(is_paused(&m));
        assert!(!is_force_orphan(&m));
        assert_eq!(action_request(&m), Some(Ok(ActionRequest { action: "restart".into(), nonce: "7".into() })));
        assert!(parse_action("restart").is_err());
        assert!(parse_action("restart@").is_err());
        assert!(parse_action("@1").is_err());
        assert!(parse_action("re start@1").is_err());
        let spaced = parse_action(" restart @ abc ").expect("spaces around the parts");
        assert_eq!((spaced.action.as_str(), spaced.nonce.as_str()), ("restart", "abc"));
    }
}
