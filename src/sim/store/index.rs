//! An index of the stored resources by property (`properties['key'] = 'value'`), so that a `$filter` on a tag (the
//! operator's lookup before each create: its UID, or its cluster, namespace and name) reads the few resources that
//! carry it instead of every resource of the collection. A provider indexes its tags; without this, a lookup at
//! 10,000 machines walked all of them, and a wave of 10,000 creates walked 50 million.
//!
//! The index never decides alone: it only narrows the resources that are then matched against the whole filter,
//! so it can hold a resource too many, never one too few. Every write to a resource goes through
//! [`Tracked`](super::Tracked), which remembers the paths written; [`Store::refresh_index`] re-reads those before
//! each request, and a read also looks at the paths written since (within the same request).

use super::data::{Store, Stored};
use super::props::PropIndex;
use crate::sim::query::Filter;

impl Store {
    /// Brings the property index up to date with every write since the last call (all resources the first time).
    pub fn refresh_index(&mut self) {
        // Writes start being watched at the first call (also after a state file was loaded): index everything once.
        if self.resources.watch_writes() {
            self.resources.take_touched();
            let mut index = PropIndex::default();
            for (path, stored) in self.resources.iter() {
                index.add(path, &stored.doc);
            }
            self.props = index;
            return;
        }
        for path in self.resources.take_touched() {
            self.props.remove(&path);
            if let Some(stored) = self.resources.get(&path) {
                self.props.add(&path, &stored.doc);
            }
        }
    }

    /// The members of the collection at `path` that match every filter, in creation order, through the index;
    /// `None` when the index cannot narrow them (no equality on a property, or not built yet: writes not watched).
    pub(super) fn indexed_matches<'a>(
        &'a self,
        path: &str,
        filters: &[Filter],
    ) -> Option<Vec<(&'a String, &'a Stored)>> {
        let touched = self.resources.touched()?;
        let coll = self.colls.get(path)?;
        let mut paths: Vec<&String> = filters.iter().filter_map(|f| self.props.candidates(f)).min_by_key(Vec::len)?;
        // Written within this request, after the index was brought up to date.
        paths.extend(touched.iter());
        paths.sort_unstable();
        paths.dedup();
        let mut out: Vec<(&String, &Stored)> = paths
            .into_iter()
            .filter_map(|p| self.resources.get(p).map(|st| (p, st)))
            .filter(|(p, st)| coll.members.get(&st.seq) == Some(*p))
            .filter(|(_, st)| filters.iter().all(|f| f.matches(&st.doc)))
            .collect();
        out.sort_by_key(|(_, st)| st.seq);
        Some(out)
    }
}
