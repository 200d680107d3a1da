//! HTTP/1.1 written by hand, for requests a well-behaved client never sends: a length announced but no body, a
//! head trickled a byte at a time, a connection left silent.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long an exchange may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// `Authorization` for the default credentials.
pub fn demo_auth() -> (&'static str, String) {
    ("Authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("demo:demo")))
}

/// A request: the request line, `Host`, `Connection: close`, the headers given, a `Content-Length` for the body
/// unless the headers set a length or a transfer coding, then the body.
pub fn request(method: &str, target: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    let framed = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"));
    if !framed && !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A body in the chunked transfer coding, in chunks of 64 KiB.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// An answer: the status (0 when the connection closed without one) and the whole text.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub text: String,
}

fn status_of(text: &str) -> u16 {
    text.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// Sends `bytes` on a new connection (from a task of its own, so that an answer given before the request is
/// complete is read while the rest is still being written) and reads until the server closes.
pub async fn exchange(addr: SocketAddr, bytes: Vec<u8>) -> RawAnswer {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may answer and close before reading everything: a failed write is expected then.
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within {PATIENCE:?}; got {:?}", String::from_utf8_lossy(&received));
    writing.abort();
    let text = String::from_utf8_lossy(&received).into_owned();
    RawAnswer { status: status_of(&text), text }
}

/// Reads one answer from a kept-alive connection: the head, then `Content-Length` bytes of body.
pub async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |received: &[u8]| {
        let text = String::from_utf8_lossy(received);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (body.len() >= length).then_some(())
    };
    tokio::time::timeout(PATIENCE, async {
        while complete(&received).is_none() {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer in time");
    let text = String::from_utf8_lossy(&received).into_owned();
    RawAnswer { status: status_of(&text), text }
}

/// Waits until the server closes the connection (a read gives end of file or an error); panics after
/// [`PATIENCE`]. Whatever arrives before is discarded.
pub async fn closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
}
