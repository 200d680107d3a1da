//! What the client writes to the logs: one span per request with method, href, status and duration; a loud
//! warning for the insecure TLS opt-in; never a credential.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cimi_operator::cimi::model::Machine;
use cimi_operator::cimi::query::Query;
use cimi_operator::cimi::{Auth, CimiClient, ClientConfig, Secret};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::scripted::Scripted;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn spans_name_the_request_and_never_the_credentials() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = Scripted::start().await;
    let mut cfg = ClientConfig::new("logged", &s.cep()).expect("config");
    cfg.transport.auth = Auth::Bearer(Secret::new("tok-SECRET-42"));
    cfg.transport.allow_plain_http = true;
    let c = CimiClient::connect(cfg).await.expect("connect");
    let _ = c.list_all::<Machine>("machines", &Query::new()).await.expect_err("401 for a bearer token");
    let mut cfg = ClientConfig::new("lab", &s.cep()).expect("config");
    cfg.transport.auth = Auth::Basic { username: "joe".into(), password: Secret::new("pw-SECRET-43") };
    cfg.transport.insecure_skip_tls_verify = true;
    cfg.transport.allow_plain_http = true;
    let c = CimiClient::connect(cfg).await.expect("connect");
    let _ = c.list_all::<Machine>("machines", &Query::new()).await;

    let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
    let close = text
        .lines()
        .find(|l| l.contains("cimi_request") && l.contains("status=401"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(close.contains("method=GET") && close.contains("machines") && close.contains("duration_ms="), "{close}");
    assert!(text.contains("provider=logged"));
    assert!(text.contains("TLS CERTIFICATE VERIFICATION IS OFF") && text.contains("WARN"), "{text}");
    for secret in ["tok-SECRET-42", "pw-SECRET-43", "am9lOnB3LVNFQ1JFVC00Mw"] {
        assert!(!text.contains(secret), "{secret} leaked into the logs");
    }
}
