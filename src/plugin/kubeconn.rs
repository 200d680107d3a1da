//! The Kubernetes connection, as kubectl makes it: `--kubeconfig` (else `KUBECONFIG`, else
//! `~/.kube/config`, else in-cluster), `--context`, `--as`/`--as-group`, and the namespace from `-n`,
//! else the context's, else `default`.

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::cli::GlobalArgs;
use super::error::PluginError;

/// A connected client and the scope of the command.
#[derive(Clone)]
pub struct Kube {
    /// The client.
    pub client: kube::Client,
    /// The namespace of the command (`-n`, else the context's, else `default`).
    pub namespace: String,
    /// `-A`: every namespace, where the command lists.
    pub all_namespaces: bool,
    /// Where the operator runs, which holds the Secrets of the cluster-scoped CimiProviders.
    pub operator_namespace: String,
}

impl Kube {
    /// Connects as the global options say.
    pub async fn connect(global: &GlobalArgs) -> Result<Self, PluginError> {
        let options = KubeConfigOptions { context: global.context.clone(), cluster: None, user: None };
        let mut config = match &global.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| PluginError::Usage(format!("cannot read the kubeconfig {}: {e}", path.display())))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| PluginError::Usage(format!("kubeconfig {}: {e}", path.display())))?
            }
            None => match kube::Config::from_kubeconfig(&options).await {
                Ok(config) => config,
                Err(e) if global.context.is_some() => return Err(PluginError::Usage(format!("kubeconfig: {e}"))),
                Err(_) => kube::Config::infer().await.map_err(|e| {
                    PluginError::Usage(format!("no usable kubeconfig or in-cluster configuration: {e}"))
                })?,
            },
        };
        if let Some(user) = &global.as_user {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !global.as_group.is_empty() {
            config.auth_info.impersonate_groups = Some(global.as_group.clone());
        }
        let namespace = global.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config)
            .map_err(|e| PluginError::Other(format!("cannot build the Kubernetes client: {e}")))?;
        Ok(Kube {
            client,
            namespace,
            all_namespaces: global.all_namespaces,
            operator_namespace: global.operator_namespace.clone(),
        })
    }

    /// The namespace the listing covers: `None` for every namespace.
    pub fn list_namespace(&self) -> Option<&str> {
        (!self.all_namespaces).then_some(self.namespace.as_str())
    }
}
