//! The control plane behaves like a real cluster for everything the operator relies on: CRDs, watches, the status
//! subresource with server-side apply, finalizers and garbage collection of owned objects.

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{CustomResource, CustomResourceExt as _, Resource as _, ResourceExt as _};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::harness::control_plane::{TestNamespace, client};
use crate::harness::wait::eventually;

/// A throwaway kind for the smoke test.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "smoke.cimi.dev", version = "v1", kind = "Widget", namespaced, status = "WidgetStatus")]
pub struct WidgetSpec {
    /// Anything.
    pub size: i32,
}

/// The widget's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    /// Set by the test through the status subresource.
    pub phase: Option<String>,
}

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn crd_watch_status_finalizer_and_garbage_collection() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "smoke").await;

    // Install a CRD and wait until it is served.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Widget::crd();
    let name = crd.metadata.name.clone().expect("crd name");
    crds.patch(&name, &PatchParams::apply("e2e-smoke").force(), &Patch::Apply(&crd)).await.expect("apply CRD");
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &ns.name);
    eventually("the Widget kind to be served", T, || {
        let widgets = widgets.clone();
        async move { widgets.list(&Default::default()).await.ok() }
    })
    .await;

    // A watcher sees the object we create.
    let mut stream = watcher(widgets.clone(), watcher::Config::default()).applied_objects().boxed();
    let w = Widget::new("w1", WidgetSpec { size: 3 });
    widgets.create(&PostParams::default(), &w).await.expect("create widget");
    let seen = tokio::time::timeout(T, async {
        while let Some(ev) = stream.next().await {
            if let Ok(obj) = ev
                && obj.name_any() == "w1"
            {
                return obj;
            }
        }
        panic!("watch stream ended");
    })
    .await
    .expect("the watcher delivered the new object");
    assert_eq!(seen.spec.size, 3);

    // The status subresource takes a server-side apply; the spec is untouched by it.
    let status = json!({"apiVersion": "smoke.cimi.dev/v1", "kind": "Widget", "status": {"phase": "Ready"}});
    widgets
        .patch_status("w1", &PatchParams::apply("e2e-smoke").force(), &Patch::Apply(&status))
        .await
        .expect("apply status");
    let got = widgets.get("w1").await.expect("get widget");
    assert_eq!(got.status.and_then(|s| s.phase).as_deref(), Some("Ready"));
    assert_eq!(got.spec.size, 3);

    // An owned ConfigMap.
    let owner = widgets.get("w1").await.expect("get widget");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("owned".into());
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: Widget::api_version(&()).into(),
        kind: Widget::kind(&()).into(),
        name: "w1".into(),
        uid: owner.uid().expect("uid"),
        ..Default::default()
    }]);
    cms.create(&PostParams::default(), &cm).await.expect("create owned configmap");

    // Deletion waits for the finalizer.
    let fin = json!({"metadata": {"finalizers": ["smoke.cimi.dev/hold"]}});
    widgets.patch("w1", &PatchParams::default(), &Patch::Merge(&fin)).await.expect("add finalizer");
    widgets.delete("w1", &DeleteParams::background()).await.expect("delete widget");
    let held = widgets.get("w1").await.expect("still there while the finalizer holds it");
    assert!(held.metadata.deletion_timestamp.is_some(), "deletion is pending");
    let unfin = json!({"metadata": {"finalizers": null}});
    widgets.patch("w1", &PatchParams::default(), &Patch::Merge(&unfin)).await.expect("drop finalizer");
    eventually("the widget to be gone", T, || {
        let widgets = widgets.clone();
        async move { matches!(widgets.get_opt("w1").await, Ok(None)).then_some(()) }
    })
    .await;

    // The garbage collector removes what it owned.
    eventually("the owned ConfigMap to be garbage-collected", T, || {
        let cms = cms.clone();
        async move { matches!(cms.get_opt("owned").await, Ok(None)).then_some(()) }
    })
    .await;
}
