//! `kubectl cimi tree KIND/NAME`: the object and everything it depends on or owns, each with Ready, Synced,
//! state and reason, as `crossplane beta trace` shows a claim.
//!
//! - a CimiMachine: its CimiProvider, its CimiVolumes (attached or not) and CimiNetworks;
//! - a CimiSystem: its CimiProvider and its members as the provider reports them (each Ready when in the
//!   state the system asks for), with their nested Jobs and the objects that expose them;
//! - a CimiVolume or CimiNetwork: its CimiProvider and the CimiMachines that use it;
//! - a CimiProvider: the objects that reference it.

use std::process::ExitCode;

use kube::ResourceExt as _;
use kube::api::{Api, ListParams};
use serde::Serialize;

use super::error::PluginError;
use super::kubeconn::Kube;
use super::objects::{self, Kind, ObjectView, ProviderView, Target, job_is_running, job_phrase};
use super::output::{Cell, Printer, Style, Table};
use crate::api::conditions::{READY, SYNCED};
use crate::api::managed::Managed as _;
use crate::api::system::{NestedJob, SystemMember};
use crate::api::{CimiMachine, CimiNetwork, CimiSystem, CimiVolume, PowerState};
use crate::controller::system::plan::{MemberKind, exposed_name, member_ready, member_state};

/// One line of the tree and what hangs below it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// `CimiMachine/web-1` for a Kubernetes object, `Machine web1` for a provider resource.
    pub object: String,
    /// Ready: True, False, Unknown, or `-`.
    pub ready: String,
    /// Synced: True, False, Unknown, or `-`.
    pub synced: String,
    /// The provider's state.
    pub state: String,
    /// The provider Job, when one runs or failed: `stop RUNNING 40%`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The reason of the condition that matters.
    pub reason: String,
    /// Its message, or what is wrong.
    pub message: String,
    /// What depends on this, or what it owns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

/// The node of a managed object: Ready's reason and message, or Synced's when Ready is True but Synced is
/// not (drift, paused).
pub fn object_node(view: &ObjectView) -> Node {
    let ready = view.condition(READY);
    let synced = view.condition(SYNCED);
    let telling = match (ready, synced) {
        (Some(r), Some(s)) if r.status == "True" && s.status != "True" => Some(s),
        (Some(r), _) => Some(r),
        (None, s) => s,
    };
    Node {
        object: view.label(),
        ready: view.condition_status(READY),
        synced: view.condition_status(SYNCED),
        state: view.status.state.clone().unwrap_or_else(|| "-".into()),
        job: view.running_job().map(job_phrase),
        reason: telling.map(|c| c.reason.clone()).unwrap_or_else(|| "NoStatusYet".into()),
        message: telling.map(|c| c.message.clone()).unwrap_or_default(),
        children: Vec::new(),
    }
}

/// The node of something referenced that does not exist.
pub fn missing_node(kind: Kind, name: &str) -> Node {
    Node {
        object: format!("{}/{name}", kind.kind_name()),
        ready: "-".into(),
        synced: "-".into(),
        state: "-".into(),
        job: None,
        reason: "NotFound".into(),
        message: format!("the {} {name} does not exist", kind.kind_name()),
        children: Vec::new(),
    }
}

/// The node of a provider `key` (`name`, or `namespace/name` for a CimiNamespacedProvider), or of its absence.
pub fn provider_node(key: &str, provider: Option<&ProviderView>) -> Node {
    let Some(p) = provider else { return missing_node(Kind::Provider, key) };
    let health = super::status::provider_health(p);
    Node {
        object: format!("{}/{}", p.key.kind.as_str(), p.key.name),
        ready: health.ready.clone(),
        synced: "-".into(),
        state: health.version.map(|v| format!("CIMI {v}")).unwrap_or_else(|| "-".into()),
        job: None,
        reason: health.reason,
        message: if health.ready == "True" { String::new() } else { health.message },
        children: Vec::new(),
    }
}

/// The node of a system member, Ready when in the state the system asks for; its nested Job when one runs
/// or failed; the object that exposes it, if any.
pub fn member_node(
    kind: MemberKind,
    member: &SystemMember,
    power: PowerState,
    nested: &[NestedJob],
    exposed_as: Option<&str>,
) -> Node {
    let label = member.name.clone().unwrap_or_else(|| member.href.clone());
    let (type_name, wanted) = match kind {
        MemberKind::Machine => ("Machine", power.cimi_state()),
        MemberKind::Volume => ("Volume", "AVAILABLE"),
        MemberKind::Network => ("Network", "STARTED"),
    };
    let ready = member_ready(kind, &member_state(member), power);
    let job = nested.iter().find(|n| n.component.as_deref() == Some(label.as_str()) || n.job.href == member.href);
    let failed = job.filter(|j| matches!(j.job.state.as_deref(), Some("FAILED" | "STOPPED")));
    let state = member.state.clone().unwrap_or_else(|| "-".into());
    let mut message =
        if ready { String::new() } else { format!("the member is {state}; the system wants it {wanted}") };
    if let Some(f) = failed
        && let Some(m) = f.job.status_message.as_deref().filter(|m| !m.is_empty())
    {
        message = format!("{message}; its Job ended {}: {m}", f.job.state.as_deref().unwrap_or("?"));
    }
    if let Some(name) = exposed_as {
        let sep = if message.is_empty() { "" } else { "; " };
        message = format!("{message}{sep}shown as {name}");
    }
    Node {
        object: format!("{type_name} {label}"),
        ready: if ready { "True" } else { "False" }.into(),
        synced: "-".into(),
        state,
        job: job.filter(|j| job_is_running(&j.job) || failed.is_some()).map(|j| job_phrase(&j.job)),
        reason: if ready { "-".into() } else { "NotInDesiredState".into() },
        message: message.trim_start_matches("; ").to_string(),
        children: Vec::new(),
    }
}

/// The tree of a CimiSystem: its provider, then its machines, volumes and networks.
pub fn system_tree(system: &CimiSystem, provider: Option<&ProviderView>) -> Node {
    let mut root = object_node(&ObjectView::of(Kind::System, system));
    if let Some(members) = system.status.as_ref().and_then(|st| st.members.as_ref())
        && root.message.is_empty()
    {
        root.message = format!("{} members ready", members.summary);
    }
    root.children.push(provider_node(&system.provider_key(), provider));
    let status = system.status.clone().unwrap_or_default();
    let exposed = |kind: &str, member: &SystemMember| {
        let label =
            member.name.clone().unwrap_or_else(|| member.href.rsplit('/').next().unwrap_or_default().to_string());
        let name = exposed_name(&system.name_any(), &label)?;
        let full = format!("{kind}/{name}");
        status.exposed.iter().find(|e| **e == full).cloned()
    };
    let machines = status.machines.iter().map(|m| (MemberKind::Machine, "CimiMachine", &m.member));
    let volumes = status.volumes.iter().map(|v| (MemberKind::Volume, "CimiVolume", &v.member));
    let networks = status.networks.iter().map(|n| (MemberKind::Network, "CimiNetwork", n));
    for (kind, type_, m) in machines.chain(volumes).chain(networks) {
        let shown = exposed(type_, m);
        root.children.push(member_node(kind, m, system.spec.power_state, &status.nested_jobs, shown.as_deref()));
    }
    root
}

/// The tree of a CimiMachine: its provider, its volumes (attached where) and networks.
pub fn machine_tree(
    machine: &CimiMachine,
    provider: Option<&ProviderView>,
    volumes: &[CimiVolume],
    networks: &[CimiNetwork],
) -> Node {
    let mut root = object_node(&ObjectView::of(Kind::Machine, machine));
    root.children.push(provider_node(&machine.provider_key(), provider));
    let status = machine.status.clone().unwrap_or_default();
    for wanted in &machine.spec.volumes {
        let name = &wanted.volume_ref.name;
        let Some(v) = volumes.iter().find(|v| &v.name_any() == name) else {
            root.children.push(missing_node(Kind::Volume, name));
            continue;
        };
        let mut node = object_node(&ObjectView::of(Kind::Volume, v));
        let href = v.status.as_ref().and_then(|s| s.common.id.clone());
        let attached = status.volumes.iter().find(|a| href.is_some() && a.href == href);
        let note = match attached {
            Some(a) => format!("attached at {}", a.initial_location.as_deref().unwrap_or("?")),
            None => "not attached (yet)".into(),
        };
        node.message = if node.message.is_empty() { note } else { format!("{note}; {}", node.message) };
        root.children.push(node);
    }
    for wanted in &machine.spec.network_interfaces {
        let name = &wanted.network_ref.name;
        let Some(n) = networks.iter().find(|n| &n.name_any() == name) else {
            root.children.push(missing_node(Kind::Network, name));
            continue;
        };
        let mut node = object_node(&ObjectView::of(Kind::Network, n));
        let href = n.status.as_ref().and_then(|s| s.common.id.clone());
        let interface = status.network_interfaces.iter().find(|a| href.is_some() && a.href == href);
        let note = match interface {
            Some(i) if !i.addresses.is_empty() => format!("interface {}", i.addresses.join(", ")),
            Some(_) => "interface without address".into(),
            None => "no interface (yet)".into(),
        };
        node.message = if node.message.is_empty() { note } else { format!("{note}; {}", node.message) };
        root.children.push(node);
    }
    root
}

/// The tree as text: kubectl-like columns, the names indented with `├─` and `└─`.
pub fn render(root: &Node, printer: &Printer) -> String {
    let mut rows: Vec<(String, &Node)> = Vec::new();
    fn walk<'a>(node: &'a Node, prefix: &str, last: bool, top: bool, rows: &mut Vec<(String, &'a Node)>) {
        let (branch, below) = match (top, last) {
            (true, _) => ("", ""),
            (false, false) => ("├─ ", "│  "),
            (false, true) => ("└─ ", "   "),
        };
        rows.push((format!("{prefix}{branch}{}", node.object), node));
        let child_prefix = format!("{prefix}{below}");
        for (i, child) in node.children.iter().enumerate() {
            walk(child, &child_prefix, i + 1 == node.children.len(), false, rows);
        }
    }
    walk(root, "", true, true, &mut rows);
    let with_jobs = rows.iter().any(|(_, n)| n.job.is_some());
    let mut headers = vec!["name", "ready", "synced", "state"];
    if with_jobs {
        headers.push("job");
    }
    headers.extend(["reason", "message"]);
    let mut t = Table::new(headers);
    for (name, n) in rows {
        let mut row = vec![
            Cell::plain(name),
            Cell::styled(&n.ready, Style::of_status(&n.ready)),
            Cell::styled(&n.synced, Style::of_status(&n.synced)),
            Cell::plain(&n.state),
        ];
        if with_jobs {
            row.push(Cell::styled(n.job.clone().unwrap_or_else(|| "-".into()), Style::Warn));
        }
        row.push(Cell::plain(&n.reason));
        row.push(Cell::plain(printer.message(&n.message)));
        t.row(row);
    }
    t.render(printer.colour)
}

/// The CimiMachines of the command's namespace that use a volume or network named `name`.
async fn users(kube: &Kube, kind: Kind, name: &str) -> Result<Vec<Node>, PluginError> {
    let uses = |node: &mut Node, how: &str| {
        node.message = format!("{how}; {}", node.message).trim_end_matches("; ").to_string();
    };
    if kind == Kind::VolumeImage {
        let volumes = Api::<CimiVolume>::namespaced(kube.client.clone(), &kube.namespace)
            .list(&ListParams::default())
            .await
            .map_err(|e| PluginError::kube(&format!("list CimiVolumes in namespace {}", kube.namespace), e))?;
        return Ok(volumes
            .items
            .iter()
            .filter(|v| v.spec.image_ref.as_ref().is_some_and(|r| r.name == name))
            .map(|v| {
                let mut node = object_node(&ObjectView::of(Kind::Volume, v));
                uses(&mut node, "restored from it");
                node
            })
            .collect());
    }
    let machines = Api::<CimiMachine>::namespaced(kube.client.clone(), &kube.namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| PluginError::kube(&format!("list CimiMachines in namespace {}", kube.namespace), e))?;
    Ok(machines
        .items
        .iter()
        .filter(|m| match kind {
            Kind::Volume => m.spec.volumes.iter().any(|v| v.volume_ref.name == name),
            Kind::MachineImage => {
                m.spec.template.as_ref().and_then(|t| t.image_ref.as_ref()).is_some_and(|r| r.name == name)
            }
            _ => m.spec.network_interfaces.iter().any(|n| n.network_ref.name == name),
        })
        .map(|m| {
            let mut node = object_node(&ObjectView::of(Kind::Machine, m));
            uses(&mut node, if kind == Kind::MachineImage { "boots from it" } else { "uses it" });
            node
        })
        .collect())
}

/// Reads what the tree of `target` needs and builds it.
pub async fn build(kube: &Kube, target: &Target) -> Result<Node, PluginError> {
    match target.kind {
        Kind::Machine => {
            let machine: CimiMachine = objects::get(kube, target).await?;
            let provider = objects::provider_opt(kube, &machine.provider_key()).await?;
            let ns = Some(kube.namespace.as_str());
            let volumes = objects::api::<CimiVolume>(kube, ns).list(&ListParams::default()).await;
            let networks = objects::api::<CimiNetwork>(kube, ns).list(&ListParams::default()).await;
            let volumes = volumes.map_err(|e| PluginError::kube("list CimiVolumes", e))?.items;
            let networks = networks.map_err(|e| PluginError::kube("list CimiNetworks", e))?.items;
            Ok(machine_tree(&machine, provider.as_ref(), &volumes, &networks))
        }
        Kind::System => {
            let system: CimiSystem = objects::get(kube, target).await?;
            let provider = objects::provider_opt(kube, &system.provider_key()).await?;
            Ok(system_tree(&system, provider.as_ref()))
        }
        Kind::Volume | Kind::Network | Kind::MachineImage | Kind::VolumeImage => {
            let view = objects::get_view(kube, target).await?;
            let provider = objects::provider_opt(kube, &view.provider).await?;
            let mut root = object_node(&view);
            root.children.push(provider_node(&view.provider, provider.as_ref()));
            root.children.extend(users(kube, target.kind, &target.name).await?);
            Ok(root)
        }
        Kind::Provider => {
            let provider = objects::get_provider(kube, &target.name).await?;
            let mut root = provider_node(&target.name, Some(&provider));
            let objects = objects::list_managed(kube, kube.list_namespace()).await?;
            for o in objects.iter().filter(|o| o.provider == target.name) {
                let mut node = object_node(o);
                if kube.all_namespaces {
                    node.object = format!("{} (namespace {})", node.object, o.namespace);
                }
                root.children.push(node);
            }
            Ok(root)
        }
    }
}

/// Runs `tree`.
pub async fn run(kube: &Kube, target: &Target, printer: &Printer) -> Result<ExitCode, PluginError> {
    let root = build(kube, target).await?;
    if printer.is_document() {
        print!("{}", printer.document(&root)?);
    } else {
        print!("{}", render(&root, printer));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::JobStatus;
    use crate::api::conditions::{ConditionSet, Status};
    use crate::api::reasons::Reason;
    use crate::api::system::CimiSystemStatus;
    use crate::api::system::{MachineMember, MemberCounts, VolumeMember};
    use crate::plugin::output::OutputFormat;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn member(name: &str, state: &str) -> SystemMember {
        SystemMember {
            name: Some(name.into()),
            href: format!("http://p/x/{name}"),
            state: Some(state.into()),
            ..Default::default()
        }
    }

    fn system_with_a_stopped_member() -> CimiSystem {
        let mut s: CimiSystem = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiSystem",
            "metadata": {"name": "shop", "namespace": "team-a"},
            "spec": {"providerRef": {"name": "lab"}, "systemTemplate": {"name": "web-tier"}}
        }))
        .expect("system");
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let conditions = ConditionSet::new(&[], Some(1), now)
            .set(READY, Status::False, Reason::WaitingForJob, "3/4 members ready; waiting for the others")
            .set(SYNCED, Status::True, Reason::Available, "the provider answered")
            .build();
        s.status = Some(CimiSystemStatus {
            common: crate::api::common::ManagedStatus { state: Some("MIXED".into()), conditions, ..Default::default() },
            members: Some(MemberCounts { ready: 3, total: 4, summary: "3/4".into(), ..Default::default() }),
            machines: vec![
                MachineMember { member: member("web1", "STOPPED"), ..Default::default() },
                MachineMember { member: member("web2", "STARTED"), ..Default::default() },
            ],
            volumes: vec![VolumeMember { member: member("data", "AVAILABLE"), capacity: None }],
            networks: vec![member("net", "STARTED")],
            nested_jobs: vec![NestedJob {
                component: Some("web1".into()),
                job: JobStatus {
                    href: "http://p/jobs/3".into(),
                    action: Some("start".into()),
                    state: Some("RUNNING".into()),
                    progress: Some(0),
                    ..Default::default()
                },
            }],
            exposed: vec!["CimiMachine/shop-web1".into()],
        });
        s
    }

    #[test]
    fn a_system_tree_points_at_the_broken_member() {
        let system = system_with_a_stopped_member();
        let root = system_tree(&system, None);
        assert_eq!(root.object, "CimiSystem/shop");
        assert_eq!(
            (root.ready.as_str(), root.state.as_str(), root.reason.as_str()),
            ("False", "MIXED", "WaitingForJob")
        );
        let names: Vec<&str> = root.children.iter().map(|c| c.object.as_str()).collect();
        assert_eq!(names, ["CimiProvider/lab", "Machine web1", "Machine web2", "Volume data", "Network net"]);
        assert_eq!(root.children[0].reason, "NotFound");
        let web1 = &root.children[1];
        assert_eq!((web1.ready.as_str(), web1.state.as_str()), ("False", "STOPPED"));
        assert_eq!(web1.job.as_deref(), Some("start RUNNING 0%"));
        assert!(web1.message.contains("wants it STARTED") && web1.message.contains("shown as CimiMachine/shop-web1"));
        assert_eq!(root.children[2].ready, "True");
        let text = render(&root, &Printer { format: OutputFormat::Table, colour: false });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].contains("JOB"), "{text}");
        assert!(lines[1].starts_with("CimiSystem/shop "), "{text}");
        assert!(lines[3].starts_with("├─ Machine web1 ") && lines[3].contains("False") && lines[3].contains("STOPPED"));
        assert!(lines[6].starts_with("└─ Network net "), "{text}");
    }

    #[test]
    fn a_machine_tree_shows_its_volumes_networks_and_what_is_missing() {
        let machine: CimiMachine = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiMachine",
            "metadata": {"name": "web-1", "namespace": "team-a"},
            "spec": {"providerRef": {"name": "lab"}, "systemTemplate": {"name": "t"},
                     "volumes": [{"volumeRef": {"name": "data"}}, {"volumeRef": {"name": "gone"}}],
                     "networkInterfaces": [{"networkRef": {"name": "net"}}]},
            "status": {"state": "STARTED", "volumes": [{"href": "http://p/volumes/1", "initialLocation": "/dev/vdb"}],
                       "networkInterfaces": [{"href": "http://p/networks/1", "addresses": ["10.0.0.5"]}]}
        }))
        .expect("machine");
        let volume: CimiVolume = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiVolume", "metadata": {"name": "data"},
            "spec": {"providerRef": {"name": "lab"}, "capacity": "1Gi"},
            "status": {"id": "http://p/volumes/1", "state": "AVAILABLE"}
        }))
        .expect("volume");
        let network: CimiNetwork = serde_json::from_value(serde_json::json!({
            "apiVersion": "cimi.dev/v1alpha1", "kind": "CimiNetwork", "metadata": {"name": "net"},
            "spec": {"providerRef": {"name": "lab"}, "networkType": "Private"},
            "status": {"id": "http://p/networks/1", "state": "STARTED"}
        }))
        .expect("network");
        let root = machine_tree(&machine, None, &[volume], &[network]);
        let lines: Vec<(String, String)> =
            root.children.iter().map(|c| (c.object.clone(), c.message.clone())).collect();
        assert_eq!(lines[1].0, "CimiVolume/data");
        assert!(lines[1].1.starts_with("attached at /dev/vdb"), "{lines:?}");
        assert_eq!(lines[2], ("CimiVolume/gone".into(), "the CimiVolume gone does not exist".into()));
        assert_eq!(lines[3].0, "CimiNetwork/net");
        assert!(lines[3].1.starts_with("interface 10.0.0.5"), "{lines:?}");
        assert!(root.children.iter().all(|c| c.children.is_empty()));
    }
}
