//! TLS: a provider with a certificate from its own CA is refused until the CA bundle is given, and is
//! reached with verification explicitly switched off (the lab opt-in).
#![cfg(feature = "devenv")]

use std::sync::Arc;

use cimi_operator::cimi::{CimiClient, CimiError, ClientConfig};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::json;

/// An HTTPS CIMI endpoint serving only its CloudEntryPoint; returns its URL and its certificate (PEM).
async fn https_provider() -> (String, String) {
    cimi_operator::cimi::transport::install_crypto_provider();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert_pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let base = format!("https://localhost:{port}/cimi/");
    let cep = json!({"resourceURI": "http://schemas.dmtf.org/cimi/1/CloudEntryPoint", "id": base, "baseURI": base,
                     "machines": {"href": "machines"}})
    .to_string();
    let app = axum::Router::new().route(
        "/cimi/",
        axum::routing::get(move || {
            let cep = cep.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], cep) }
        }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    (base, cert_pem)
}

#[tokio::test]
async fn a_private_ca_is_refused_then_trusted_through_the_bundle() {
    let (url, ca) = https_provider().await;
    let e = CimiClient::connect(ClientConfig::new("tls", &url).expect("config")).await.expect_err("unknown CA");
    assert!(matches!(e, CimiError::Unavailable { status: None, .. }), "{e}");

    let mut cfg = ClientConfig::new("tls", &url).expect("config");
    cfg.transport.ca_bundle_pem = Some(ca.into_bytes());
    let c = CimiClient::connect(cfg).await.expect("trusted through the CA bundle");
    assert!(c.discovery().await.expect("cep").supports("machines"));

    let mut cfg = ClientConfig::new("tls", &url).expect("config");
    cfg.transport.insecure_skip_tls_verify = true;
    CimiClient::connect(cfg).await.expect("verification off, on purpose");
}

/// `caBundleReplacesSystemRoots`: the provider's own CA alone is trusted, and it is enough; without a bundle
/// the option is refused up front (it would trust nothing).
#[tokio::test]
async fn a_ca_bundle_can_replace_the_system_roots() {
    let (url, ca) = https_provider().await;
    let mut cfg = ClientConfig::new("tls", &url).expect("config");
    cfg.transport.ca_bundle_pem = Some(ca.clone().into_bytes());
    cfg.transport.ca_bundle_replaces_system_roots = true;
    let c = CimiClient::connect(cfg).await.expect("trusted through the bundle alone");
    assert!(c.discovery().await.expect("cep").supports("machines"));

    // Another endpoint with its own CA is refused: the bundle is the only root.
    let (other, _) = https_provider().await;
    let mut cfg = ClientConfig::new("tls", &other).expect("config");
    cfg.transport.ca_bundle_pem = Some(ca.into_bytes());
    cfg.transport.ca_bundle_replaces_system_roots = true;
    let e = CimiClient::connect(cfg).await.expect_err("not signed by the bundle");
    assert!(matches!(e, CimiError::Unavailable { status: None, .. }), "{e}");

    let mut cfg = ClientConfig::new("tls", &url).expect("config");
    cfg.transport.ca_bundle_replaces_system_roots = true;
    assert!(matches!(CimiClient::new(cfg), Err(CimiError::Config(_))), "no bundle, no roots: refused");
}
