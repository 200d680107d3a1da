//! Persistence (`--state-file`): a snapshot plus a journal of every change. A restart keeps resources, Jobs and
//! events; a crash (the process killed) loses nothing that was answered; a torn last record is dropped; and a
//! write's journal record does not grow with the number of resources.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cimi_operator::sim::{Sim, SimConfig};
use serde_json::{Value, json};

use super::{Api, instant, start};

/// The journal files next to a state file, by generation.
fn journals(state: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.journal.", state.file_name().and_then(|n| n.to_str()).unwrap_or(""));
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(state.parent().expect("a directory"))
        .expect("readable")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            Some((name.strip_prefix(&prefix)?.parse().ok()?, e.path()))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, p)| p).collect()
}

/// The current journal (the newest).
fn journal(state: &Path) -> PathBuf {
    journals(state).pop().expect("a journal exists")
}

/// A GET with the base URI replaced by `BASE`, so documents of two runs on two ports compare.
async fn doc(api: &Api, path: &str) -> Value {
    let text = api.get(path).await.text.replace(&api.base, "BASE/");
    serde_json::from_str(&text).expect("JSON")
}

#[tokio::test]
async fn a_restart_keeps_resources_jobs_and_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let config = SimConfig { state_file: Some(file.clone()), ..instant() };
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    let m = api.create_machine("kept", Some("STARTED")).await.header("location").expect("a machine");
    let v = api
        .post("volumes", &json!({"name": "data", "volumeTemplate": {"href": api.url("volumeTemplates/data-10g")}}))
        .await
        .header("location")
        .expect("a volume");
    let machine = api.get(&m).await.json();
    let attach = api.post(machine["volumes"]["href"].as_str().expect("volumes"), &json!({"volume": {"href": v}})).await;
    assert_eq!(attach.status, 201, "{}", attach.text);
    assert_eq!(api.action(&m, "stop").await.status, 204);
    api.put(&m, &json!({"name": "kept", "description": "edited before the restart"})).await;
    let log = machine["eventLog"]["href"].as_str().expect("an eventLog").to_string();
    let events = doc(&api, &format!("{log}/events")).await;
    assert!(events["count"].as_u64().unwrap_or(0) >= 4, "{events}");
    let jobs = doc(&api, "jobs").await;
    let paths = ["machines", "volumes", "jobs", "eventLogs", "credentials", "machineConfigs", "resourceMetadata"];
    let mut before = Vec::new();
    for p in paths {
        before.push(doc(&api, p).await);
    }
    let machine_volumes = doc(&api, machine["volumes"]["href"].as_str().expect("volumes")).await;
    // A crash: the handle dropped without stop (nothing more is written).
    drop(sim);

    let sim = start(config).await;
    let api2 = Api::new(&sim);
    let relative = |h: &str| h.replace(&api.base, "");
    for (p, b) in paths.iter().zip(&before) {
        assert_eq!(&doc(&api2, p).await, b, "{p} after the restart");
    }
    assert_eq!(doc(&api2, &format!("{}/events", relative(&log))).await, events);
    assert_eq!(doc(&api2, &format!("{}/volumes", relative(&m))).await, machine_volumes);
    assert_eq!(doc(&api2, "jobs").await, jobs);
    let m2 = api2.get(&relative(&m)).await.json();
    assert_eq!(
        (m2["state"].as_str(), m2["description"].as_str()),
        (Some("STOPPED"), Some("edited before the restart"))
    );
    // New identifiers do not collide with the old ones.
    let n = api2.create_machine("after", None).await;
    assert_eq!(n.status, 201, "{}", n.text);
    assert_eq!(api2.get("machines").await.json()["count"], 2);
    sim.stop().await;
}

#[tokio::test]
async fn every_answered_write_is_in_the_journal_already() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let sim = start(SimConfig { state_file: Some(file.clone()), ..instant() }).await;
    let api = Api::new(&sim);
    api.create_machine("early-bird", None).await;
    let text = std::fs::read(journal(&file)).expect("the journal");
    assert!(String::from_utf8_lossy(&text).contains("early-bird"), "journaled before the answer");
    assert!(std::fs::read_to_string(&file).expect("a snapshot").starts_with("{\"generation\""));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("readable")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "no temporary file left behind: {names:?}");
    sim.stop().await;
}

/// Splits a journal into its framed records (length, CRC-32, payload).
fn frames(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        out.push(at..at + 8 + len);
        at += 8 + len;
    }
    out
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let config = SimConfig { state_file: Some(file.clone()), ..instant() };
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    api.create_machine("first", None).await;
    let j = journal(&file);
    let before_second = std::fs::metadata(&j).expect("journal").len() as usize;
    api.create_machine("second", None).await;
    drop(sim);
    // The process died in the middle of the second write's record: cut it in half.
    let bytes = std::fs::read(&j).expect("journal");
    let last = frames(&bytes).into_iter().rfind(|r| r.start >= before_second).expect("the second write's record");
    let cut = last.start + (last.end - last.start) / 2;
    let file_handle = std::fs::OpenOptions::new().write(true).open(&j).expect("open");
    file_handle.set_len(cut as u64).expect("truncate");
    drop(file_handle);

    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    let names = |doc: Value| -> Vec<String> {
        doc["machines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().map(str::to_string))
            .collect()
    };
    let kept = names(api.get("machines").await.json());
    // One request, one record: the second create is lost as a whole, the first is intact.
    assert_eq!(kept, ["first"]);
    // Garbage at the end of the journal (a length that runs past the end): ignored, and cut off so that the
    // next records follow intact ones.
    let j = journal(&file);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&j)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']))
        .expect("append garbage");
    drop(sim);
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    assert_eq!(api.create_machine("third", None).await.status, 201);
    drop(sim);
    let sim = start(config).await;
    let api = Api::new(&sim);
    let kept = names(api.get("machines").await.json());
    assert!(kept.contains(&"first".to_string()) && kept.contains(&"third".to_string()), "{kept:?}");
    sim.stop().await;
}

#[tokio::test]
async fn an_unreadable_state_file_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    std::fs::write(&file, "this is not a snapshot").expect("write");
    let err = Sim::start(SimConfig { state_file: Some(file.clone()), ..instant() }).await.err().expect("an error");
    assert!(err.to_string().contains("state file"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "this is not a snapshot", "left untouched");
}

/// A file that a symbolic link points to: it must stay as it was.
#[cfg(unix)]
fn victim(dir: &Path) -> PathBuf {
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, "precious").expect("write");
    victim
}

#[cfg(unix)]
#[tokio::test]
async fn a_state_file_that_is_a_link_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = victim(dir.path());
    let link = dir.path().join("state.json");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let err = Sim::start(SimConfig { state_file: Some(link.clone()), ..instant() }).await.err().expect("an error");
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).expect("kept"), "precious");
    // A dangling link is refused as well: nothing is created at its target.
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink(dir.path().join("created-through-the-link"), &dangling).expect("symlink");
    assert!(Sim::start(SimConfig { state_file: Some(dangling), ..instant() }).await.is_err());
    assert!(!dir.path().join("created-through-the-link").exists());
    // And the binary says so at start.
    let out = Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
        .args(["--listen", "127.0.0.1:0", "--state-file"])
        .arg(&link)
        .output()
        .expect("cimi-sim runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a symbolic link"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&victim).expect("kept"), "precious");
}

#[cfg(unix)]
#[tokio::test]
async fn journals_and_temporary_files_are_never_written_through_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let victim = victim(dir.path());
    let file = dir.path().join("state.json");
    // A journal that is a link: refused at start.
    let journal_link = dir.path().join("state.json.journal.7");
    std::os::unix::fs::symlink(&victim, &journal_link).expect("symlink");
    let err = Sim::start(SimConfig { state_file: Some(file.clone()), ..instant() }).await.err().expect("an error");
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    std::fs::remove_file(&journal_link).expect("unlink");
    // Links planted at the names of the next temporary snapshot and of the next journal: the first is removed
    // (not followed), the second makes the start fail; the victim is untouched either way.
    std::os::unix::fs::symlink(&victim, dir.path().join("state.json.tmp.1")).expect("symlink");
    let sim = start(SimConfig { state_file: Some(file.clone()), ..instant() }).await;
    Api::new(&sim).create_machine("m", None).await;
    sim.stop().await;
    assert_eq!(std::fs::read_to_string(&victim).expect("kept"), "precious");
    assert!(std::fs::read_to_string(&file).expect("a snapshot").starts_with("{\"generation\""));
    let next = journals(&file).len() + 1;
    std::os::unix::fs::symlink(&victim, dir.path().join(format!("state.json.journal.{next}"))).expect("symlink");
    let err = Sim::start(SimConfig { state_file: Some(file.clone()), ..instant() }).await.err().expect("an error");
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).expect("kept"), "precious");
}

/// The bytes a write adds to the journal.
async fn record_size(api: &Api, file: &Path, m: &str, n: usize) -> u64 {
    let j = journal(file);
    let before = std::fs::metadata(&j).expect("journal").len();
    let a = api.put(m, &json!({"name": format!("renamed-{n}")})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(journal(file), j, "no compaction in between");
    std::fs::metadata(&j).expect("journal").len() - before
}

#[tokio::test]
async fn the_cost_of_a_write_does_not_grow_with_the_number_of_resources() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let sim = start(SimConfig { state_file: Some(file.clone()), ..instant() }).await;
    let api = Api::new(&sim);
    let m = api.create_machine("subject", None).await.header("location").expect("m");
    // The smallest of three edits: a request may also carry the meters' samples of the last second.
    sim.with_store(|s| s.bulk_machines(100));
    let mut small = u64::MAX;
    for i in 0..3 {
        small = small.min(record_size(&api, &file, &m, i).await);
    }
    sim.with_store(|s| s.bulk_machines(5_000));
    let mut large = u64::MAX;
    for i in 3..6 {
        large = large.min(record_size(&api, &file, &m, i).await);
    }
    assert!(small > 0);
    // The same edit writes the same record (give or take digits of ids and times), whatever the size.
    assert!(large.abs_diff(small) < 64, "{small} bytes with 100 machines, {large} with 5,100");
    sim.stop().await;
}

/// Kills the child process when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn spawn_sim(file: &Path) -> (Child, String) {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
            .args(["--listen", "127.0.0.1:0", "--timing", "instant", "--state-file"])
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cimi-sim starts"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("a first line");
    (child, line.trim().to_string())
}

#[tokio::test]
async fn a_killed_process_loses_nothing_it_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let (mut child, url) = spawn_sim(&file).await;
    super::crypto();
    let http = reqwest::Client::new();
    let body = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate", "name": "survivor",
        "machineTemplate": {"machineConfig": {"href": format!("{url}machineConfigs/tiny")},
            "machineImage": {"href": format!("{url}machineImages/WinXP-SP2")}}});
    let created = http.post(format!("{url}machines")).basic_auth("demo", Some("demo")).json(&body).send().await;
    let created = created.expect("an answer");
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().expect("Location").to_string();
    let path = location.trim_start_matches(&url).to_string();
    // SIGKILL: no shutdown code runs.
    child.0.kill().expect("kill");
    child.0.wait().expect("reaped");

    let (_child, url) = spawn_sim(&file).await;
    let got = http.get(format!("{url}{path}")).basic_auth("demo", Some("demo")).send().await.expect("an answer");
    assert_eq!(got.status(), 200);
    let doc: Value = got.json().await.expect("JSON");
    assert_eq!(doc["name"], "survivor");
}

#[tokio::test]
async fn a_reset_is_persisted_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let config = SimConfig { state_file: Some(file.clone()), ..instant() };
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    api.create_machine("before-reset", None).await;
    assert_eq!(api.send(reqwest::Method::POST, "_sim/reset", None).await.status, 200);
    api.create_machine("after-reset", None).await;
    drop(sim);
    let sim = start(config).await;
    let api = Api::new(&sim);
    let machines = api.get("machines").await.json();
    assert_eq!(machines["count"], 1, "{machines}");
    assert_eq!(machines["machines"][0]["name"], "after-reset");
    assert_eq!(journals(&file).len(), 1, "older journals are removed");
}

#[tokio::test]
async fn a_compaction_starts_a_new_journal_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let config = SimConfig { state_file: Some(file.clone()), ..instant() };
    let sim = start(config.clone()).await;
    let api = Api::new(&sim);
    let first = journal(&file);
    // One record larger than the compaction threshold (4 MiB).
    sim.with_store(|s| s.bulk_machines(20_000));
    let m = api.create_machine("after-compaction", None).await.header("location").expect("m");
    let m = m.replace(&api.base, "");
    sim.stop().await;
    let journals_now = journals(&file);
    assert_eq!(journals_now.len(), 1, "the old journal is gone once the snapshot is written");
    assert_ne!(journals_now[0], first, "writes go to a new journal");
    let snapshot: Value = serde_json::from_slice(&std::fs::read(&file).expect("snapshot")).expect("JSON");
    assert!(snapshot["generation"].as_u64() > Some(1), "a new snapshot");
    let sim = start(config).await;
    let api = Api::new(&sim);
    assert_eq!(api.get("machines?$first=1&$last=1").await.json()["count"], 20_001);
    assert_eq!(api.get(&m).await.json()["name"], "after-compaction");
    sim.stop().await;
}
