//! The objects the tests create, built with the test's label so that the test's operator serves them: machines
//! from the sim's catalog, volumes, Secrets.

use std::collections::BTreeMap;

use cimi_operator::api::common::{CatalogRef, ProviderRef};
use cimi_operator::api::machine::MachineTemplateSpec;
use cimi_operator::api::{CimiMachine, CimiMachineSpec, CimiVolume, CimiVolumeSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

use super::operator::TestOperator;

/// A started CimiMachine of the catalog's `small` config and `Linux SUSE` image, with the test's label.
pub fn machine(op: &TestOperator, name: &str, provider: &str) -> CimiMachine {
    machine_from(op, name, provider, "small", "Linux SUSE")
}

/// A started CimiMachine of the catalog entries `config` and `image` (by name), with the test's label.
pub fn machine_from(op: &TestOperator, name: &str, provider: &str, config: &str, image: &str) -> CimiMachine {
    let mut m = CimiMachine::new(
        name,
        CimiMachineSpec {
            provider_ref: ProviderRef::cluster(provider),
            template: Some(MachineTemplateSpec {
                machine_config: Some(CatalogRef::by_name(config)),
                machine_image: Some(CatalogRef::by_name(image)),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    m.metadata.labels = Some(op.labels());
    m
}

/// A CimiVolume of 1Gi, with the test's label.
pub fn volume(op: &TestOperator, name: &str, provider: &str) -> CimiVolume {
    let mut v = CimiVolume::new(
        name,
        CimiVolumeSpec {
            provider_ref: ProviderRef::cluster(provider),
            capacity: Some(Quantity("1Gi".into())),
            ..Default::default()
        },
    );
    v.metadata.labels = Some(op.labels());
    v
}

/// A Secret named `name` holding `data`, with `labels` (Secrets are watched by label: a Secret the operator
/// must see a change of carries the test's label).
pub fn secret(name: &str, labels: Option<&BTreeMap<String, String>>, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta { name: Some(name.into()), labels: labels.cloned(), ..Default::default() },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()),
        ..Default::default()
    }
}
