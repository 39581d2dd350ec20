//! The one place that reads the clock.
//!
//! Owns: `Now`, both clocks read together once per control-loop iteration.
//! Everything that decides (engine, media sessions) takes a `Now` or an `Instant` as input.

use std::time::Instant;

/// Sleeps until `deadline`, or forever when there is none (a driver's timer arm in `select!`).
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Both clocks, read once by a driver: monotonic for timers, wall for opening hours and records.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub wall: jiff::Timestamp,
}

impl Now {
    /// Reads the system clocks. Only drivers call this.
    #[allow(clippy::disallowed_methods)] // the driver's clock site
    pub fn read() -> Now {
        Now { instant: Instant::now(), wall: jiff::Timestamp::now() }
    }
}
