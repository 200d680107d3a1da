//! Reads (GET): a resource, the CloudEntryPoint or a collection as served, with the `operations` allowed in
//! the current state, and the query applied (`$filter`, `$orderby`, paging, `$expand`, `$select` with path
//! notation); plus the fast path that serializes a stored resource straight to JSON.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::data::{Store, Stored, href};
use super::protocol::{Outcome, ReadQuery, Target};
use super::schema::{BY_TEMPLATE, BY_VALUE, COLLECTIONS, JOB_ONLY};
use crate::cimi::model::{self as m, action_uri, type_uri};
use crate::sim::config::Profile;
use crate::sim::error::{SimError, not_found};
use crate::sim::{lifecycle, query};

impl Store {
    /// Whether a machine or system in `state` may be deleted: in any stable state, except on the lenient-1x
    /// profile, which (as real 1.x providers do) deletes only stopped ones (and broken ones, in ERROR).
    pub(super) fn deletable_in(&self, state: &str) -> bool {
        self.profile != Profile::Lenient1x || matches!(state, "STOPPED" | "ERROR")
    }

    /// The operations allowed now on a resource.
    pub(super) fn operations(&self, path: &str, st: &Stored) -> Vec<Value> {
        let id = self.abs(path);
        let mut ops = Vec::new();
        let op = |rel: &str, href: &str| json!({"rel": rel, "href": href});
        let state = st.state();
        let lenient = self.profile == Profile::Lenient1x;
        let delete_ops = |ops: &mut Vec<Value>| {
            ops.push(op("delete", &id));
            if lenient {
                ops.push(op(&action_uri("delete"), &id));
            }
        };
        match st.type_name.as_str() {
            "Machine" => {
                if lifecycle::MACHINE_STABLE.contains(&state) {
                    ops.push(op("edit", &id));
                    if self.deletable_in(state) {
                        delete_ops(&mut ops);
                    }
                }
                for a in lifecycle::machine_actions(state) {
                    if a == "capture" {
                        ops.push(op(&action_uri(a), &self.abs("machineImages")));
                    } else {
                        ops.push(op(&action_uri(a), &id));
                    }
                }
            }
            "Network" | "NetworkPort" => {
                if matches!(state, "STARTED" | "STOPPED" | "ERROR") {
                    ops.push(op("edit", &id));
                    delete_ops(&mut ops);
                }
                for a in lifecycle::network_actions(state) {
                    ops.push(op(&action_uri(a), &id));
                }
            }
            "System" => {
                if !matches!(state, "CREATING" | "DELETING") {
                    ops.push(op("edit", &id));
                    if self.deletable_in(&self.system_state(path, state)) {
                        delete_ops(&mut ops);
                    }
                }
                for a in self.system_actions(path) {
                    ops.push(op(&action_uri(a), &id));
                }
            }
            "Volume" => {
                if matches!(state, "AVAILABLE" | "ERROR") {
                    ops.push(op("edit", &id));
                    delete_ops(&mut ops);
                }
                // 2.0's snapshot operation, beside the 1.x way (a VolumeImage POSTed to volumeImages).
                if state == "AVAILABLE" {
                    ops.push(op(&action_uri("snapshot"), &id));
                }
            }
            "Job" => {
                ops.push(op("edit", &id));
                delete_ops(&mut ops);
                if lifecycle::job_stoppable(state) {
                    ops.push(op(&action_uri("stop"), &id));
                }
            }
            "MachineNetworkInterface" => delete_ops(&mut ops),
            "ResourceMetadata"
            | "Disk"
            | "MachineNetworkInterfaceAddress"
            | "Meter"
            | "Sample"
            | "Event"
            | "EventLog" => {}
            "MachineVolume" => delete_ops(&mut ops),
            _ => {
                ops.push(op("edit", &id));
                delete_ops(&mut ops);
            }
        }
        ops
    }

    /// A resource as served.
    pub fn render(&self, path: &str, st: &Stored) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("resourceURI".into(), Value::String(type_uri(&st.type_name)));
        out.insert("id".into(), Value::String(self.abs(path)));
        for (k, v) in &st.doc {
            out.insert(k.clone(), v.clone());
        }
        if st.type_name == "System" {
            out.insert("state".into(), Value::String(self.system_state(path, st.state())));
        }
        let ops = self.operations(path, st);
        if !ops.is_empty() {
            out.insert("operations".into(), Value::Array(ops));
        }
        out
    }

    /// The CloudEntryPoint as served.
    pub(super) fn render_cep(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("resourceURI".into(), Value::String(type_uri("CloudEntryPoint")));
        out.insert("id".into(), Value::String(self.base.clone()));
        out.insert("baseURI".into(), Value::String(self.base.clone()));
        for (k, v) in &self.cep {
            out.insert(k.clone(), v.clone());
        }
        for (name, _) in COLLECTIONS {
            if (!self.profile.jobs() && JOB_ONLY.contains(name)) || self.cep_omit.iter().any(|o| o == name) {
                continue;
            }
            out.insert(name.to_string(), json!({"href": self.abs(name)}));
        }
        out.insert("operations".into(), json!([{"rel": "edit", "href": self.base}]));
        out
    }

    /// Where to POST to add to a collection, if it can be added to.
    pub(super) fn collection_add_href(&self, path: &str, item_type: &str) -> Option<String> {
        let addable = match item_type {
            "MachineVolume" | "MachineNetworkInterface" => true,
            t => BY_VALUE.contains(&t) || BY_TEMPLATE.contains(&t),
        };
        if !addable {
            return None;
        }
        if item_type == "MachineVolume" && self.profile == Profile::Lenient1x {
            let owner = path.strip_suffix("/volumes").unwrap_or(path);
            return Some(self.abs(&format!("{owner}/volumeAttachments")));
        }
        Some(self.abs(path))
    }

    /// A collection as served, with the query applied.
    pub fn render_collection(&self, path: &str, q: &ReadQuery) -> Map<String, Value> {
        let Some(coll) = self.colls.get(path) else {
            return Map::new();
        };
        let rendered_attrs = ["id", "resourceURI", "operations"];
        let render_first = !q.orderby.is_empty()
            || coll.item_type == "System"
            || q.filters.iter().any(|f| rendered_attrs.iter().any(|a| f.mentions(a)));
        let (count, mut entries) = if render_first {
            let mut entries: Vec<Map<String, Value>> = coll
                .members
                .values()
                .filter_map(|p| self.resources.get(p).map(|st| self.render(p, st)))
                .filter(|doc| q.filters.iter().all(|f| f.matches(doc)))
                .collect();
            let count = entries.len();
            query::sort(&mut entries, &q.orderby);
            let range = if q.ignore_paging { 0..count } else { query::page_range(q.first, q.last, count) };
            (count, entries.drain(range).collect::<Vec<_>>())
        } else {
            // Filter on the stored attributes (through the property index where a filter names a property) and
            // render only the page served.
            let matching: Vec<(&String, &Stored)> = match self.indexed_matches(path, &q.filters) {
                Some(found) => found,
                None => coll
                    .members
                    .values()
                    .filter_map(|p| self.resources.get(p).map(|st| (p, st)))
                    .filter(|(_, st)| q.filters.iter().all(|f| f.matches(&st.doc)))
                    .collect(),
            };
            let count = matching.len();
            let range = if q.ignore_paging { 0..count } else { query::page_range(q.first, q.last, count) };
            let page = matching[range].iter().map(|(p, st)| self.render(p, st)).collect::<Vec<_>>();
            (count, page)
        };
        if let Some(max) = q.truncate {
            entries.truncate(max);
        }
        let key = m::xml_codec::entries_key(&coll.item_type);
        let coll_attrs = ["id", "count", "operations", key.as_str()];
        let selecting = !q.select.is_empty() && !q.select.iter().any(|s| s == "*");
        // Names that are not collection attributes apply to each entry, as do paths through the entries
        // (`machines/name`: path notation).
        let entry_names: Vec<String> = q
            .select
            .iter()
            .filter(|n| !coll_attrs.contains(&n.as_str()))
            .map(|n| n.strip_prefix(&format!("{key}/")).map_or_else(|| n.clone(), str::to_string))
            .collect();
        for e in &mut entries {
            if let Some(expand) = &q.expand {
                self.expand(e, expand);
            }
            if selecting && !entry_names.is_empty() {
                query::select(e, &entry_names);
            }
        }
        let mut out = Map::new();
        out.insert("resourceURI".into(), Value::String(type_uri(&format!("{}Collection", coll.item_type))));
        out.insert("id".into(), Value::String(self.abs(path)));
        out.insert("count".into(), json!(count));
        if !entries.is_empty() {
            out.insert(key.clone(), Value::Array(entries.into_iter().map(Value::Object).collect()));
        }
        if let Some(add) = self.collection_add_href(path, &coll.item_type) {
            out.insert("operations".into(), json!([{"rel": "add", "href": add}]));
        }
        if selecting {
            let keep: Vec<String> = q
                .select
                .iter()
                .filter(|n| coll_attrs.contains(&n.as_str()))
                .cloned()
                .chain((!entry_names.is_empty()).then(|| key.clone()))
                .collect();
            query::select(&mut out, &keep);
        }
        out
    }

    /// Inlines referenced resources and collections (`$expand`; empty or `*` = all). Path notation (the
    /// `QueryPathNotation` capability) reaches further: `networkInterfaces/addresses/address` inlines the
    /// interfaces, in each of them its addresses collection, and in each of those entries its Address.
    pub(super) fn expand(&self, doc: &mut Map<String, Value>, names: &[String]) {
        let mut ancestors: Vec<String> =
            doc.get("id").and_then(Value::as_str).map(str::to_string).into_iter().collect();
        self.expand_within(doc, names, &mut ancestors);
    }

    /// [`Store::expand`] below the resources in `ancestors`, which are not inlined again (a meter's
    /// `targetResource` is the machine it was reached from): a path's cost stays bounded by its length.
    fn expand_within(&self, doc: &mut Map<String, Value>, names: &[String], ancestors: &mut Vec<String>) {
        let all = names.is_empty() || names.iter().any(|n| n == "*");
        let keys: Vec<String> = doc.keys().cloned().collect();
        for key in keys {
            if key == "operations" {
                continue;
            }
            // The rests of the paths through this attribute (`addresses/address` for `networkInterfaces`).
            let rests: Vec<String> = names
                .iter()
                .filter_map(|n| n.strip_prefix(key.as_str())?.strip_prefix('/').map(str::to_string))
                .filter(|r| !r.is_empty())
                .collect();
            if !all && rests.is_empty() && !names.contains(&key) {
                continue;
            }
            let Some(h) = doc.get(&key).and_then(href).map(str::to_string) else {
                continue;
            };
            if ancestors.contains(&h) {
                continue;
            }
            let path = self.path_of(&h);
            ancestors.push(h.clone());
            let inline = match self.target(&path) {
                Target::Resource(_) => self.resources.get(&path).map(|st| {
                    let mut d = self.render(&path, st);
                    if !rests.is_empty() {
                        self.expand_within(&mut d, &rests, ancestors);
                    }
                    d
                }),
                Target::Collection(_) => {
                    let mut c = self.render_collection(&path, &ReadQuery::default());
                    if !rests.is_empty() {
                        for entries in c.values_mut().filter_map(Value::as_array_mut) {
                            for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                                let id = e.get("id").and_then(Value::as_str).map(str::to_string);
                                let pushed = id.filter(|id| !ancestors.contains(id)).map(|id| ancestors.push(id));
                                self.expand_within(e, &rests, ancestors);
                                if pushed.is_some() {
                                    ancestors.pop();
                                }
                            }
                        }
                    }
                    Some(c)
                }
                _ => None,
            };
            ancestors.pop();
            if let Some(mut inline) = inline {
                inline.remove("id");
                inline.remove("resourceURI");
                inline.insert("href".into(), Value::String(h));
                doc.insert(key, Value::Object(inline));
            }
        }
    }

    /// GET of one resource in JSON without `$select` or `$expand`, serialized straight from the stored document
    /// (no intermediate map: the common request costs a third of the allocations). `None` when the fast path
    /// does not apply (no such resource, or a System, whose state is computed).
    pub fn read_json(&self, path: &str) -> Option<Outcome> {
        let st = self.resources.get(path).filter(|st| st.type_name != "System")?;
        let ops = self.operations(path, st);
        let view = JsonView { type_uri: type_uri(&st.type_name), id: self.abs(path), doc: &st.doc, ops: &ops };
        let raw = serde_json::to_vec(&view).ok()?;
        Some(Outcome { status: 200, etag: Some(format!("\"{}\"", st.version)), raw: Some(raw), ..Default::default() })
    }

    /// GET of any path.
    pub fn read(&self, path: &str, q: &ReadQuery) -> Result<Outcome, SimError> {
        let mut doc = match self.target(path) {
            Target::Cep => self.render_cep(),
            Target::Resource(_) => {
                let st = self.resources.get(path).ok_or_else(|| not_found(path))?;
                let mut d = self.render(path, st);
                if let Some(expand) = &q.expand {
                    self.expand(&mut d, expand);
                }
                d
            }
            Target::Collection(_) => {
                let real = if path.ends_with("/volumeAttachments") {
                    path.replace("/volumeAttachments", "/volumes")
                } else {
                    path.to_string()
                };
                return Ok(Outcome {
                    status: 200,
                    body: Some(Value::Object(self.render_collection(&real, q))),
                    ..Default::default()
                });
            }
            Target::Missing => return Err(not_found(path)),
        };
        query::select(&mut doc, &q.select);
        Ok(Outcome { status: 200, body: Some(Value::Object(doc)), etag: self.etag(path), ..Default::default() })
    }
}

/// A stored resource as served, for serialization without copying it (see [`Store::read_json`]); the same
/// attributes as [`Store::render`].
struct JsonView<'a> {
    type_uri: String,
    id: String,
    doc: &'a Map<String, Value>,
    ops: &'a [Value],
}

impl Serialize for JsonView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("resourceURI", &self.type_uri)?;
        m.serialize_entry("id", &self.id)?;
        for (k, v) in self.doc {
            if !matches!(k.as_str(), "resourceURI" | "id" | "operations") {
                m.serialize_entry(k, v)?;
            }
        }
        if !self.ops.is_empty() {
            m.serialize_entry("operations", self.ops)?;
        }
        m.end()
    }
}
