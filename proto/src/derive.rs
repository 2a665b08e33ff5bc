//! Hub-generated open events (2-5 "Hub Generated open Events") and the delivery rule that
//! keeps them free of duplicates.
//!
//! When an `*-open` carries resources of other anchor types, subscribers of those types'
//! open events must learn about them too: `Encounter-open` ⇒ `Patient-open`,
//! `DiagnosticReport-open` ⇒ `Encounter-open`, one `ImagingStudy-open` per study and
//! `Patient-open`, `ImagingStudy-open` ⇒ `Encounter-open` and `Patient-open`. A derived
//! event of type T is *suppressed by* every other event of the same delivery that already
//! carries a T resource, so a subscriber of both never gets the same resource twice.

use serde_json::Value;

use crate::event_name::{EventKind, EventName};

/// An event the hub derives from an accepted `*-open`.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedEvent {
    /// The derived event's name.
    pub name: EventName,
    /// Its context: items copied from the source event.
    pub context: Vec<Value>,
}

/// Returns the open events implied by an accepted open event, in delivery order
/// (encounter, studies, patient).
pub fn derive_opens(name: &EventName, context: &[Value]) -> Vec<DerivedEvent> {
    if name.kind() != EventKind::Open {
        return Vec::new();
    }
    let anchor_key = name.anchor_key();
    let items_with = |key: &str| -> Vec<&Value> {
        if Some(key) == anchor_key {
            return Vec::new();
        }
        context.iter().filter(|item| item["key"] == key).collect()
    };
    let patient = items_with("patient");
    let encounter = items_with("encounter");
    let studies = items_with("study");
    let mut derived = Vec::new();
    if let (Some(encounter), Some(patient)) = (encounter.first(), patient.first()) {
        derived.push(DerivedEvent {
            name: EventName::open_of("Encounter"),
            context: vec![(*encounter).clone(), (*patient).clone()],
        });
    }
    for study in studies {
        let mut study_context = vec![study.clone()];
        study_context.extend(encounter.first().map(|item| (*item).clone()));
        study_context.extend(patient.first().map(|item| (*item).clone()));
        derived.push(DerivedEvent {
            name: EventName::open_of("ImagingStudy"),
            context: study_context,
        });
    }
    if let Some(patient) = patient.first() {
        derived.push(DerivedEvent {
            name: EventName::open_of("Patient"),
            context: vec![(*patient).clone()],
        });
    }
    derived
}

/// Returns, for the derived event at `index` of `derived`, the names of the other events of
/// the same delivery (the source and the other derived events) that already carry its
/// anchor resource.
pub fn suppressors(
    source: (&EventName, &[Value]),
    derived: &[DerivedEvent],
    index: usize,
) -> Vec<EventName> {
    let Some(target) = derived.get(index) else {
        return Vec::new();
    };
    let Some(key) = target.name.anchor_key() else {
        return Vec::new();
    };
    let carries = |context: &[Value]| context.iter().any(|item| item["key"] == key);
    let mut names: Vec<EventName> = Vec::new();
    let others = std::iter::once(source).chain(
        derived
            .iter()
            .map(|event| (&event.name, event.context.as_slice())),
    );
    for (name, context) in others {
        if *name != target.name && carries(context) && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Returns true if a subscriber granted `granted` should receive an event named `name`
/// that is suppressed by `suppressed_by` (2-4: "The Hub SHALL NOT send a subscriber any
/// event it is not subscribed to"; 2-5: "Hubs SHOULD NOT send duplicate events").
pub fn should_deliver(
    granted: &[EventName],
    name: &EventName,
    suppressed_by: &[EventName],
) -> bool {
    granted.contains(name) && !suppressed_by.iter().any(|s| granted.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn name(raw: &str) -> EventName {
        EventName::parse(raw).expect("valid")
    }

    fn item(key: &str, resource_type: &str, id: &str) -> Value {
        json!({"key": key, "resource": {"resourceType": resource_type, "id": id}})
    }

    #[test]
    fn encounter_open_implies_patient_open() {
        let source = name("Encounter-open");
        let context = vec![
            item("encounter", "Encounter", "e1"),
            item("patient", "Patient", "p1"),
        ];
        let derived = derive_opens(&source, &context);
        assert_eq!(derived.len(), 1);
        assert_eq!(derived[0].name.as_str(), "Patient-open");
        assert_eq!(derived[0].context, vec![item("patient", "Patient", "p1")]);
        let suppressed_by = suppressors((&source, &context), &derived, 0);
        assert_eq!(suppressed_by, vec![name("Encounter-open")]);
        assert!(should_deliver(
            &[name("Patient-open")],
            &derived[0].name,
            &suppressed_by
        ));
        assert!(!should_deliver(
            &[name("Patient-open"), name("Encounter-open")],
            &derived[0].name,
            &suppressed_by
        ));
    }

    #[test]
    fn report_open_derives_one_study_open_per_study() {
        let source = name("DiagnosticReport-open");
        let context = vec![
            item("report", "DiagnosticReport", "r1"),
            item("patient", "Patient", "p1"),
            item("study", "ImagingStudy", "s1"),
            item("study", "ImagingStudy", "s2"),
        ];
        let derived = derive_opens(&source, &context);
        let names: Vec<&str> = derived.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["ImagingStudy-open", "ImagingStudy-open", "Patient-open"]
        );
        // Two studies never suppress each other.
        assert_eq!(
            suppressors((&source, &context), &derived, 1),
            vec![source.clone()]
        );
        let patient_suppressors = suppressors((&source, &context), &derived, 2);
        assert!(patient_suppressors.contains(&name("ImagingStudy-open")));
    }

    #[test]
    fn close_and_patient_open_derive_nothing() {
        let context = vec![item("patient", "Patient", "p1")];
        assert!(derive_opens(&name("Patient-open"), &context).is_empty());
        assert!(derive_opens(&name("Encounter-close"), &context).is_empty());
    }
}
