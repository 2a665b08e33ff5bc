//! A topic's clinical context (2-9 Get Current Context, 2-10 Content Sharing, 4-2-2
//! multi-tab considerations): every anchor opened and not yet closed, which one is
//! current, each anchor's `context.versionId` and its shared content.
//!
//! Rules (DESIGN §4 and the spec digest §7.3): an `*-open` makes its anchor current (a
//! re-open of an open anchor makes it current again and keeps its content); closing the
//! current anchor leaves *no* current context even if older anchors stay open; closing
//! another anchor only removes it; `Home-open` leaves no clinical context. Every change of
//! the current context, and every accepted update, assigns a fresh version.

use serde_json::{Value, json};

use fhircast_proto::EventName;
use fhircast_proto::bundle::ContentChange;
use fhircast_proto::validate::AnchorKey;

/// Returns a fresh version id, unique within the hub.
pub(crate) fn new_version() -> String {
    fhircast_proto::ids::new_event_id()
}

/// One open anchor.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OpenContext {
    pub(crate) anchor: AnchorKey,
    /// The open event's name (`Patient-open`, …).
    pub(crate) name: EventName,
    /// The open event's id and timestamp, kept for replay.
    pub(crate) event_id: String,
    pub(crate) timestamp: String,
    /// The context exactly as the open event supplied it.
    pub(crate) context: Vec<Value>,
    /// For a derived open: the events of its batch that already carry this resource.
    pub(crate) suppressed_by: Vec<EventName>,
    /// The batch (seq) that opened it; a source and its derived opens share one.
    pub(crate) opened_seq: u64,
    pub(crate) version_id: String,
    /// Shared content, in the order resources were first added.
    pub(crate) content: Vec<ContentEntry>,
}

/// One resource of an anchor's content.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ContentEntry {
    pub(crate) key: AnchorKey,
    pub(crate) resource: Value,
    pub(crate) full_url: Option<String>,
}

/// The current context as Get Current Context returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentContext {
    /// The open event of the current anchor, `None` when there is no current context.
    pub event_name: Option<EventName>,
    /// `context.versionId`.
    pub version_id: String,
    /// The context array as opened, plus the `content` Bundle item (empty when there is no
    /// current context).
    pub context: Vec<Value>,
}

impl CurrentContext {
    /// Returns the Get Current Context response body.
    pub fn to_json(&self) -> Value {
        json!({
            "context.type": self.event_name.as_ref().and_then(EventName::resource_type).unwrap_or(""),
            "context.versionId": self.version_id,
            "context": self.context,
        })
    }

    /// Returns the empty form with this context's version.
    pub fn emptied(&self) -> Self {
        Self {
            event_name: None,
            version_id: self.version_id.clone(),
            context: Vec::new(),
        }
    }
}

/// Every open anchor of a topic and which one is current.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Contexts {
    opens: Vec<OpenContext>,
    current: Option<AnchorKey>,
    empty_version: String,
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
    pub(crate) fn new() -> Self {
        Self {
            opens: Vec::new(),
            current: None,
            empty_version: new_version(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.opens.is_empty()
    }

    /// Records an open; returns the version assigned. `make_current` is false for derived
    /// opens, which never move the current context.
    pub(crate) fn open(&mut self, mut entry: OpenContext, make_current: bool) -> String {
        if let Some(index) = self.position(&entry.anchor) {
            // Re-opening an open anchor (a tab switch) keeps its content.
            entry.content = self.opens.remove(index).content;
        }
        entry.version_id = new_version();
        let version = entry.version_id.clone();
        if make_current {
            self.current = Some(entry.anchor.clone());
        }
        self.opens.push(entry);
        version
    }

    /// Records a close; content of the anchor is discarded (2-10: "the Hub should discard
    /// that anchor's content"). Closing an anchor that is not open changes nothing.
    pub(crate) fn close(&mut self, anchor: &AnchorKey) {
        if let Some(index) = self.position(anchor) {
            self.opens.remove(index);
        }
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
        let index = self.position(anchor).ok_or(UpdateRefusal::NotOpen)?;
        if !allow_non_current && self.current.as_ref() != Some(anchor) {
            return Err(UpdateRefusal::NotCurrent);
        }
        let entry = &self.opens[index];
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
        let entry = &mut self.opens[index];
        entry.content = content;
        entry.version_id = new_version();
        Ok(entry.version_id.clone())
    }

    /// Returns the current context with its content Bundle.
    pub(crate) fn current(&self) -> CurrentContext {
        let Some(entry) = self.current.as_ref().and_then(|a| self.find(a)) else {
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
    /// the order the opens happened. Derived opens of one batch share their source's seq.
    pub(crate) fn replay_set(&self) -> Vec<&OpenContext> {
        let mut latest: Vec<&OpenContext> = Vec::new();
        for entry in &self.opens {
            let newest_of_type = self
                .opens
                .iter()
                .filter(|other| other.anchor.resource_type == entry.anchor.resource_type)
                .map(|other| other.opened_seq)
                .max();
            if newest_of_type == Some(entry.opened_seq) {
                latest.push(entry);
            }
        }
        latest.sort_by_key(|entry| entry.opened_seq);
        latest
    }

    fn position(&self, anchor: &AnchorKey) -> Option<usize> {
        self.opens.iter().position(|entry| entry.anchor == *anchor)
    }

    fn find(&self, anchor: &AnchorKey) -> Option<&OpenContext> {
        self.opens.iter().find(|entry| entry.anchor == *anchor)
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
