//! The catalogue of condition reasons: every reason the operator writes, what it means and what the
//! user should do. `docs/reasons.md` is generated from it (`make crds`) and a test keeps them equal.
//!
//! The catalogue is data with no dependency: it names the condition types that carry each reason as they are
//! written (`Ready`, `Synced`, …), and a test checks every name against the constants of
//! [`conditions`](super::conditions), which builds conditions from these reasons.

/// One entry of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasonInfo {
    /// The reason as written in conditions (CamelCase).
    pub name: &'static str,
    /// The condition types that carry it.
    pub conditions: &'static [&'static str],
    /// What it means.
    pub meaning: &'static str,
    /// What the user should do.
    pub action: &'static str,
}

/// Declares [`Reason`] and its catalogue; each entry is `Variant: [ConditionType, …] "meaning", "action";`.
macro_rules! reasons {
    ($( $variant:ident: [$($cond:ident),*] $meaning:literal, $action:literal; )*) => {
        /// Every reason the operator writes into a condition.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(
                #[doc = $meaning]
                $variant,
            )*
        }

        impl Reason {
            /// Every reason, in catalogue order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            /// The catalogue entry of this reason.
            pub fn info(self) -> ReasonInfo {
                match self {
                    $(Reason::$variant => ReasonInfo {
                        name: stringify!($variant),
                        conditions: &[$(stringify!($cond)),*],
                        meaning: $meaning,
                        action: $action,
                    },)*
                }
            }
        }
    };
}

reasons! {
    Available: [Ready, Synced]
        "The provider resource exists and is in the state the spec asks for.",
        "Nothing.";
    Creating: [Ready, Reconciling]
        "The operator asked the provider to create the resource and waits for it.",
        "Wait; `status.job` shows the provider Job and its progress.";
    Updating: [Ready, Reconciling]
        "The operator is applying a change of the spec (attributes, volumes, interfaces).",
        "Wait; `status.job` shows the provider Job when there is one.";
    ChangingPowerState: [Ready, Reconciling]
        "The operator asked the provider to start, stop, pause or suspend the resource.",
        "Wait; `status.state` shows the provider's transient state.";
    WaitingForJob: [Ready, Reconciling]
        "A provider Job of this resource is running, or the resource is busy with an operation of the provider \
         (a volume being snapshotted is CAPTURING); no new operation is started until it ends.",
        "Wait; if the Job hangs, the `timeouts` of the spec turn this into Timeout.";
    Deleting: [Ready, Reconciling]
        "The object is being deleted and the operator deletes the provider resource.",
        "Wait. If the provider is gone for good, annotate the object `cimi.dev/force-orphan: \"true\"`.";
    DeleteNotOffered: [Ready, Stalled]
        "The object is being deleted, but its provider resource offers no `delete` in its state and no operation \
         that leads to a state that has one (such as `stop`); nothing was sent.",
        "Bring the resource to a state the provider can delete it in (on the provider, or by fixing what keeps it \
         there), or release the object with `cimi.dev/force-orphan: \"true\"` (the provider resource stays).";
    Observed: [Ready, Synced]
        "managementPolicy is ObserveOnly: the operator mirrors the provider resource and never changes it.",
        "Nothing; switch to Managed (with deletionPolicy Delete if wanted) to let the operator act.";
    Paused: [Synced]
        "The object carries `cimi.dev/paused: \"true\"`; the operator does not reconcile it.",
        "Remove the annotation to resume.";
    WaitingForDependency: [Ready, Reconciling]
        "An object the spec references (a CimiVolume or CimiNetwork to attach, the CimiMachine or CimiVolume an image is taken from, the CimiMachineImage or CimiVolumeImage to restore from) does not exist yet or is not Ready.",
        "Create the referenced object, or check why it is not Ready (the message names it).";
    ProviderNotFound: [Ready, Stalled]
        "`spec.providerRef` names no CimiProvider.",
        "Create the CimiProvider or correct `spec.providerRef` (it is immutable: recreate the object).";
    ProviderNotReady: [Ready, Reconciling]
        "The referenced CimiProvider is not Ready.",
        "Look at the CimiProvider's Ready condition (`kubectl get cimiprov`).";
    NotAllowedNamespace: [Ready, Stalled]
        "The object's namespace does not match the CimiProvider's `spec.allowedNamespaces` (the message shows the \
         selector); no provider call is made for the object.",
        "Label the namespace to match (namespace labels are re-read within 10 seconds), ask the provider's owner \
         to admit the namespace, or use another provider; the operator looks again within 5 minutes, at once on a \
         change of the object.";
    SecretNotFound: [Ready, Stalled]
        "A Secret the spec references does not exist or lacks the expected key.",
        "Create the Secret with the keys the field's documentation names; the operator retries at once for a \
         CimiProvider's Secrets, and within 5 minutes (at once on a spec change) for a machine's.";
    CatalogEntryNotFound: [Ready, Stalled]
        "A configuration, image or template named in the spec matches no entry of the provider's catalog.",
        "Pick a name or href from the CimiProvider's `status.catalog`.";
    CatalogEntryAmbiguous: [Ready, Stalled]
        "A catalog name in the spec matches several entries of the provider's catalog.",
        "Name the entry by href instead.";
    ImportNotFound: [Ready, Stalled]
        "`spec.import` matches no provider resource.",
        "Correct the href or the filter; `spec.import` is immutable, so recreate the object.";
    ImportAmbiguous: [Ready, Stalled]
        "`spec.import.filter` matches more than one provider resource.",
        "Narrow the filter, or import by href.";
    ImportConflict: [Ready, Stalled]
        "The provider resource `spec.import` names belongs to someone else: it carries another live object's \
         `cimi.dev/uid` tag, or the tags of another cluster or namespace.",
        "Import another resource, or have its owner release it first (delete their object with deletionPolicy Orphan).";
    ImportNotAllowed: [Ready, Stalled]
        "The provider does not grant the object's namespace the right to import with its managementPolicy \
         (`spec.importRights`; by default only ObserveOnly imports are granted). Nothing was read or adopted.",
        "Import with managementPolicy ObserveOnly (and deletionPolicy Orphan), or ask the provider's owner to add \
         an import right for the namespace.";
    AdoptionConflict: [Ready, Stalled]
        "Before creating, the operator looked for a provider resource carrying this object's identity (cluster, \
         kind, namespace, name) and found several, or one that a live object claims; nothing was adopted or created.",
        "Delete the extra resources on the provider (the message names them), or import the right one by \
         `spec.import.href`; check that every cluster using the provider has a cluster name of its own.";
    Drifted: [Synced]
        "managementPolicy is ObserveOnly and the provider resource differs from the spec; the message says how. Nothing is changed.",
        "Nothing, or align the spec (or the provider), or switch to Managed to let the operator correct it.";
    UnsupportedByProvider: [Ready, Stalled]
        "The provider does not offer what the spec needs (a collection, an operation or a by-value capability).",
        "Check the CimiProvider's `status.collections` and `status.capabilities`; use a template by reference instead.";
    ProviderRejected: [Ready, Synced, Stalled]
        "The provider refused a request (4xx other than 401, 403, 404, 409, 429); the message quotes it.",
        "Correct the spec as the message says.";
    ProviderUnreachable: [Ready, Synced]
        "The provider did not answer, or answered 5xx; the operator retries with backoff. Ready turns Unknown.",
        "Check the provider and the network; nothing to change on the object.";
    RateLimited: [Ready, Synced]
        "The provider answered 429 or the operator's own budget for the provider is spent; requests wait. On a \
         CimiProvider (Ready=False): its probe was answered 429 before any probe had succeeded; a provider that \
         was Ready stays Ready through a 429, with what its last probe read.",
        "Nothing, or raise the CimiProvider's `spec.rateLimit` if the provider allows it.";
    JobFailed: [Ready, Stalled]
        "A provider Job ended FAILED or STOPPED; the message carries its status message.",
        "Read the message; change the spec or fix the provider side. The operator retries slowly and at once on a spec change.";
    Timeout: [Ready, Stalled]
        "An operation ran longer than the spec's `timeouts` allow. A create, update or action Job past its limit \
         is stopped where the provider offers `stop` (also when the object is being deleted: the delete follows \
         once the Job has ended); a delete Job is left to run. A resource still in a transient state with no Job \
         recorded (the answer that named it was lost) has its Job looked up among the provider's unfinished Jobs \
         and stopped the same way; the message says whether one was found.",
        "Check the provider; raise `spec.timeouts` if the operation is just slow.";
    ProviderError: [Ready]
        "The provider reports the resource in state ERROR.",
        "Inspect the resource on the provider; delete and recreate the object if it cannot recover.";
    ResourceGone: [Ready, Stalled]
        "The provider resource recorded in `status.id` no longer exists (404/410, or an id reused by another resource).",
        "For a managed object, delete it and create it again; an ObserveOnly object cannot recover.";
    InvalidSpec: [Ready, Stalled]
        "The spec passed admission but cannot be turned into a CIMI request (for example a quantity too large for CIMI).",
        "Correct the spec as the message says.";
    UntrustedHref: [Ready, Stalled]
        "An href, from the spec (`import.href`, a catalog href) or from the provider (baseURI, a collection, an \
         operation, `Location`, `CIMI-Job-URI`, a next page), points outside the provider's origin, carries user \
         info or is not http(s). The operator refused it without making any request; the message names the href.",
        "Correct the href in the spec. If the provider really serves it from another origin, its owner adds that \
         origin to the CimiProvider's `spec.trustedOrigins`.";
    ReadLimitExceeded: [Ready, Stalled]
        "The provider answered more than the CimiProvider's `spec.readLimits` allow: a body larger than \
         `maxBodySize`, a listing with more pages than `maxPages` or entries than `maxEntries`, pages that loop, \
         or a listing longer than `listingTimeout`. What was read was dropped.",
        "If the provider is right (a very large collection), raise the limit the message names on the \
         CimiProvider; otherwise report the provider.";
    Reachable: [Ready]
        "CimiProvider: the CloudEntryPoint answered with the given credentials.",
        "Nothing.";
    Unauthorized: [Ready, Stalled]
        "CimiProvider: the provider answered 401 or 403 to the given credentials.",
        "Correct the credentials Secret (`username`/`password` or `token`); the operator reconnects when it changes.";
    Unreachable: [Ready]
        "CimiProvider: the endpoint did not answer (DNS, connection refused, timeout) or answered 5xx.",
        "Check `spec.endpoint` and that the provider runs; the operator probes again every pollInterval.";
    NotCIMI: [Ready, Stalled]
        "CimiProvider: the endpoint answered, but not with a CIMI CloudEntryPoint.",
        "Point `spec.endpoint` at the CloudEntryPoint URL of the provider.";
    TLSError: [Ready, Stalled]
        "CimiProvider: the TLS handshake failed (unknown CA, wrong host name, expired certificate).",
        "Provide the CA with `spec.caBundleSecretRef` (key `ca.crt`), or correct the endpoint's host name.";
    PlainHttpNotAllowed: [Ready, Stalled]
        "CimiProvider: the endpoint (or a trusted origin) is plain `http://` and credentials are configured; they \
         would travel in clear text, so the operator does not connect.",
        "Use an `https://` endpoint, or set `spec.allowPlainHTTP: true` if the network to the provider is trusted \
         (a lab, a loopback simulator).";
    CredentialsNotFound: [Ready, Stalled]
        "CimiProvider: the credentials or CA Secret is missing, lacks its keys, or is outside the operator's namespace.",
        "Create the Secret in the operator's namespace with keys `username` and `password`, or `token` (and `ca.crt` for a CA).";
    Referenced: [InUse]
        "CimiProvider: objects reference the provider; it keeps the `cimi.dev/in-use` finalizer until they are gone.",
        "Delete or move the objects the message names before deleting the provider.";
    NotReferenced: [InUse]
        "CimiProvider: no object references the provider.",
        "Nothing.";
}

impl Reason {
    /// The reason as written in conditions.
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The reason a condition carries, when it is one of the catalogue's.
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// Whether the reason says the object is working towards its spec (creating, updating, waiting for a Job
    /// or a dependency, deleting), rather than that something went wrong.
    pub fn is_progress(self) -> bool {
        matches!(
            self,
            Reason::Creating
                | Reason::Updating
                | Reason::ChangingPowerState
                | Reason::WaitingForJob
                | Reason::Deleting
                | Reason::WaitingForDependency
        )
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The catalogue as Markdown: the text of `docs/reasons.md`.
pub fn reasons_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Condition reasons\n\n");
    out.push_str("<!-- Generated from src/api/reasons.rs by `make crds`; do not edit by hand. -->\n\n");
    out.push_str(
        "Every object of the `cimi.dev` group reports conditions: `Ready`, `Synced`, `Reconciling` and \
         `Stalled` on the managed kinds (the last two follow the kstatus conventions Flux reads), `Ready` \
         and `InUse` on CimiProvider. Each condition carries one of the reasons below.\n\n",
    );
    out.push_str("| Reason | Conditions | Meaning | What to do |\n|---|---|---|---|\n");
    for reason in Reason::ALL {
        let info = reason.info();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            info.name,
            info.conditions.join(", "),
            info.meaning.replace('|', "\\|"),
            info.action.replace('|', "\\|"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reasons_are_unique_camel_case_and_documented() {
        let mut seen = HashSet::new();
        for reason in Reason::ALL {
            let info = reason.info();
            assert!(seen.insert(info.name), "duplicate reason {}", info.name);
            assert!(info.name.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{} is not CamelCase", info.name);
            assert!(info.name.chars().all(|c| c.is_ascii_alphanumeric()), "{} is not CamelCase", info.name);
            assert!(!info.conditions.is_empty(), "{} names no condition", info.name);
            assert!(info.meaning.ends_with('.') && info.action.ends_with('.'), "{} lacks text", info.name);
        }
        for required in [
            "Available",
            "Creating",
            "Reachable",
            "Unauthorized",
            "Unreachable",
            "NotCIMI",
            "Paused",
            "WaitingForDependency",
            "JobFailed",
            "Timeout",
            "NotAllowedNamespace",
        ] {
            assert!(seen.contains(required), "catalogue lacks {required}");
        }
    }

    #[test]
    fn catalogue_names_only_condition_types_that_exist() {
        use crate::api::conditions::{IN_USE, READY, RECONCILING, STALLED, SYNCED};
        let types = [READY, SYNCED, RECONCILING, STALLED, IN_USE];
        for reason in Reason::ALL {
            let info = reason.info();
            for condition in info.conditions {
                assert!(types.contains(condition), "{} names {condition}, which is no condition type", info.name);
            }
        }
    }

    #[test]
    fn reasons_are_read_back_from_their_names() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_name(reason.as_str()), Some(*reason));
        }
        assert_eq!(Reason::from_name("NoSuchReason"), None);
        assert!(Reason::Creating.is_progress() && !Reason::JobFailed.is_progress());
    }

    #[test]
    fn reasons_doc_is_in_sync() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reasons.md");
        let expected = reasons_markdown();
        if std::env::var_os("CIMI_UPDATE_GENERATED").is_some() {
            std::fs::create_dir_all(path.parent().expect("docs dir")).expect("create docs/");
            std::fs::write(&path, &expected).expect("write docs/reasons.md");
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/reasons.md differs from src/api/reasons.rs: run `make crds` (cimi-operator generate) and commit the result"
        );
    }
}
