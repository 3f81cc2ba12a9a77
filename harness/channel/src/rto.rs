//! Retransmission timeout estimator (protocol reference 5.5, RTX-003).

use std::time::Duration;

/// Initial smoothed RTT.
pub const INITIAL_SRTT: Duration = Duration::from_millis(100);
/// Initial RTO.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);
/// Clock granularity G.
pub const CLOCK_GRANULARITY: Duration = Duration::from_millis(10);
/// Maximum RTO.
pub const MAX_RTO: Duration = Duration::from_secs(1);
/// RTT gain alpha.
pub const ALPHA: f64 = 1.0 / 8.0;
/// RTT-variation gain beta.
pub const BETA: f64 = 1.0 / 4.0;

/// The estimator both references use, in nanosecond floats as they compute it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RtoEstimator {
    srtt_ns: f64,
    rttvar_ns: f64,
    rto: Duration,
}

impl Default for RtoEstimator {
    fn default() -> Self {
        RtoEstimator { srtt_ns: INITIAL_SRTT.as_nanos() as f64, rttvar_ns: 0.0, rto: INITIAL_RTO }
    }
}

impl RtoEstimator {
    /// Feeds one RTT sample R (5.5 steps 1 to 3).
    pub fn on_sample(&mut self, r: Duration) {
        let r = r.as_nanos() as f64;
        self.rttvar_ns = (1.0 - BETA) * self.rttvar_ns + BETA * (self.srtt_ns - r).abs();
        self.srtt_ns = (1.0 - ALPHA) * self.srtt_ns + ALPHA * r;
        let g = CLOCK_GRANULARITY.as_nanos() as f64;
        let rto = self.srtt_ns + g.max(4.0 * self.rttvar_ns);
        let rto = rto.min(MAX_RTO.as_nanos() as f64);
        // `rto` is positive and at most one second here.
        self.rto = Duration::from_nanos(rto as u64);
    }

    pub fn rto(&self) -> Duration {
        self.rto
    }

    pub fn srtt(&self) -> Duration {
        Duration::from_nanos(self.srtt_ns as u64)
    }

    pub fn rttvar(&self) -> Duration {
        Duration::from_nanos(self.rttvar_ns as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_state() {
        let e = RtoEstimator::default();
        assert_eq!(e.rto(), Duration::from_millis(200));
        assert_eq!(e.srtt(), Duration::from_millis(100));
        assert_eq!(e.rttvar(), Duration::ZERO);
    }

    #[test]
    fn worked_example_50ms() {
        let mut e = RtoEstimator::default();
        e.on_sample(Duration::from_millis(50));
        assert_eq!(e.rttvar(), Duration::from_micros(12_500));
        assert_eq!(e.srtt(), Duration::from_micros(93_750));
        assert_eq!(e.rto(), Duration::from_micros(143_750));
    }

    #[test]
    fn worked_example_2s_is_clamped() {
        let mut e = RtoEstimator::default();
        e.on_sample(Duration::from_secs(2));
        assert_eq!(e.rttvar(), Duration::from_millis(475));
        assert_eq!(e.srtt(), Duration::from_micros(337_500));
        // 2237.5 ms before the clamp.
        assert_eq!(e.rto(), Duration::from_secs(1));
    }

    #[test]
    fn granularity_floor_applies_when_variance_is_small() {
        let mut e = RtoEstimator::default();
        for _ in 0..200 {
            e.on_sample(Duration::from_millis(1));
        }
        // SRTT converges to 1 ms, RTTVAR to 0: RTO = SRTT + G.
        let rto = e.rto().as_secs_f64() * 1000.0;
        assert!((rto - 11.0).abs() < 0.01, "rto {rto} ms");
    }
}
