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
    /// Frames the service wrote to the client's websocket and the client has not read yet,
    /// with the fault rule that shaped each: the client records the delivery when its machine
    /// takes the frame, as the simulator does.
    to_client: Arc<Mutex<Pipe>>,
    pub probe: Arc<Probe>,
}

/// Frames on their way to the client, with the fault rule that shaped each.
type Pipe = std::collections::VecDeque<(Vec<u8>, Option<String>)>;

/// The payload of the websocket ping with which the reference client, in a scenario run, tells
/// the service it has handled a frame and written everything that frame made it write. The
/// service then sends the next frame: over real sockets the client takes frames one at a
/// time, as the simulator hands them over, so a fault that fires on the client's reply acts
/// before the next frame reaches it. The pong is ignored.
pub const BARRIER: &[u8] = b"ssm-harness-barrier";

/// The most frames kept in [`Recorder`]'s websocket pipe bookkeeping.
const MAX_PIPE: usize = 100_000;

impl Recorder {
    pub fn new(clock: Clock) -> Self {
        Recorder {
            clock,
            trace: Arc::new(Mutex::new(Trace::default())),
            to_client: Arc::default(),
            probe: Arc::new(Probe::default()),
        }
    }

    /// The service wrote `bytes` to the client's websocket.
    pub fn sent_to_client(&self, bytes: &[u8], fault: Option<String>) {
        let mut q = self.to_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() < MAX_PIPE {
            q.push_back((bytes.to_vec(), fault));
        }
        self.probe.in_pipe.store(q.len() as u64, Ordering::Relaxed);
    }

    /// The client read `bytes`: the fault label the service sent them with (frames written to
    /// a connection that broke before they were read are skipped).
    pub fn read_by_client(&self, bytes: &[u8]) -> Option<String> {
        let mut q = self.to_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = q.iter().position(|(b, _)| b == bytes);
        let label = found.and_then(|i| q.drain(..=i).next_back().and_then(|(_, f)| f));
        self.probe.in_pipe.store(q.len() as u64, Ordering::Relaxed);
        label
    }

    /// The client's websocket broke: what was on its way is lost.
    pub fn client_pipe_broken(&self) {
        let mut q = self.to_client.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        q.clear();
        self.probe.in_pipe.store(0, Ordering::Relaxed);
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn record(&self, what: What) {
        self.record_at(self.clock.now(), what);
    }

    /// Records at a given instant (the instant a machine was handed the input that led to
    /// this record).
    pub fn record_at(&self, t: ssm_channel::Time, what: What) {
        let t = t.as_nanos();
        let mut g = self.trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.records.len() < MAX_RECORDS {
            g.push(t, what);
        } else {
            self.probe.overflow.store(true, Ordering::Relaxed);
        }
    }

    /// The trace so far, in time order (records of one processing step share an instant and
    /// stay together; the stable sort keeps the order in which they were made).
    pub fn snapshot(&self) -> Trace {
        let mut t = self.trace.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        t.records.sort_by_key(|r| r.t);
        t
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
    /// Messages sent and not acknowledged yet (the client's, as of its last write).
    pub unacked: AtomicU64,
}

/// Facts of a run: [0] the client, [1] the agent.
#[derive(Debug, Default)]
pub struct Probe {
    pub sides: [SideProbe; 2],
    /// Frames the service holds for later delivery (latency, delay faults).
    pub in_flight: AtomicU64,
    /// Frames written to the client's websocket and not read yet.
    pub in_pipe: AtomicU64,
    /// Client websockets whose OpenDataChannel was accepted.
    pub client_opens: AtomicU64,
    /// `client_opens` when the client's websocket last broke.
    pub client_opens_at_break: AtomicU64,
    /// The client's websocket is open and its OpenDataChannel accepted.
    pub client_connected: AtomicBool,
    /// The trace reached [`MAX_RECORDS`].
    pub overflow: AtomicBool,
    /// Woken whenever a side publishes new facts.
    pub changed: tokio::sync::Notify,
}

impl Probe {
    pub fn side(&self, client: bool) -> &SideProbe {
        &self.sides[usize::from(!client)]
    }
}
