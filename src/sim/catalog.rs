//! The catalog a simulator starts with: configurations, images and templates, by collection. The default is
//! the Primer's (configs tiny/small/medium, images WinXP SP2 / Windows 7 / Linux SUSE, Credential attributes
//! `userID` and `password`) plus volume, network and system templates. A catalog can be loaded from YAML or
//! JSON: `{"machineConfigs": [{"id": "tiny", "name": "tiny", "cpu": 1, …}], …, "credentialAttributes": […]}`;
//! each entry's `id` is its local id in its collection, and hrefs without a scheme are relative to the base URI.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::cimi::model::MetadataAttribute;

/// A catalog: entries by collection name (`machineConfigs`, `machineImages`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// The Credential extension attributes advertised in ResourceMetadata.
    #[serde(default)]
    pub credential_attributes: Vec<MetadataAttribute>,
    /// Entries by collection name.
    #[serde(flatten)]
    pub collections: BTreeMap<String, Vec<Map<String, Value>>>,
}

/// Why a catalog file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read.
    #[error("cannot read catalog {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a catalog.
    #[error("invalid catalog {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
}

impl Catalog {
    /// Loads a catalog from a YAML or JSON file (JSON is valid YAML).
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CatalogError::Read { path: path.display().to_string(), source })?;
        serde_yaml::from_str(&text)
            .map_err(|e| CatalogError::Parse { path: path.display().to_string(), message: e.to_string() })
    }

    /// The default catalog: the Primer's, plus volume, network and system templates.
    pub fn primer() -> Catalog {
        let t = "2012-01-01T12:00:00Z";
        let v = json!({
            "credentialAttributes": [
                {"name": "userID", "namespace": "http://example.com", "type": "string", "required": true},
                {"name": "password", "namespace": "http://example.com", "type": "string", "required": true}
            ],
            "machineConfigs": [
                {"id": "tiny", "name": "tiny", "description": "a teenie tiny one", "created": t, "updated": t,
                 "cpu": 1, "memory": 4000000, "disks": [{"capacity": 50000000, "format": "ext4"}]},
                {"id": "small", "name": "small", "description": "a small sized one", "created": t, "updated": t,
                 "cpu": 1, "memory": 8000000, "disks": [{"capacity": 500000000, "format": "ext4"}]},
                {"id": "medium", "name": "medium", "description": "a medium one", "created": t, "updated": t,
                 "cpu": 1, "memory": 16000000,
                 "disks": [{"capacity": 1000000000, "format": "ext4"}, {"capacity": 1000000000, "format": "ext4"}]}
            ],
            "machineImages": [
                {"id": "WinXP-SP2", "name": "WinXP SP2", "description": "Windows XP with Service Pack 2",
                 "created": t, "updated": t, "state": "AVAILABLE", "type": "IMAGE",
                 "imageLocation": {"href": "data/8934322"}},
                {"id": "Win7", "name": "Windows 7", "description": "Windows 7", "created": t, "updated": t,
                 "state": "AVAILABLE", "type": "IMAGE", "imageLocation": {"href": "data/8934344"}},
                {"id": "Linux-SUSE", "name": "Linux SUSE", "description": "Linux SUSE", "created": t, "updated": t,
                 "state": "AVAILABLE", "type": "IMAGE", "imageLocation": {"href": "data/8934311"}}
            ],
            "machineTemplates": [
                {"id": "small-suse", "name": "small-suse", "description": "a small SUSE machine, started",
                 "created": t, "updated": t, "initialState": "STARTED",
                 "machineConfig": {"href": "machineConfigs/small"},
                 "machineImage": {"href": "machineImages/Linux-SUSE"}}
            ],
            "volumeConfigs": [
                {"id": "10g", "name": "10g", "description": "10 GB, ext4", "created": t, "updated": t,
                 "type": "http://schemas.dmtf.org/cimi/1/mapped", "format": "ext4", "capacity": 10000000},
                {"id": "100g", "name": "100g", "description": "100 GB, unformatted", "created": t, "updated": t,
                 "type": "http://schemas.dmtf.org/cimi/1/mapped", "capacity": 100000000}
            ],
            "volumeImages": [
                {"id": "empty", "name": "empty", "description": "an empty disk", "created": t, "updated": t,
                 "state": "AVAILABLE", "imageLocation": {"href": "data/empty"}, "bootable": false}
            ],
            "volumeTemplates": [
                {"id": "data-10g", "name": "data-10g", "description": "a 10 GB data volume", "created": t,
                 "updated": t, "volumeConfig": {"href": "volumeConfigs/10g"}}
            ],
            "networkConfigs": [
                {"id": "private", "name": "private", "description": "a private network", "created": t,
                 "updated": t, "networkType": "PRIVATE", "mtu": 1500, "classOfService": "standard"},
                {"id": "public", "name": "public", "description": "a public network", "created": t,
                 "updated": t, "networkType": "PUBLIC", "mtu": 1500, "classOfService": "standard"}
            ],
            "networkTemplates": [
                {"id": "private", "name": "private", "description": "a private network, started", "created": t,
                 "updated": t, "networkConfig": {"href": "networkConfigs/private"}}
            ],
            "networkPortConfigs": [
                {"id": "access", "name": "access", "description": "an access port", "created": t, "updated": t,
                 "portType": "ACCESS", "classOfService": "standard"}
            ],
            "systemTemplates": [
                {"id": "web-tier", "name": "web-tier", "description": "two web machines on a private network",
                 "created": t, "updated": t,
                 "componentDescriptors": [
                    {"name": "net", "type": "http://schemas.dmtf.org/cimi/1/Network", "quantity": 1,
                     "networkTemplate": {"href": "networkTemplates/private"}},
                    {"name": "web", "type": "http://schemas.dmtf.org/cimi/1/Machine", "quantity": 2,
                     "machineTemplate": {"href": "machineTemplates/small-suse",
                        "networkInterfaces": [{"network": {"href": "#net"}, "state": "ACTIVE"}]}}
                 ]}
            ]
        });
        // The literal above is well-formed by construction; an error here is a bug caught by the tests.
        serde_json::from_value(v).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primer_catalog_is_complete() {
        let c = Catalog::primer();
        assert_eq!(c.credential_attributes.len(), 2);
        assert_eq!(c.collections["machineConfigs"].len(), 3);
        assert_eq!(c.collections["machineImages"].len(), 3);
        for key in ["volumeConfigs", "volumeTemplates", "networkConfigs", "networkTemplates", "systemTemplates"] {
            assert!(!c.collections[key].is_empty(), "{key}");
        }
    }
}
