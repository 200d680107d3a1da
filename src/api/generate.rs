//! `make crds`: every generated file of the repository, written from the code.

use super::crds::{CHART_CRDS_DIR, write_crds};
use super::{fixtures, reasons, reference};

/// Writes every generated file under `root`: `crds/<plural>.cimi.dev.yaml` (and the chart's copy in
/// [`CHART_CRDS_DIR`]), `docs/reasons.md`, `docs/admission.md` and `docs/api-reference.md` (what
/// `make crds` runs). Returns the paths written.
pub fn write_generated(root: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut written = write_crds(&root.join("crds"))?;
    written.extend(write_crds(&root.join(CHART_CRDS_DIR))?);
    let docs = root.join("docs");
    std::fs::create_dir_all(&docs)?;
    for (name, text) in [
        ("reasons.md", reasons::reasons_markdown()),
        ("admission.md", fixtures::admission_markdown()),
        ("api-reference.md", reference::reference_markdown()),
    ] {
        let path = docs.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}
