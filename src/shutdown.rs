//! Graceful shutdown: SIGINT or SIGTERM ends the daemon with exit code 0.
//!
//! Nothing needs draining first: every acknowledged message is already committed, and a
//! message in flight is simply not acknowledged, so the broker delivers it again after the
//! restart. Stopping cleanly and `kill -9` therefore leave the journal in the same kind of
//! state; a clean stop only saves the broker a redelivery.

/// Resolves when the process is asked to stop.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupted; stopping"),
        _ = term => tracing::info!("terminated; stopping"),
    }
}
