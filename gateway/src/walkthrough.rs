//! The copy-paste walkthrough `make run` prints: get a token from the dev issuer,
//! subscribe, connect, publish, see the event, read the current context. Every command
//! uses only curl, sed and the repository's own `fhircast-listen` client, in one terminal.
//! A cluster gateway with the dev issuer (`make cluster`) prints it too, with a header that
//! says where the state lives.

/// Returns the walkthrough for a hub at `public_url` with `hub_url`; `embedded` picks the
/// header (state in memory, or in the cluster's Redis).
pub fn walkthrough(public_url: &str, hub_url: &str, embedded: bool) -> String {
    let header = if embedded {
        "FHIRcast hub (embedded, dev issuer) at {hub_url}\n\
         State is kept in memory: stopping the hub forgets every subscription and context."
    } else {
        "FHIRcast hub (cluster gateway, dev issuer) at {hub_url}\n\
         Subscriptions and context are kept in Redis: a gateway or hub node may restart \
         without losing them."
    }
    .replace("{hub_url}", hub_url);
    format!(
        r#"
{header}

Try it in another terminal, from this repository:

  # 1. a token and a fresh topic from the dev issuer
  R=$(curl -s -X POST {public_url}/dev-issuer/token -d 'scope=fhircast/*.read fhircast/*.write')
  TOKEN=$(echo "$R" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  TOPIC=$(echo "$R" | sed -n 's/.*"hub.topic":"\([^"]*\)".*/\1/p')

  # 2. subscribe to Patient-open and Patient-close; the answer holds hub.channel.endpoint
  EP=$(curl -s -X POST {hub_url} -H "Authorization: Bearer $TOKEN" \
    -d "hub.channel.type=websocket&hub.mode=subscribe&hub.topic=$TOPIC&hub.events=Patient-open,Patient-close" \
    | sed -n 's/.*"hub.channel.endpoint":"\([^"]*\)".*/\1/p'); echo "$EP"

  # 3. connect to the endpoint: prints the confirmation, then every event (and acks it)
  ./target/release/fhircast-listen "$EP" &

  # 4. open a patient: the listener prints the event
  curl -s -X POST {hub_url} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{{"timestamp":"2026-01-01T10:00:00Z","id":"evt-1","event":{{"hub.topic":"'$TOPIC'","hub.event":"Patient-open","context":[{{"key":"patient","resource":{{"resourceType":"Patient","id":"pat-1","identifier":[{{"system":"urn:mrn","value":"12345"}}]}}}}]}}}}'

  # 5. read the current context
  curl -s {hub_url}/$TOPIC -H "Authorization: Bearer $TOKEN"

Discovery: {hub_url}/.well-known/fhircast-configuration    Stop: Ctrl-C
"#
    )
}
