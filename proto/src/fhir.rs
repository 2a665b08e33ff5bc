//! What the hub knows of FHIR itself: the R4 resource type names (for the event-name
//! grammar) and the context key of each anchor type.

/// The FHIR R4 (4.0.1) resource types.
pub const RESOURCE_TYPES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// Returns the context key of an anchor resource type: the lowercase type, except the
/// legacy `study` (ImagingStudy) and `report` (DiagnosticReport) of 2-3 Events.
pub fn anchor_key_for(resource_type: &'static str) -> &'static str {
    match resource_type {
        "ImagingStudy" => "study",
        "DiagnosticReport" => "report",
        "Patient" => "patient",
        "Encounter" => "encounter",
        other => lowercase_static(other),
    }
}

/// Returns the resource type whose anchor key is `key`, if any.
pub fn resource_type_for_key(key: &str) -> Option<&'static str> {
    match key {
        "study" => Some("ImagingStudy"),
        "report" => Some("DiagnosticReport"),
        _ => RESOURCE_TYPES
            .iter()
            .copied()
            .find(|name| name.len() == key.len() && name.to_ascii_lowercase() == key),
    }
}

/// Lowercase names of every resource type, computed once.
fn lowercase_static(name: &'static str) -> &'static str {
    use std::sync::OnceLock;
    static LOWER: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    let table = LOWER.get_or_init(|| {
        RESOURCE_TYPES
            .iter()
            .map(|n| (*n, &*Box::leak(n.to_ascii_lowercase().into_boxed_str())))
            .collect()
    });
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, lower)| lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_both_ways() {
        assert_eq!(anchor_key_for("Observation"), "observation");
        assert_eq!(resource_type_for_key("observation"), Some("Observation"));
        assert_eq!(resource_type_for_key("study"), Some("ImagingStudy"));
        assert_eq!(resource_type_for_key("Patient"), None);
        let unique: std::collections::BTreeSet<_> = RESOURCE_TYPES.iter().collect();
        assert_eq!(unique.len(), RESOURCE_TYPES.len());
    }
}
