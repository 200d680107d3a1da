//! Resource behaviour: machine state machine with Jobs and 409s, volumes attach/detach, networks and interfaces,
//! credentials, restart keeping state.

use serde_json::{Value, json};

use cimi_operator::sim::SimConfig;

use super::{Api, instant, start};

#[tokio::test]
async fn machine_lifecycle_with_asynchronous_jobs() {
    let sim = start(SimConfig::default()).await;
    // Transitions of 300-400 ms (fast timing is 20-80 ms): a GET right after an action must see the transient
    // state even on a loaded machine.
    sim.with_store(|s| s.step_millis = Some((300, 400)));
    let api = Api::new(&sim);
    let a = api.create_machine("m", Some("STARTED")).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let m = a.header("location").expect("Location on a 202 create");
    let job = a.header("cimi-job-uri").expect("Job");
    assert_eq!(a.json()["resourceURI"], "http://schemas.dmtf.org/cimi/1/Job");
    let state = api.get(&m).await.json()["state"].clone();
    assert!(state == "CREATING" || state == "STARTING", "{state}");
    // Nothing but reading is allowed while creating.
    assert_eq!(api.action(&m, "stop").await.status, 409);
    api.wait_state(&job, "SUCCESS").await;
    assert_eq!(api.get(&job).await.json()["progress"], 100);
    api.wait_state(&m, "STARTED").await;

    let a = api.action(&m, "pause").await;
    assert_eq!(a.status, 202);
    assert_eq!(api.get(&m).await.json()["state"], "PAUSING");
    assert_eq!(api.action(&m, "start").await.status, 409, "busy while PAUSING");
    api.wait_state(&m, "PAUSED").await;
    assert_eq!(api.action(&m, "suspend").await.status, 409);
    assert_eq!(api.action(&m, "start").await.status, 202);
    api.wait_state(&m, "STARTED").await;
    assert_eq!(api.action(&m, "suspend").await.status, 202);
    api.wait_state(&m, "SUSPENDED").await;
    assert_eq!(api.action(&m, "start").await.status, 202);
    api.wait_state(&m, "STARTED").await;
    assert_eq!(api.action(&m, "restart").await.status, 202);
    api.wait_state(&m, "STARTED").await;
    assert_eq!(api.action(&m, "fly").await.status, 400);
    let a = api.action(&m, "capture").await;
    assert!(a.status == 202 || a.status == 204, "{}", a.text);
    assert_eq!(api.action(&m, "stop").await.status, 202);
    let doc = api.wait_state(&m, "STOPPED").await;
    let rels: Vec<&str> =
        doc["operations"].as_array().into_iter().flatten().filter_map(|o| o["rel"].as_str()).collect();
    assert!(rels.contains(&"http://schemas.dmtf.org/cimi/1/action/start"));
    assert!(!rels.contains(&"http://schemas.dmtf.org/cimi/1/action/stop"));
    let a = api.delete(&m).await;
    assert_eq!(a.status, 202);
    assert_eq!(api.get(&m).await.json()["state"], "DELETING");
    assert_eq!(api.delete(&m).await.status, 409, "already deleting");
    let job = a.header("cimi-job-uri").expect("job");
    api.wait_state(&job, "SUCCESS").await;
    assert_eq!(api.get(&m).await.status, 404);
}

#[tokio::test]
async fn machine_created_stopped_without_initial_state() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("m", None).await.header("location").expect("Location");
    assert_eq!(api.get(&m).await.json()["state"], "STOPPED");
    let meta = api.get("resourceMetadata/Machine").await.json();
    assert!(!meta.to_string().contains("DefaultInitialState"));
    assert_eq!(api.create_machine("bad", Some("RUNNING")).await.status, 400);
    // By reference with overrides, and a machine config by value.
    let a = api
        .post(
            "machines",
            &json!({"name": "r", "machineTemplate": {"href": api.url("machineTemplates/small-suse"),
            "initialState": "STOPPED"}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let doc = api.get(&a.header("location").expect("Location")).await.json();
    assert_eq!(doc["state"], "STOPPED");
    assert_eq!(doc["memory"], 8000000);
    let a = api
        .post(
            "machines",
            &json!({"name": "v", "machineTemplate": {"machineConfig": {"cpu": 8, "memory": 1024,
            "disks": [{"capacity": 1000}]}, "machineImage": {"href": api.url("machineImages/Win7")}}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(api.get(&a.header("location").expect("Location")).await.json()["cpu"], 8);
    let a = api
        .post(
            "machines",
            &json!({"name": "x", "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/huge")},
            "machineImage": {"href": api.url("machineImages/Win7")}}}),
        )
        .await;
    assert_eq!(a.status, 400, "unknown config");
}

#[tokio::test]
async fn volumes_attach_and_detach() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("m", Some("STARTED")).await.header("location").expect("machine");
    let a = api
        .post(
            "volumes",
            &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeCreate", "name": "data",
            "volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")}}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.header("location").expect("volume");
    let vol = api.get(&v).await.json();
    assert_eq!(vol["state"], "AVAILABLE");
    assert_eq!(vol["capacity"], 10000000);
    let machine = api.get(&m).await.json();
    let vols = api.get(machine["volumes"]["href"].as_str().expect("volumes href")).await.json();
    let add = vols["operations"][0]["href"].as_str().expect("add href").to_string();
    let a = api
        .post(
            &add,
            &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineVolume",
        "initialLocation": "/dev/vdb", "volume": {"href": v}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let mv = a.header("location").expect("MachineVolume");
    let a = api.post(&add, &json!({"initialLocation": "/dev/vdc", "volume": {"href": v}})).await;
    assert_eq!(a.status, 409, "volumes are not shared");
    assert_eq!(api.delete(&v).await.status, 409, "attached volumes cannot be deleted");
    let vols = api.get(machine["volumes"]["href"].as_str().expect("href")).await.json();
    assert_eq!(vols["count"], 1);
    assert_eq!(vols["machineVolumes"][0]["volume"]["href"], v.as_str());
    assert_eq!(api.delete(&mv).await.status, 200);
    assert_eq!(api.get(machine["volumes"]["href"].as_str().expect("href")).await.json()["count"], 0);
    assert_eq!(api.delete(&v).await.status, 200);
    assert_eq!(api.get(&v).await.status, 404);
}

#[tokio::test]
async fn network_interfaces_get_addresses_and_macs() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let a = api
        .post(
            "networks",
            &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/NetworkCreate", "name": "backend",
            "networkTemplate": {"href": api.url("networkTemplates/private")}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let n = a.header("location").expect("network");
    assert_eq!(api.get(&n).await.json()["state"], "STARTED");
    let mut ips = Vec::new();
    for name in ["a", "b"] {
        let a = api
            .post(
                "machines",
                &json!({"name": name, "machineTemplate": {
                "machineConfig": {"href": api.url("machineConfigs/tiny")},
                "machineImage": {"href": api.url("machineImages/Win7")},
                "networkInterfaces": [{"network": {"href": n}, "state": "ACTIVE"}]}}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        let m = api.get(&a.header("location").expect("m")).await.json();
        let nics = api
            .get(&format!("{}?$expand=addresses", m["networkInterfaces"]["href"].as_str().expect("nics")))
            .await
            .json();
        let nic = &nics["machineNetworkInterfaces"][0];
        assert_eq!(nic["network"]["href"], n.as_str());
        let mac = nic["macAddress"].as_str().expect("mac");
        assert_eq!(mac.len(), 17);
        let addrs = &nic["addresses"]["machineNetworkInterfaceAddresses"];
        let addr = api.get(addrs[0]["address"]["href"].as_str().expect("address")).await.json();
        ips.push(addr["ip"].as_str().expect("ip").to_string());
        assert_eq!(addr["network"]["href"], n.as_str());
    }
    assert_ne!(ips[0], ips[1]);
    assert_eq!(api.delete(&n).await.status, 409, "in use");
    assert_eq!(api.action(&n, "stop").await.status, 204);
    assert_eq!(api.action(&n, "stop").await.status, 409);
}

#[tokio::test]
async fn credential_password_is_write_only() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let a =
        api.post("credentials", &json!({"name": "c", "credentialTemplate": {"userID": "joe", "password": "pw"}})).await;
    let c = a.header("location").expect("credential");
    assert!(a.json().get("password").is_none());
    assert_eq!(
        api.post("credentials", &json!({"credentialTemplate": {"userID": "joe"}})).await.status,
        400,
        "required"
    );
    let a = api.put(&c, &json!({"name": "c2", "userID": "jane"})).await;
    assert_eq!(a.status, 200);
    assert!(a.json().get("password").is_none());
    let path = c.trim_start_matches(&sim.url()).to_string();
    assert_eq!(sim.with_store(|s| s.secret(&path, "password")), Some(Value::from("pw")), "a full PUT keeps it");
    api.put(&c, &json!({"name": "c2", "userID": "jane", "password": "new"})).await;
    assert_eq!(sim.with_store(|s| s.secret(&path, "password")), Some(Value::from("new")));
}

#[tokio::test]
async fn restart_keeps_state_and_port() {
    let mut sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let a = api.create_machine("survivor", Some("STARTED")).await;
    let m = a.header("location").expect("m");
    let url = sim.url();
    sim.restart().await.expect("restart");
    assert_eq!(sim.url(), url);
    let api = Api::new(&sim);
    let doc = api.wait_state(&m, "STARTED").await;
    assert_eq!(doc["name"], "survivor");
    sim.stop().await;
}

#[tokio::test]
async fn state_file_survives_a_new_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let config = SimConfig { state_file: Some(file.clone()), ..instant() };
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("kept", None).await.header("location").expect("m");
    let path = m.trim_start_matches(&sim.url()).to_string();
    sim.stop().await;
    let sim = start(config).await;
    let api = Api::new(&sim);
    let doc = api.get(&path).await.json();
    assert_eq!(doc["name"], "kept");
    assert_eq!(doc["state"], "STOPPED");
}

#[tokio::test]
async fn event_logs_and_meters() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("watched", Some("STARTED")).await.header("location").expect("m");
    let doc = api.wait_state(&m, "STARTED").await;
    let log = api.get(doc["eventLog"]["href"].as_str().expect("eventLog")).await.json();
    assert_eq!(log["targetResource"]["href"], m.as_str());
    let events = api.get(log["events"]["href"].as_str().expect("events")).await.json();
    let states: Vec<(String, String)> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "http://schemas.dmtf.org/cimi/1/event/state")
        .map(|e| {
            (
                e["content"]["previous"].as_str().unwrap_or("").into(),
                e["content"]["state"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(states, [("CREATING".into(), "STARTING".into()), ("STARTING".into(), "STARTED".into())]);
    let model =
        events["events"].as_array().into_iter().flatten().filter(|e| e["content"]["change"] == "create").count();
    assert_eq!(model, 1);
    api.put(&m, &json!({"name": "renamed"})).await;
    let events = api
        .get(&format!(
            "{}?$filter=type='http://schemas.dmtf.org/cimi/1/event/model'",
            log["events"]["href"].as_str().expect("events")
        ))
        .await
        .json();
    assert_eq!(events["count"], 2, "create and update");

    let meters = api.get(doc["meters"]["href"].as_str().expect("meters")).await.json();
    assert_eq!(meters["count"], 4);
    let cpu = meters["meters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["aspect"] == "http://schemas.dmtf.org/cimi/1/aspect/cpu")
        .cloned()
        .expect("a cpu meter");
    assert_eq!(cpu["units"], "percent");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let samples = api.get(cpu["samples"]["href"].as_str().expect("samples")).await.json();
    let n = samples["count"].as_u64().unwrap_or(0);
    assert!(n >= 1, "{samples}");
    let v: f64 = samples["samples"][0]["value"].as_str().and_then(|v| v.parse().ok()).expect("a number");
    assert!(v > 0.0 && v <= 100.0);
    assert!(api.get("meters").await.json()["count"].as_u64().unwrap_or(0) >= 4);

    // Samples are made when read, yet each reflects the state at its time: busy while STARTED, idle once STOPPED.
    let samples_href = cpu["samples"]["href"].as_str().expect("samples");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    api.action(&m, "stop").await;
    api.wait_state(&m, "STOPPED").await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let samples = api.get(samples_href).await.json();
    let values: Vec<f64> = samples["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["value"].as_str().and_then(|v| v.parse().ok()))
        .collect();
    assert!(values.len() as u64 > n, "more samples as time passes: {samples}");
    assert!(values.iter().any(|v| *v > 0.0), "busy while it ran: {values:?}");
    assert_eq!(values.last(), Some(&0.0), "idle once stopped: {values:?}");
}

#[tokio::test]
async fn monitoring_can_be_read_in_batches_through_the_cloud_entry_point() {
    let sim = start(SimConfig::default()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("batched", Some("STARTED")).await.header("location").expect("m");
    api.wait_state(&m, "STARTED").await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    // Every meter with its samples inlined (as of now, though nobody read them), paged, count kept when selected.
    let page = api.get("meters?$expand=samples&$select=count,targetResource,aspect,samples&$first=1&$last=2").await;
    let page = page.json();
    assert_eq!(page["count"], 4, "{page}");
    let meters = page["meters"].as_array().cloned().unwrap_or_default();
    assert_eq!(meters.len(), 2);
    for meter in &meters {
        assert_eq!(meter["targetResource"]["href"], m.as_str());
        assert!(meter["samples"]["count"].as_u64().unwrap_or(0) >= 1, "samples made for the read: {meter}");
        assert!(meter["samples"]["samples"][0]["timestamp"].is_string(), "{meter}");
        assert!(meter.get("units").is_none(), "$select applies to the entries: {meter}");
    }
    // The next page, read later, inlines samples as of its own read (a page's meters are sampled for it).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let asked = chrono::Utc::now();
    let page = api.get("meters?$expand=samples&$select=count,samples&$first=3&$last=4").await.json();
    let meters = page["meters"].as_array().cloned().unwrap_or_default();
    assert_eq!(meters.len(), 2, "{page}");
    for meter in &meters {
        let newest = meter["samples"]["samples"].as_array().and_then(|s| s.last()).cloned().unwrap_or_default();
        let at = newest["timestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let age = at.map(|t| asked.signed_duration_since(t).num_milliseconds());
        // One sample a second, stamped to the second.
        assert!(age.is_some_and(|ms| ms < 2500), "the newest sample is at most a sample interval old: {meter}");
    }

    // The event logs say when they changed: a filtered read finds only the logs with news.
    let log_href = api.get(&m).await.json()["eventLog"]["href"].as_str().expect("eventLog").to_string();
    let log = api.get(&log_href).await.json();
    let updated = log["updated"].as_str().expect("updated").to_string();
    let low = log["summary"]["low"].as_u64().expect("summary");
    assert!(low >= 3, "create and two state changes: {log}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let since = |t: &str| format!("eventLogs?$filter=updated>={t}&$select=count,targetResource,updated,summary");
    assert_eq!(api.get(&since(&later)).await.json()["count"], 0, "nothing new since {later}");
    api.put(&m, &json!({"description": "changed"})).await;
    let news = api.get(&since(&later)).await.json();
    assert_eq!(news["count"], 1, "{news}");
    assert_eq!(news["eventLogs"][0]["targetResource"]["href"], m.as_str());
    assert_eq!(news["eventLogs"][0]["summary"]["low"].as_u64(), Some(low + 1), "{news}");
    assert!(news["eventLogs"][0]["updated"].as_str().expect("updated") >= updated.as_str());

    // Path notation reaches into inlined collections: interfaces, their addresses, each Address.
    let net = api
        .post("networks", &json!({"name": "net", "networkTemplate": {"href": api.url("networkTemplates/private")}}))
        .await
        .header("location")
        .expect("network");
    api.wait_state(&net, "STARTED").await;
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "nic",
        "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/tiny")},
            "machineImage": {"href": api.url("machineImages/WinXP-SP2")},
            "networkInterfaces": [{"network": {"href": net}}]}});
    let with_nic = api.post("machines", &body).await.header("location").expect("machine");
    api.wait_state(&with_nic, "STOPPED").await;
    let doc = api.get(&format!("{with_nic}?$expand=networkInterfaces/addresses/address,volumes")).await.json();
    let nic = &doc["networkInterfaces"]["machineNetworkInterfaces"][0];
    assert_eq!(nic["network"]["href"], net.as_str(), "{doc}");
    let address = &nic["addresses"]["machineNetworkInterfaceAddresses"][0]["address"];
    assert!(address["ip"].is_string(), "{doc}");
    assert_eq!(doc["volumes"]["count"], 0, "{doc}");
    let listing = api.get("machines?$expand=networkInterfaces/addresses/address").await.json();
    let inlined =
        listing["machines"].as_array().into_iter().flatten().filter(|m| m["networkInterfaces"]["count"].is_u64());
    assert_eq!(inlined.count(), 2, "{listing}");

    // A provider that serves monitoring only per resource.
    let per_resource =
        start(SimConfig { cep_omit: vec!["meters".into(), "eventLogs".into()], ..SimConfig::default() }).await;
    let cep = Api::new(&per_resource).get("").await.json();
    assert!(cep.get("meters").is_none() && cep.get("eventLogs").is_none(), "{cep}");
    assert!(cep.get("machines").is_some());
}

/// A `$filter` on a property finds a resource by the properties it has now, however they were set (at creation,
/// by an edit, after a new process loaded the state file) and never by those it no longer has; in creation
/// order, with the collection's count. (cimi-sim answers these through an index of the properties.)
#[tokio::test]
async fn a_filter_on_a_property_follows_every_change_of_the_properties() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SimConfig { state_file: Some(dir.path().join("state.json")), ..instant() };
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    let mut paths = Vec::new();
    for n in 0..12 {
        let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": format!("m{n}"),
            "properties": {"team": format!("t{}", n % 3), "slot": n.to_string()},
            "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/tiny")},
                "machineImage": {"href": api.url("machineImages/WinXP-SP2")}}});
        let created = api.post("machines", &body).await;
        assert!(created.status.is_success(), "{}", created.text);
        let href = created.header("location").expect("Location");
        paths.push(href.trim_start_matches(&sim.url()).to_string());
    }
    assert_eq!(names(&api, "property['team']='t1'").await, ["m1", "m4", "m7", "m10"]);
    assert_eq!(names(&api, "property['team']='t1' and property['slot']='4'").await, ["m4"]);
    assert_eq!(names(&api, "property['team']='t2' or name='m0'").await, ["m0", "m2", "m5", "m8", "m11"]);
    assert_eq!(names(&api, "property['team']!='t0' and property['slot']='3'").await, Vec::<String>::new());

    // An edit moves m4 from t1 to t9.
    api.wait_state(&paths[4], "STOPPED").await;
    let edited = api.put(&format!("{}?$select=properties", paths[4]), &json!({"properties": {"team": "t9"}})).await;
    assert!(edited.status.is_success(), "{}", edited.text);
    assert_eq!(names(&api, "property['team']='t9'").await, ["m4"]);
    assert_eq!(names(&api, "property['team']='t1'").await, ["m1", "m7", "m10"]);
    assert_eq!(names(&api, "property['slot']='4'").await, Vec::<String>::new(), "the edit replaced them all");

    // A deleted machine is found no more; a new process finds what the state file holds.
    api.wait_state(&paths[7], "STOPPED").await;
    assert!(api.delete(&paths[7]).await.status.is_success());
    for _ in 0..500 {
        if api.get(&paths[7]).await.status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(names(&api, "property['team']='t1'").await, ["m1", "m10"]);
    sim.stop().await;
    let sim = start(config).await;
    let api = Api::new(&sim);
    assert_eq!(names(&api, "property['team']='t1'").await, ["m1", "m10"]);
    assert_eq!(names(&api, "property['team']='t9'").await, ["m4"]);
    sim.stop().await;
}

/// The names of the machines a `$filter` selects, in the order served; the answer's count agrees.
async fn names(api: &Api, filter: &str) -> Vec<String> {
    let doc = api.get(&format!("machines?$filter={filter}")).await.json();
    let names: Vec<String> = doc["machines"]
        .as_array()
        .map(|ms| ms.iter().filter_map(|m| m["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    assert_eq!(doc["count"], names.len(), "{filter}: {doc}");
    names
}
