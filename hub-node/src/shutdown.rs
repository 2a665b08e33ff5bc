//! Signals that end the process. SIGTERM is how Kubernetes (and the test harness) asks a
//! pod to stop; SIGINT is Ctrl-C at a terminal. Either starts the drain.

use tokio_util::sync::CancellationToken;
use tracing::info;

/// Cancels `token` when SIGTERM or SIGINT arrives.
pub async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = terminate => info!("SIGTERM received, draining"),
        result = tokio::signal::ctrl_c() => {
            if result.is_ok() {
                info!("SIGINT received, draining");
            }
        }
        () = token.cancelled() => {}
    }
    token.cancel();
}
