pub(crate) fn encode_envelope(_e: &fhircast_proto::bus::Envelope) -> Vec<u8> { Vec::new() }
