//! What can go wrong while starting or using the local control plane.

use std::path::PathBuf;

/// What can go wrong while starting or using the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A binary is missing; the message says how to provision it.
    #[error("{0}")]
    MissingTool(String),
    /// A process could not be started.
    #[error("cannot start {0}: {1}")]
    Spawn(String, #[source] std::io::Error),
    /// A process exited or did not become ready; the message carries the tail of its log.
    #[error("{component} {what}; last lines of {log}:\n{tail}")]
    Component {
        /// etcd, kube-apiserver or kube-controller-manager.
        component: &'static str,
        /// What happened.
        what: String,
        /// The component's log file.
        log: String,
        /// Its last lines.
        tail: String,
    },
    /// A file operation failed.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The Kubernetes client failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// A CRD file could not be read.
    #[error("invalid CRD file {0}: {1}")]
    Crd(PathBuf, String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
