//! Slow and idle clients (slowloris): a connection that sends nothing, or trickles its request head, is closed
//! after the header-read timeout; one idle between requests after the idle timeout; a body that stalls is
//! answered 408. Meanwhile the simulator serves everyone else. The timeouts are shortened for the test.

use std::time::{Duration, Instant};

use cimi_operator::sim::{Limits, SimConfig, SimHandle};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::raw::{closed, demo_auth, read_answer, request};
use super::{Api, instant, start};

const HEADER: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_secs(2);
const BODY: Duration = Duration::from_millis(300);

async fn sim() -> SimHandle {
    let limits =
        Limits { header_read_timeout: HEADER, idle_timeout: IDLE, body_read_timeout: BODY, ..Limits::default() };
    start(SimConfig { limits, ..instant() }).await
}

/// A keep-alive `GET /` with the default credentials.
fn keep_alive_get() -> Vec<u8> {
    let auth = demo_auth();
    format!("GET / HTTP/1.1\r\nHost: localhost\r\n{}: {}\r\n\r\n", auth.0, auth.1).into_bytes()
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let sim = sim().await;
    let mut silent = TcpStream::connect(sim.addr()).await.expect("connects");
    let opened = Instant::now();
    closed(&mut silent).await;
    assert!(opened.elapsed() >= HEADER - Duration::from_millis(20), "not before the timeout: {:?}", opened.elapsed());
    assert_eq!(Api::new(&sim).get("").await.status, 200, "the simulator still serves");
}

#[tokio::test]
async fn a_trickled_head_is_cut_off_while_others_are_served() {
    let sim = sim().await;
    let mut slow = TcpStream::connect(sim.addr()).await.expect("connects");
    let head = keep_alive_get();
    let started = Instant::now();
    // One byte every 50 ms: the whole head would take seconds.
    let trickle = async {
        for byte in &head {
            if slow.write_all(std::slice::from_ref(byte)).await.is_err() {
                return Err(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    };
    let others = async {
        let api = Api::new(&sim);
        for _ in 0..5 {
            assert_eq!(api.get("machines").await.status, 200, "others are served meanwhile");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    let (trickled, ()) = tokio::join!(trickle, others);
    // The connection is gone before the head is complete: a write fails (a reset), or at least a read sees the
    // end of it.
    if trickled.is_ok() {
        panic!("the whole head of {} bytes was accepted over {:?}", head.len(), started.elapsed());
    }
    closed(&mut slow).await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let sim = sim().await;
    let mut conn = TcpStream::connect(sim.addr()).await.expect("connects");
    conn.write_all(&keep_alive_get()).await.expect("writes");
    assert_eq!(read_answer(&mut conn).await.status, 200);
    // Idle for longer than the header timeout but less than the idle timeout: still open.
    tokio::time::sleep(HEADER * 2).await;
    conn.write_all(&keep_alive_get()).await.expect("writes");
    assert_eq!(read_answer(&mut conn).await.status, 200, "a connection idle for less than the idle timeout serves");
    let idle = Instant::now();
    closed(&mut conn).await;
    assert!(idle.elapsed() >= IDLE - Duration::from_millis(20), "not before the idle timeout: {:?}", idle.elapsed());
}

#[tokio::test]
async fn a_stalled_body_is_a_408() {
    let sim = sim().await;
    let mut conn = TcpStream::connect(sim.addr()).await.expect("connects");
    let mut partial = request(
        "PUT",
        "/",
        &[demo_auth(), ("Content-Type", "application/json".into()), ("Content-Length", "100".into())],
        b"",
    );
    partial.extend_from_slice(b"{\"description\": ");
    conn.write_all(&partial).await.expect("writes");
    let answer = read_answer(&mut conn).await;
    assert_eq!(answer.status, 408, "{}", answer.text);
    assert!(answer.text.contains("\"returnCode\":408"), "{}", answer.text);
    assert_eq!(sim.stats().count("Body.read", 408), 1);
}
