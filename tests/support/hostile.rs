//! A hostile CIMI provider for the tenancy tests and the hostile-provider benchmark: a proxy on loopback in
//! front of an in-process cimi-sim (which advertises the proxy's URL as its baseURI, so every href it serves
//! points at the proxy), that bends one kind of answer the way a broken or malicious provider would, and a
//! second origin that records every request it gets.
//!
//! Every [`Mode`] is one attack: hrefs of another origin in the CloudEntryPoint, its baseURI, collections,
//! operations, `Location`, `CIMI-Job-URI` and next pages; a redirect to the second origin; a 1 GiB body; an
//! endless chunked body; endless pages. The proxy counts the bytes of the large bodies that it managed to
//! hand to the connection before the client stopped reading; its sockets have a small send buffer and it
//! paces those bodies (64 KiB per millisecond) so that the count is close to what the client really read.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cimi_operator::sim::{Auth, Sim, SimConfig, SimHandle, Timing};
use serde_json::{Value, json};

/// The attack a [`Hostile`] provider makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serves cimi-sim as it is (the control).
    Honest,
    /// The CloudEntryPoint's baseURI is on the second origin.
    ForeignBase,
    /// The CloudEntryPoint's `machines` collection is on the second origin.
    ForeignCollection,
    /// Every operation of every machine (edit, delete, actions) is on the second origin.
    ForeignOperations,
    /// Creates answer a `Location` on the second origin.
    ForeignLocation,
    /// Writes answer a `CIMI-Job-URI` on the second origin.
    ForeignJob,
    /// The catalog's machineImages pages link their next page on the second origin.
    ForeignNextPage,
    /// The CloudEntryPoint redirects to the second origin.
    Redirect,
    /// The CloudEntryPoint answers a body of 1 GiB (with its `Content-Length`).
    HugeBody,
    /// The CloudEntryPoint answers a chunked body that never ends.
    EndlessBody,
    /// The machineImages collection has ever more pages of fresh entries.
    EndlessPages,
}

/// One request the second origin received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// The second origin: answers 200 to everything and records every request.
#[derive(Clone)]
pub struct Recorder {
    /// Its base URL, ending with `/`.
    pub url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// Starts the recorder on a free loopback port.
    pub async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the recorder");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new().fallback(record).with_state(log.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorder { url, log }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("lock").clone()
    }
}

async fn record(State(log): State<Arc<Mutex<Vec<Recorded>>>>, req: Request) -> Response {
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    log.lock().expect("lock").push(Recorded { method: req.method().to_string(), path, authorization });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r#"{"resourceURI":"x","id":"stolen"}"#)
        .into_response()
}

/// A hostile provider: the proxy, the cimi-sim behind it, and the counter of large-body bytes.
pub struct Hostile {
    /// The CloudEntryPoint URL to give a CimiProvider (the proxy's base URL).
    pub url: String,
    /// The simulator behind the proxy (its stats show what reached it).
    pub sim: SimHandle,
    sent: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Proxy {
    mode: Mode,
    base: String,
    second: String,
    sim: String,
    http: reqwest::Client,
    sent: Arc<AtomicU64>,
}

/// The user and password of the simulator behind every hostile proxy.
pub const USER: &str = "demo";
/// See [`USER`].
pub const PASSWORD: &str = "demo";

impl Hostile {
    /// Starts a hostile provider making the attack `mode`, with `second` as the other origin.
    pub async fn start(mode: Mode, second: &Recorder) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let base = format!("http://{}/", listener.local_addr().expect("addr"));
        let sim = Sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            external_url: Some(base.clone()),
            auth: Auth::Basic { user: USER.into(), password: PASSWORD.into() },
            timing: Timing::Instant,
            ..SimConfig::default()
        })
        .await
        .expect("start the sim behind the proxy");
        let sent = Arc::new(AtomicU64::new(0));
        let proxy = Proxy {
            mode,
            base: base.clone(),
            second: second.url.clone(),
            sim: format!("http://{}/", sim.addr()),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            sent: sent.clone(),
        };
        tokio::spawn(serve(listener, proxy));
        Hostile { url: base, sim, sent }
    }

    /// The most bytes of one large body the proxy handed to the connection before the client stopped
    /// reading (the client may ask again at each probe: each answer is counted alone).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

/// Accepts connections with a small send buffer (so the byte count is close to what reached the client).
async fn serve(listener: tokio::net::TcpListener, proxy: Proxy) {
    let router = axum::Router::new().fallback(handle).with_state(proxy);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(64 << 10);
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json_response(status: StatusCode, mut headers: HeaderMap, body: &Value) -> Response {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.remove(header::CONTENT_LENGTH);
    (status, headers, body.to_string()).into_response()
}

/// A stream of `chunk`-sized pieces of `fill`, up to `total` bytes (`u64::MAX`: never ends); `sent` keeps the
/// largest number of bytes any one such stream handed out.
fn counted_stream(total: u64, fill: u8, sent: Arc<AtomicU64>) -> Body {
    const CHUNK: usize = 16 << 10;
    // At most this much per millisecond (64 MiB/s, a fast link): a reader that keeps up never has much queued in
    // its kernel receive buffer, whose auto-tuning would otherwise grow it by megabytes on loopback.
    const PACE: u64 = 64 << 10;
    let piece = Bytes::from(vec![fill; CHUNK]);
    let stream = futures::stream::unfold(0u64, move |done| {
        let piece = piece.clone();
        let sent = sent.clone();
        async move {
            if done >= total {
                return None;
            }
            let n = (total - done).min(CHUNK as u64) as usize;
            if done > 0 && done % PACE == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            sent.fetch_max(done + n as u64, Ordering::SeqCst);
            Some((Ok::<Bytes, std::io::Error>(piece.slice(..n)), done + n as u64))
        }
    });
    Body::from_stream(stream)
}

async fn handle(State(p): State<Proxy>, req: Request) -> Response {
    let method = req.method().clone();
    let path_and_query = req.uri().path_and_query().map(|x| x.as_str().to_string()).unwrap_or_default();
    let path = req.uri().path().to_string();
    let is_cep = path == "/" || path.is_empty();
    match p.mode {
        Mode::Redirect if is_cep => {
            return (StatusCode::FOUND, [(header::LOCATION, format!("{}cloudEntryPoint", p.second))]).into_response();
        }
        Mode::HugeBody if is_cep => {
            let mut r = Response::new(counted_stream(1 << 30, b' ', p.sent.clone()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(1u64 << 30));
            return r;
        }
        Mode::EndlessBody if is_cep => {
            let mut r = Response::new(counted_stream(u64::MAX, b' ', p.sent.clone()));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return r;
        }
        Mode::EndlessPages if method == "GET" && path == "/machineImages" => {
            return endless_page(&path_and_query);
        }
        _ => {}
    }
    // Everything else goes to the simulator, whose answer is bent afterwards.
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 16 << 20).await.unwrap_or_default();
    let mut forward = p.http.request(method.clone(), format!("{}{}", p.sim, path_and_query.trim_start_matches('/')));
    for name in [header::AUTHORIZATION, header::ACCEPT, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            forward = forward.header(name, v);
        }
    }
    let Ok(answer) = forward.body(body).send().await else {
        return (StatusCode::BAD_GATEWAY, "the sim did not answer").into_response();
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for name in [header::LOCATION.as_str(), "cimi-job-uri", header::RETRY_AFTER.as_str()] {
        if let Some(v) = answer.headers().get(name) {
            out_headers.insert(header::HeaderName::from_static(name), v.clone());
        }
    }
    let ctype = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.unwrap_or_default();
    let foreign = |href: &str| -> String {
        // The same path on the other origin.
        format!("{}{}", p.second, href.strip_prefix(&p.base).unwrap_or(href).trim_start_matches('/'))
    };
    let is_write = method != "GET";
    match p.mode {
        Mode::ForeignLocation if is_write => {
            if let Some(l) = out_headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).map(foreign) {
                out_headers.insert(header::LOCATION, HeaderValue::from_str(&l).expect("header"));
            }
        }
        Mode::ForeignJob if is_write => {
            if let Some(j) = out_headers.get("cimi-job-uri").and_then(|v| v.to_str().ok()).map(foreign) {
                out_headers.insert("cimi-job-uri", HeaderValue::from_str(&j).expect("header"));
            }
        }
        _ => {}
    }
    let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
        let mut r = (status, out_headers, bytes).into_response();
        if let Some(c) = ctype {
            r.headers_mut().insert(header::CONTENT_TYPE, c);
        }
        return r;
    };
    match p.mode {
        Mode::ForeignBase if is_cep => doc["baseURI"] = json!(p.second),
        Mode::ForeignCollection if is_cep => doc["machines"] = json!({"href": foreign("machines")}),
        Mode::ForeignOperations => bend_machine_operations(&mut doc, &foreign),
        Mode::ForeignNextPage if path == "/machineImages" => {
            let next = json!({"rel": "next", "href": foreign("machineImages?page=2")});
            match doc.get_mut("operations").and_then(Value::as_array_mut) {
                Some(ops) => ops.push(next),
                None => doc["operations"] = json!([next]),
            }
        }
        _ => {}
    }
    json_response(status, out_headers, &doc)
}

/// Moves the operations of every Machine in `doc` (a Machine, or a collection of them) to the other origin.
fn bend_machine_operations(doc: &mut Value, foreign: &dyn Fn(&str) -> String) {
    let is_machine = |v: &Value| v.get("resourceURI").and_then(Value::as_str).is_some_and(|u| u.ends_with("/Machine"));
    let bend = |m: &mut Value| {
        for op in m.get_mut("operations").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(h) = op.get("href").and_then(Value::as_str).map(foreign) {
                op["href"] = json!(h);
            }
        }
    };
    if is_machine(doc) {
        bend(doc);
    }
    for m in doc.get_mut("machines").and_then(Value::as_array_mut).into_iter().flatten() {
        bend(m);
    }
}

/// A page of a collection without end: a huge `count`, and fresh entries for whatever window is asked.
fn endless_page(path_and_query: &str) -> Response {
    let param = |name: &str| -> Option<u64> {
        path_and_query.split(['?', '&']).find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    let first = param("$first").unwrap_or(1).max(1);
    let last = param("$last").unwrap_or(first + 99).min(first + 999);
    let entries: Vec<Value> = (first..=last)
        .map(|i| {
            json!({"id": format!("machineImages/endless-{i}"), "name": format!("endless {i}"),
                        "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage"})
        })
        .collect();
    json_response(
        StatusCode::OK,
        HeaderMap::new(),
        &json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImageCollection", "id": "machineImages",
                "count": 1_000_000_000u64, "machineImages": entries}),
    )
}
