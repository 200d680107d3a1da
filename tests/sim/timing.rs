//! Timing (`instant|fast|realistic`) and `--seed`: transitions take the time the timing says (checked as lower
//! bounds, which slowness cannot break), and a seed makes the random choices repeat.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use cimi_operator::sim::{SimConfig, Timing};

use super::{Api, start};

/// Creates a started machine; returns the answer's status and how long until it was STARTED.
async fn boot(timing: Timing) -> (u16, Duration) {
    let sim = start(SimConfig { timing, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let t = Instant::now();
    let a = api.create_machine("m", Some("STARTED")).await;
    let m = a.header("location").expect("Location");
    for _ in 0..1000 {
        if api.get(&m).await.json()["state"] == "STARTED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (a.status.as_u16(), t.elapsed())
}

#[tokio::test]
async fn each_timing_takes_its_time() {
    let (status, _) = boot(Timing::Instant).await;
    assert_eq!(status, 201, "instant: done within the request");
    let (status, fast) = boot(Timing::Fast).await;
    assert_eq!(status, 202);
    // Two steps (STARTING, STARTED) of 20 to 80 ms each.
    assert!(fast >= Duration::from_millis(40), "{fast:?}");
    let (status, realistic) = boot(Timing::Realistic).await;
    assert_eq!(status, 202);
    // Two steps of 1.5 to 5 s each.
    assert!(realistic >= Duration::from_secs(3), "{realistic:?}");
}

/// The MAC address of the first interface of a new machine on a new network, with this seed.
async fn first_mac(seed: u64) -> String {
    let sim = start(SimConfig { seed, timing: Timing::Instant, ..SimConfig::default() }).await;
    let api = Api::new(&sim);
    let n = api
        .post("networks", &json!({"networkTemplate": {"href": api.url("networkTemplates/private")}}))
        .await
        .header("location")
        .expect("a network");
    let a = api
        .post(
            "machines",
            &json!({"machineTemplate": {"machineConfig": {"href": api.url("machineConfigs/tiny")},
                "machineImage": {"href": api.url("machineImages/Win7")},
                "networkInterfaces": [{"network": {"href": n}, "state": "ACTIVE"}]}}),
        )
        .await;
    let m: Value = api.get(&a.header("location").expect("m")).await.json();
    let nics = api.get(m["networkInterfaces"]["href"].as_str().expect("nics")).await.json();
    nics["machineNetworkInterfaces"][0]["macAddress"].as_str().expect("a MAC").to_string()
}

#[tokio::test]
async fn a_seed_repeats_the_random_choices() {
    let a = first_mac(42).await;
    assert_eq!(a, first_mac(42).await, "same seed, same MAC");
    assert_ne!(a, first_mac(43).await, "another seed, another MAC");
}
