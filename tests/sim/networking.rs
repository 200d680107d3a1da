//! Network ports and forwarding groups; volume snapshots and volumes made from an image.

use serde_json::{Value, json};

use cimi_operator::sim::SimConfig;

use super::{Api, instant, start};

async fn network(api: &Api, name: &str) -> String {
    let a = api
        .post("networks", &json!({"name": name, "networkTemplate": {"href": api.url("networkTemplates/private")}}))
        .await;
    assert!(a.status == 201 || a.status == 202, "{}", a.text);
    a.header("location").expect("a network")
}

fn hrefs(coll: &Value, key: &str, attr: &str) -> Vec<String> {
    coll[key].as_array().into_iter().flatten().filter_map(|e| e[attr]["href"].as_str().map(str::to_string)).collect()
}

#[tokio::test]
async fn network_ports_live_on_their_network() {
    let sim = start(SimConfig::default()).await;
    // Transitions long enough that a GET right after the request sees the transient state under load.
    sim.with_store(|s| s.step_millis = Some((300, 400)));
    let api = Api::new(&sim);
    let net = network(&api, "lan").await;
    api.wait_state(&net, "STARTED").await;
    let cep = api.get("").await.json();
    let ports_coll = cep["networkPorts"]["href"].as_str().expect("networkPorts in the CEP").to_string();
    let add = api.get(&ports_coll).await.json()["operations"][0]["href"].as_str().expect("add").to_string();
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/NetworkPortCreate", "name": "p1",
        "networkPortTemplate": {"network": {"href": net}, "networkPortConfig": {"href": api.url("networkPortConfigs/access")}}});
    let a = api.post(&add, &body).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let port = a.header("location").expect("Location");
    api.wait_state(&a.header("cimi-job-uri").expect("a Job"), "SUCCESS").await;
    let doc = api.wait_state(&port, "STARTED").await;
    assert_eq!(doc["portType"], "ACCESS");
    assert_eq!(doc["network"]["href"], net.as_str());
    assert!(doc["eventLog"]["href"].is_string(), "ports have an EventLog");
    // The network lists it; the network cannot go while it has ports.
    let net_doc = api.get(&net).await.json();
    let listed = api.get(net_doc["networkPorts"]["href"].as_str().expect("networkPorts")).await.json();
    assert_eq!(hrefs(&listed, "networkNetworkPorts", "networkPort"), std::slice::from_ref(&port));
    assert_eq!(api.delete(&net).await.status, 409);
    // Ports stop and start like networks; actions not allowed now are 409.
    assert_eq!(api.action(&port, "start").await.status, 409);
    assert_eq!(api.action(&port, "stop").await.status, 202);
    api.wait_state(&port, "STOPPED").await;
    // A port needs an existing network.
    let bad = json!({"networkPortTemplate": {"network": {"href": api.url("networks/nope")}}});
    assert_eq!(api.post(&add, &bad).await.status, 400);
    // Deleting the port goes through DELETING and takes it off the network's list.
    let d = api.delete(&port).await;
    assert_eq!(d.status, 202, "{}", d.text);
    assert_eq!(api.get(&port).await.json()["state"], "DELETING");
    api.wait_state(&d.header("cimi-job-uri").expect("a Job"), "SUCCESS").await;
    assert_eq!(api.get(&port).await.status, 404);
    let listed = api.get(net_doc["networkPorts"]["href"].as_str().expect("networkPorts")).await.json();
    assert_eq!(listed["count"], 0);
    assert_eq!(api.delete(&net).await.status, 202, "no port left");
}

#[tokio::test]
async fn forwarding_groups_join_networks() {
    let sim = start(instant()).await;
    let api = Api::new(&sim);
    let a = network(&api, "a").await;
    let b = network(&api, "b").await;
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/ForwardingGroupCreate", "name": "fg",
        "forwardingGroupTemplate": {"networks": [{"href": a}, {"href": b}]}});
    let created = api.post("forwardingGroups", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let fg = created.header("location").expect("Location");
    let doc = api.get(&fg).await.json();
    let members = api.get(doc["networks"]["href"].as_str().expect("networks")).await.json();
    let mut joined = hrefs(&members, "forwardingGroupNetworks", "network");
    joined.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(joined, expected);
    assert_eq!(api.get(&a).await.json()["forwardingGroup"]["href"], fg.as_str());
    // A network belongs to one group at most.
    assert_eq!(api.post("forwardingGroups", &body).await.status, 409);
    // A network created into the group joins it.
    let c = api
        .post(
            "networks",
            &json!({"name": "c", "networkTemplate": {"networkConfig": {"href": api.url("networkConfigs/private")},
            "forwardingGroup": {"href": fg}}}),
        )
        .await
        .header("location")
        .expect("c");
    let members = api.get(doc["networks"]["href"].as_str().expect("networks")).await.json();
    assert_eq!(members["count"], 3);
    // Deleting a network takes it out of the group; deleting the group empties the networks' reference.
    assert_eq!(api.delete(&c).await.status, 200);
    assert_eq!(api.get(doc["networks"]["href"].as_str().expect("networks")).await.json()["count"], 2);
    assert_eq!(api.delete(&fg).await.status, 200);
    assert!(api.get(&a).await.json().get("forwardingGroup").is_none());
}

#[tokio::test]
async fn volume_snapshots_and_volumes_from_images() {
    let sim = start(SimConfig::default()).await;
    // Transitions long enough that a GET right after the request sees the transient state under load.
    sim.with_store(|s| s.step_millis = Some((300, 400)));
    let api = Api::new(&sim);
    let a = api
        .post(
            "volumes",
            &json!({"name": "data", "volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")},
            "volumeImage": {"href": api.url("volumeImages/empty")}}}),
        )
        .await;
    let vol = a.header("location").expect("a volume");
    let doc = api.wait_state(&vol, "AVAILABLE").await;
    let images = doc["images"]["href"].as_str().expect("images").to_string();
    assert_eq!(
        hrefs(&api.get(&images).await.json(), "volumeVolumeImages", "volumeImage"),
        [api.url("volumeImages/empty")]
    );
    let meta = api.get("resourceMetadata/Volume").await.json();
    assert!(meta["capabilities"].as_array().into_iter().flatten().any(|c| c["name"] == "VolumeSnapshot"));

    // Snapshot: a VolumeImage whose imageLocation is the volume.
    let snap = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeImage", "name": "snap",
        "imageLocation": {"href": vol}});
    let s = api.post("volumeImages", &snap).await;
    assert_eq!(s.status, 202, "{}", s.text);
    let image = s.header("location").expect("Location");
    assert_eq!(api.get(&vol).await.json()["state"], "CAPTURING");
    assert_eq!(api.post("volumeImages", &snap).await.status, 409, "one capture at a time");
    assert_eq!(api.delete(&vol).await.status, 409, "not while CAPTURING");
    api.wait_state(&s.header("cimi-job-uri").expect("a Job"), "SUCCESS").await;
    api.wait_state(&vol, "AVAILABLE").await;
    let img = api.wait_state(&image, "AVAILABLE").await;
    assert_eq!(img["imageLocation"]["href"], vol.as_str());
    assert_eq!(img["bootable"], false);
    let listed = hrefs(&api.get(&images).await.json(), "volumeVolumeImages", "volumeImage");
    assert!(listed.contains(&image), "{listed:?}");

    // A new volume from the snapshot lists it; deleting the image takes it off both lists.
    let b = api
        .post(
            "volumes",
            &json!({"volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")},
            "volumeImage": {"href": image}}}),
        )
        .await
        .header("location")
        .expect("b");
    let b_images = api.wait_state(&b, "AVAILABLE").await["images"]["href"].as_str().expect("images").to_string();
    assert_eq!(
        hrefs(&api.get(&b_images).await.json(), "volumeVolumeImages", "volumeImage"),
        std::slice::from_ref(&image)
    );
    assert_eq!(api.delete(&image).await.status, 200);
    assert_eq!(api.get(&b_images).await.json()["count"], 0);
    assert!(!hrefs(&api.get(&images).await.json(), "volumeVolumeImages", "volumeImage").contains(&image));
}
