//! HTTPS with a certificate from files (`--tls-cert/--tls-key`).

use cimi_operator::sim::{SimConfig, TlsFiles};

use super::{Api, instant, start};

#[tokio::test]
async fn serves_https_with_the_given_identity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).expect("a certificate");
    let cert_pem = certified.cert.pem();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let sim = start(SimConfig { tls: Some(TlsFiles { cert, key }), ..instant() }).await;
    assert!(sim.url().starts_with("https://127.0.0.1:"), "{}", sim.url());
    let mut api = Api::new(&sim);
    api.http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let cep = api.get("").await.json();
    assert_eq!(cep["baseURI"], sim.url());
    let untrusting = reqwest::Client::builder().build().expect("client");
    assert!(untrusting.get(sim.url()).send().await.is_err(), "an unknown CA is refused");
}
