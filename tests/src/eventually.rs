//! Waiting for conditions with a deadline instead of sleeping.
//!
//! Every wait in this crate goes through [`eventually`]: it polls a condition until it holds
//! or the deadline passes, and fails with the last observation so the reason is visible.
//! Sleeping to "let things settle" is never used as synchronisation.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::Instant;

/// Interval between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Polls `condition` until it returns `Ok(Some(value))` or `deadline` has passed.
///
/// `Ok(None)` and `Err(_)` both mean "not yet"; the last error (if any) is included in the
/// failure message, together with `what`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let end = Instant::now() + deadline;
    let mut last_error: Option<anyhow::Error> = None;
    loop {
        match condition().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() >= end {
            match last_error {
                Some(error) => {
                    bail!("{what}: still not true after {deadline:?}; last error: {error:#}")
                }
                None => bail!("{what}: still not true after {deadline:?}"),
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_the_condition_holds() {
        let mut calls = 0;
        let value = eventually("counter reaches 3", Duration::from_secs(5), || {
            calls += 1;
            let now = calls;
            async move { Ok((now >= 3).then_some(now)) }
        })
        .await
        .expect("condition holds on the third call");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn fails_with_the_last_error_after_the_deadline() {
        let error = eventually::<(), _, _>("never", Duration::from_millis(60), || async {
            Err(anyhow::anyhow!("boom"))
        })
        .await
        .expect_err("condition never holds");
        let text = format!("{error:#}");
        assert!(text.contains("never") && text.contains("boom"), "{text}");
    }
}
