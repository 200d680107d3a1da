//! The local control plane launcher.
