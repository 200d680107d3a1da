//! The typed reads against cimi-sim: a page in normal form is typed from its bytes, a deviating one is read
//! through the normalisation, and either way `list_all` and `list_page` give what the JSON reads, typed, give.

use cimi_operator::cimi::client::{ReadBody, read_body, typed};
use cimi_operator::cimi::model::{
    Collection, MachineConfiguration, MachineImage, MachineTemplate, Resource, VolumeConfiguration,
};
use cimi_operator::cimi::normal_form::Expect;
use cimi_operator::cimi::query::Query;
use cimi_operator::cimi::{CimiClient, Format};
use cimi_operator::sim::Profile;
use http::{HeaderMap, HeaderValue, header};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use crate::primer::{config, sim};

/// `list_all::<T>` and `list_page::<T>` of the CEP collection `name` against the same reads as JSON, typed.
async fn reads_agree<T>(c: &CimiClient, name: &str)
where
    T: Resource + DeserializeOwned + PartialEq + Debug,
{
    let href = c.collection_url(name).await.expect("collection");
    let all = c.list_all::<T>(name, &Query::new()).await.expect("typed listing");
    let page = c.config().page_size;
    let values =
        c.list_values_at(&href, &Query::new(), T::TYPE_NAME, Some(T::COLLECTION_KEY), page).await.expect("json");
    let expected: Vec<T> = values.entries.into_iter().map(|v| typed(v, &href).expect("typed entry")).collect();
    assert!(!expected.is_empty(), "{name} has entries");
    assert_eq!(all.entries, expected, "{name}");
    assert_eq!((all.count, all.truncated), (values.count, values.truncated), "{name}");

    let q = Query::new().first(1).last(2);
    let one: Collection<T> = c.list_page(&href, &q).await.expect("typed page");
    let json = c.list_page_value(&href, &q, T::TYPE_NAME).await.expect("json page");
    assert_eq!(one, typed::<Collection<T>>(json, &href).expect("typed json page"), "{name}");
}

/// Whether the page the provider serves for `name` is in normal form, as the typed reads judge it.
async fn served_in_normal_form<T: Resource>(c: &CimiClient, name: &str) -> bool {
    let href = c.collection_url(name).await.expect("collection");
    let raw = reqwest::Client::new()
        .get(href)
        .basic_auth("demo", Some("demo"))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = read_body(&h, &raw, "u", Expect::Collection(T::TYPE_NAME)).expect("read");
    matches!(body, ReadBody::Normal(_))
}

async fn catalog_reads_agree(profile: Profile) {
    let s = sim(profile).await;
    let mut cfg = config(&s, Format::Json);
    cfg.page_size = 2;
    let c = CimiClient::connect(cfg).await.expect("connect");
    reads_agree::<MachineImage>(&c, "machineImages").await;
    reads_agree::<MachineConfiguration>(&c, "machineConfigs").await;
    reads_agree::<MachineTemplate>(&c, "machineTemplates").await;
    reads_agree::<VolumeConfiguration>(&c, "volumeConfigs").await;
    let normal = served_in_normal_form::<MachineImage>(&c, "machineImages").await;
    assert_eq!(normal, profile != Profile::Lenient1x, "{profile:?}: machineImages in normal form");
    s.stop().await;
}

#[tokio::test]
async fn typed_reads_agree_with_json_reads_on_a_strict_provider() {
    catalog_reads_agree(Profile::Strict).await;
}

#[tokio::test]
async fn typed_reads_agree_with_json_reads_on_a_lenient_provider() {
    catalog_reads_agree(Profile::Lenient1x).await;
}
