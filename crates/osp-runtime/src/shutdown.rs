//! Waits for the signals that ask a process to stop: SIGTERM (Kubernetes) and SIGINT
//! (Ctrl-C).

use tokio::signal::unix::{SignalKind, signal};

/// Resolves with the signal's name when SIGTERM or SIGINT arrives.
pub async fn signal_received() -> std::io::Result<&'static str> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => Ok("SIGTERM"),
        _ = interrupt.recv() => Ok("SIGINT"),
    }
}
