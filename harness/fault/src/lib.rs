//! Fault rules for the SSM Session Manager data channel and its control plane: one model shared
//! by the deterministic simulator and the websocket fault proxy.
//!
//! A [`FaultPlan`] has three lists:
//!
//! * `frames`: [`FrameRule`]s. Each has a [`FrameMatch`] (`when`, every key optional, all given
//!   keys must hold) and a [`FrameAction`] (`action`). For every frame, every rule whose criteria
//!   hold counts it; the first rule (in file order) whose `nth`/`count` window covers the frame
//!   wins. A frame no rule takes is delivered unchanged with no delay.
//! * `timed`: [`TimedFault`]s, connection events at a virtual time that need no frame.
//! * `api`: [`ApiRule`]s, faults of the control-plane calls (ResumeSession and friends).
//!
//! [`FaultEngine`] applies a plan: [`FaultEngine::on_frame`] for each frame read from a
//! websocket, [`FaultEngine::poll`] at [`FaultEngine::next_deadline`], [`FaultEngine::on_api`]
//! for each control-plane call. It is pure and deterministic: time is virtual milliseconds handed
//! in, randomness comes from the seed, and the same plan, seed and inputs give the same outputs.
//! [`FaultEngine::fired`] records every rule firing for reports.
//!
//! # Semantics worth knowing
//!
//! * Directions: `to_agent` carries what the client sent, `to_client` what the agent (or the
//!   service) sent. Sides name websockets: `client`, `agent`.
//! * `seq` and `acked_seq` take a number or an inclusive `[lo, hi]`. `acked_seq` reads
//!   AcknowledgedMessageSequenceNumber from an acknowledge frame's JSON.
//! * `retransmissions_only` / `first_copies_only`: a frame is a retransmission when its
//!   (direction, message_type, seq) was seen before; for acks the acknowledged sequence number
//!   stands in for the header's (always 0) one, so a repeated ack of the same message counts.
//! * `nth` is 1-based and counts the frames meeting the rule's other criteria, whether or not an
//!   earlier rule took them; the rule targets matches `nth .. nth + count - 1`. `count` defaults
//!   to 1 with `nth` and to unlimited without it.
//! * The window is `from_ms <= now < until_ms`.
//! * `after` arms the rule: `acks` (the Nth ack in that direction has passed; the Nth itself is
//!   not affected), `unacked_over` and `reconnects` latch once they fire; `resume_in_flight` holds
//!   only while a ResumeSession call is in flight.
//! * Frames that fail to decode are matched only by rules without content criteria (direction,
//!   time, trigger, nth/count); nothing panics on garbage bytes.
//! * `close` and `reset` replace the matched frame (it is not delivered). `inject` sends the forged
//!   service frame just before the matched one. `black_hole` discards the matched frame too when
//!   it travels in the black-holed direction (by default its own).
//! * `reorder` holds the frame until `window` more frames have arrived in the same direction and
//!   releases it right after the last of them, or at `max_hold_ms` (default 1000) at the latest.
//! * While a direction is black-holed, its frames are discarded before any rule sees them (rules
//!   do not count them).
//! * `null_token` and `rotate_stream_url` need operations whose answer has those fields.
//!
//! # Every key, in TOML
//!
//! A scenario embeds a plan under its own table; on its own a plan file looks like this (it is
//! [`EXAMPLE_PLAN`], and the crate's tests parse it):
//!
#![doc = concat!("```toml\n", include_str!("example_plan.toml"), "```")]

mod check;
mod engine;
mod model;

pub use check::{PlanError, MAX_COPIES, MAX_HOLD_MS, MAX_OUTPUT_LEN, MAX_TRUNCATE_LEN, MAX_WINDOW};
pub use engine::{ApiEffect, Context, Effect, FaultEngine, Firing, DEFAULT_EPOCH_MS};
pub use model::{
    ApiAction, ApiErrorKind, ApiOp, ApiRule, Corruption, Direction, FaultPlan, FrameAction, FrameMatch,
    FrameRule, InjectFrame, RuleId, SeqRange, Side, TimedAction, TimedFault, Trigger, DEFAULT_MAX_HOLD_MS,
};

/// A plan that uses every key, as shown in the crate documentation.
pub const EXAMPLE_PLAN: &str = include_str!("example_plan.toml");
