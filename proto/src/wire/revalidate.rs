//! Revalidate on the wire: the endpoints a gateway holds sockets for, and those of them
//! whose subscription ended, each with its denial.

use crate::hub::{EndedEndpoint, REVALIDATE_MAX_ENDPOINTS};
use crate::ids::{EndpointId, TopicRef};

use super::fields::{endpoint, endpoints, endpoints_to_wire, topic_ref};
use super::{WireError, v1};

impl v1::RevalidateRequest {
    /// Asks which of `endpoints` of the topic `topic_ref` ended.
    pub fn new(topic_ref: &TopicRef, endpoints: &[EndpointId]) -> Self {
        Self {
            topic_ref: topic_ref.as_str().to_owned(),
            endpoints: endpoints_to_wire(endpoints),
        }
    }

    /// Returns the topic's ref and the endpoints; more than [`REVALIDATE_MAX_ENDPOINTS`]
    /// are refused.
    pub fn into_parts(self) -> Result<(TopicRef, Vec<EndpointId>), WireError> {
        let topic = topic_ref("RevalidateRequest.topic_ref", &self.topic_ref)?;
        if self.endpoints.len() > REVALIDATE_MAX_ENDPOINTS {
            return Err(WireError::invalid(
                "RevalidateRequest.endpoints",
                format!("more than {REVALIDATE_MAX_ENDPOINTS}"),
            ));
        }
        let named = endpoints("RevalidateRequest.endpoints", self.endpoints)?;
        Ok((topic, named))
    }
}

impl From<Vec<EndedEndpoint>> for v1::RevalidateResponse {
    fn from(ended: Vec<EndedEndpoint>) -> Self {
        Self {
            ended: ended
                .into_iter()
                .map(|ended| v1::EndedEndpoint {
                    endpoint: ended.endpoint.expose().to_owned(),
                    denial: ended.denial,
                })
                .collect(),
        }
    }
}

impl TryFrom<v1::RevalidateResponse> for Vec<EndedEndpoint> {
    type Error = WireError;

    fn try_from(response: v1::RevalidateResponse) -> Result<Self, WireError> {
        response
            .ended
            .into_iter()
            .map(|ended| {
                Ok(EndedEndpoint {
                    endpoint: endpoint("EndedEndpoint.endpoint", &ended.endpoint)?,
                    denial: ended.denial,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn endpoint_id(fill: char) -> EndpointId {
        EndpointId::parse(&fill.to_string().repeat(43)).expect("a well-formed endpoint id")
    }

    #[test]
    fn a_request_round_trips() {
        let topic = TopicRef::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a well-formed ref");
        let named = vec![endpoint_id('a'), endpoint_id('b')];
        let (parsed_topic, parsed) = v1::RevalidateRequest::new(&topic, &named)
            .into_parts()
            .expect("parses");
        assert_eq!(parsed_topic, topic);
        assert_eq!(parsed, named);
    }

    #[test]
    fn too_many_endpoints_are_refused() {
        let topic = TopicRef::parse("AAAAAAAAAAAAAAAAAAAAAA").expect("a well-formed ref");
        let named = vec![endpoint_id('a'); REVALIDATE_MAX_ENDPOINTS + 1];
        assert!(
            v1::RevalidateRequest::new(&topic, &named)
                .into_parts()
                .is_err()
        );
    }

    #[test]
    fn a_response_round_trips() {
        let ended = vec![EndedEndpoint {
            endpoint: endpoint_id('c'),
            denial: Bytes::from_static(b"{\"hub.mode\":\"denied\"}"),
        }];
        let back: Vec<EndedEndpoint> = v1::RevalidateResponse::from(ended.clone())
            .try_into()
            .expect("parses");
        assert_eq!(back, ended);
    }
}
