//! The sandbox's objects of one kind, by id, remembering which ones were touched since
//! they were last stored, so that a write stores only what changed.

use std::collections::{HashMap, HashSet};

use billing_core::gateway::SandboxRow;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// Objects of one kind by id. Whatever may change an object (`get_mut`, `insert`,
/// `values_mut`…) marks it touched; [`Table::changes`] serialises the touched ones
/// and keeps those whose stored form differs from the last one stored.
#[derive(Debug)]
pub(super) struct Table<V> {
    rows: HashMap<String, V>,
    touched: HashSet<String>,
    /// SHA-256 of each row's body as last stored or loaded.
    stored: HashMap<String, [u8; 32]>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            rows: HashMap::new(),
            touched: HashSet::new(),
            stored: HashMap::new(),
        }
    }
}

impl<V> Table<V> {
    pub(super) fn get(&self, id: &str) -> Option<&V> {
        self.rows.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        let row = self.rows.get_mut(id)?;
        self.touched.insert(id.to_owned());
        Some(row)
    }

    pub(super) fn insert(&mut self, id: String, row: V) {
        self.touched.insert(id.clone());
        self.rows.insert(id, row);
    }

    /// The row `id`, made by `make` if there is none.
    pub(super) fn get_or_insert_with(&mut self, id: String, make: impl FnOnce() -> V) -> &mut V {
        self.touched.insert(id.clone());
        self.rows.entry(id).or_insert_with(make)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.rows.values()
    }

    /// Every row, each marked touched.
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.touched.extend(self.rows.keys().cloned());
        self.rows.values_mut()
    }

    /// Forgets what was touched (a sandbox without a store keeps nothing).
    pub(super) fn forget_touched(&mut self) {
        self.touched.clear();
    }
}

fn digest(body: &str) -> [u8; 32] {
    Sha256::digest(body.as_bytes()).into()
}

impl<V: Serialize> Table<V> {
    /// The touched rows whose stored form changed, as rows of `kind`, now counted as
    /// stored.
    pub(super) fn changes(
        &mut self,
        kind: &str,
        out: &mut Vec<SandboxRow>,
    ) -> Result<(), serde_json::Error> {
        for id in std::mem::take(&mut self.touched) {
            let Some(row) = self.rows.get(&id) else {
                continue;
            };
            let body = serde_json::to_string(row)?;
            let hash = digest(&body);
            if self.stored.get(&id) != Some(&hash) {
                self.stored.insert(id.clone(), hash);
                out.push(SandboxRow {
                    kind: kind.to_owned(),
                    id,
                    body,
                });
            }
        }
        Ok(())
    }
}

impl<V: DeserializeOwned> Table<V> {
    /// A row as stored (by this server or another), replacing the one held.
    pub(super) fn load(&mut self, id: String, body: &str) -> Result<(), serde_json::Error> {
        let row = serde_json::from_str(body)?;
        self.stored.insert(id.clone(), digest(body));
        self.rows.insert(id, row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(rows: &[SandboxRow]) -> Vec<(&str, &str)> {
        let mut v: Vec<_> = rows
            .iter()
            .map(|r| (r.id.as_str(), r.body.as_str()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn only_touched_rows_whose_form_changed_are_stored() {
        let mut t: Table<u32> = Table::default();
        t.insert("a".into(), 1);
        t.insert("b".into(), 2);
        let mut rows = Vec::new();
        t.changes("n", &mut rows).unwrap();
        assert_eq!(kinds(&rows), [("a", "1"), ("b", "2")]);

        // Read, or touched without a change: nothing to store.
        assert_eq!(t.get("a"), Some(&1));
        let _ = t.get_mut("b");
        let mut rows = Vec::new();
        t.changes("n", &mut rows).unwrap();
        assert!(rows.is_empty());

        *t.get_mut("b").unwrap() = 3;
        for v in t.values_mut() {
            *v += 0;
        }
        let mut rows = Vec::new();
        t.changes("n", &mut rows).unwrap();
        assert_eq!(kinds(&rows), [("b", "3")]);
    }

    #[test]
    fn a_loaded_row_counts_as_stored() {
        let mut t: Table<u32> = Table::default();
        t.load("a".into(), "7").unwrap();
        assert_eq!(t.get("a"), Some(&7));
        let _ = t.get_mut("a");
        let mut rows = Vec::new();
        t.changes("n", &mut rows).unwrap();
        assert!(rows.is_empty());
        assert!(t.load("b".into(), "not json").is_err());
    }
}
