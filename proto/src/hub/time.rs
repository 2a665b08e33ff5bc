//! Wall-clock instants as every process counts them: leases, attach deadlines and token
//! expiries are milliseconds since the Unix epoch, so they mean the same on every node;
//! timers turn them into tokio instants.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch.
pub type UnixMs = u64;

/// Returns a wall-clock time in milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> UnixMs {
    at.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Returns the wall clock now, in milliseconds since the Unix epoch.
pub fn unix_now_ms() -> UnixMs {
    unix_ms(SystemTime::now())
}

/// Returns the tokio instant of a wall-clock deadline (now, if it has passed), for timers.
pub fn instant_at(deadline: UnixMs) -> Instant {
    Instant::now() + Duration::from_millis(deadline.saturating_sub(unix_now_ms()))
}
