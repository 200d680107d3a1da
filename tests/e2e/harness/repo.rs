//! Files of the repository the tests read (the chart, examples, docs, the Dockerfile), and YAML streams.

use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use serde_json::Value;

/// A path of the repository, relative to its root.
pub fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every document of a YAML stream; a document that does not parse is an error, an empty one is skipped.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}
