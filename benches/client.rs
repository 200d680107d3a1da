//! Client benchmarks (`cargo bench --bench client`): the time to read a 10,000-machine collection in JSON and
//! in XML (decode, normalise, type), and in JSON as the typed reads do it (straight from the bytes, the
//! document being in normal form); the client's overhead per request against cimi-sim on loopback
//! compared with a bare reqwest GET of the same URL, and the allocations of the parses (dhat). Figures go to
//! `benches/client-results.md`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cimi_operator::cimi::client::{ReadBody, read_body, typed_body};
use cimi_operator::cimi::model::{Collection, Machine, xml_codec};
use cimi_operator::cimi::normal_form::Expect;
use cimi_operator::cimi::normalize::{ImageLocationForm, normalize_resource};
use cimi_operator::cimi::transport::decode_body;
use cimi_operator::cimi::{Auth, CimiClient, ClientConfig, Limits, Secret};
use cimi_operator::sim::{Sim, SimConfig};
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};

fn collection(n: usize) -> Value {
    let machines: Vec<Value> = (0..n)
        .map(|i| {
            json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "id": format!("http://h/machines/{i}"),
                "name": format!("machine-{i}"), "description": "a benchmark machine",
                "created": "2026-11-27T20:00:00Z", "updated": "2026-11-27T20:00:00Z",
                "properties": {"cimi.dev/uid": format!("uid-{i}"), "cimi.dev/namespace": "team-a"},
                "state": "STARTED", "cpu": 2, "memory": 8_000_000, "cpuArch": "x86_64",
                "disks": {"href": format!("http://h/machines/{i}/disks")},
                "volumes": {"href": format!("http://h/machines/{i}/volumes")},
                "operations": [{"rel": "edit", "href": format!("http://h/machines/{i}")},
                               {"rel": "delete", "href": format!("http://h/machines/{i}")},
                               {"rel": "http://schemas.dmtf.org/cimi/1/action/stop", "href": format!("http://h/machines/{i}")}]})
        })
        .collect();
    json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCollection", "id": "http://h/machines",
           "count": n, "machines": machines})
}

fn read(label: &str, bytes: &Bytes) -> Collection<Machine> {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(label).expect("label"));
    let mut v = decode_body(&h, bytes, "bench").expect("decode").expect("body");
    normalize_resource(&mut v, None, ImageLocationForm::Href);
    serde_json::from_value(v).expect("typed")
}

/// The JSON collection as `list_page` reads it: checked for normal form, then typed from the bytes.
fn read_typed(bytes: &Bytes) -> Collection<Machine> {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = read_body(&h, bytes, "bench", Expect::Collection("Machine")).expect("decode");
    assert!(matches!(body, ReadBody::Normal(_)), "the benchmark collection is in normal form");
    let href = url::Url::parse("http://h/machines").expect("url");
    typed_body(body, &h, "bench", &href, |_| unreachable!("the fast path")).expect("typed")
}

/// Counts every allocation of the process (dhat forwards to the system allocator; it only records while a profiler
/// runs).
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations made by `f`: (blocks, bytes, peak live bytes).
fn allocations<F: FnOnce()>(f: F) -> (u64, u64, usize) {
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    f();
    let after = dhat::HeapStats::get();
    (after.total_blocks - before.total_blocks, after.total_bytes - before.total_bytes, after.max_bytes)
}

fn time<F: FnMut()>(runs: u32, mut f: F) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed() / runs
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let doc = collection(10_000);
    let json_bytes = Bytes::from(serde_json::to_vec(&doc).expect("json"));
    let xml_bytes = Bytes::from(xml_codec::to_xml(&doc, "Collection").into_bytes());
    assert_eq!(read("application/json", &json_bytes).entries.len(), 10_000);
    assert_eq!(read("application/xml", &xml_bytes).entries.len(), 10_000);
    assert_eq!(read_typed(&json_bytes), read("application/json", &json_bytes), "both paths read the same");
    let tj = time(5, || {
        let _ = read("application/json", &json_bytes);
    });
    let tx = time(5, || {
        let _ = read("application/xml", &xml_bytes);
    });
    println!(
        "| parse 10,000 machines, JSON ({} MB) | {:.1} ms |",
        json_bytes.len() / 1_000_000,
        tj.as_secs_f64() * 1e3
    );
    let tt = time(5, || {
        let _ = read_typed(&json_bytes);
    });
    println!("| parse 10,000 machines, XML ({} MB) | {:.1} ms |", xml_bytes.len() / 1_000_000, tx.as_secs_f64() * 1e3);
    println!(
        "| parse 10,000 machines, JSON typed from the bytes ({} MB) | {:.1} ms |",
        json_bytes.len() / 1_000_000,
        tt.as_secs_f64() * 1e3
    );
    for (label, bytes, format) in [("application/json", &json_bytes, "JSON"), ("application/xml", &xml_bytes, "XML")] {
        let (blocks, total, peak) = allocations(|| {
            let _ = read(label, bytes);
        });
        println!(
            "| allocations to parse 10,000 machines, {format} | {blocks} allocations, {:.1} MB allocated, {:.1} MB peak live |",
            total as f64 / 1e6,
            peak as f64 / 1e6
        );
    }
    let (blocks, total, peak) = allocations(|| {
        let _ = read_typed(&json_bytes);
    });
    println!(
        "| allocations to parse 10,000 machines, JSON typed from the bytes | {blocks} allocations, {:.1} MB allocated, {:.1} MB peak live |",
        total as f64 / 1e6,
        peak as f64 / 1e6
    );

    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let mut cfg = ClientConfig::new("bench", &sim.url()).expect("config");
    cfg.transport.auth = Auth::Basic { username: "demo".into(), password: Secret::new("demo") };
    cfg.transport.allow_plain_http = true;
    cfg.transport.limits = Limits { requests_per_second: 1e9, burst: 1_000_000, max_concurrent: 64 };
    let client = CimiClient::connect(cfg).await.expect("connect");
    let url = client.collection_url("machineConfigs").await.expect("url");
    let raw = reqwest::Client::new();
    let runs = 500u32;
    for _ in 0..50 {
        let _ = client.get_value(&url).await;
        let _ = raw.get(url.clone()).basic_auth("demo", Some("demo")).send().await.expect("raw").bytes().await;
    }
    let start = Instant::now();
    for _ in 0..runs {
        let _ = raw
            .get(url.clone())
            .basic_auth("demo", Some("demo"))
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .expect("raw")
            .bytes()
            .await;
    }
    let bare = start.elapsed() / runs;
    let start = Instant::now();
    for _ in 0..runs {
        let _ = client.get_value(&url).await.expect("get");
    }
    let ours = start.elapsed() / runs;
    println!("| GET machineConfigs on loopback, bare reqwest | {:.0} µs |", bare.as_secs_f64() * 1e6);
    println!("| GET machineConfigs on loopback, CimiClient | {:.0} µs |", ours.as_secs_f64() * 1e6);
    println!("| client overhead per request | {:.0} µs |", (ours.as_secs_f64() - bare.as_secs_f64()) * 1e6);
    sim.stop().await;
}
