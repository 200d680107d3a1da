//! Actions on a CimiMachine or CimiSystem, and `--wait`.
//!
//! - Power changes (`start`, `stop`, `pause`, `suspend`) set `spec.powerState`, with a warning when a GitOps
//!   tool manages the object (it would revert the change to what Git says). `--wait` waits until the Ready
//!   condition of the new generation is True with the object in the wanted state, and fails with the
//!   operator's message when the object turns Stalled.
//! - One-shot actions (`restart`, `capture`) set the annotation `cimi.dev/action: <action>@<nonce>` with a
//!   fresh nonce. `--wait` follows `status.lastAction` of that nonce (and the provider Job's progress) until
//!   it Succeeded, Failed or was Rejected.
//!
//! Nothing here talks to the provider: the operator does, and the plugin reads what it writes.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::cli::ActionArgs;
use super::error::PluginError;
use super::kubeconn::Kube;
use super::objects::{self, Kind, ObjectView, Target, job_phrase};
use super::output::Printer;
use crate::api::common::ActionPhase;
use crate::api::common::ManagementPolicy;
use crate::api::conditions::{READY, STALLED};
use crate::api::managed::Managed;
use crate::api::{CimiMachine, CimiSystem, PowerState};

/// The field manager of the plugin's patches.
pub const FIELD_MANAGER: &str = "kubectl-cimi";

/// How often `--wait` reads the object.
const POLL: Duration = Duration::from_millis(400);

/// An action of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `spec.powerState: Started`.
    Start,
    /// `spec.powerState: Stopped`.
    Stop,
    /// `spec.powerState: Paused`.
    Pause,
    /// `spec.powerState: Suspended`.
    Suspend,
    /// `cimi.dev/action: restart@<nonce>`.
    Restart,
    /// `cimi.dev/action: capture@<nonce>`.
    Capture,
}

impl Action {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Pause => "pause",
            Action::Suspend => "suspend",
            Action::Restart => "restart",
            Action::Capture => "capture",
        }
    }

    /// The power state a power change asks for; `None` for a one-shot action.
    pub fn power_state(self) -> Option<PowerState> {
        match self {
            Action::Start => Some(PowerState::Started),
            Action::Stop => Some(PowerState::Stopped),
            Action::Pause => Some(PowerState::Paused),
            Action::Suspend => Some(PowerState::Suspended),
            Action::Restart | Action::Capture => None,
        }
    }

    /// Whether the operator handles this action on this kind: power on machines and systems, `restart` on both,
    /// `capture` on machines only (CIMI has no capture of a System).
    pub fn supported_on(self, kind: Kind) -> bool {
        match kind {
            Kind::Machine => true,
            Kind::System => self != Action::Capture,
            _ => false,
        }
    }
}

/// A nonce for a one-shot action: the time in milliseconds and a random suffix, so two requests never share
/// one.
pub fn new_nonce() -> String {
    use rand::Rng as _;
    let millis = k8s_openapi::jiff::Timestamp::now().as_millisecond();
    let salt: u16 = rand::rng().random();
    format!("{millis}-{salt:04x}")
}

/// The warnings to give before changing `spec.powerState`, one per tool that would set it back: Argo CD and
/// Flux by their labels and annotations, other tools by `managedFields` (a field manager other than kubectl,
/// the operator and this plugin that owns `spec.powerState`).
pub fn gitops_managers(meta: &ObjectMeta) -> Vec<String> {
    const GIT: &str = ": it will set spec.powerState back to what Git says; make the change in Git to keep it";
    let mut out = Vec::new();
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations = meta.annotations.clone().unwrap_or_default();
    if let Some(app) = labels.get("argocd.argoproj.io/instance") {
        out.push(format!("Argo CD manages it (label argocd.argoproj.io/instance={app}){GIT}"));
    } else if let Some(id) = annotations.get("argocd.argoproj.io/tracking-id") {
        out.push(format!("Argo CD manages it (annotation argocd.argoproj.io/tracking-id={id}){GIT}"));
    }
    if let Some(k) = labels.get("kustomize.toolkit.fluxcd.io/name") {
        out.push(format!("Flux manages it (Kustomization {k}){GIT}"));
    }
    if let Some(h) = labels.get("helm.toolkit.fluxcd.io/name") {
        out.push(format!("Flux manages it (HelmRelease {h}){GIT}"));
    }
    for entry in meta.managed_fields.iter().flatten() {
        let Some(manager) = entry.manager.as_deref() else { continue };
        if manager.starts_with("kubectl") || manager == crate::names::FIELD_MANAGER || manager == FIELD_MANAGER {
            continue;
        }
        let owns_power = entry
            .fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:spec"))
            .is_some_and(|spec| spec.get("f:powerState").is_some());
        if owns_power && !out.iter().any(|o| o.contains(manager)) {
            out.push(format!(
                "the field manager {manager:?} owns spec.powerState: if a GitOps or CI tool applies as {manager:?}, \
                 its next apply sets it back; make the change where it applies from"
            ));
        }
    }
    out
}

/// What `--wait` concludes from one reading of the object after a power change to `wanted`, asked in
/// generation `generation`: `Some(Ok)` done, `Some(Err)` failed, `None` not yet.
pub fn power_outcome(view: &ObjectView, wanted: PowerState, generation: Option<i64>) -> Option<Result<String, String>> {
    let current = |c: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| {
        c.observed_generation.unwrap_or(0) >= generation.unwrap_or(0)
    };
    if let Some(stalled) = view.condition(STALLED).filter(current).filter(|c| c.status == "True") {
        return Some(Err(format!("{}: {}", stalled.reason, stalled.message)));
    }
    let ready = view.condition(READY).filter(current)?;
    let state = view.status.state.as_deref().unwrap_or("");
    (ready.status == "True" && state == wanted.cimi_state() && view.running_job().is_none())
        .then(|| Ok(format!("{} is {state}", view.label())))
}

/// The Stalled condition when it is True, as (lastTransitionTime, reason, message): what a one-shot action
/// compares against, since annotations do not move the generation.
pub fn stalled_now(view: &ObjectView) -> Option<(String, String, String)> {
    view.condition(STALLED)
        .filter(|c| c.status == "True")
        .map(|c| (c.last_transition_time.0.to_string(), c.reason.clone(), c.message.clone()))
}

/// What `--wait` concludes from one reading after a one-shot action with `nonce`: the outcome in
/// `status.lastAction`, or a Stalled condition other than the one the object had before (`stalled_before`),
/// such as the provider rejecting the request before any Job.
pub fn one_shot_outcome(
    view: &ObjectView,
    action: &str,
    nonce: &str,
    stalled_before: Option<&(String, String, String)>,
) -> Option<Result<String, String>> {
    if let Some(last) = view.last_action().filter(|a| a.nonce == nonce) {
        let message = last.message.clone().unwrap_or_default();
        match last.phase {
            ActionPhase::Succeeded => {
                return Some(Ok(match &last.result {
                    Some(result) => format!("{action} succeeded on {}: {result}", view.label()),
                    None => format!("{action} succeeded on {}", view.label()),
                }));
            }
            ActionPhase::Failed => return Some(Err(format!("{action} failed on {}: {message}", view.label()))),
            ActionPhase::Rejected => return Some(Err(format!("{action} rejected for {}: {message}", view.label()))),
            ActionPhase::Pending | ActionPhase::Running => {}
        }
    }
    match stalled_now(view) {
        Some(now) if Some(&now) != stalled_before => {
            Some(Err(format!("{action} failed on {}: {}: {}", view.label(), now.1, now.2)))
        }
        _ => None,
    }
}

/// A line about progress: the provider Job, else the Ready condition once it speaks of `generation` (the
/// one a power change made; `None` for a one-shot action), else that the operator has yet to act.
pub fn progress_line(view: &ObjectView, generation: Option<i64>) -> String {
    if let Some(job) = view.running_job() {
        return format!("provider Job {}", job_phrase(job));
    }
    match view.condition(READY) {
        Some(c) if c.observed_generation.unwrap_or(0) >= generation.unwrap_or(0) => {
            format!("Ready={} {}: {}", c.status, c.reason, c.message)
        }
        _ => "waiting for the operator".into(),
    }
}

/// Reads the object until `outcome` concludes or `timeout` passes, printing progress to stderr.
async fn wait(
    kube: &Kube,
    target: &Target,
    timeout: Duration,
    generation: Option<i64>,
    outcome: impl Fn(&ObjectView) -> Option<Result<String, String>>,
) -> Result<String, PluginError> {
    let deadline = Instant::now() + timeout;
    let mut last_line = String::new();
    loop {
        let view = objects::get_view(kube, target).await?;
        match outcome(&view) {
            Some(Ok(done)) => return Ok(done),
            Some(Err(failed)) => return Err(PluginError::ActionFailed(failed)),
            None => {}
        }
        let line = progress_line(&view, generation);
        if line != last_line {
            eprintln!("  {}: {}", target.display(), super::output::shorten(&line, 160));
            last_line = line;
        }
        if Instant::now() >= deadline {
            return Err(PluginError::Timeout(format!(
                "{} did not finish within {}s; last seen: {last_line}",
                target.display(),
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Patches the object (merge patch, field manager [`FIELD_MANAGER`]) and returns its view.
async fn patch<K>(kube: &Kube, target: &Target, body: Value) -> Result<ObjectView, PluginError>
where
    K: Managed
        + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    let patched = api
        .patch(&target.name, &params, &Patch::Merge(&body))
        .await
        .map_err(|e| PluginError::kube(&format!("patch {} in namespace {}", target.display(), kube.namespace), e))?;
    Ok(ObjectView::of(target.kind, &patched))
}

/// The parts of an object an action looks at, whatever the kind.
struct Subject {
    view: ObjectView,
    meta: ObjectMeta,
    power: PowerState,
    policy: ManagementPolicy,
}

async fn subject(kube: &Kube, target: &Target) -> Result<Subject, PluginError> {
    match target.kind {
        Kind::Machine => {
            let m: CimiMachine = objects::get(kube, target).await?;
            Ok(Subject {
                view: ObjectView::of(Kind::Machine, &m),
                power: m.spec.power_state,
                policy: m.management_policy(),
                meta: m.metadata,
            })
        }
        Kind::System => {
            let s: CimiSystem = objects::get(kube, target).await?;
            Ok(Subject {
                view: ObjectView::of(Kind::System, &s),
                power: s.spec.power_state,
                policy: s.management_policy(),
                meta: s.metadata,
            })
        }
        _ => Err(PluginError::Usage(format!("{} is not a CimiMachine or CimiSystem", target.display()))),
    }
}

/// Runs an action.
pub async fn run(kube: &Kube, action: Action, args: &ActionArgs, printer: &Printer) -> Result<ExitCode, PluginError> {
    let target = Target::parse(&args.target)?;
    if !action.supported_on(target.kind) {
        return Err(PluginError::Usage(match target.kind {
            Kind::System => format!(
                "{} on a CimiSystem is not supported: CIMI captures machines, not systems (capture a member \
                 CimiMachine instead)",
                action.name()
            ),
            _ => format!("{} applies to a CimiMachine or CimiSystem, not {}", action.name(), target.display()),
        }));
    }
    let subject = subject(kube, &target).await?;
    if subject.policy == ManagementPolicy::ObserveOnly {
        return Err(PluginError::Usage(format!(
            "{} is ObserveOnly: the operator never acts on its provider resource (change spec.managementPolicy to \
             Managed first)",
            target.display()
        )));
    }
    let paused = subject.meta.annotations.as_ref().and_then(|a| a.get(crate::names::ANNOTATION_PAUSED));
    if paused.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        eprintln!(
            "warning: {} carries cimi.dev/paused: \"true\"; the operator will not act until it is removed",
            target.display()
        );
    }
    let outcome = match action.power_state() {
        Some(wanted) => power(kube, &target, &subject, action, wanted, args).await?,
        None => one_shot(kube, &target, &subject, action, args).await?,
    };
    if printer.is_document() {
        // Scripts get one document on stdout: the object's common status after the action.
        eprintln!("{outcome}");
        let view = objects::get_view(kube, &target).await?;
        print!("{}", printer.document(&json!({"object": view, "status": view.status, "outcome": outcome}))?);
    } else {
        println!("{outcome}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn power(
    kube: &Kube,
    target: &Target,
    subject: &Subject,
    action: Action,
    wanted: PowerState,
    args: &ActionArgs,
) -> Result<String, PluginError> {
    for warning in gitops_managers(&subject.meta) {
        eprintln!("warning: {}: {warning}", target.display());
    }
    let wanted_text =
        serde_json::to_value(wanted).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let view = if subject.power == wanted {
        eprintln!("{} already asks for powerState {wanted_text}", target.display());
        subject.view.clone()
    } else {
        let body = json!({"spec": {"powerState": wanted_text}});
        let patched = match target.kind {
            Kind::Machine => patch::<CimiMachine>(kube, target, body).await?,
            _ => patch::<CimiSystem>(kube, target, body).await?,
        };
        eprintln!("{}: spec.powerState set to {wanted_text} ({})", target.display(), action.name());
        patched
    };
    if !args.wait {
        return Ok(format!("{} {} requested", target.display(), action.name()));
    }
    let generation = view.generation;
    wait(kube, target, args.timeout, generation, |v| power_outcome(v, wanted, generation)).await
}

async fn one_shot(
    kube: &Kube,
    target: &Target,
    subject: &Subject,
    action: Action,
    args: &ActionArgs,
) -> Result<String, PluginError> {
    let stalled_before = stalled_now(&subject.view);
    if let Some((_, reason, message)) = &stalled_before {
        eprintln!(
            "warning: {} is Stalled ({reason}: {message}); the operator may not act on the request until that is fixed",
            target.display()
        );
    }
    let nonce = new_nonce();
    let value = format!("{}@{nonce}", action.name());
    let annotations: BTreeMap<&str, &str> = [(crate::names::ANNOTATION_ACTION, value.as_str())].into_iter().collect();
    let body = json!({"metadata": {"annotations": annotations}});
    match target.kind {
        Kind::Machine => patch::<CimiMachine>(kube, target, body).await?,
        _ => patch::<CimiSystem>(kube, target, body).await?,
    };
    eprintln!("{}: {} requested ({}={value})", target.display(), action.name(), crate::names::ANNOTATION_ACTION);
    if !args.wait {
        return Ok(format!("{} {} requested", target.display(), action.name()));
    }
    wait(kube, target, args.timeout, None, |v| one_shot_outcome(v, action.name(), &nonce, stalled_before.as_ref()))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::{JobStatus, LastAction, ManagedStatus};
    use crate::api::conditions::{ConditionSet, Status};
    use crate::api::reasons::Reason;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::now())
    }

    fn view(generation: i64, state: &str, set: impl FnOnce(&mut ConditionSet)) -> ObjectView {
        let mut conds = ConditionSet::new(&[], Some(generation), now());
        set(&mut conds);
        ObjectView {
            kind: Kind::Machine,
            namespace: "ns".into(),
            name: "web-1".into(),
            provider: "lab".into(),
            uid: None,
            generation: Some(generation),
            created: None,
            status: ManagedStatus { state: Some(state.into()), conditions: conds.build(), ..Default::default() },
        }
    }

    #[test]
    fn nonces_are_fresh_and_valid_annotation_values() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_ne!(a, b);
        let parsed = crate::api::managed::parse_action(&format!("restart@{a}")).expect("valid");
        assert_eq!(parsed.nonce, a);
    }

    #[test]
    fn restart_and_power_apply_to_both_and_capture_to_machines_only() {
        assert!(Action::Restart.supported_on(Kind::Machine));
        assert!(Action::Restart.supported_on(Kind::System));
        assert!(Action::Capture.supported_on(Kind::Machine));
        assert!(!Action::Capture.supported_on(Kind::System));
        assert!(Action::Stop.supported_on(Kind::System));
        assert!(!Action::Stop.supported_on(Kind::Volume));
        assert_eq!(Action::Suspend.power_state(), Some(PowerState::Suspended));
    }

    #[test]
    fn power_waits_for_the_new_generation_and_fails_on_stalled() {
        // Ready for the old generation does not count.
        let old = view(1, "STARTED", |c| {
            c.set(READY, Status::True, Reason::Available, "");
        });
        assert_eq!(power_outcome(&old, PowerState::Stopped, Some(2)), None);
        let working = view(2, "STOPPING", |c| {
            c.set(READY, Status::False, Reason::ChangingPowerState, "stop requested");
        });
        assert_eq!(power_outcome(&working, PowerState::Stopped, Some(2)), None);
        let done = view(2, "STOPPED", |c| {
            c.set(READY, Status::True, Reason::Available, "");
        });
        assert_eq!(power_outcome(&done, PowerState::Stopped, Some(2)), Some(Ok("CimiMachine/web-1 is STOPPED".into())));
        let failed = view(2, "STARTED", |c| {
            c.set(READY, Status::False, Reason::JobFailed, "the stop Job ended FAILED: no power");
            c.set(STALLED, Status::True, Reason::JobFailed, "the stop Job ended FAILED: no power");
        });
        assert_eq!(
            power_outcome(&failed, PowerState::Stopped, Some(2)),
            Some(Err("JobFailed: the stop Job ended FAILED: no power".into()))
        );
        let mut running = done.clone();
        running.status.job = Some(JobStatus { href: "j".into(), state: Some("RUNNING".into()), ..Default::default() });
        assert_eq!(power_outcome(&running, PowerState::Stopped, Some(2)), None);
    }

    #[test]
    fn progress_speaks_of_the_new_generation_only() {
        let old = view(1, "STARTED", |c| {
            c.set(READY, Status::True, Reason::Available, "the machine is STARTED");
        });
        assert_eq!(progress_line(&old, Some(2)), "waiting for the operator");
        assert_eq!(progress_line(&old, None), "Ready=True Available: the machine is STARTED");
        let mut running = old.clone();
        running.status.job = Some(JobStatus {
            href: "j".into(),
            action: Some("stop".into()),
            state: Some("RUNNING".into()),
            progress: Some(40),
            ..Default::default()
        });
        assert_eq!(progress_line(&running, Some(2)), "provider Job stop RUNNING 40%");
    }

    #[test]
    fn one_shot_waits_for_its_own_nonce() {
        let mut v = view(1, "STARTED", |_| {});
        let last = |nonce: &str, phase: &str, message: Option<&str>| LastAction {
            action: "restart".into(),
            nonce: nonce.into(),
            phase: serde_json::from_value(serde_json::json!(phase)).expect("a phase"),
            message: message.map(str::to_string),
            ..Default::default()
        };
        v.status.last_action = Some(last("old", "Succeeded", None));
        assert_eq!(one_shot_outcome(&v, "restart", "new", None), None);
        v.status.last_action = Some(last("new", "Running", None));
        assert_eq!(one_shot_outcome(&v, "restart", "new", None), None);
        v.status.last_action = Some(last("new", "Succeeded", None));
        assert_eq!(
            one_shot_outcome(&v, "restart", "new", None),
            Some(Ok("restart succeeded on CimiMachine/web-1".into()))
        );
        v.status.last_action = Some(last("new", "Failed", Some("the provider failed the operation")));
        assert_eq!(
            one_shot_outcome(&v, "restart", "new", None),
            Some(Err("restart failed on CimiMachine/web-1: the provider failed the operation".into()))
        );
        v.status.last_action = Some(last("new", "Rejected", Some("not offered")));
        assert!(matches!(one_shot_outcome(&v, "restart", "new", None), Some(Err(m)) if m.contains("rejected")));
    }

    #[test]
    fn one_shot_fails_on_a_new_stall_but_not_on_the_old_one() {
        let stalled = view(1, "STOPPED", |c| {
            c.set(STALLED, Status::True, Reason::ProviderRejected, "invalid request (400): bad body");
        });
        let before = stalled_now(&stalled);
        assert_eq!(one_shot_outcome(&stalled, "capture", "n", before.as_ref()), None, "stalled already");
        assert_eq!(
            one_shot_outcome(&stalled, "capture", "n", None),
            Some(Err("capture failed on CimiMachine/web-1: ProviderRejected: invalid request (400): bad body".into()))
        );
    }

    #[test]
    fn gitops_tools_are_recognised() {
        let mut meta = ObjectMeta::default();
        assert!(gitops_managers(&meta).is_empty());
        meta.labels = Some([("argocd.argoproj.io/instance".to_string(), "shop".to_string())].into_iter().collect());
        assert!(gitops_managers(&meta)[0].starts_with("Argo CD manages it"));
        assert!(gitops_managers(&meta)[0].ends_with("make the change in Git to keep it"));
        meta.labels =
            Some([("kustomize.toolkit.fluxcd.io/name".to_string(), "apps".to_string())].into_iter().collect());
        assert!(gitops_managers(&meta)[0].contains("Flux manages it (Kustomization apps)"));
        meta.labels = None;
        meta.annotations =
            Some([("argocd.argoproj.io/tracking-id".to_string(), "shop:x".to_string())].into_iter().collect());
        assert_eq!(gitops_managers(&meta).len(), 1);
        meta.annotations = None;
        let entry = |manager: &str, fields: Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let power = json!({"f:spec": {"f:powerState": {}}});
        meta.managed_fields = Some(vec![
            entry("kubectl-client-side-apply", power.clone()),
            entry("cimi-operator", json!({"f:status": {}})),
            entry("kubectl-cimi", power.clone()),
            entry("helm", json!({"f:spec": {"f:description": {}}})),
        ]);
        assert!(gitops_managers(&meta).is_empty(), "kubectl, the operator, the plugin, and managers of other fields");
        meta.managed_fields.get_or_insert_with(Vec::new).push(entry("argocd-controller", power));
        let found = gitops_managers(&meta);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("argocd-controller"), "{found:?}");
    }
}
