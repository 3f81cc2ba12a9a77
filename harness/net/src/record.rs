//! Recording a run over real sockets as the same [`Trace`] the simulator writes, and the live
//! facts a scenario script waits on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ssm_scenario::{Trace, What};

use crate::clock::Clock;

/// The most records one run keeps (as the simulator's bound); later ones are dropped and the
/// run is ended by its driver.
pub const MAX_RECORDS: usize = 1_500_000;

/// Appends records stamped with the run's clock. Cloned into every component of a run.
#[derive(Debug, Clone)]
pub struct Recorder {
    clock: Clock,
    trace: Arc<Mutex<Trace>>,
    pub probe: Arc<Probe>,
}

impl Recorder {
    pub fn new(clock: Clock) -> Self {
        Recorder { clock, trace: Arc::new(Mutex::new(Trace::default())), probe: Arc::new(Probe::default()) }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn record(&self, what: What) {
        let t = self.clock.now().as_nanos();
        let mut g = self.trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.records.len() < MAX_RECORDS {
            g.push(t, what);
        } else {
            self.probe.overflow.store(true, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner).records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trace so far.
    pub fn snapshot(&self) -> Trace {
        self.trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// One side's live state, published by its driver after every drain.
#[derive(Debug, Default)]
pub struct SideProbe {
    pub ready: AtomicBool,
    pub ended: AtomicBool,
    /// Not quiescent: unacknowledged or reordered messages, or a call or connect in flight.
    pub busy: AtomicBool,
    pub offered: AtomicU64,
    pub delivered: AtomicU64,
}

/// Facts of a run: [0] the client, [1] the agent.
#[derive(Debug, Default)]
pub struct Probe {
    pub sides: [SideProbe; 2],
    /// Frames the service holds for later delivery (latency, delay faults).
    pub in_flight: AtomicU64,
    /// Client websockets whose OpenDataChannel was accepted.
    pub client_opens: AtomicU64,
    /// `client_opens` when the client's websocket last broke.
    pub client_opens_at_break: AtomicU64,
    /// The client's websocket is open and its OpenDataChannel accepted.
    pub client_connected: AtomicBool,
    /// The trace reached [`MAX_RECORDS`].
    pub overflow: AtomicBool,
}

impl Probe {
    pub fn side(&self, client: bool) -> &SideProbe {
        &self.sides[usize::from(!client)]
    }
}
