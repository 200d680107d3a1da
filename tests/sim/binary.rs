//! The `cimi-sim` binary: the bound URL is the first line of stdout; a catalog file replaces the default one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cimi_operator::sim::{Catalog, SimConfig};

use super::{Api, instant, start};

/// Kills the child process when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_its_url_first_and_serves() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
            .args(["--listen", "127.0.0.1:0", "--timing", "instant", "--profile", "no-jobs"])
            .env("CIMI_SIM_USER", "alice")
            .env("CIMI_SIM_PASSWORD", "wonderland")
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
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
    super::crypto();
    let http = reqwest::Client::new();
    let cep = http.get(&url).basic_auth("alice", Some("wonderland")).send().await.expect("answer");
    assert_eq!(cep.status(), 200);
    let cep: serde_json::Value = cep.json().await.expect("json");
    assert_eq!(cep["baseURI"], url.as_str());
    assert!(cep.get("jobs").is_none(), "--profile no-jobs");
    let denied = http.get(&url).basic_auth("demo", Some("demo")).send().await.expect("answer");
    assert_eq!(denied.status(), 401, "credentials come from the environment");
}

#[tokio::test]
async fn catalog_file_replaces_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.yaml");
    std::fs::write(
        &path,
        "credentialAttributes:\n  - {name: key, type: string, required: true}\n\
         machineConfigs:\n  - {id: xl, name: xl, cpu: 16, memory: 64000000}\n\
         machineImages:\n  - {id: debian, name: Debian, state: AVAILABLE, type: IMAGE, imageLocation: {href: data/debian}}\n",
    )
    .expect("write");
    let catalog = Catalog::load(&path).expect("a catalog");
    let sim = start(SimConfig { catalog: Some(catalog), ..instant() }).await;
    let api = Api::new(&sim);
    let configs = api.get("machineConfigs").await.json();
    assert_eq!(configs["count"], 1);
    assert_eq!(configs["machineConfigurations"][0]["cpu"], 16);
    let image = api.get("machineImages/debian").await.json();
    assert_eq!(image["imageLocation"]["href"], api.url("data/debian"));
    let a = api.post("credentials", &serde_json::json!({"credentialTemplate": {"key": "ssh-ed25519 AAAA"}})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(Catalog::load(&dir.path().join("missing.yaml")).is_err());
}

#[tokio::test]
async fn binary_takes_catalog_and_fault_files_and_a_bearer_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, r#"{"machineConfigs": [{"id": "huge", "name": "huge", "cpu": 64, "memory": 512000000}]}"#)
        .expect("write");
    let faults = dir.path().join("faults.yaml");
    std::fs::write(&faults, "rules:\n  - {resourceType: VolumeCollection, kind: error, status: 503}\n").expect("write");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
            .args(["--listen", "127.0.0.1:0", "--token", "t0ken", "--catalog"])
            .arg(&catalog)
            .arg("--faults")
            .arg(&faults)
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
    let url = line.trim().to_string();
    super::crypto();
    let http = reqwest::Client::new();
    let get = |path: &str, token: &str| http.get(format!("{url}{path}")).bearer_auth(token).send();
    let configs: serde_json::Value = get("machineConfigs", "t0ken").await.expect("answer").json().await.expect("json");
    assert_eq!(configs["count"], 1);
    assert_eq!(configs["machineConfigurations"][0]["cpu"], 64);
    assert_eq!(get("volumes", "t0ken").await.expect("answer").status(), 503, "the fault file is active");
    assert_eq!(get("machines", "wrong").await.expect("answer").status(), 401);
}

/// Starts the binary with `args` and `env`; returns it with its URL.
async fn spawn(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cimi-sim"));
    command.args(["--listen", "127.0.0.1:0"]).args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    for var in ["CIMI_SIM_USER", "CIMI_SIM_PASSWORD", "CIMI_SIM_TOKEN"] {
        command.env_remove(var);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = Child(command.spawn().expect("cimi-sim starts"));
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

/// The status of `GET url` with Basic credentials.
async fn basic(url: &str, user: &str, password: &str) -> u16 {
    let answer = reqwest::Client::new().get(url).basic_auth(user, Some(password)).send().await.expect("answer");
    answer.status().as_u16()
}

/// The status of `GET url` with a bearer token.
async fn bearer(url: &str, token: &str) -> u16 {
    reqwest::Client::new().get(url).bearer_auth(token).send().await.expect("answer").status().as_u16()
}

#[tokio::test]
async fn secrets_come_from_files_or_the_environment() {
    super::crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, "from a file\n").expect("write");
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken-file\r\n").expect("write");

    let (_sim, url) = spawn(&["--password-file".as_ref(), password.as_os_str()], &[]).await;
    assert_eq!(basic(&url, "demo", "from a file").await, 200, "the trailing newline is not part of it");
    assert_eq!(basic(&url, "demo", "demo").await, 401);

    let (_sim, url) = spawn(&["--token-file".as_ref(), token.as_os_str()], &[]).await;
    assert_eq!(bearer(&url, "t0ken-file").await, 200);
    assert_eq!(bearer(&url, "t0ken").await, 401);

    let (_sim, url) = spawn(&[], &[("CIMI_SIM_TOKEN", "t0ken-env")]).await;
    assert_eq!(bearer(&url, "t0ken-env").await, 200);
    assert_eq!(basic(&url, "demo", "demo").await, 401);

    // Nothing given: the demo's credentials.
    let (_sim, url) = spawn(&[], &[]).await;
    assert_eq!(basic(&url, "demo", "demo").await, 200);

    // A password both on the command line (or in the environment) and in a file, or an empty file: refused.
    let both = Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
        .args(["--listen", "127.0.0.1:0", "--password", "x", "--password-file"])
        .arg(&password)
        .output()
        .expect("runs");
    assert!(!both.status.success());
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
        .args(["--listen", "127.0.0.1:0", "--password-file"])
        .arg(&empty)
        .env_remove("CIMI_SIM_PASSWORD")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"), "{out:?}");
}
