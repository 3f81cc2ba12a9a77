//! A scenario run over real loopback sockets: the mock service (its API, its relay with the
//! scenario's faults and link model, the agent machine behind it) and the reference client
//! (the client machine over tokio-tungstenite, ResumeSession through aws-sdk-ssm), driven by the
//! scenario's script and recorded as the same trace the simulator writes.
//!
//! By default time is virtual: the run's tasks share one thread whose clock is paused and jumps
//! to the next timer when every task waits, so scenarios written in minutes of protocol time
//! finish in milliseconds and timing is as exact as in the simulator. With `scale` N > 0 time is
//! real, N times faster (see [`Clock`]). Either way a run is not a pure function of its seed:
//! session ids, tokens and the kernel's sockets are real.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ssm_channel::{Behaviour, PayloadType, Role, Time};
use ssm_scenario::model::{
    AgentApp, Breakage, Scenario, Step, TerminateVia, TerminatedResume as ScTerminatedResume, WaitEvent,
};
use ssm_scenario::{Trace, What};
use ssm_wire::payload;
use tokio::sync::mpsc;

use crate::client::{self, ClientOptions, Input, StartSessionResponse};
use crate::clock::Clock;
use crate::control::{SdkControlPlane, SdkOptions};
use crate::mock::{self, AppConfig, Harness, LinkModel, MockConfig, ScriptCmd, TerminatedResume};
use crate::record::{Probe, Recorder};

/// The default clock of scenario runs over real sockets: 0, virtual time (see [`NetInput::scale`]).
pub const DEFAULT_SCALE: u32 = 0;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct NetInput<'a> {
    pub scenario: &'a Scenario,
    pub client: Behaviour,
    pub agent: Behaviour,
    pub seed: u64,
    /// 0: virtual time. The run has one thread and a paused clock that jumps to the next timer
    /// whenever every task waits; loopback data is readable as soon as it is written, so the
    /// jump never overtakes a frame on the wire. N > 0: real time, sped up N times.
    pub scale: u32,
}

/// How a run ended (as the simulator's `RunEnd`, plus harness failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEnd {
    Settled,
    DidNotFinish {
        waiting_for: String,
    },
    StepTimedOut {
        index: usize,
        step: String,
    },
    /// The harness or the environment failed (the mock did not start, a call failed).
    Error(String),
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct NetOutput {
    pub trace: Trace,
    pub end: NetEnd,
    /// Machine time at the end.
    pub elapsed: Duration,
}

/// Runs one scenario to its end on a runtime of its own.
pub fn run(input: &NetInput<'_>) -> NetOutput {
    let rt = if input.scale == 0 {
        // Virtual time: one thread, the clock paused and advanced to the next timer whenever
        // every task waits (loopback data is readable as soon as it is written, so no task
        // waits on the network while time jumps).
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            return NetOutput {
                trace: Trace::default(),
                end: NetEnd::Error(format!("cannot start a runtime: {e}")),
                elapsed: Duration::ZERO,
            }
        }
    };
    let out = rt.block_on(run_async(input));
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

fn mock_config(sc: &Scenario, seed: u64) -> MockConfig {
    let ms = Duration::from_millis;
    let app = match &sc.agent_app {
        AgentApp::Echo { prompt } => AppConfig::Echo { prompt: prompt.clone() },
        AgentApp::Script { output, exit_code, interval_ms } => {
            AppConfig::Script { output: output.clone(), interval: ms(*interval_ms), exit_code: *exit_code }
        }
    };
    MockConfig {
        rotate_stream_url: sc.service.rotate_stream_url,
        terminated_resume: match sc.service.terminated_resume {
            ScTerminatedResume::Error => TerminatedResume::Error,
            ScTerminatedResume::NullToken => TerminatedResume::NullToken,
        },
        app,
        idle_timeout: sc.service.idle_timeout_ms.map(ms),
        max_duration: sc.service.max_duration_ms.map(ms),
        bye_interval: sc.service.bye_interval_ms.map(ms),
        publication: sc.service.publication,
        seed,
        faults: Some(sc.faults.clone()),
        link: LinkModel {
            latency: ms(sc.link.latency_ms),
            jitter: ms(sc.link.jitter_ms),
            loss: sc.link.loss,
        },
        ..MockConfig::default()
    }
}

fn step_at(s: &Step) -> Option<u64> {
    match s {
        Step::Send { at_ms, .. } | Step::Resize { at_ms, .. } | Step::Disconnect { at_ms, .. } => *at_ms,
        _ => None,
    }
}

/// Live facts the script waits on.
struct Watch<'a> {
    probe: &'a Probe,
    under_test: Role,
}

impl Watch<'_> {
    fn settled(&self) -> bool {
        let p = self.probe;
        p.in_flight.load(Ordering::Relaxed) == 0
            && p.in_pipe.load(Ordering::Relaxed) == 0
            && p.sides.iter().all(|s| !s.busy.load(Ordering::Relaxed))
    }

    fn holds(&self, event: &WaitEvent, baseline: u64) -> bool {
        let p = self.probe;
        let (c, a) = (p.side(true), p.side(false));
        match event {
            WaitEvent::Ready => c.ready.load(Ordering::Relaxed) && a.ready.load(Ordering::Relaxed),
            WaitEvent::Reconnected => {
                let opens = p.client_opens.load(Ordering::Relaxed);
                let at_break = p.client_opens_at_break.load(Ordering::Relaxed);
                p.client_connected.load(Ordering::Relaxed) && opens > baseline.min(at_break)
            }
            WaitEvent::Delivered => {
                a.delivered.load(Ordering::Relaxed) >= c.offered.load(Ordering::Relaxed)
                    && c.delivered.load(Ordering::Relaxed) >= a.offered.load(Ordering::Relaxed)
            }
            WaitEvent::Ended => p.side(self.under_test == Role::Client).ended.load(Ordering::Relaxed),
            WaitEvent::Quiet => self.settled(),
        }
    }

    fn waiting_for(&self) -> String {
        let mut parts = Vec::new();
        for (name, s) in [("client", self.probe.side(true)), ("agent", self.probe.side(false))] {
            if s.busy.load(Ordering::Relaxed) {
                parts.push(format!("{name}: busy"));
            }
        }
        let held = self.probe.in_flight.load(Ordering::Relaxed);
        if held > 0 {
            parts.push(format!("{held} frames in flight"));
        }
        if parts.is_empty() {
            parts.push("the script".into());
        }
        parts.join("; ")
    }
}

/// How often the script looks at the live facts (real time).
const POLL: Duration = Duration::from_millis(50);

async fn run_async(input: &NetInput<'_>) -> NetOutput {
    let sc = input.scenario;
    let fail_early =
        |e: String| NetOutput { trace: Trace::default(), end: NetEnd::Error(e), elapsed: Duration::ZERO };
    let mut cfg = mock_config(sc, input.seed);
    let harness_for = |clock: Clock, rec: &Recorder| Harness {
        clock,
        recorder: rec.clone(),
        session_kind: Some(sc.session.clone()),
        extra_client_actions: sc.handshake_extra_actions.clone(),
        agent: Some(input.agent.clone()),
        kms: sc.kms_encryption.then(ssm_channel::kms::Kms::harness),
    };
    cfg.harness = None;
    let m = match mock::start(cfg).await {
        Ok(m) => m,
        Err(e) => return fail_early(format!("the mock did not start: {e}")),
    };
    let control = match SdkControlPlane::new(&SdkOptions {
        region: "us-east-1".into(),
        endpoint_url: Some(m.endpoint_url().to_owned()),
        credentials: Some((mock::TEST_ACCESS_KEY_ID.into(), mock::TEST_SECRET_ACCESS_KEY.into())),
        disable_retries: true,
        ..SdkOptions::default()
    })
    .await
    {
        Ok(c) => c,
        Err(e) => return fail_early(e.to_string()),
    };
    // Machine time starts now, with everything listening: the session and both machines are
    // created at its zero, as in the simulator.
    let clock = Clock::scaled(input.scale.max(1));
    let rec = Recorder::new(clock);
    m.set_harness(harness_for(clock, &rec));
    let finish = |rec: &Recorder, end: NetEnd| {
        let why = match &end {
            NetEnd::Settled => "settled".to_owned(),
            NetEnd::DidNotFinish { waiting_for } => format!("did not finish: {waiting_for}"),
            NetEnd::StepTimedOut { index, step } => format!("step {index} timed out: {step}"),
            NetEnd::Error(e) => format!("harness error: {e}"),
        };
        rec.record(What::Finished { why });
        NetOutput { trace: rec.snapshot(), end, elapsed: clock.now().since(Time::ZERO) }
    };
    let started = match control.client().start_session().target("i-0123456789abcdef0").send().await {
        Ok(s) => s,
        Err(e) => return finish(&rec, NetEnd::Error(format!("StartSession failed: {e:?}"))),
    };
    let session = StartSessionResponse {
        session_id: started.session_id().unwrap_or_default().to_owned(),
        token_value: started.token_value().unwrap_or_default().to_owned(),
        stream_url: started.stream_url().unwrap_or_default().to_owned(),
    };
    let id = session.session_id.clone();
    let mut opts = ClientOptions::new(session, input.client.clone(), input.seed ^ 0x636c_6965_6e74);
    opts.clock = Some(clock);
    opts.recorder = Some(rec.clone());
    opts.scenario_run = true;
    opts.eof_grace = Duration::from_secs(3600);
    opts.first_connect_delay = Duration::from_millis(sc.service.client_first_connect_delay_ms);
    opts.kms = sc.kms_encryption.then(ssm_channel::kms::Kms::harness);
    let (itx, irx) = mpsc::channel::<Input>(1024);
    let (otx, mut orx) = mpsc::unbounded_channel();
    let client_task = tokio::spawn(client::run(opts, Arc::new(control), irx, otx));
    tokio::spawn(async move { while orx.recv().await.is_some() {} });

    let deadline = clock.instant(Time::from_millis(sc.duration_ms));
    let watch = Watch { probe: &rec.probe, under_test: sc.under_test };
    let end = script(sc, &m, &id, &itx, &watch, clock, deadline, &rec).await;
    let end = match end {
        Some(e) => e,
        None => {
            // The script is done: wait for the world to settle (quiet, and still quiet after
            // every task has had its turn).
            loop {
                if rec.probe.overflow.load(Ordering::Relaxed) {
                    break NetEnd::DidNotFinish { waiting_for: "the trace limit".into() };
                }
                let changed = rec.probe.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if watch.settled() {
                    for _ in 0..8 {
                        tokio::task::yield_now().await;
                    }
                    if watch.settled() {
                        break NetEnd::Settled;
                    }
                    continue;
                }
                if tokio::time::Instant::now() >= deadline {
                    break NetEnd::DidNotFinish { waiting_for: watch.waiting_for() };
                }
                tokio::select! {
                    () = &mut changed => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    };
    client_task.abort();
    let _ = client_task.await;
    let out = finish(&rec, end);
    m.shutdown().await;
    out
}

#[allow(clippy::too_many_arguments)]
async fn script(
    sc: &Scenario,
    m: &mock::MockHandle,
    id: &str,
    input: &mpsc::Sender<Input>,
    watch: &Watch<'_>,
    clock: Clock,
    deadline: tokio::time::Instant,
    rec: &Recorder,
) -> Option<NetEnd> {
    let past_deadline = || NetEnd::DidNotFinish { waiting_for: format!("script; {}", watch.waiting_for()) };
    for (index, step) in sc.steps.iter().enumerate() {
        if let Some(at) = step_at(step) {
            let when = clock.instant(Time::from_millis(at));
            if when > deadline {
                tokio::time::sleep_until(deadline).await;
                return Some(past_deadline());
            }
            tokio::time::sleep_until(when).await;
        }
        rec.record(What::Step { index, step: serde_json::to_value(step).unwrap_or_default() });
        let wait_for = |event: WaitEvent, timeout: Option<u64>, baseline: u64| async move {
            let until =
                tokio::time::Instant::now() + clock.to_real(Duration::from_millis(timeout.unwrap_or(60_000)));
            loop {
                // Registered before looking, so a change in between is not missed.
                let changed = watch.probe.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if watch.holds(&event, baseline) {
                    return None;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Some(past_deadline());
                }
                if now >= until {
                    return Some(NetEnd::StepTimedOut { index, step: format!("wait_for {event:?}") });
                }
                tokio::select! {
                    () = &mut changed => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        };
        match step {
            Step::Send { from, text, hex, payload_type, repeat, .. } => {
                let base = match (text, hex) {
                    (Some(t), _) => t.clone().into_bytes(),
                    (None, Some(h)) => hex::decode(h).unwrap_or_default(),
                    (None, None) => Vec::new(),
                };
                let pt = payload_type.unwrap_or(1);
                let n = repeat.unwrap_or(1);
                for i in 0..n {
                    let mut b = base.clone();
                    if n > 1 {
                        b.extend_from_slice(format!("#{i};").as_bytes());
                    }
                    match from {
                        Role::Client => {
                            let _ = input.send(Input::Send { payload_type: pt, bytes: b }).await;
                        }
                        Role::Agent => {
                            m.script(id, ScriptCmd::Send { payload_type: pt, bytes: b });
                        }
                    }
                }
            }
            Step::Resize { cols, rows, .. } => {
                let body = payload::to_go_json(&payload::Size { cols: *cols, rows: *rows });
                let _ = input.send(Input::Send { payload_type: PayloadType::SIZE.0, bytes: body }).await;
            }
            Step::Wait { ms } => {
                let until = tokio::time::Instant::now() + clock.to_real(Duration::from_millis(*ms));
                if until > deadline {
                    tokio::time::sleep_until(deadline).await;
                    return Some(past_deadline());
                }
                tokio::time::sleep_until(until).await;
            }
            Step::WaitFor { event, timeout_ms } => {
                let baseline = watch.probe.client_opens.load(Ordering::Relaxed);
                if let Some(end) = wait_for(event.clone(), *timeout_ms, baseline).await {
                    return Some(end);
                }
            }
            Step::Disconnect { side, how, code, .. } => {
                let code = match how {
                    Breakage::Reset => None,
                    Breakage::Close => Some(code.unwrap_or(1006)),
                };
                m.script(id, ScriptCmd::Disconnect { side: *side, code, why: "scenario step".into() });
            }
            Step::Resume { timeout_ms } => {
                let baseline = watch.probe.client_opens.load(Ordering::Relaxed);
                m.script(
                    id,
                    ScriptCmd::Disconnect {
                        side: Role::Client,
                        code: None,
                        why: "scenario step: resume".into(),
                    },
                );
                // The relay breaks the websocket asynchronously; the break is what the wait
                // measures from.
                let t0 = tokio::time::Instant::now();
                while watch.probe.client_connected.load(Ordering::Relaxed)
                    && tokio::time::Instant::now() < t0 + Duration::from_millis(500)
                {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                if let Some(end) = wait_for(WaitEvent::Reconnected, *timeout_ms, baseline).await {
                    return Some(end);
                }
            }
            Step::Terminate { via } => match via {
                TerminateVia::Interrupt => {
                    let _ = input.send(Input::Terminate).await;
                }
                TerminateVia::Service => {
                    m.terminate(id);
                }
            },
            Step::Finish { exit_code } => {
                m.script(id, ScriptCmd::Finish { exit_code: *exit_code });
            }
            Step::SetReady { side, ready } => match side {
                Role::Client => {
                    let _ = input.send(Input::SetReady(*ready)).await;
                }
                Role::Agent => {
                    m.script(id, ScriptCmd::SetReady(*ready));
                }
            },
        }
        // Let the step take effect before the next one looks at the live facts, without letting
        // time pass (the simulator's next step starts at the same instant).
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    None
}
