//! The message-sequence diagram of a failure, as static inline SVG: three lifelines (client,
//! service, agent) and one row per trace record around the first failure. Frames written,
//! delivered and sent by the service are arrows; lost frames end in ✕; faults and violations
//! are red. Every row is a `<g>` with a `data-kind` attribute, so tests can find them.

use std::fmt::Write as _;

use ssm_channel::Role;
use ssm_scenario::{Record, What};

use crate::model::Window;
use crate::text::{clip, esc, kind, ms};

const WIDTH: u32 = 1000;
const CLIENT_X: u32 = 200;
const SERVICE_X: u32 = 520;
const AGENT_X: u32 = 840;
const TOP: u32 = 64;
const ROW: u32 = 24;
/// Characters of a label that fit between two lifelines.
const LABEL: usize = 50;

const INK: &str = "#1f2933";
const WROTE: &str = "#1f4e8c";
const DELIVERED: &str = "#2d6a4f";
const SERVICE: &str = "#6c4f9c";
const MUTED: &str = "#6b7280";
const RED: &str = "#c62828";

fn x_of(r: Role) -> u32 {
    match r {
        Role::Client => CLIENT_X,
        Role::Agent => AGENT_X,
    }
}

/// Arrows and notes of one diagram, drawn row by row.
struct Canvas {
    body: String,
    row: u32,
}

impl Canvas {
    fn y(&self) -> u32 {
        TOP + self.row * ROW
    }

    fn time(&mut self, t: u64) {
        let y = self.y();
        let _ = write!(
            self.body,
            r#"<text x="8" y="{}" font-size="10" fill="{MUTED}">{}</text>"#,
            y + 3,
            esc(&ms(t))
        );
    }

    fn arrow(&mut self, t: u64, kind: &str, (from, to): (u32, u32), label: &str, color: &str, dashed: bool) {
        self.time(t);
        let y = self.y();
        let dir: i64 = if to > from { 1 } else { -1 };
        let tip = i64::from(to) - dir * 2;
        let back = tip - dir * 9;
        let dash = if dashed { r#" stroke-dasharray="5 3""# } else { "" };
        let mid = (from + to) / 2;
        let _ = write!(
            self.body,
            r#"<g class="arrow" data-kind="{kind}" data-t="{t}"><title>{title}</title><line x1="{from}" y1="{y}" x2="{tip}" y2="{y}" stroke="{color}" stroke-width="1.5"{dash}/><polygon points="{tip},{y} {back},{} {back},{}" fill="{color}"/><text x="{mid}" y="{}" font-size="11" text-anchor="middle" fill="{color}">{label}</text></g>"#,
            y - 4,
            y + 4,
            y - 5,
            title = esc(label),
            label = esc(&clip(label, LABEL)),
        );
        self.row += 1;
    }

    fn lost(&mut self, t: u64, from: u32, to: u32, label: &str) {
        self.time(t);
        let y = self.y();
        let end = if to > from { from + (to - from) * 7 / 10 } else { from - (from - to) * 7 / 10 };
        let mid = (from + to) / 2;
        let _ = write!(
            self.body,
            r#"<g class="arrow" data-kind="lost" data-t="{t}"><title>{title}</title><line x1="{from}" y1="{y}" x2="{end}" y2="{y}" stroke="{MUTED}" stroke-width="1.5" stroke-dasharray="2 3"/><text x="{end}" y="{}" font-size="15" font-weight="bold" text-anchor="middle" fill="{RED}">✕</text><text x="{mid}" y="{}" font-size="11" text-anchor="middle" fill="{MUTED}">{label}</text></g>"#,
            y + 5,
            y - 5,
            title = esc(label),
            label = esc(&clip(label, LABEL)),
        );
        self.row += 1;
    }

    fn note(&mut self, t: u64, kind: &str, at: u32, label: &str, color: &str) {
        self.time(t);
        let y = self.y();
        let (tx, anchor) = if at == AGENT_X { (at - 8, "end") } else { (at + 8, "start") };
        let _ = write!(
            self.body,
            r#"<g class="note" data-kind="{kind}" data-t="{t}"><title>{title}</title><circle cx="{at}" cy="{y}" r="4" fill="{color}"/><text x="{tx}" y="{}" font-size="11" text-anchor="{anchor}" fill="{color}">{label}</text></g>"#,
            y + 4,
            title = esc(label),
            label = esc(&clip(label, LABEL + 4)),
        );
        self.row += 1;
    }

    fn band(&mut self, t: Option<u64>, kind: &str, label: &str, color: &str, dashed: bool) {
        if let Some(t) = t {
            self.time(t);
        }
        let y = self.y();
        let dash = if dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = write!(
            self.body,
            r##"<g class="band" data-kind="{kind}"><title>{title}</title><line x1="100" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="1"{dash}/><text x="{SERVICE_X}" y="{}" font-size="11" text-anchor="middle" fill="{color}">{label}</text></g>"##,
            y + 4,
            WIDTH - 20,
            y + 4,
            y - 2,
            title = esc(label),
            label = esc(&clip(label, 110)),
        );
        self.row += 1;
    }

    fn record(&mut self, r: &Record) {
        let t = r.t;
        let k = kind(&r.what);
        match &r.what {
            What::Wrote { by, summary, .. } => {
                self.arrow(t, k, (x_of(*by), SERVICE_X), summary, WROTE, false)
            }
            What::Delivered { to, summary, fault, .. } => match fault.as_deref() {
                Some(f) if crate::text::is_service(f) => {
                    self.arrow(t, k, (SERVICE_X, x_of(*to)), summary, SERVICE, false)
                }
                Some(f) => self.arrow(t, k, (SERVICE_X, x_of(*to)), &format!("{summary} [{f}]"), RED, false),
                None => self.arrow(t, k, (SERVICE_X, x_of(*to)), summary, DELIVERED, false),
            },
            What::ServiceWrote { towards, summary, .. } => {
                self.arrow(t, k, (SERVICE_X, x_of(*towards)), summary, SERVICE, false)
            }
            What::Lost { towards, why, summary } => {
                self.lost(t, SERVICE_X, x_of(*towards), &format!("{summary} ({why})"))
            }
            What::Fault { rule, what } => self.note(t, k, SERVICE_X, &format!("fault {rule}: {what}"), RED),
            What::ServiceSaw { side, req, detail } => {
                self.note(t, k, SERVICE_X, &format!("{side} broke {req}: {detail}"), RED)
            }
            What::Opened { side, .. } => {
                self.arrow(t, k, (x_of(*side), SERVICE_X), "websocket opened", MUTED, true)
            }
            What::OpenChecked { side, accepted, why, .. } => {
                let label = if *accepted {
                    "OpenDataChannel accepted".to_owned()
                } else {
                    format!("OpenDataChannel refused: {why}")
                };
                self.arrow(t, k, (SERVICE_X, x_of(*side)), &label, if *accepted { MUTED } else { RED }, true)
            }
            What::Closed { side, code, why } => {
                let label = match code {
                    Some(c) => format!("closed {c}: {why}"),
                    None => format!("closed: {why}"),
                };
                self.note(t, k, x_of(*side), &label, MUTED)
            }
            What::Api { by, call, answer, .. } => {
                self.arrow(t, k, (x_of(*by), SERVICE_X), &format!("{call} → {answer}"), MUTED, true)
            }
            What::Event { role, .. } | What::Offered { by: role, .. } => {
                let full = crate::text::describe(&r.what);
                let label = full.strip_prefix(role.name()).map_or(full.as_str(), str::trim_start);
                self.note(t, k, x_of(*role), label, INK)
            }
            What::Pong { to } => self.arrow(t, k, (SERVICE_X, x_of(*to)), "pong", MUTED, true),
            What::Step { .. } | What::Finished { .. } | What::SessionTerminated { .. } => {
                self.band(Some(t), k, &crate::text::describe(&r.what), MUTED, false)
            }
        }
    }
}

/// The diagram of one failing scenario.
pub(crate) fn render(id: &str, w: &Window, total: usize) -> String {
    let mut c = Canvas { body: String::new(), row: 0 };
    if w.first > 0 {
        c.band(None, "earlier", &format!("… {} earlier records", w.first), MUTED, true);
    }
    let mut marked = false;
    for r in &w.records {
        if let Some(at) = w.failure_at {
            if !marked && r.t >= at {
                c.band(Some(at), "failure", &format!("▼ first failure at {}", ms(at)), RED, true);
                marked = true;
            }
        }
        c.record(r);
    }
    if let (Some(at), false) = (w.failure_at, marked) {
        c.band(Some(at), "failure", &format!("▼ first failure at {}", ms(at)), RED, true);
    }
    let after = total.saturating_sub(w.first + w.records.len());
    if after > 0 {
        c.band(None, "later", &format!("… {after} later records"), MUTED, true);
    }
    let height = TOP + c.row * ROW + 8;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="msd-{id}" class="msd" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" role="img" aria-label="message sequence around the first failure of {id}">"#,
        id = esc(id)
    );
    let _ = write!(svg, r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>"##);
    for (name, x) in [("client", CLIENT_X), ("service", SERVICE_X), ("agent", AGENT_X)] {
        let _ = write!(
            svg,
            r##"<g class="lifeline" data-lifeline="{name}"><line x1="{x}" y1="38" x2="{x}" y2="{}" stroke="#9ca3af" stroke-width="1"/><rect x="{}" y="10" width="120" height="28" rx="4" fill="#eef2f7" stroke="#9ca3af"/><text x="{x}" y="29" font-size="13" font-weight="bold" text-anchor="middle" fill="{INK}">{name}</text></g>"##,
            height - 4,
            x - 60,
        );
    }
    svg.push_str(&c.body);
    svg.push_str("</svg>");
    svg
}
