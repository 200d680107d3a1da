//! The Primer's "Creating a New Machine" walkthrough (seed/cimi-overview-and-primer.txt), driven through the
//! client against cimi-sim in-process: in JSON and in XML, and under the `no-jobs` and `lenient-1x` profiles.

use std::time::Duration;

use cimi_operator::cimi::jobs::WaitOptions;
use cimi_operator::cimi::model::{Credential, Machine, MachineConfiguration, MachineImage, type_uri};
use cimi_operator::cimi::query::{Filter, Query};
use cimi_operator::cimi::{Auth, CimiClient, CimiError, ClientConfig, Format, Secret};
use cimi_operator::sim::{Profile, Sim, SimConfig, SimHandle};
use serde_json::{Map, json};

pub async fn sim(profile: Profile) -> SimHandle {
    Sim::start(SimConfig { profile, ..SimConfig::default() }).await.expect("cimi-sim starts")
}

pub fn config(sim: &SimHandle, format: Format) -> ClientConfig {
    let mut c = ClientConfig::new("sim", &sim.url()).expect("config");
    c.transport.format = format;
    c.transport.auth = Auth::Basic { username: "demo".into(), password: Secret::new("demo") };
    c.transport.allow_plain_http = true;
    c.transport.request_timeout = Duration::from_secs(5);
    c.transport.retry.base_delay = Duration::from_millis(20);
    c.wait.poll_initial = Duration::from_millis(10);
    c.wait.poll_max = Duration::from_millis(100);
    c.wait.timeout = Duration::from_secs(20);
    c
}

/// The walkthrough; every step checks typed values.
pub async fn walkthrough(sim: &SimHandle, format: Format) {
    let c = CimiClient::connect(config(sim, format)).await.expect("CEP");
    let wait = WaitOptions::from(c.config().wait);

    // Choose a Machine Image.
    let images = c.list_all::<MachineImage>("machineImages", &Query::new()).await.expect("images");
    let names: Vec<_> = images.entries.iter().filter_map(|i| i.name.clone()).collect();
    assert_eq!(names, ["WinXP SP2", "Windows 7", "Linux SUSE"], "{format:?}");
    assert_eq!(images.count, Some(3));
    let first = c.list_all::<MachineImage>("machineImages", &Query::new().last(1)).await.expect("$last=1");
    assert_eq!(first.entries.len(), 1);
    let image = first.entries[0].clone();
    assert_eq!(image.name.as_deref(), Some("WinXP SP2"));
    assert!(image.image_location.as_ref().is_some_and(|l| !l.uri().is_empty()), "imageLocation read in either form");

    // Choose a Machine Configuration.
    let configs = c.list_all::<MachineConfiguration>("machineConfigs", &Query::new()).await.expect("configs");
    assert_eq!(configs.entries.len(), 3);
    let tiny = configs.entries[0].clone();
    assert_eq!((tiny.name.as_deref(), tiny.cpu, tiny.memory), (Some("tiny"), Some(1), Some(4_000_000)));
    let disks = tiny.disks.clone().unwrap_or_default();
    assert_eq!((disks[0].capacity, disks[0].format.as_deref()), (50_000_000, Some("ext4")));
    let medium = &configs.entries[2];
    assert_eq!(medium.disks.as_ref().map(Vec::len), Some(2));

    // Discover the Credential's extension attributes, then create one.
    let meta = c.resource_metadata(&type_uri("Credential")).await.expect("metadata").expect("Credential metadata");
    let attrs: Vec<_> = meta.attributes.unwrap_or_default().into_iter().map(|a| a.name).collect();
    assert!(attrs.contains(&"userID".to_string()) && attrs.contains(&"password".to_string()), "{attrs:?}");
    let creds = c.list_all::<Credential>("credentials", &Query::new()).await.expect("credentials");
    assert!(creds.entries.is_empty());
    let cred = c
        .create(
            "credentials",
            &json!({"resourceURI": type_uri("CredentialCreate"), "name": "Default",
            "description": "My Default User", "credentialTemplate": {"userID": "JoeSmith", "password": "letmein"}}),
        )
        .await
        .expect("create credential");
    let cred_coll = c.collection_url("credentials").await.expect("credentials url");
    let cred_href = c.created_href(&cred, &cred_coll).await.expect("credential href").expect("where");
    c.settle(&cred, Some(&cred_href), &[], &wait).await.expect("credential settles");
    let credential: Credential = c.get(&cred_href).await.expect("credential");
    assert_eq!(credential.name.as_deref(), Some("Default"));
    assert_eq!(credential.extra.get("userID").and_then(|v| v.as_str()), Some("JoeSmith"));

    // Create a new Machine.
    let machines = c.collection_url("machines").await.expect("machines url");
    let created = c
        .create(
            "machines",
            &json!({"resourceURI": type_uri("MachineCreate"), "name": "myMachine1",
            "description": "My very first machine",
            "machineTemplate": {"machineConfig": {"href": tiny.id}, "machineImage": {"href": image.id},
                                "credential": {"href": cred_href.as_str()}}}),
        )
        .await
        .expect("create machine");
    assert!(matches!(created.status, 201 | 202), "{}", created.status);
    let href = c.created_href(&created, &machines).await.expect("machine href").expect("where");
    c.settle(&created, Some(&href), &["STOPPED"], &wait).await.expect("machine created");

    // Query the new Machine.
    let m: Machine = c.get(&href).await.expect("machine");
    assert_eq!(m.name.as_deref(), Some("myMachine1"));
    assert_eq!(m.description.as_deref(), Some("My very first machine"));
    assert_eq!(m.state.as_deref(), Some("STOPPED"), "the initial state of a new machine");
    assert_eq!((m.cpu, m.memory), (Some(1), Some(4_000_000)));
    assert!(m.created.is_some());
    let rels: Vec<_> = m.operations.iter().map(|o| o.rel.as_str()).collect();
    assert!(rels.contains(&"http://schemas.dmtf.org/cimi/1/action/start"), "{rels:?}");
    assert!(!rels.contains(&"http://schemas.dmtf.org/cimi/1/action/stop"), "{rels:?}");

    // Start it.
    let current = c.get_value(&href).await.expect("machine");
    let e = c.action(&current, "stop", Map::new()).await.expect_err("stop is not offered while STOPPED");
    assert!(matches!(e, CimiError::NotAllowedNow { .. }), "{e}");
    let started = c.action(&current, "start", Map::new()).await.expect("start");
    c.settle(&started, Some(&href), &["STARTED"], &wait).await.expect("started");
    let m: Machine = c.get(&href).await.expect("machine");
    assert_eq!(m.state.as_deref(), Some("STARTED"));
    let rels: Vec<_> = m.operations.iter().map(|o| o.rel.as_str()).collect();
    assert!(
        rels.contains(&"http://schemas.dmtf.org/cimi/1/action/stop")
            && !rels.contains(&"http://schemas.dmtf.org/cimi/1/action/start"),
        "{rels:?}"
    );

    // Stop it.
    let current = c.get_value(&href).await.expect("machine");
    let stopped = c.action(&current, "stop", Map::new()).await.expect("stop");
    c.settle(&stopped, Some(&href), &["STOPPED"], &wait).await.expect("stopped");
    assert_eq!(c.get::<Machine>(&href).await.expect("machine").state.as_deref(), Some("STOPPED"));

    // Update its attributes: name changed, description erased, nothing else touched.
    let current = c.get_value(&href).await.expect("machine");
    let mut changes = Map::new();
    changes.insert("name".into(), json!("Cool Demo #1"));
    let updated = c.update(&current, &changes, &["description"]).await.expect("partial update");
    c.settle(&updated, Some(&href), &[], &wait).await.expect("updated");
    let m: Machine = c.get(&href).await.expect("machine");
    assert_eq!(m.name.as_deref(), Some("Cool Demo #1"));
    assert_eq!(m.description, None, "listed in $select and absent from the body: erased");
    assert_eq!((m.cpu, m.state.as_deref()), (Some(1), Some("STOPPED")));

    // Find it by filter, then delete it.
    let found = c
        .list_all::<Machine>("machines", &Query::new().filter(Filter::attr("name").expect("attr").eq("Cool Demo #1")))
        .await
        .expect("filter");
    assert_eq!(found.entries.len(), 1);
    let current = c.get_value(&href).await.expect("machine");
    let deleted = c.delete(&current).await.expect("delete");
    c.settle(&deleted, Some(&href), &["DELETED"], &wait).await.expect("deleted");
    assert!(matches!(c.get_value(&href).await, Err(CimiError::NotFound { .. })));
}

#[tokio::test]
async fn primer_in_json() {
    let s = sim(Profile::Strict).await;
    walkthrough(&s, Format::Json).await;
}

#[tokio::test]
async fn primer_in_xml() {
    let s = sim(Profile::Strict).await;
    walkthrough(&s, Format::Xml).await;
}

#[tokio::test]
async fn primer_without_jobs() {
    let s = sim(Profile::NoJobs).await;
    walkthrough(&s, Format::Json).await;
}

#[tokio::test]
async fn primer_against_a_lenient_1x_provider() {
    let s = sim(Profile::Lenient1x).await;
    walkthrough(&s, Format::Json).await;
}

#[tokio::test]
async fn primer_against_a_lenient_1x_provider_in_xml() {
    let s = sim(Profile::Lenient1x).await;
    walkthrough(&s, Format::Xml).await;
}
