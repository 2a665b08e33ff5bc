//! Graceful shutdown: SIGTERM closes connected sockets with 1012 and the gateway exits 0.

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig};
use crate::gateway::STOP_DEADLINE;
use crate::payloads::random_topic;

#[tokio::test]
async fn sigterm_closes_sockets_with_1012_and_exits_0() -> Result<()> {
    let mut rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut subscriber = rig.subscriber(&client, "Patient-open").await?;
    let process = rig.gateway.process_mut();
    process.signal("TERM")?;
    let code = subscriber
        .expect_close(MSG)
        .await
        .with_context(|| process.logs_tail())?;
    ensure!(
        code == Some(1012),
        "socket closed with {code:?}, expected 1012 (draining)"
    );
    let status = process
        .wait_exit(STOP_DEADLINE)
        .await
        .with_context(|| process.logs_tail())?;
    process.forget_child();
    ensure!(
        status.success(),
        "gateway exited with {status} after SIGTERM\n{}",
        process.logs_tail()
    );
    Ok(())
}
