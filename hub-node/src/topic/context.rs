//! A topic's clinical context (2-9 Get Current Context, 2-10 Content Sharing, 4-2-2
//! multi-tab considerations): every anchor opened and not yet closed, which one is
//! current, each anchor's `context.versionId` and its shared content.
//!
//! Rules (DESIGN §4 and the spec digest §7.3): an `*-open` makes its anchor current (a
//! re-open of an open anchor makes it current again and keeps its content); closing the
//! current anchor leaves *no* current context even if older anchors stay open; closing
//! another anchor only removes it; `Home-open` leaves no clinical context. Every change of
//! the current context, and every accepted update, assigns a fresh version.
//!
//! Bounded: at most `max_open` anchors stay open; opening one more forgets the oldest
//! anchor that is not current (it is no longer replayed; no close event is sent). Lookups
//! by anchor are O(1) and the replay set costs O(types · log n).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::tracked::Tracked;

use serde_json::{Value, json};

use fhircast_proto::EventName;
use fhircast_proto::bundle::ContentChange;
use fhircast_proto::hub::CurrentContext;
use fhircast_proto::validate::AnchorKey;

/// Returns a fresh version id, unique within the hub.
pub(crate) fn new_version() -> String {
    fhircast_proto::ids::new_event_id()
}

/// One open anchor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenContext {
    pub anchor: AnchorKey,
    /// The open event's name (`Patient-open`, …).
    pub name: EventName,
    /// The open event's id and timestamp, kept for replay.
    pub event_id: String,
    pub timestamp: String,
    /// The context exactly as the open event supplied it.
    pub context: Vec<Value>,
    /// For a derived open: the events of its batch that already carry this resource.
    pub suppressed_by: Vec<EventName>,
    /// The batch (seq) that opened it; a source and its derived opens share one.
    pub opened_seq: u64,
    /// When it was opened, relative to the others (unique; set when the anchor is opened).
    pub order: u64,
    pub version_id: String,
    /// Shared content, in the order resources were first added.
    pub content: Vec<ContentEntry>,
}

/// One resource of an anchor's content.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContentEntry {
    pub key: AnchorKey,
    pub resource: Value,
    pub full_url: Option<String>,
}

/// Every open anchor of a topic and which one is current.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Contexts {
    opens: Tracked<AnchorKey, OpenContext>,
    /// Open anchors by `order`, oldest first.
    by_order: BTreeMap<u64, AnchorKey>,
    /// Per resource type: (opened_seq, order) of its open anchors.
    by_type: HashMap<String, BTreeSet<(u64, u64)>>,
    next_order: u64,
    current: Option<AnchorKey>,
    empty_version: String,
    max_open: usize,
}

/// Which anchor is current and the counters of the contexts: what a store keeps beside the
/// open anchors themselves.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContextPointer {
    /// The current anchor, if any.
    pub current: Option<AnchorKey>,
    /// `context.versionId` while there is no current context.
    pub empty_version: String,
    /// The `order` the next open takes.
    pub next_order: u64,
}

/// Why an update was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum UpdateRefusal {
    NotOpen,
    NotCurrent,
    StaleVersion,
    DeletesOriginal(AnchorKey),
    DeletesUnknown(AnchorKey),
}

impl Contexts {
    pub(crate) fn new(max_open: usize) -> Self {
        Self {
            opens: Tracked::default(),
            by_order: BTreeMap::new(),
            by_type: HashMap::new(),
            next_order: 0,
            current: None,
            empty_version: new_version(),
            max_open: max_open.max(1),
        }
    }

    /// Rebuilds the contexts a store loaded.
    pub(crate) fn restore(
        max_open: usize,
        pointer: ContextPointer,
        opens: impl IntoIterator<Item = OpenContext>,
    ) -> Self {
        let mut contexts = Self {
            opens: Tracked::default(),
            by_order: BTreeMap::new(),
            by_type: HashMap::new(),
            next_order: pointer.next_order,
            current: pointer.current,
            empty_version: pointer.empty_version,
            max_open: max_open.max(1),
        };
        for entry in opens {
            contexts.insert(entry);
        }
        contexts.opens.take_touched();
        contexts
    }

    /// Returns the anchors changed since the last call (`None`: closed or forgotten) and
    /// the pointer as it is now.
    pub(crate) fn take_changes(
        &mut self,
    ) -> (ContextPointer, Vec<(AnchorKey, Option<OpenContext>)>) {
        let pointer = ContextPointer {
            current: self.current.clone(),
            empty_version: self.empty_version.clone(),
            next_order: self.next_order,
        };
        let changed = self
            .opens
            .take_touched()
            .into_iter()
            .map(|(anchor, entry)| (anchor, entry.cloned()))
            .collect();
        (pointer, changed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.opens.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> BTreeMap<AnchorKey, OpenContext> {
        self.opens.to_map()
    }

    pub(crate) fn len(&self) -> usize {
        self.opens.len()
    }

    /// Records an open; returns the version assigned. `make_current` is false for derived
    /// opens, which never move the current context.
    pub(crate) fn open(&mut self, mut entry: OpenContext, make_current: bool) -> String {
        if let Some(previous) = self.remove(&entry.anchor) {
            // Re-opening an open anchor (a tab switch) keeps its content.
            entry.content = previous.content;
        }
        entry.version_id = new_version();
        entry.order = self.next_order;
        self.next_order += 1;
        let version = entry.version_id.clone();
        if make_current {
            self.current = Some(entry.anchor.clone());
        }
        self.insert(entry);
        self.forget_beyond_capacity();
        version
    }

    fn insert(&mut self, entry: OpenContext) {
        self.by_order.insert(entry.order, entry.anchor.clone());
        self.by_type
            .entry(entry.anchor.resource_type.clone())
            .or_default()
            .insert((entry.opened_seq, entry.order));
        self.opens.insert(entry.anchor.clone(), entry);
    }

    fn remove(&mut self, anchor: &AnchorKey) -> Option<OpenContext> {
        let entry = self.opens.remove(anchor)?;
        self.by_order.remove(&entry.order);
        if let Some(of_type) = self.by_type.get_mut(&anchor.resource_type) {
            of_type.remove(&(entry.opened_seq, entry.order));
            if of_type.is_empty() {
                self.by_type.remove(&anchor.resource_type);
            }
        }
        Some(entry)
    }

    /// Forgets the oldest anchors that are not current until at most `max_open` remain.
    fn forget_beyond_capacity(&mut self) {
        while self.opens.len() > self.max_open {
            let oldest = self
                .by_order
                .values()
                .find(|anchor| self.current.as_ref() != Some(*anchor))
                .cloned();
            match oldest {
                Some(anchor) => {
                    self.remove(&anchor);
                }
                None => break,
            }
        }
    }

    /// Records a close; content of the anchor is discarded (2-10: "the Hub should discard
    /// that anchor's content"). Closing an anchor that is not open changes nothing.
    pub(crate) fn close(&mut self, anchor: &AnchorKey) {
        self.remove(anchor);
        if self.current.as_ref() == Some(anchor) {
            self.leave_current();
        }
    }

    /// Leaves no current context (close of the current anchor, `Home-open`).
    pub(crate) fn leave_current(&mut self) {
        self.current = None;
        self.empty_version = new_version();
    }

    /// Applies an update Bundle to an anchor's content, all or nothing; returns the new
    /// version.
    pub(crate) fn update(
        &mut self,
        anchor: &AnchorKey,
        base_version: &str,
        changes: &[ContentChange],
        allow_non_current: bool,
    ) -> Result<String, UpdateRefusal> {
        let entry = self.opens.get(anchor).ok_or(UpdateRefusal::NotOpen)?;
        if !allow_non_current && self.current.as_ref() != Some(anchor) {
            return Err(UpdateRefusal::NotCurrent);
        }
        if entry.version_id != base_version {
            return Err(UpdateRefusal::StaleVersion);
        }
        let mut content = entry.content.clone();
        for change in changes {
            match change {
                ContentChange::Put {
                    key,
                    resource,
                    full_url,
                } => {
                    let new_entry = ContentEntry {
                        key: key.clone(),
                        resource: resource.clone(),
                        full_url: full_url.clone(),
                    };
                    match content.iter_mut().find(|existing| existing.key == *key) {
                        Some(existing) => *existing = new_entry,
                        None => content.push(new_entry),
                    }
                }
                ContentChange::Delete { key } => {
                    if original_keys(&entry.context).any(|original| original == *key) {
                        return Err(UpdateRefusal::DeletesOriginal(key.clone()));
                    }
                    let before = content.len();
                    content.retain(|existing| existing.key != *key);
                    if content.len() == before {
                        return Err(UpdateRefusal::DeletesUnknown(key.clone()));
                    }
                }
            }
        }
        let entry = self.opens.get_mut(anchor).ok_or(UpdateRefusal::NotOpen)?;
        entry.content = content;
        entry.version_id = new_version();
        Ok(entry.version_id.clone())
    }

    /// Returns the current context with its content Bundle.
    pub(crate) fn current(&self) -> CurrentContext {
        let Some(entry) = self.current.as_ref().and_then(|a| self.opens.get(a)) else {
            return CurrentContext {
                event_name: None,
                version_id: self.empty_version.clone(),
                context: Vec::new(),
            };
        };
        let entries: Vec<Value> = entry
            .content
            .iter()
            .map(|item| match &item.full_url {
                Some(url) => json!({"fullUrl": url, "resource": item.resource}),
                None => json!({"resource": item.resource}),
            })
            .collect();
        let mut context = entry.context.clone();
        context.push(json!({
            "key": "content",
            "resource": {"resourceType": "Bundle", "type": "collection", "entry": entries},
        }));
        CurrentContext {
            event_name: Some(entry.name.clone()),
            version_id: entry.version_id.clone(),
            context,
        }
    }

    /// Returns the replay set (2-4: the most recent unclosed `*-open` per anchor type), in
    /// the order the opens happened. Derived opens of one batch share their source's seq,
    /// so a batch that opened two studies replays both.
    pub(crate) fn replay_set(&self) -> Vec<&OpenContext> {
        let mut latest: Vec<&OpenContext> = Vec::new();
        for of_type in self.by_type.values() {
            let Some(&(newest_seq, _)) = of_type.last() else {
                continue;
            };
            for &(_, order) in of_type.range((newest_seq, 0)..=(newest_seq, u64::MAX)) {
                if let Some(entry) = self.by_order.get(&order).and_then(|a| self.opens.get(a)) {
                    latest.push(entry);
                }
            }
        }
        latest.sort_by_key(|entry| (entry.opened_seq, entry.order));
        latest
    }
}

/// The resources an open event's own context carries (they may be changed by updates but
/// never removed: 2-10 "Subscribers SHALL NOT remove resources that were in the original
/// -open context").
fn original_keys(context: &[Value]) -> impl Iterator<Item = AnchorKey> + '_ {
    context.iter().filter_map(|item| {
        let resource = item.get("resource")?;
        Some(AnchorKey {
            resource_type: resource.get("resourceType")?.as_str()?.to_owned(),
            id: resource.get("id")?.as_str()?.to_owned(),
        })
    })
}
