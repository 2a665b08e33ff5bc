//! Builders for topics, ids, timestamps and FHIRcast event payloads.
//!
//! Each builder returns a complete request envelope `{timestamp, id, event}` with a fresh
//! UUID `id` and the current UTC time, shaped after the STU3 specification's examples.
//! Resources carry just what the profiles require (`id`, an `identifier`, a `subject`);
//! patients also carry a `CANARY-PHI-…` name, which no log may hold (the LOG-01 sweep).

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::log_archive::SecretKind;
use serde_json::{Value, json};

/// Returns a fresh topic: 32 CSPRNG bytes, base64url (43 characters).
pub fn random_topic() -> String {
    let mut bytes = [0_u8; 32];
    // aws-lc's RNG only fails if the OS RNG is broken; then a v4 UUID pair still works.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    let topic = URL_SAFE_NO_PAD.encode(bytes);
    crate::log_archive::register_secret(SecretKind::Topic, &topic);
    topic
}

/// Returns a fresh event id (a v4 UUID).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Returns the current UTC time as RFC 3339 with milliseconds, e.g. `2025-01-02T03:04:05.678Z`.
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Builds an envelope for `event` on `topic` with `context`.
pub fn envelope(topic: &str, event: &str, context: Vec<Value>) -> Value {
    json!({
        "timestamp": timestamp_now(),
        "id": new_id(),
        "event": { "hub.topic": topic, "hub.event": event, "context": context },
    })
}

/// A context item holding a full resource.
pub fn resource_item(key: &str, resource: Value) -> Value {
    json!({ "key": key, "resource": resource })
}

/// A context item holding a reference.
pub fn reference_item(key: &str, reference: &str) -> Value {
    json!({ "key": key, "reference": { "reference": reference } })
}

/// A Patient with an `id` and an MRN identifier.
pub fn patient(id: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        // PHI no log may hold: the LOG-01 sweep looks for the marker.
        "name": [{ "family": format!("CANARY-PHI-{id}"), "given": ["Test"] }],
        "identifier": [{
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR" }] },
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": format!("mrn-{id}"),
        }],
    })
}

/// An Encounter of patient `patient_id`.
pub fn encounter(id: &str, patient_id: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "id": id,
        "status": "unknown",
        "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
        "identifier": [{ "system": "urn:example:visit", "value": format!("visit-{id}") }],
        "subject": { "reference": format!("Patient/{patient_id}") },
    })
}

/// An ImagingStudy of patient `patient_id`, or of a device when `None`.
pub fn imaging_study(id: &str, patient_id: Option<&str>) -> Value {
    let subject = match patient_id {
        Some(patient_id) => format!("Patient/{patient_id}"),
        None => "Device/calibration-phantom".to_owned(),
    };
    json!({
        "resourceType": "ImagingStudy",
        "id": id,
        "status": "available",
        "identifier": [{ "system": "urn:dicom:uid", "value": format!("urn:oid:2.16.124.113543.6003.{}", id.len()) }],
        "subject": { "reference": subject },
    })
}

/// A DiagnosticReport of patient `patient_id` about `studies`.
pub fn diagnostic_report(id: &str, patient_id: &str, studies: &[&str]) -> Value {
    let studies: Vec<Value> = studies
        .iter()
        .map(|study| json!({ "reference": format!("ImagingStudy/{study}") }))
        .collect();
    json!({
        "resourceType": "DiagnosticReport",
        "id": id,
        "status": "unknown",
        "identifier": [{ "system": "urn:example:report", "value": format!("report-{id}") }],
        "subject": { "reference": format!("Patient/{patient_id}") },
        "imagingStudy": studies,
    })
}

/// An Observation of patient `patient_id` with a text value.
pub fn observation(id: &str, patient_id: &str, text: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "preliminary",
        "code": { "text": "finding" },
        "subject": { "reference": format!("Patient/{patient_id}") },
        "valueString": text,
    })
}

/// `Patient-open` for patient `patient_id`.
pub fn patient_open(topic: &str, patient_id: &str) -> Value {
    envelope(
        topic,
        "Patient-open",
        vec![resource_item("patient", patient(patient_id))],
    )
}

/// `Patient-close` for patient `patient_id`.
pub fn patient_close(topic: &str, patient_id: &str) -> Value {
    envelope(
        topic,
        "Patient-close",
        vec![resource_item("patient", patient(patient_id))],
    )
}

/// `Encounter-open` for encounter `encounter_id` of patient `patient_id`.
pub fn encounter_open(topic: &str, patient_id: &str, encounter_id: &str) -> Value {
    envelope(
        topic,
        "Encounter-open",
        vec![
            resource_item("encounter", encounter(encounter_id, patient_id)),
            resource_item("patient", patient(patient_id)),
        ],
    )
}

/// `ImagingStudy-open` for `study_id`, with the patient item when `patient_id` is given.
pub fn imaging_study_open(topic: &str, patient_id: Option<&str>, study_id: &str) -> Value {
    let mut context = vec![resource_item("study", imaging_study(study_id, patient_id))];
    if let Some(patient_id) = patient_id {
        context.push(resource_item("patient", patient(patient_id)));
    }
    envelope(topic, "ImagingStudy-open", context)
}

fn report_context(report_id: &str, patient_id: &str, studies: &[&str]) -> Vec<Value> {
    let mut context = vec![
        resource_item("report", diagnostic_report(report_id, patient_id, studies)),
        resource_item("patient", patient(patient_id)),
    ];
    context.extend(
        studies
            .iter()
            .map(|study| resource_item("study", imaging_study(study, Some(patient_id)))),
    );
    context
}

/// `DiagnosticReport-open` for `report_id` about `studies`.
pub fn diagnostic_report_open(
    topic: &str,
    report_id: &str,
    patient_id: &str,
    studies: &[&str],
) -> Value {
    envelope(
        topic,
        "DiagnosticReport-open",
        report_context(report_id, patient_id, studies),
    )
}

/// `DiagnosticReport-close` for `report_id`.
pub fn diagnostic_report_close(
    topic: &str,
    report_id: &str,
    patient_id: &str,
    studies: &[&str],
) -> Value {
    envelope(
        topic,
        "DiagnosticReport-close",
        report_context(report_id, patient_id, studies),
    )
}

/// `DiagnosticReport-update` of `report_id` at `version_id` carrying `bundle`.
pub fn diagnostic_report_update(
    topic: &str,
    report_id: &str,
    patient_id: &str,
    version_id: &str,
    bundle: Value,
) -> Value {
    let mut event = envelope(
        topic,
        "DiagnosticReport-update",
        vec![
            reference_item("report", &format!("DiagnosticReport/{report_id}")),
            reference_item("patient", &format!("Patient/{patient_id}")),
            resource_item("updates", bundle),
        ],
    );
    event["event"]["context.versionId"] = json!(version_id);
    event
}

/// `DiagnosticReport-select` of `selected` references (`Type/id`) in `report_id`.
pub fn diagnostic_report_select(topic: &str, report_id: &str, selected: &[&str]) -> Value {
    let mut context = vec![reference_item(
        "report",
        &format!("DiagnosticReport/{report_id}"),
    )];
    context.extend(
        selected
            .iter()
            .map(|reference| reference_item("select", reference)),
    );
    envelope(topic, "DiagnosticReport-select", context)
}

/// A transaction Bundle with a fresh `id`.
pub fn transaction(entries: Vec<Value>) -> Value {
    json!({ "resourceType": "Bundle", "id": new_id(), "type": "transaction", "entry": entries })
}

/// A `PUT` entry for `resource`.
pub fn put_entry(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or_default(),
        resource["id"].as_str().unwrap_or_default()
    );
    json!({ "fullUrl": url, "resource": resource, "request": { "method": "PUT", "url": url } })
}

/// A `DELETE` entry for `reference` (`Type/id`).
pub fn delete_entry(reference: &str) -> Value {
    json!({ "fullUrl": reference, "request": { "method": "DELETE", "url": reference } })
}

/// A subscriber-originated `SyncError` about `failed_id` / `failed_event`.
pub fn sync_error(
    topic: &str,
    failed_id: &str,
    failed_event: &str,
    subscriber_name: &str,
) -> Value {
    let outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "warning",
            "code": "processing",
            "diagnostics": format!("{subscriber_name} failed to follow context"),
            "details": { "coding": [
                { "system": "https://fhircast.hl7.org/events/syncerror/eventid", "code": failed_id },
                { "system": "https://fhircast.hl7.org/events/syncerror/eventname", "code": failed_event },
                { "system": "https://fhircast.hl7.org/events/syncerror/subscribername", "code": subscriber_name },
            ] },
        }],
    });
    envelope(
        topic,
        "SyncError",
        vec![resource_item("operationoutcome", outcome)],
    )
}

/// `Home-open` (no clinical context).
pub fn home_open(topic: &str) -> Value {
    envelope(topic, "Home-open", vec![])
}

/// `UserLogout` with reason `user-initiated`.
pub fn user_logout(topic: &str) -> Value {
    let parameters = json!({
        "resourceType": "Parameters",
        "parameter": [{ "name": "code", "valueCoding": {
            "system": "http://hl7.org/fhir/uv/fhircast/CodeSystem/fhircast-codesystem",
            "code": "user-initiated",
        } }],
    });
    envelope(
        topic,
        "UserLogout",
        vec![resource_item("parameters", parameters)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_43_url_safe_characters() {
        let topic = random_topic();
        assert_eq!(topic.len(), 43);
        assert!(
            topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(topic, random_topic());
    }
}
