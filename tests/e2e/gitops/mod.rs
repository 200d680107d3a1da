//! The GitOps examples of `examples/gitops/`, read as Flux and Argo CD read them, and the health checks they
//! configure, run on objects as the operator writes them.

mod argocd;
mod flux;
mod health;
mod manifests;
