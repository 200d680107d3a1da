//! The store's side of persistence: the changes since the last journal record (the resources and collections
//! written, and the small bookkeeping that is not a resource), applying such a record on replay, and rebuilding
//! what is derived rather than stored (collection membership, sub-collections).
//!
//! A record holds only what changed, so its size (and the cost of writing it) depends on the operation, not on
//! how many resources the provider holds. Collection membership is never journaled: it follows from each
//! resource's `coll`, `also` and `seq`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::data::Pending;
use super::data::{Coll, Store, Stored};
use crate::sim::config::Profile;

/// A collection without its members (which are derived from the resources).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollMeta {
    /// The type of its entries.
    pub item_type: String,
    /// The resource it belongs to (sub-collections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The bookkeeping that is not a resource: small, and bounded by the operations in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Globals {
    seq: u64,
    pending: Vec<Pending>,
    parents: Vec<(String, String)>,
    cep: Map<String, Value>,
    cep_version: u64,
}

/// One journal record: what one request (or one batch of due transitions) changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Resources written (their whole new value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub put: Vec<(String, Stored)>,
    /// Resources removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub del: Vec<String>,
    /// Collections created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub colls: Vec<(String, CollMeta)>,
    /// Collections removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_colls: Vec<String>,
    /// The bookkeeping after the change.
    pub globals: Globals,
}

impl Store {
    /// Starts remembering what changes, for [`Store::take_changes`] (persisted simulators only: otherwise
    /// nothing would ever drain the list).
    pub fn track_changes(&mut self) {
        self.resources.track(true);
        self.colls.track(true);
    }

    /// What changed since the last call, as a journal record; `None` when nothing did.
    pub fn take_changes(&mut self) -> Option<Record> {
        let res = self.resources.take_dirty();
        let colls = self.colls.take_dirty();
        if res.is_empty() && colls.is_empty() {
            return None;
        }
        let mut rec = Record {
            put: Vec::new(),
            del: Vec::new(),
            colls: Vec::new(),
            drop_colls: Vec::new(),
            globals: self.globals(),
        };
        for path in res {
            match self.resources.get(&path) {
                Some(st) => rec.put.push((path, st.clone())),
                None => rec.del.push(path),
            }
        }
        for path in colls {
            match self.colls.get(&path) {
                Some(c) => rec.colls.push((path, CollMeta { item_type: c.item_type.clone(), owner: c.owner.clone() })),
                None => rec.drop_colls.push(path),
            }
        }
        Some(rec)
    }

    fn globals(&self) -> Globals {
        Globals {
            seq: self.seq,
            pending: self.pending.clone(),
            parents: self.parents.clone(),
            cep: self.cep.clone(),
            cep_version: self.cep_version,
        }
    }

    /// Applies a journal record (replay). Call [`Store::rebuild_derived`] after the last one.
    pub fn apply(&mut self, rec: Record) {
        for path in rec.drop_colls {
            self.colls.remove(&path);
        }
        for (path, meta) in rec.colls {
            let members = self.colls.get(&path).map(|c| c.members.clone()).unwrap_or_default();
            self.colls.insert(path, Coll { item_type: meta.item_type, owner: meta.owner, members });
        }
        for path in rec.del {
            if let Some(st) = self.resources.remove(&path)
                && self.profile == Profile::Lenient1x
                && !matches!(st.type_name.as_str(), "Sample" | "Event" | "Job")
            {
                self.deleted.insert(path);
            }
        }
        for (path, st) in rec.put {
            self.resources.insert(path, st);
        }
        let g = rec.globals;
        self.seq = g.seq;
        self.pending = g.pending;
        self.parents = g.parents;
        self.cep = g.cep;
        self.cep_version = g.cep_version;
    }

    /// Rebuilds collection membership and sub-collection lists from the resources.
    pub fn rebuild_derived(&mut self) {
        let mut members: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
        for (path, st) in self.resources.iter() {
            members.entry(st.coll.clone()).or_default().insert(st.seq, path.clone());
            for other in &st.also {
                members.entry(other.clone()).or_default().insert(st.seq, path.clone());
            }
        }
        let mut subs: Vec<(String, String)> = Vec::new();
        for (path, c) in self.colls.map.iter_mut() {
            c.members = members.remove(path).unwrap_or_default();
            if let Some(owner) = &c.owner {
                subs.push((owner.clone(), path.clone()));
            }
        }
        for (owner, sub) in subs {
            if let Some(st) = self.resources.map.get_mut(&owner)
                && !st.subs.contains(&sub)
            {
                st.subs.push(sub);
            }
        }
    }
}
