//! Images in cimi-sim: a volume snapshotted both ways (1.x: a VolumeImage POSTed with the volume as its
//! imageLocation; 2.0: the volume's snapshot operation), a machine captured; nothing is made from an image that is
//! not AVAILABLE (409, in every profile, JSON and XML); a restored volume has its snapshot's capacity and says
//! which snapshot it holds; a machine booted from a capture has the captured machine's disks.

use reqwest::Method;
use serde_json::{Value, json};

use cimi_operator::sim::{Profile, SimConfig, Timing};

use super::{Api, start};

const XML: &str = "application/xml";

async fn disks(api: &Api, machine: &str) -> Vec<Value> {
    let doc = api.get(machine).await.json();
    let list = api.get(doc["disks"]["href"].as_str().expect("disks")).await.json();
    let mut out: Vec<Value> = list["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| json!([d["capacity"].to_string().trim_matches('"'), d["initialLocation"]]))
        .collect();
    out.sort_by_key(|d| d.to_string());
    out
}

#[tokio::test]
async fn snapshots_captures_and_restores() {
    for profile in [Profile::Strict, Profile::NoJobs, Profile::Lenient1x] {
        let sim = start(SimConfig { profile, timing: Timing::Fast, ..SimConfig::default() }).await;
        let api = Api::new(&sim);
        // A volume, snapshotted the 1.x way.
        let volume = api
            .post(
                "volumes",
                &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeCreate", "name": "data",
                "volumeTemplate": {"volumeConfig": {"href": api.url("volumeConfigs/10g")}}}),
            )
            .await
            .header("location")
            .expect("volume");
        let source = api.wait_state(&volume, "AVAILABLE").await;
        let a = api
            .post(
                "volumeImages",
                &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeImage", "name": "snap",
                "imageLocation": {"href": volume}}),
            )
            .await;
        assert!(a.status.is_success(), "{profile:?}: {}", a.text);
        let snap = a.header("location").expect("snapshot");
        // Not AVAILABLE yet: nothing can be made from it.
        let restore = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/VolumeCreate", "name": "copy",
            "volumeTemplate": {"volumeImage": {"href": snap}}});
        let early = api.post("volumes", &restore).await;
        assert_eq!(early.status, 409, "{profile:?}: {}", early.text);
        assert!(early.text.contains("only an AVAILABLE image"), "{}", early.text);
        api.wait_state(&snap, "AVAILABLE").await;
        let copy = api.post("volumes", &restore).await.header("location").expect("restored volume");
        let copy = api.wait_state(&copy, "AVAILABLE").await;
        assert_eq!(copy["capacity"], source["capacity"], "{profile:?}: the snapshot's capacity");
        assert_eq!(copy["restoredFrom"]["href"], json!(snap));

        // The 2.0 way: the volume's snapshot operation, listed in its images.
        let doc = api.get(&volume).await.json();
        let offered = doc["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["rel"] == "http://schemas.dmtf.org/cimi/1/action/snapshot");
        assert!(offered, "{profile:?}: {doc}");
        let a = api.action(&volume, "snapshot").await;
        assert!(a.status.is_success(), "{profile:?}: {}", a.text);
        // Where there are no Jobs the answer has no Location: the volume's images list the new one.
        let listed = api.get(doc["images"]["href"].as_str().expect("images")).await.json();
        let hrefs: Vec<String> = listed["volumeVolumeImages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["volumeImage"]["href"].as_str().map(str::to_string))
            .collect();
        assert!(hrefs.contains(&snap), "{profile:?}: the 1.x snapshot is in the volume's images: {listed}");
        let second = match a.header("location") {
            Some(location) => location,
            None => hrefs.iter().find(|h| **h != snap).cloned().expect("the 2.0 snapshot in the volume's images"),
        };
        assert!(hrefs.contains(&second), "{profile:?}: the 2.0 snapshot is in the volume's images: {listed}");
        api.wait_state(&second, "AVAILABLE").await;

        // A machine captured, and one booted from the capture with its disks (not the small config's).
        let machine = api.create_machine("web", Some("STARTED")).await.header("location").expect("machine");
        api.wait_state(&machine, "STARTED").await;
        let a = api
            .post(
                "machineImages",
                &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage", "name": "gold",
                "imageLocation": {"href": machine}}),
            )
            .await;
        let gold = a.header("location").expect("capture");
        let boot = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "web-2",
            "machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/small")},
                                "machineImage": {"href": gold}}});
        api.wait_state(&gold, "AVAILABLE").await;
        let restored = api.post("machines", &boot).await.header("location").expect("restored machine");
        api.wait_state(&restored, "STOPPED").await;
        assert_eq!(disks(&api, &restored).await, disks(&api, &machine).await, "{profile:?}: the captured disks");
    }
}

/// The same refusal in XML, answered in the profile's XML error shape.
#[tokio::test]
async fn an_image_that_is_not_available_is_refused_in_xml_too() {
    let sim = start(SimConfig { timing: Timing::Realistic, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let machine = api.create_machine("src", Some("STOPPED")).await.header("location").expect("machine");
    api.wait_state(&machine, "STOPPED").await;
    let capture = format!(
        "<MachineImage xmlns=\"http://schemas.dmtf.org/cimi/1\"><name>gold</name><imageLocation href=\"{machine}\"/></MachineImage>"
    );
    let a = api
        .send_raw(Method::POST, "machineImages", Some(capture), Some(XML), &[("Accept", XML)])
        .await
        .expect("capture");
    assert!(a.status.is_success(), "{}", a.text);
    let gold = a.header("location").expect("capture");
    let boot = format!(
        "<MachineCreate xmlns=\"http://schemas.dmtf.org/cimi/1\"><name>b</name><machineTemplate>\
         <machineConfig href=\"{}\"/><machineImage href=\"{gold}\"/></machineTemplate></MachineCreate>",
        api.url("machineConfigs/tiny")
    );
    let refused =
        api.send_raw(Method::POST, "machines", Some(boot), Some(XML), &[("Accept", XML)]).await.expect("boot");
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert_eq!(refused.header("content-type").as_deref(), Some(XML));
    assert!(refused.text.contains("only an AVAILABLE image"), "{}", refused.text);
}
