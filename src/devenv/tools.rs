//! Where the control-plane binaries live: the tool cache of `make tools`, environment overrides, and etcd from the
//! `etcd-bin-vendored` crate.

use std::path::{Path, PathBuf};

use super::error::Error;

/// The Kubernetes version the tool cache is provisioned for (`tools/provision.sh`).
pub const KUBE_VERSION: &str = "1.36.3";

/// One binary the launcher (or a test) needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// The API server, built by `make tools`.
    KubeApiserver,
    /// The controller manager, built by `make tools`.
    KubeControllerManager,
    /// kubectl, unpacked by `make tools`.
    Kubectl,
    /// helm, unpacked by `make tools`.
    Helm,
    /// etcd, shipped by the `etcd-bin-vendored` crate.
    Etcd,
    /// Prometheus's promtool (rule checks and rule tests), built by `make tools`.
    Promtool,
}

impl Tool {
    /// The file name in the tool cache.
    pub fn file_name(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "kube-apiserver",
            Tool::KubeControllerManager => "kube-controller-manager",
            Tool::Kubectl => "kubectl",
            Tool::Helm => "helm",
            Tool::Etcd => "etcd",
            Tool::Promtool => "promtool",
        }
    }

    /// The environment variable that overrides the binary's location.
    pub fn env_override(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "CIMI_KUBE_APISERVER",
            Tool::KubeControllerManager => "CIMI_KUBE_CONTROLLER_MANAGER",
            Tool::Kubectl => "CIMI_KUBECTL",
            Tool::Helm => "CIMI_HELM",
            Tool::Etcd => "CIMI_ETCD",
            Tool::Promtool => "CIMI_PROMTOOL",
        }
    }

    /// Finds the binary: the environment override, else etcd from its crate, else the tool cache. A missing
    /// binary is an error that says how to provision it.
    pub fn locate(self) -> Result<PathBuf, Error> {
        if let Some(path) = std::env::var_os(self.env_override()).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return if is_executable(&path) {
                Ok(path)
            } else {
                Err(Error::MissingTool(format!(
                    "{} is set to {}, which is not an executable file",
                    self.env_override(),
                    path.display()
                )))
            };
        }
        if self == Tool::Etcd {
            return etcd_bin_vendored::etcd_bin_path()
                .map(Path::to_path_buf)
                .map_err(|e| Error::MissingTool(format!("etcd: {e}; set CIMI_ETCD to an etcd binary")));
        }
        self.locate_in(&cache_dir())
    }

    /// Finds the binary in a given tool cache directory.
    pub fn locate_in(self, cache: &Path) -> Result<PathBuf, Error> {
        let path = cache.join(self.file_name());
        if is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::MissingTool(format!(
                "{} not found at {}: run `make tools` to provision the local control-plane binaries \
                 (or set {})",
                self.file_name(),
                path.display(),
                self.env_override()
            )))
        }
    }
}

/// The tool cache: `${XDG_CACHE_HOME:-$HOME/.cache}/cimi-operator/k8s-<version>/`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("cimi-operator").join(format!("k8s-{KUBE_VERSION}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
