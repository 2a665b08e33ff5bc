//! A map that remembers which keys changed: the topic state keeps its durable parts in
//! these, so a commit writes only the entries a command touched (a delta), never the
//! whole topic. Any mutable access marks the key; a spurious mark only rewrites an entry
//! with its own value. Values are boxed: a B-tree node holds room for 11 entries, and a
//! subscription is a few hundred bytes, so a topic with one subscription would keep ~3 KiB.

use std::collections::{BTreeMap, BTreeSet};

/// An ordered map with a set of touched keys.
#[derive(Clone, Debug)]
pub(crate) struct Tracked<K: Ord, V> {
    entries: BTreeMap<K, Box<V>>,
    touched: BTreeSet<K>,
}

impl<K: Ord, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            touched: BTreeSet::new(),
        }
    }
}

/// Equal when the entries are: the marks are bookkeeping.
impl<K: Ord, V: PartialEq> PartialEq for Tracked<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<K: Ord + Clone, V> Tracked<K, V> {
    /// Wraps entries loaded from the store: nothing is touched yet.
    pub(crate) fn loaded(entries: BTreeMap<K, V>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|(key, value)| (key, Box::new(value)))
                .collect(),
            touched: BTreeSet::new(),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|value| &**value)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, value)| (key, &**value))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values().map(|value| &**value)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let value = self.entries.get_mut(key)?;
        self.touched.insert(key.clone());
        Some(&mut **value)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touched.insert(key.clone());
        self.entries.insert(key, Box::new(value)).map(|old| *old)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let removed = self.entries.remove(key)?;
        self.touched.insert(key.clone());
        Some(*removed)
    }

    /// Returns a copy of every entry.
    #[cfg(test)]
    pub(crate) fn to_map(&self) -> BTreeMap<K, V>
    where
        V: Clone,
    {
        self.iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// Returns each key touched since the last call with its value now (`None`: removed),
    /// and forgets the marks.
    pub(crate) fn take_touched(&mut self) -> Vec<(K, Option<&V>)> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .map(|key| {
                let value = self.entries.get(&key).map(|value| &**value);
                (key, value)
            })
            .collect()
    }
}
