//! The time the machines see: real time since a shared start, optionally sped up.
//!
//! A scenario written for virtual time (seconds of resend timeouts, minutes of idle timeouts)
//! runs over real sockets with every duration divided by `scale`: machines see `scale` times the
//! elapsed real time. Loopback latency is far below the protocol's timers, so a moderate scale
//! keeps the protocol's behaviour while keeping runs short.

use std::time::Duration;

use ssm_channel::Time;
use tokio::time::Instant;

/// A clock shared by every component of one run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    scale: u32,
}

impl Clock {
    /// Real time from now.
    pub fn real() -> Self {
        Clock { base: Instant::now(), scale: 1 }
    }

    /// Time from now, running `scale` times faster than real time (at least 1).
    pub fn scaled(scale: u32) -> Self {
        Clock { base: Instant::now(), scale: scale.max(1) }
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The machines' time now.
    pub fn now(&self) -> Time {
        let real = self.base.elapsed().as_nanos().saturating_mul(u128::from(self.scale));
        Time::from_nanos(real.min(u128::from(u64::MAX)) as u64)
    }

    /// The real instant at which machine time reaches `t`.
    pub fn instant(&self, t: Time) -> Instant {
        self.base + Duration::from_nanos(t.as_nanos() / u64::from(self.scale))
    }

    /// The real length of a machine-time duration.
    pub fn to_real(&self, d: Duration) -> Duration {
        d / self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_maps_back_to_instants() {
        let c = Clock::scaled(10);
        let t = Time::from_millis(1000);
        let i = c.instant(t);
        assert_eq!(i - c.base, Duration::from_millis(100));
        assert_eq!(c.to_real(Duration::from_secs(5)), Duration::from_millis(500));
        assert_eq!(Clock::scaled(0).scale(), 1);
    }
}
