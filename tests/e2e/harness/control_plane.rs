//! The control plane shared by every test of this binary, clients of it (admin and impersonating), and a
//! namespace of each test's own.

use std::sync::OnceLock;

use cimi_operator::devenv::{ControlPlane, ControlPlaneConfig};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane of this test binary, started on first use. It runs until the binary exits; its supervisor
/// stops every process then.
pub fn control_plane() -> &'static ControlPlane {
    let cp = CONTROL_PLANE.get_or_init(|| {
        // Started on a runtime of its own: the clients made during start-up die with it, the processes do not.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(ControlPlane::start(ControlPlaneConfig::default())).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("control plane start-up panicked".into()))
    });
    match cp {
        Ok(cp) => cp,
        Err(e) => panic!("the control plane did not start: {e}"),
    }
}

/// A new admin client for the current test's runtime.
pub async fn client() -> kube::Client {
    control_plane().client().await.expect("a client for the control plane")
}

/// A namespace of the test's own, deleted when dropped (best effort, in the background).
pub struct TestNamespace {
    pub name: String,
    client: kube::Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn new(client: &kube::Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", random_suffix());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns).await.expect("create test namespace");
        Self { name, client: client.clone() }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

/// Eight random hex digits, to keep names of concurrent tests apart.
pub fn random_suffix() -> String {
    use rand::Rng as _;
    let n: u32 = rand::rng().random();
    format!("{n:08x}")
}

/// A client of the shared control plane that impersonates `user` (such as
/// `system:serviceaccount:<ns>:<name>`), optionally with extra groups, for the current test's runtime.
pub async fn client_as(user: &str, groups: &[&str]) -> kube::Client {
    client_of_as(control_plane(), user, groups).await
}

/// A client of `cp` that impersonates `user` with `groups`.
pub async fn client_of_as(cp: &ControlPlane, user: &str, groups: &[&str]) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cp.kubeconfig_path()).expect("read kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_string());
    if !groups.is_empty() {
        config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    }
    kube::Client::try_from(config).expect("impersonating client")
}
