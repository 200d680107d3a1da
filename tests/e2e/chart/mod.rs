//! The Helm chart (`charts/cimi-operator`), with helm and kubectl from the tool cache: rendered, installed on a real
//! API server, and its RBAC proved against what the operator really does.

mod install;
mod rbac;
mod render;
