//! The whole conformance suite, in-process, against a freshly spawned gateway with short
//! ack timeout, attach window and reconnect grace.

use std::time::Duration;

use anyhow::{Result, ensure};

use super::Rig;
use crate::conformance::Ctx;
use crate::conformance::runner::{self, Options};
use crate::token::TokenSource;

const ACK_TIMEOUT: Duration = Duration::from_millis(1000);
const ATTACH_WINDOW: Duration = Duration::from_millis(2000);
const RECONNECT_GRACE: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_embedded_hub() -> Result<()> {
    let rig = Rig::start_with(|builder| {
        builder
            .ack_timeout(ACK_TIMEOUT)
            .attach_window(ATTACH_WINDOW)
            .reconnect_grace(RECONNECT_GRACE)
    })
    .await?;
    let ctx = Ctx::new(
        &rig.gateway.hub_url(),
        TokenSource::Issuer(rig.issuer.clone()),
    )
    .with_timing(ACK_TIMEOUT, ATTACH_WINDOW)
    .with_reconnect_grace(RECONNECT_GRACE);
    let report = runner::run(ctx, &Options::default()).await?;
    println!("{}", report.render());
    let failed = report.failed();
    rig.gateway.stop().await?;
    ensure!(
        failed == 0,
        "{failed} conformance checks failed:\n{}",
        report.render()
    );
    Ok(())
}
