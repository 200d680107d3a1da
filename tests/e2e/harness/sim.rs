//! cimi-sim as the provider of a test. The Kubernetes side: a credentials Secret and a CimiProvider pointed at
//! the sim, waited for until Ready. The provider side, seen past the operator: a CIMI client, the resources of a
//! collection, one resource, its EventLog, an action on it, resources made by hand (as another tool would have),
//! faults to inject, and what the sim counted.

use cimi_operator::api::common::{ManagementPolicy, SecretRef};
use cimi_operator::api::provider::{ImportRight, ProviderSettings};
use cimi_operator::api::{CimiProvider, CimiProviderSpec};
use cimi_operator::cimi::model::type_uri;
use cimi_operator::cimi::query::Query;
use cimi_operator::cimi::{Auth, CimiClient, ClientConfig, Secret as CimiSecret};
use cimi_operator::sim::{FaultRule, SimHandle, SimStats};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::control_plane::random_suffix;
use super::objects::secret;
use super::operator::TestOperator;
use super::wait::wait_ready;

/// A credentials Secret in the operator namespace, carrying the test's label.
pub fn credentials_secret(op: &TestOperator, name: &str, user: &str, password: &str) -> Secret {
    secret(name, Some(&op.labels()), &[("username", user), ("password", password)])
}

/// The spec of a CimiProvider for a sim at `endpoint`, polled every second, its credentials in the Secret
/// `secret` of the operator's namespace. The test platform grants every namespace both kinds of import.
pub fn provider_spec(endpoint: &str, secret: &str) -> CimiProviderSpec {
    CimiProviderSpec { settings: provider_settings(endpoint, secret), allowed_namespaces: None }
}

/// The settings of a provider (either kind) for a sim at `endpoint`, with its credentials in `secret`.
pub fn provider_settings(endpoint: &str, secret: &str) -> ProviderSettings {
    ProviderSettings {
        endpoint: endpoint.to_string(),
        credential_secret_ref: Some(SecretRef::new(secret)),
        poll_interval: "1s".into(),
        // cimi-sim serves plain http on loopback.
        allow_plain_http: true,
        import_rights: Some(vec![ImportRight {
            namespaces: None,
            management_policies: vec![ManagementPolicy::ObserveOnly, ManagementPolicy::Managed],
        }]),
        ..ProviderSettings::default()
    }
}

/// A CimiProvider for a sim, polled every second, with the test's label.
pub fn provider_for(op: &TestOperator, name: &str, endpoint: &str, secret: &str) -> CimiProvider {
    let mut p = CimiProvider::new(name, provider_spec(endpoint, secret));
    p.metadata.labels = Some(op.labels());
    p
}

/// A Ready provider for a fresh sim, in the test's namespace, polled every second; returns its name.
pub async fn ready_provider(client: &kube::Client, op: &TestOperator, ns: &str, sim: &SimHandle) -> String {
    ready_provider_polled(client, op, ns, sim, "1s").await
}

/// A Ready provider for a fresh sim, polled every `poll_interval`; returns its name.
pub async fn ready_provider_polled(
    client: &kube::Client,
    op: &TestOperator,
    ns: &str,
    sim: &SimHandle,
    poll_interval: &str,
) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets.create(&PostParams::default(), &credentials_secret(op, "creds", "demo", "demo")).await.expect("secret");
    let providers: Api<CimiProvider> = Api::all(client.clone());
    let name = format!("prov-{}", random_suffix());
    let mut provider = provider_for(op, &name, &sim.url(), "creds");
    provider.spec.settings.poll_interval = poll_interval.into();
    providers.create(&PostParams::default(), &provider).await.expect("provider");
    wait_ready(&providers, &name, "True", "Reachable").await;
    name
}

/// A CIMI client for a sim (demo/demo), to look at the provider side.
pub async fn sim_client(sim: &SimHandle) -> CimiClient {
    let mut config = ClientConfig::new("test", &sim.url()).expect("config");
    config.transport.auth = Auth::Basic { username: "demo".into(), password: CimiSecret::new("demo") };
    config.transport.allow_plain_http = true;
    CimiClient::connect(config).await.expect("connect to the sim")
}

/// Every resource of a collection on the sim, as JSON.
pub async fn provider_list(cimi: &CimiClient, collection: &str) -> Vec<Value> {
    let url = cimi.collection_url(collection).await.expect("collection");
    let page = cimi.list_page_value(&url, &Query::new(), "").await.expect("list");
    cimi_operator::controller::resource::reads::entries(&page)
}

/// The provider resource (JSON) with this href.
pub async fn provider_resource(cimi: &CimiClient, href: &str) -> Value {
    cimi.get_value(&cimi.resolve(href).await.expect("href")).await.expect("get")
}

/// Every event of a provider resource's EventLog.
pub async fn provider_events(cimi: &CimiClient, href: &str) -> Vec<Value> {
    let resource = provider_resource(cimi, href).await;
    let log = resource["eventLog"]["href"].as_str().expect("an EventLog").to_string();
    let log = provider_resource(cimi, &log).await;
    let events = log["events"]["href"].as_str().expect("events").to_string();
    let url = cimi.resolve(&events).await.expect("events url");
    let page = cimi.list_page_value(&url, &Query::new(), "Event").await.expect("list events");
    cimi_operator::controller::resource::reads::entries(&page)
}

/// The href of the catalog entry `name` of `collection`.
async fn catalog_href(cimi: &CimiClient, collection: &str, name: &str) -> String {
    provider_list(cimi, collection)
        .await
        .into_iter()
        .find(|e| e["name"] == json!(name))
        .and_then(|e| e["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{collection} has no {name}"))
}

/// Creates a resource on the provider directly (as another tool would have) and returns its href.
async fn create_on_provider(cimi: &CimiClient, collection: &str, body: Value) -> String {
    let coll = cimi.collection_url(collection).await.expect("collection");
    let accepted = cimi.create(collection, &body).await.expect("create on the provider");
    cimi.created_href(&accepted, &coll).await.expect("created href").expect("an href").to_string()
}

/// A started machine made on the provider by hand (`tiny`, `Linux SUSE`, owner `legacy`); returns its href.
pub async fn legacy_machine(cimi: &CimiClient, name: &str) -> String {
    machine_by_hand(cimi, name, json!({"owner": "legacy"})).await
}

/// A started machine made on the provider by hand with these `properties` (tags of some cluster, say); returns
/// its href.
pub async fn machine_by_hand(cimi: &CimiClient, name: &str, properties: Value) -> String {
    let config = catalog_href(cimi, "machineConfigs", "tiny").await;
    let image = catalog_href(cimi, "machineImages", "Linux SUSE").await;
    create_on_provider(
        cimi,
        "machines",
        json!({
            "resourceURI": type_uri("MachineCreate"), "name": name, "description": "made by hand",
            "properties": properties,
            "machineTemplate": {"machineConfig": {"href": config}, "machineImage": {"href": image}, "initialState": "STARTED"}
        }),
    )
    .await
}

/// A volume made on the provider by hand (owner `legacy`); returns its href.
pub async fn legacy_volume(cimi: &CimiClient, name: &str) -> String {
    create_on_provider(
        cimi,
        "volumes",
        json!({
            "resourceURI": type_uri("VolumeCreate"), "name": name, "properties": {"owner": "legacy"},
            "volumeTemplate": {"volumeConfig": {"resourceURI": type_uri("VolumeConfiguration"), "capacity": 1000}}
        }),
    )
    .await
}

/// A private network made on the provider by hand (owner `legacy`); returns its href.
pub async fn legacy_network(cimi: &CimiClient, name: &str) -> String {
    create_on_provider(
        cimi,
        "networks",
        json!({
            "resourceURI": type_uri("NetworkCreate"), "name": name, "properties": {"owner": "legacy"},
            "networkTemplate": {"networkConfig": {"resourceURI": type_uri("NetworkConfiguration"), "networkType": "PRIVATE"}}
        }),
    )
    .await
}

/// Runs the action `action` (start, stop, ...) on the provider resource `href`, past the operator.
pub async fn provider_action(cimi: &CimiClient, href: &str, action: &str) {
    let url = cimi.resolve(href).await.expect("href");
    cimi.action_href(&url, action, serde_json::Map::new()).await.unwrap_or_else(|e| panic!("{action} on {href}: {e}"));
}

/// Nothing is left on the provider of a system and its members: its systems, machines, volumes and networks
/// collections are empty.
pub async fn assert_nothing_left(cimi: &CimiClient) {
    for collection in ["systems", "machines", "volumes", "networks"] {
        let left = provider_list(cimi, collection).await;
        assert!(left.is_empty(), "{collection} left on the provider: {left:?}");
    }
}

/// A fault rule of the sim, from its JSON form.
pub fn fault(value: Value) -> FaultRule {
    serde_json::from_value(value).expect("a fault rule")
}

/// Every create the provider answered (an `add` on any collection: resources, attachments, interfaces).
pub fn creates(stats: &SimStats) -> u64 {
    stats.requests.iter().filter(|(op, _)| op.ends_with(".add")).flat_map(|(_, by)| by.values()).sum()
}
