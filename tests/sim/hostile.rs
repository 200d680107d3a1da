//! cimi-sim cannot be crashed by a request: every malformed, oversized or deeply nested request gets a 4xx, and
//! the process still serves afterwards. The table runs over real HTTP against the `cimi-sim` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use cimi_operator::sim::{Limits, SimConfig};

use super::raw::{RawAnswer, chunked, demo_auth, exchange, request};
use super::{Api, instant, start};

/// Kills the child process when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args`; returns it with its address.
async fn spawn(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cimi-sim"))
            .args(["--listen", "127.0.0.1:0", "--timing", "instant"])
            .args(args)
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
    let url = url::Url::parse(line.trim()).expect("a URL first");
    let addr = url.socket_addrs(|| None).expect("an address").into_iter().next().expect("one address");
    (child, addr)
}

/// One hostile request and the status it must get. `job` says the answer comes from the simulator itself, with
/// its Job-shaped error body (hyper answers malformed HTTP with an empty body); `says` is a piece of the
/// answer's message (the limit named), when it matters.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: &'static [u16],
    job: bool,
    says: &'static str,
}

fn case(name: &'static str, request: Vec<u8>, status: &'static [u16]) -> Case {
    Case { name, request, status, job: true, says: "" }
}

/// A case answered without the simulator's Job-shaped body (by hyper, or by the admin API).
fn bare(name: &'static str, request: Vec<u8>, status: &'static [u16]) -> Case {
    Case { name, request, status, job: false, says: "" }
}

impl Case {
    /// The same case, its answer naming this.
    fn saying(self, says: &'static str) -> Case {
        Case { says, ..self }
    }
}

fn json() -> (&'static str, String) {
    ("Content-Type", "application/json".into())
}

fn xml() -> (&'static str, String) {
    ("Content-Type", "application/xml".into())
}

fn length(n: u64) -> (&'static str, String) {
    ("Content-Length", n.to_string())
}

fn chunked_coding() -> (&'static str, String) {
    ("Transfer-Encoding", "chunked".into())
}

/// `GET <target>` with the default credentials.
fn get(target: &str) -> Vec<u8> {
    request("GET", target, &[demo_auth()], b"")
}

/// `POST /machines` with the default credentials and these headers.
fn post(headers: &[(&'static str, String)], body: impl AsRef<[u8]>) -> Vec<u8> {
    let mut all = vec![demo_auth()];
    all.extend_from_slice(headers);
    request("POST", "/machines", &all, body.as_ref())
}

/// Bodies that do not parse, or nest too deeply.
fn bodies() -> Vec<Case> {
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let json_100 = format!("{{\"name\": \"m\", \"properties\": {}1{}}}", "[".repeat(100), "]".repeat(100));
    let deep_xml = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let xml_65 = format!("<MachineCreate>{}{}</MachineCreate>", "<a>".repeat(64), "</a>".repeat(64));
    let bomb = "<!DOCTYPE x [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\
        <MachineCreate><name>&b;</name></MachineCreate>";
    let admin_deep = format!("{{\"rules\": {deep_json}}}");
    let deep = "deeper than 64 levels";
    vec![
        case("malformed JSON", post(&[json()], "{\"name\": "), &[400]),
        case("JSON that is not an object", post(&[json()], "[1, 2]"), &[400]),
        case("malformed XML", post(&[xml()], "<MachineCreate><name>m</Machine>"), &[400]),
        case("XML entity bomb", post(&[xml()], bomb), &[400]),
        case("JSON nested 100,000 deep", post(&[json()], &deep_json), &[400]),
        case("JSON nested 100 deep (within serde's 128)", post(&[json()], json_100), &[400]).saying(deep),
        case("XML nested 100,000 deep", post(&[xml()], deep_xml), &[400]).saying(deep),
        case("XML nested 65 deep", post(&[xml()], xml_65), &[400]).saying(deep),
        // The admin API answers its errors as `{"message": …}`.
        bare("JSON nested 100,000 deep to the admin API", put_faults(&[json()], admin_deep), &[400]),
        case("invalid UTF-8 in XML", post(&[xml()], b"<MachineCreate><name>\xff\xfe</name></MachineCreate>"), &[400]),
        case("invalid UTF-8 in JSON", post(&[json()], b"{\"name\": \"\xff\xfe\"}"), &[400]),
        case("unreadable Content-Type", post(&[("Content-Type", "text/plain".into())], "name=m"), &[415]),
        bare("a control character in a header", post(&[("Content-Type", "\u{1}".into())], "{}"), &[400]),
    ]
}

/// `PUT /_sim/faults` with the default credentials and these headers.
fn put_faults(headers: &[(&'static str, String)], body: impl AsRef<[u8]>) -> Vec<u8> {
    let mut all = vec![demo_auth()];
    all.extend_from_slice(headers);
    request("PUT", "/_sim/faults", &all, body.as_ref())
}

/// Bodies too large, and uploads without credentials (answered before a byte of the body is read: these
/// requests never send the body they announce).
fn sizes() -> Vec<Case> {
    let two_mib = vec![b' '; 2 * 1024 * 1024];
    let gib = 1u64 << 30;
    let no_auth = |headers: &[(&'static str, String)], body: &[u8]| request("POST", "/machines", headers, body);
    let wrong = ("Authorization", "Basic ZGVtbzpkZW1w".to_string());
    let large = "larger than 1048576 bytes";
    vec![
        case("Content-Length over the cap, body never sent", post(&[json(), length(2 << 20)], ""), &[413])
            .saying(large),
        case("chunked body over the cap", post(&[json(), chunked_coding()], chunked(&two_mib)), &[413]).saying(large),
        case("unauthenticated 1 GiB upload, body never sent", no_auth(&[json(), length(gib)], b""), &[401]),
        case(
            "unauthenticated chunked upload, never finished",
            no_auth(&[json(), chunked_coding()], b"10000\r\n{"),
            &[401],
        ),
        case("wrong password, 1 GiB announced", request("PUT", "/_sim/faults", &[wrong, length(gib)], b""), &[401]),
    ]
}

/// Heads and targets too large, and malformed HTTP.
fn heads() -> Vec<Case> {
    let auth = demo_auth();
    let big_header = request("GET", "/", &[auth.clone(), ("X-Big", "x".repeat(100 * 1024))], b"");
    let mut many = vec![auth.clone()];
    many.extend((0..500).map(|i| ("X-Many", i.to_string())));
    let long = |kb: usize| format!("/machines?x={}", "a".repeat(kb * 1024));
    vec![
        bare("a header of 100 KB", big_header, &[431]),
        bare("500 headers", request("GET", "/", &many, b""), &[431]),
        bare("a URL of 100 KB", get(&long(100)), &[414, 431]),
        case("a URL of 20 KB (within the head limit)", get(&long(20)), &[414]).saying("longer than 16384 bytes"),
        case("a URL of 20 KB, unauthenticated", request("GET", &long(20), &[], b""), &[414]),
        bare("a request line that is not HTTP", b"GARBAGE\r\n\r\n".to_vec(), &[400]),
        bare("a Content-Length that is not a number", post(&[("Content-Length", "-1".into())], ""), &[400]),
        case("an unknown method", request("BREW", "/", std::slice::from_ref(&auth), b""), &[405]),
        case("a long unknown method on a missing path", request(&"X".repeat(1_000), "/nothing", &[auth], b""), &[404]),
    ]
}

/// Query parameters that do not parse, or nest too deeply.
fn queries() -> Vec<Case> {
    let deep_filter = format!("{}name='x'{}", "(".repeat(5_000), ")".repeat(5_000));
    let open_only = "(".repeat(5_000);
    let deep_path = vec!["disks"; 17].join("/");
    let put_cep =
        request("PUT", &format!("/?$select={deep_path}"), &[demo_auth(), json()], b"{\"description\": \"d\"}");
    let action = format!(
        "{{\"resourceURI\": \"http://schemas.dmtf.org/cimi/1/Action\", \"action\": \"{}/{}\"}}",
        "http://schemas.dmtf.org/cimi/1/action",
        "x".repeat(1_000)
    );
    let long_action = request("POST", "/machineConfigs/tiny", &[demo_auth(), json()], action.as_bytes());
    let (parens, segments) = ("deeper than 32 levels", "more than 16 segments");
    vec![
        case("$filter with 5,000 nested parentheses", get(&format!("/machines?$filter={deep_filter}")), &[400])
            .saying(parens),
        case("$filter with 5,000 open parentheses", get(&format!("/machines?$filter={open_only}")), &[400])
            .saying(parens),
        case("invalid $filter", get("/machines?$filter=name%3D"), &[400]),
        case("$filter with a bad escape", get("/machines?$filter=%ZZ"), &[400]),
        case("invalid $orderby", get("/machines?$orderby=name:sideways"), &[400]),
        case("$select path of 17 segments", get(&format!("/machines?$select={deep_path}")), &[400]).saying(segments),
        case("$expand path of 17 segments", get(&format!("/machines?$expand={deep_path}")), &[400]).saying(segments),
        case(
            "$select path of 17 segments on a resource",
            get(&format!("/machineConfigs/tiny?$select={deep_path}")),
            &[400],
        ),
        case("$select path of 17 segments in a PUT", put_cep, &[400]),
        case("$first not a number", get("/machines?$first=one"), &[400]),
        case("$last negative", get("/machines?$last=-1"), &[400]),
        case("$first overflowing", get("/machines?$first=99999999999999999999999"), &[400]),
        case("bad $format", get("/?$format=yaml"), &[400]),
        case("unservable Accept", request("GET", "/", &[demo_auth(), ("Accept", "image/png".into())], b""), &[406]),
        case("unknown action with a 1 KB name", long_action, &[400, 405]),
    ]
}

fn table() -> Vec<Case> {
    [bodies(), sizes(), heads(), queries()].into_iter().flatten().collect()
}

fn check(case: &Case, answer: &RawAnswer) {
    assert!(case.status.contains(&answer.status), "{}: expected {:?}, got {}", case.name, case.status, head(answer));
    assert!(answer.text.contains(case.says), "{}: the answer says {:?}: {}", case.name, case.says, head(answer));
    if case.job {
        assert!(
            answer.text.contains(&format!("\"returnCode\":{}", answer.status)),
            "{}: a Job-shaped error body: {}",
            case.name,
            head(answer)
        );
    }
}

/// The head and the start of the body of an answer, for a failure message.
fn head(answer: &RawAnswer) -> String {
    answer.text.chars().take(600).collect()
}

#[tokio::test]
async fn every_hostile_request_gets_a_4xx_and_the_binary_keeps_serving() {
    let (mut child, addr) = spawn(&["--header-read-timeout", "5", "--body-read-timeout", "5"]).await;
    for case in table() {
        let answer = exchange(addr, case.request.clone()).await;
        check(&case, &answer);
        assert!(child.0.try_wait().expect("status").is_none(), "cimi-sim exited after {}", case.name);
    }
    let cep = exchange(addr, get("/")).await;
    assert_eq!(cep.status, 200, "{}", head(&cep));
    assert!(cep.text.contains("\"baseURI\""), "{}", head(&cep));
    // The statistics stayed small: the long action name and the long method were not made labels, and the
    // log keeps only the start of a long target or method.
    let stats = exchange(addr, get("/_sim/stats")).await;
    assert!(!stats.text.contains(&"x".repeat(40)), "{}", head(&stats));
    assert!(!stats.text.contains(&"X".repeat(40)), "{}", head(&stats));
    assert!(!stats.text.contains(&"a".repeat(600)), "{}", head(&stats));
}

#[tokio::test]
async fn the_body_cap_is_a_flag() {
    let (_child, addr) = spawn(&["--max-body-bytes", "1000"]).await;
    let body = |size: usize| {
        let name = "m".repeat(size - 12);
        let body = format!("{{\"name\": \"{name}\"}}");
        assert_eq!(body.len(), size);
        request("PUT", "/", &[demo_auth(), json()], body.as_bytes())
    };
    assert_eq!(exchange(addr, body(1000)).await.status, 200);
    let over = exchange(addr, body(1001)).await;
    assert_eq!(over.status, 413, "{}", head(&over));
    assert!(over.text.contains("larger than 1000 bytes"), "{}", head(&over));
}

#[tokio::test]
async fn limits_are_set_in_the_config() {
    let limits = Limits { max_body_bytes: 100, max_uri_bytes: 200, ..Limits::default() };
    let sim = start(SimConfig { limits, ..instant() }).await;
    let api = Api::new(&sim);
    let big = serde_json::json!({"description": "d".repeat(100)});
    assert_eq!(api.put("", &big).await.status, 413);
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 20])));
    let chunked = api
        .http
        .put(api.url(""))
        .basic_auth("demo", Some("demo"))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("an answer");
    assert_eq!(chunked.status(), 413, "a chunked body is counted as it arrives");
    assert_eq!(api.get(&format!("machines?x={}", "a".repeat(200))).await.status, 414);
    assert_eq!(api.get("machines?x=a").await.status, 200);
    let stats = sim.stats();
    assert_eq!(stats.count("Body.read", 413), 2);
    assert_eq!(stats.count("Target.read", 414), 1);
}
