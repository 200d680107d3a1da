//! Every catalog collection of cimi-sim read into the typed model, in JSON and XML and through the lenient
//! profile; creates by reference with overrides; network and system actions; the shared rate budget.

use std::collections::BTreeMap;

use cimi_operator::cimi::jobs::WaitOptions;
use cimi_operator::cimi::model::{
    Machine, MachineTemplate, Network, NetworkConfiguration, NetworkTemplate, ResourceMetadata, System, SystemTemplate,
    VolumeConfiguration, VolumeImage, VolumeTemplate,
};
use cimi_operator::cimi::query::{Filter, Query};
use cimi_operator::cimi::{CimiClient, Format, Limits, Template, create_body};
use cimi_operator::sim::Profile;
use serde_json::{Map, json};

use crate::primer::{config, sim};

async fn catalog_reads(format: Format, profile: Profile) {
    let s = sim(profile).await;
    let c = CimiClient::connect(config(&s, format)).await.expect("connect");
    let q = Query::new();
    let t = c.list_all::<MachineTemplate>("machineTemplates", &q).await.expect("machineTemplates");
    assert_eq!(t.entries[0].initial_state.as_deref(), Some("STARTED"), "{format:?} {profile:?}");
    assert!(t.entries[0].machine_config.is_some());
    let vc = c.list_all::<VolumeConfiguration>("volumeConfigs", &q).await.expect("volumeConfigs");
    assert_eq!(vc.entries.iter().filter_map(|v| v.capacity).collect::<Vec<_>>(), [10_000_000, 100_000_000]);
    let vi = c.list_all::<VolumeImage>("volumeImages", &q).await.expect("volumeImages");
    assert_eq!(vi.entries[0].bootable, Some(false), "{format:?} {profile:?}");
    let vt = c.list_all::<VolumeTemplate>("volumeTemplates", &q).await.expect("volumeTemplates");
    assert_eq!(vt.entries.len(), 1);
    let nc = c.list_all::<NetworkConfiguration>("networkConfigs", &q).await.expect("networkConfigs");
    assert_eq!(nc.entries.iter().filter_map(|n| n.mtu).collect::<Vec<_>>(), [1500, 1500]);
    let nt = c.list_all::<NetworkTemplate>("networkTemplates", &q).await.expect("networkTemplates");
    assert_eq!(nt.entries.len(), 1);
    let st = c.list_all::<SystemTemplate>("systemTemplates", &q).await.expect("systemTemplates");
    let descriptors = st.entries[0].component_descriptors.clone().unwrap_or_default();
    assert_eq!(descriptors.len(), 2, "{format:?} {profile:?}");
    assert_eq!(descriptors[1].quantity, Some(2));
    let rm = c.list_all::<ResourceMetadata>("resourceMetadata", &q).await.expect("resourceMetadata");
    assert!(!rm.entries.is_empty());
}

#[tokio::test]
async fn catalog_in_json() {
    catalog_reads(Format::Json, Profile::Strict).await;
}

#[tokio::test]
async fn catalog_in_xml() {
    catalog_reads(Format::Xml, Profile::Strict).await;
}

#[tokio::test]
async fn catalog_from_a_lenient_provider() {
    catalog_reads(Format::Json, Profile::Lenient1x).await;
}

/// A machine from the provider's template by reference, with an override that applies to this machine only.
#[tokio::test]
async fn create_by_reference_with_overrides() {
    for format in [Format::Json, Format::Xml] {
        let s = sim(Profile::Strict).await;
        let c = CimiClient::connect(config(&s, format)).await.expect("connect");
        let by_name = Query::new().filter(Filter::attr("name").expect("attr").eq("small-suse"));
        let t = c.list_all::<MachineTemplate>("machineTemplates", &by_name).await.expect("template").entries;
        let href = t[0].id.clone().expect("template id");
        let mut overrides = Map::new();
        overrides.insert("initialState".into(), json!("STOPPED"));
        let mut props = BTreeMap::new();
        props.insert("cimi.dev/uid".to_string(), "6b1f-e".to_string());
        let body = create_body(
            "Machine",
            "from-template",
            Some("by reference"),
            &props,
            Template::ByReference { href, overrides },
        );
        let accepted = c.create("machines", &body).await.expect("create");
        let machines = c.collection_url("machines").await.expect("machines");
        let m_href = c.created_href(&accepted, &machines).await.expect("href").expect("where");
        c.settle(&accepted, Some(&m_href), &["STOPPED"], &WaitOptions::from(c.config().wait)).await.expect("created");
        let m: Machine = c.get(&m_href).await.expect("machine");
        assert_eq!(m.state.as_deref(), Some("STOPPED"), "the override beat the template's STARTED ({format:?})");
        assert_eq!(m.memory, Some(8_000_000), "the template's config (small) was used");
        assert_eq!(m.properties.get("cimi.dev/uid").map(String::as_str), Some("6b1f-e"));
        // Found again by its tag, as the operator does after a crash.
        let tagged = c
            .list_all::<Machine>(
                "machines",
                &Query::new()
                    .filter(cimi_operator::cimi::query::Filter::property("cimi.dev/uid", "6b1f-e").expect("p")),
            )
            .await
            .expect("by tag");
        assert_eq!(tagged.entries.len(), 1);
        let t: MachineTemplate =
            c.get(&c.resolve(t[0].id.as_deref().unwrap_or_default()).await.expect("url")).await.expect("template");
        assert_eq!(t.initial_state.as_deref(), Some("STARTED"), "the template itself is unchanged");
    }
}

#[tokio::test]
async fn network_start_and_stop_and_a_system() {
    let s = sim(Profile::Strict).await;
    let c = CimiClient::connect(config(&s, Format::Json)).await.expect("connect");
    let wait = WaitOptions::from(c.config().wait);
    let nt = c.list_all::<NetworkTemplate>("networkTemplates", &Query::new()).await.expect("templates").entries;
    let body = create_body(
        "Network",
        "backend",
        None,
        &BTreeMap::new(),
        Template::ByReference { href: nt[0].id.clone().expect("id"), overrides: Map::new() },
    );
    let accepted = c.create("networks", &body).await.expect("network");
    let networks = c.collection_url("networks").await.expect("networks");
    let href = c.created_href(&accepted, &networks).await.expect("href").expect("where");
    c.settle(&accepted, Some(&href), &[], &wait).await.expect("created");
    let n: Network = c.get(&href).await.expect("network");
    let (action, target) =
        if n.state.as_deref() == Some("STARTED") { ("stop", "STOPPED") } else { ("start", "STARTED") };
    let current = c.get_value(&href).await.expect("network");
    let acted = c.action(&current, action, Map::new()).await.expect("action");
    c.settle(&acted, Some(&href), &[target], &wait).await.expect("settled");
    assert_eq!(c.get::<Network>(&href).await.expect("network").state.as_deref(), Some(target));

    let st = c.list_all::<SystemTemplate>("systemTemplates", &Query::new()).await.expect("templates").entries;
    let body = create_body(
        "System",
        "web",
        None,
        &BTreeMap::new(),
        Template::ByReference { href: st[0].id.clone().expect("id"), overrides: Map::new() },
    );
    let accepted = c.create("systems", &body).await.expect("system");
    let systems = c.collection_url("systems").await.expect("systems");
    let href = c.created_href(&accepted, &systems).await.expect("href").expect("where");
    c.settle(&accepted, Some(&href), &[], &wait).await.expect("created");
    let sys: System = c.get(&href).await.expect("system");
    assert_eq!(sys.name.as_deref(), Some("web"));
    assert!(sys.state.is_some());
}

/// One rate budget per provider, shared by every clone: ten callers at once still go at 20 requests per
/// second, as cimi-sim's request log shows.
#[tokio::test]
async fn clones_share_one_rate_budget() {
    let s = sim(Profile::Strict).await;
    let mut cfg = config(&s, Format::Json);
    cfg.transport.limits = Limits { requests_per_second: 20.0, burst: 1, max_concurrent: 2 };
    let c = CimiClient::connect(cfg).await.expect("connect");
    let images = c.collection_url("machineImages").await.expect("images");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            let u = images.clone();
            tokio::spawn(async move { c.get_value(&u).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("read");
    }
    let log: Vec<_> = s.stats().log.into_iter().filter(|r| r.op == "MachineImageCollection.read").collect();
    assert_eq!(log.len(), 10);
    let span = log[9].at - log[0].at;
    assert!(span >= chrono::Duration::milliseconds(400), "10 requests at 20/s took only {span}");
}

/// Monitoring through the client: a machine's Meters with their Samples and its EventLog with its Events.
async fn monitoring(format: Format) {
    use cimi_operator::cimi::model::{Event, EventLog, Meter, Sample};
    let s = sim(Profile::Strict).await;
    let c = CimiClient::connect(config(&s, format)).await.expect("connect");
    let wait = WaitOptions::from(c.config().wait);
    let by_name = Query::new().filter(Filter::attr("name").expect("attr").eq("small-suse"));
    let t = c.list_all::<MachineTemplate>("machineTemplates", &by_name).await.expect("template").entries;
    let body = create_body(
        "Machine",
        "watched",
        None,
        &BTreeMap::new(),
        Template::ByReference { href: t[0].id.clone().expect("id"), overrides: Map::new() },
    );
    let accepted = c.create("machines", &body).await.expect("create");
    let machines = c.collection_url("machines").await.expect("machines");
    let href = c.created_href(&accepted, &machines).await.expect("href").expect("where");
    c.settle(&accepted, Some(&href), &["STARTED"], &wait).await.expect("started");
    let m: Machine = c.get(&href).await.expect("machine");

    let log_href = c.resolve(&m.event_log.expect("the machine has an event log").href).await.expect("url");
    let log: EventLog = c.get(&log_href).await.expect("event log");
    let events_href = c.resolve(&log.events.expect("events").href).await.expect("url");
    let events = c.list_all_at::<Event>(&events_href, &Query::new()).await.expect("events");
    assert!(!events.entries.is_empty(), "{format:?}: the creation left events");
    assert!(events.entries.iter().all(|e| e.timestamp.is_some() && e.type_.is_some()), "{format:?}");

    let meters_href = c.resolve(&m.meters.expect("the machine has meters").href).await.expect("url");
    let meters = c.list_all_at::<Meter>(&meters_href, &Query::new()).await.expect("meters");
    assert!(!meters.entries.is_empty(), "{format:?}");
    let meter = &meters.entries[0];
    assert!(meter.aspect.as_deref().is_some_and(|a| a.contains("/aspect/")), "{format:?}: {:?}", meter.aspect);
    if let Some(samples) = &meter.samples {
        let samples_href = c.resolve(&samples.href).await.expect("url");
        let samples = c.list_all_at::<Sample>(&samples_href, &Query::new()).await.expect("samples");
        assert!(samples.entries.iter().all(|s| s.value.is_some()), "{format:?}");
    }
}

#[tokio::test]
async fn monitoring_in_json() {
    monitoring(Format::Json).await;
}

#[tokio::test]
async fn monitoring_in_xml() {
    monitoring(Format::Xml).await;
}
