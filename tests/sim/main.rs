//! Integration tests of cimi-sim over real HTTP: each test starts its own simulator in-process on
//! 127.0.0.1:0 and talks to it with reqwest.

mod binary;
mod faults;
mod hostile;
mod images;
mod jobs;
mod networking;
mod persistence;
mod primer;
mod profiles;
mod protocol;
mod raw;
mod resources;
mod slow;
mod systems;
mod timing;
#[cfg(feature = "devenv")]
mod tls;
mod xml;

use std::time::Duration;

use cimi_operator::sim::{Sim, SimConfig, SimHandle, Timing};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A simulator with instant timing and the default Basic credentials.
pub fn instant() -> SimConfig {
    SimConfig { timing: Timing::Instant, ..SimConfig::default() }
}

/// Installs the process's rustls crypto provider (reqwest is built without one).
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts a simulator.
pub async fn start(config: SimConfig) -> SimHandle {
    crypto();
    Sim::start(config).await.expect("the simulator starts")
}

/// One answer, with its body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// A client of one simulator.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub user: Option<(String, String)>,
}

impl Api {
    /// A client with the default credentials.
    pub fn new(sim: &SimHandle) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
        Api { http, base: sim.url(), user: Some(("demo".into(), "demo".into())) }
    }

    /// An absolute URL for a path relative to the base (or an absolute URL unchanged).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Sends a request; `body` is JSON unless `content_type` says otherwise.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, reqwest::Error> {
        let mut req = self.http.request(method, self.url(path));
        if let Some((u, p)) = &self.user {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(body) = body {
            req = req.header("Content-Type", content_type.unwrap_or("application/json")).body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        Ok(Answer { status, headers, text })
    }

    /// Sends a JSON request and expects an answer.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.send_raw(method, path, body.map(|b| b.to_string()), None, &[]).await.expect("an answer")
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Runs an action on a resource.
    pub async fn action(&self, path: &str, action: &str) -> Answer {
        let body = serde_json::json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/Action",
            "action": format!("http://schemas.dmtf.org/cimi/1/action/{action}")});
        self.post(path, &body).await
    }

    /// Polls a resource until `state` is reached (or panics after 10 s).
    pub async fn wait_state(&self, path: &str, state: &str) -> Value {
        for _ in 0..500 {
            let doc = self.get(path).await.json();
            if doc["state"] == state {
                return doc;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{path} never reached {state}");
    }

    /// Creates a machine from the Primer's tiny config and WinXP image.
    pub async fn create_machine(&self, name: &str, initial: Option<&str>) -> Answer {
        let mut tmpl = serde_json::json!({
            "machineConfig": {"href": self.url("machineConfigs/tiny")},
            "machineImage": {"href": self.url("machineImages/WinXP-SP2")}});
        if let Some(s) = initial {
            tmpl["initialState"] = Value::String(s.to_string());
        }
        let body = serde_json::json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineCreate",
            "name": name, "machineTemplate": tmpl});
        self.post("machines", &body).await
    }
}
