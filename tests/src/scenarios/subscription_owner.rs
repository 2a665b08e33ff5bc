//! Only the app and user that created a subscription may re-subscribe or unsubscribe its
//! endpoint (AUZ-05): another app on the same topic, with the same user, is refused, and
//! the creator's socket is untouched.

use anyhow::{Result, ensure};

use super::{MSG, Rig, SILENCE};
use crate::client::endpoint_of;
use crate::payloads::{patient_open, random_topic};

#[tokio::test]
async fn auz_05_another_app_cannot_take_over_or_cancel_a_subscription() -> Result<()> {
    let rig = Rig::start().await?;
    let topic = random_topic();
    let creator = rig.client_as(&topic, "app-a")?;
    let intruder = rig.client_as(&topic, "app-b")?;
    let reply = creator.subscribe_with("Patient-open", &[]).await?;
    let endpoint = endpoint_of(&reply)?;
    let mut socket = crate::subscriber::Subscriber::connect_confirmed(&endpoint, MSG).await?;

    intruder
        .unsubscribe(&endpoint)
        .await?
        .expect_error(403, "another app unsubscribing the endpoint")?;
    intruder
        .subscribe_with(
            "Patient-open,Patient-close",
            &[("hub.channel.endpoint", endpoint.as_str())],
        )
        .await?
        .expect_error(403, "another app re-subscribing the endpoint")?;
    socket.expect_silence(SILENCE).await?;

    // The creator's subscription is intact: same events, still delivered.
    creator.publish_ok(&patient_open(&topic, "p-after")).await?;
    let event = socket.next_event(MSG).await?;
    ensure!(
        event["event"]["hub.event"] == "Patient-open",
        "unexpected event {event}"
    );
    creator
        .unsubscribe(&endpoint)
        .await?
        .expect(202, "the creator unsubscribes")?;
    rig.gateway.stop().await
}
