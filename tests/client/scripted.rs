//! A scripted provider on loopback for the shapes cimi-sim's profiles do not serve (hand-written fixtures
//! over real HTTP): relative hrefs, operation hrefs unlike the collection URL, a 202 without `Location`,
//! nested Jobs, ignored and truncated paging, a 500 on deleting what is gone, HTML on success, slow
//! answers, 429 with `Retry-After`, and Basic auth on everything but the CloudEntryPoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the scripted provider saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: String,
}

#[derive(Default)]
struct World {
    log: Vec<Seen>,
    job1_polls: u32,
    m1_deleted: bool,
    throttled_once: bool,
    flaky_posts: u32,
}

#[derive(Clone)]
pub struct Scripted {
    pub base: String,
    world: Arc<Mutex<World>>,
}

impl Scripted {
    pub async fn start() -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}/cimi/");
        let s = Scripted { base: base.clone(), world: Arc::new(Mutex::new(World::default())) };
        let app = axum::Router::new().fallback(handle).with_state(s.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        s
    }

    pub fn cep(&self) -> String {
        format!("{}cloudEntryPoint", self.base)
    }

    pub fn log(&self) -> Vec<Seen> {
        self.world.lock().expect("lock").log.clone()
    }

    pub fn seen(&self, method: &str, path: &str) -> Vec<Seen> {
        self.log().into_iter().filter(|s| s.method.as_str() == method && s.path == path).collect()
    }
}

const NS: &str = "http://schemas.dmtf.org/cimi/1";

fn json_resp(status: StatusCode, v: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn image(i: usize) -> Value {
    json!({"id": format!("machineImages/img{i}"), "name": format!("image {i}"),
           "imageLocation": format!("http://images.example/{i}")})
}

async fn handle(State(s): State<Scripted>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches("/cimi/").to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: HeaderMap = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    {
        let mut w = s.world.lock().expect("lock");
        w.log.push(Seen { at: Instant::now(), method: method.clone(), path: path.clone(), query: query.clone(), body });
    }
    if path != "cloudEntryPoint" {
        // Basic demo:demo (ZGVtbzpkZW1v); the CEP is readable without credentials (ref §7).
        let ok = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some("Basic ZGVtbzpkZW1v");
        if !ok {
            return (StatusCode::UNAUTHORIZED, "<html><body>401 go away</body></html>").into_response();
        }
    }
    let page = |q: &str| -> (Option<usize>, Option<usize>) {
        let mut first = None;
        let mut last = None;
        for kv in q.split('&') {
            if let Some(v) = kv.strip_prefix("$first=") {
                first = v.parse().ok();
            }
            if let Some(v) = kv.strip_prefix("$last=") {
                last = v.parse().ok();
            }
        }
        (first, last)
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "cloudEntryPoint") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/CloudEntryPoint"), "id": format!("{}cloudEntryPoint", s.base),
                   "baseURI": s.base, "machines": {"href": "machines"}, "machineImages": {"href": "machineImages"},
                   "machineConfigs": {"href": "machineConfigs"}, "credentials": {"href": "credentials"},
                   "jobs": {"href": "jobs"}}),
        ),
        // Honours paging, but serves at most 3 entries per answer.
        ("GET", "machineImages") => {
            let all: Vec<Value> = (1..=7).map(image).collect();
            let (f, l) = page(&query);
            let f = f.unwrap_or(1).max(1);
            let l = l.unwrap_or(all.len()).min(all.len()).min(f + 2);
            let entries: Vec<Value> = if f > l { vec![] } else { all[f - 1..l].to_vec() };
            json_resp(
                StatusCode::OK,
                json!({"resourceURI": format!("{NS}/MachineImageCollection"), "id": "machineImages",
                "count": 7, "machineImages": entries}),
            )
        }
        // Ignores paging and truncates: always the same 2 of 5, numbers as strings.
        ("GET", "machineConfigs") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/MachineConfigurationCollection"), "id": "machineConfigs", "count": "5",
                   "machineConfigurations": [{"id": "machineConfigs/a", "cpu": "1", "memory": "4000000"},
                                             {"id": "machineConfigs/b", "cpu": "2", "memory": "8000000"}]}),
        ),
        // Empty: count 0 and no entry array, labelled text/html.
        ("GET", "credentials") => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            json!({"resourceURI": format!("{NS}/CredentialCollection"), "id": "credentials", "count": 0,
                   "operations": [{"rel": "add", "href": "credentials"}]})
            .to_string(),
        )
            .into_response(),
        ("GET", "machines") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/MachineCollection"), "id": "machines", "count": 0,
                   "operations": [{"rel": "add", "href": "machine-factory/add"}]}),
        ),
        // Create: 202, no Location, a lower-case Job header with a relative URI.
        ("POST", "machine-factory/add") => {
            let mut w = s.world.lock().expect("lock");
            if body_has(&w, "flaky") && w.flaky_posts == 0 {
                w.flaky_posts += 1;
                return (StatusCode::BAD_GATEWAY, "upstream hiccup").into_response();
            }
            drop(w);
            (StatusCode::ACCEPTED, [("cimi-job-uri", "jobs/1")], "").into_response()
        }
        ("GET", "jobs/1") => {
            let mut w = s.world.lock().expect("lock");
            w.job1_polls += 1;
            let state = if w.job1_polls < 3 { "RUNNING" } else { "SUCCESS" };
            json_resp(
                StatusCode::OK,
                json!({"resourceURI": format!("{NS}/Job"), "id": "jobs/1", "state": state,
                "progress": if state == "SUCCESS" { "100" } else { "50" }, "action": "add",
                "targetResource": {"href": "machines"},
                "affectedResources": [{"href": "machines"}, {"href": "machines/m1"}],
                "nestedJobs": [{"href": "jobs/2"}]}),
            )
        }
        ("GET", "jobs/2") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/Job"), "id": "jobs/2",
            "state": "SUCCESS", "progress": 100, "parentJob": {"href": "jobs/1"}}),
        ),
        ("GET", "jobs/3") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/Job"), "id": "jobs/3",
            "state": "FAILED", "returnCode": 1, "statusMessage": "provisioning failed", "nestedJobs": [{"href": "jobs/4"}]}),
        ),
        ("GET", "jobs/4") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/Job"), "id": "jobs/4",
            "state": "FAILED", "statusMessage": "disk full", "returnCode": 28}),
        ),
        ("GET", "jobs/5") => json_resp(
            StatusCode::OK,
            json!({"resourceURI": format!("{NS}/Job"), "id": "jobs/5",
            "state": "RUNNING", "progress": 10}),
        ),
        ("GET", "machines/m1") => {
            if s.world.lock().expect("lock").m1_deleted {
                return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html")], "<html>Not Found</html>")
                    .into_response();
            }
            json_resp(
                StatusCode::OK,
                json!({"id": "machines/m1", "name": "m1", "state": "STOPPED", "cpu": "1",
                "memory": "4000000", "created": "2012-08-15 12:15:00 UTC",
                "operations": [{"rel": "edit", "href": "machines/m1"},
                               {"rel": "http://schemas.dmtf.org/cimi/1/action/delete", "href": "machines/m1"},
                               {"rel": "http://schemas.dmtf.org/cimi/1/action/start", "href": "machines/m1/start"},
                               {"rel": "http://schemas.dmtf.org/cimi/1/action/capture", "href": "machineImages", "available": false}]}),
            )
        }
        ("POST", "machines/m1/start") => {
            (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "text/html")], "").into_response()
        }
        ("PUT", "machines/m1") => json_resp(StatusCode::OK, json!({"name": "renamed"})),
        ("DELETE", "machines/m1") => {
            let mut w = s.world.lock().expect("lock");
            if w.m1_deleted {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "application/json")],
                    json!({"code": "E500", "message": "NullPointerException"}).to_string(),
                )
                    .into_response();
            }
            w.m1_deleted = true;
            (StatusCode::OK, "").into_response()
        }
        ("GET", "slow") => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            json_resp(StatusCode::OK, json!({"id": "slow"}))
        }
        ("GET", "throttled") => {
            let mut w = s.world.lock().expect("lock");
            if !w.throttled_once {
                w.throttled_once = true;
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down").into_response();
            }
            json_resp(StatusCode::OK, json!({"resourceURI": format!("{NS}/Machine"), "id": "throttled"}))
        }
        ("GET", "broken") => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"id\": \"x\", ").into_response()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("<html>nothing here</html>"))
            .unwrap_or_default(),
    }
}

fn body_has(w: &World, needle: &str) -> bool {
    w.log.last().is_some_and(|s| s.body.contains(needle))
}
