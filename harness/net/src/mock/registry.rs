//! The mock's sessions: lifecycle state, the current and superseded tokens, and what was seen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use base64::Engine as _;
use rand::RngCore as _;
use ssm_spec::Req;
use subtle::ConstantTimeEq as _;
use tokio::sync::mpsc;

use super::session::ToSession;

/// Lifecycle of a session (`Status` in DescribeSessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SessionStatus {
    /// Started; no client websocket has been accepted yet.
    Connecting,
    Connected,
    Disconnected,
    Terminated,
}

impl SessionStatus {
    pub fn name(self) -> &'static str {
        match self {
            SessionStatus::Connecting => "Connecting",
            SessionStatus::Connected => "Connected",
            SessionStatus::Disconnected => "Disconnected",
            SessionStatus::Terminated => "Terminated",
        }
    }
}

/// How many terminated sessions are kept for DescribeSessions `History`.
const HISTORY: usize = 1000;
/// How many violations are kept per session.
const MAX_VIOLATIONS: usize = 1000;

/// What the mock knows of one session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub target: String,
    pub document_name: Option<String>,
    pub reason: Option<String>,
    pub owner: String,
    pub status: SessionStatus,
    pub started: SystemTime,
    pub ended: Option<SystemTime>,
    pub stream_url: String,
    /// How many ResumeSession calls were answered with a token.
    pub resumes: u64,
    /// How many client websockets passed the OpenDataChannel check.
    pub opens: u64,
    /// Requirements the client (or the mock's agent, prefixed so) was seen to break.
    pub violations: Vec<(Req, String)>,
    /// OpenDataChannel refusals with their logged reason.
    pub refusals: Vec<String>,
}

#[derive(Debug)]
struct Entry {
    info: SessionInfo,
    token: String,
    superseded: Vec<String>,
    tx: Option<mpsc::Sender<ToSession>>,
    /// The session's fault engine and the clock its times count from.
    faults: Option<(Faults, crate::clock::Clock)>,
    /// ResumeSession calls being answered.
    resuming: u32,
}

/// See [`Registry::resuming`].
pub(crate) struct ResumeGuard {
    registry: std::sync::Arc<Registry>,
    id: String,
}

impl Drop for ResumeGuard {
    fn drop(&mut self) {
        if let Some(e) = self.registry.lock().sessions.get_mut(&self.id) {
            e.resuming = e.resuming.saturating_sub(1);
        }
    }
}

/// A session's fault engine, shared by its relay and the API handler.
pub(crate) type Faults = std::sync::Arc<Mutex<ssm_fault::FaultEngine>>;

/// Why an OpenDataChannel token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Ok,
    UnknownSession,
    Terminated,
    /// A token this session had before a ResumeSession rotated it.
    Stale,
    /// The token of a different session.
    OtherSession,
    Wrong,
}

impl TokenCheck {
    pub fn reason(&self) -> &'static str {
        match self {
            TokenCheck::Ok => "ok",
            TokenCheck::UnknownSession => "no such session",
            TokenCheck::Terminated => "the session is terminated",
            TokenCheck::Stale => "stale token: superseded by ResumeSession",
            TokenCheck::OtherSession => "the token belongs to another session",
            TokenCheck::Wrong => "invalid token",
        }
    }
}

/// 256 random bits, shaped like the service's tokens (`AAEAA...`).
pub fn random_token() -> String {
    let mut b = [0u8; 48];
    rand::rng().fill_bytes(&mut b);
    format!("AAEAA{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A session id in the service's shape (`<caller>-<17 hex>`).
pub fn random_session_id(caller: &str) -> String {
    let mut b = [0u8; 9];
    rand::rng().fill_bytes(&mut b);
    let hex = hex::encode(b);
    format!("{caller}-{}", hex.get(..17).unwrap_or(&hex))
}

fn eq_ct(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// All sessions, behind one lock that is never held across an await.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<String, Entry>,
    history: VecDeque<String>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn live_count(&self) -> usize {
        self.lock().sessions.values().filter(|e| e.info.status != SessionStatus::Terminated).count()
    }

    pub(crate) fn insert(
        &self,
        info: SessionInfo,
        token: String,
        tx: mpsc::Sender<ToSession>,
        faults: Option<(Faults, crate::clock::Clock)>,
    ) {
        let mut g = self.lock();
        g.sessions.insert(
            info.id.clone(),
            Entry { info, token, superseded: Vec::new(), tx: Some(tx), faults, resuming: 0 },
        );
    }

    /// A ResumeSession call for `id` is being answered until the guard is dropped (for fault
    /// rules armed while a resume is in flight).
    pub(crate) fn resuming(self: &std::sync::Arc<Self>, id: &str) -> ResumeGuard {
        if let Some(e) = self.lock().sessions.get_mut(id) {
            e.resuming += 1;
        }
        ResumeGuard { registry: self.clone(), id: id.to_owned() }
    }

    pub(crate) fn resume_in_flight(&self, id: &str) -> bool {
        self.lock().sessions.get(id).is_some_and(|e| e.resuming > 0)
    }

    pub(crate) fn faults(&self, id: &str) -> Option<(Faults, crate::clock::Clock)> {
        self.lock().sessions.get(id).and_then(|e| e.faults.clone())
    }

    pub fn get(&self, id: &str) -> Option<SessionInfo> {
        self.lock().sessions.get(id).map(|e| e.info.clone())
    }

    pub fn all(&self) -> Vec<SessionInfo> {
        let mut v: Vec<SessionInfo> = self.lock().sessions.values().map(|e| e.info.clone()).collect();
        v.sort_by(|a, b| a.started.cmp(&b.started).then_with(|| a.id.cmp(&b.id)));
        v
    }

    pub(crate) fn sender(&self, id: &str) -> Option<mpsc::Sender<ToSession>> {
        self.lock().sessions.get(id).and_then(|e| e.tx.clone())
    }

    /// Rotates the token (ResumeSession); `None` if the session is unknown or terminated.
    pub(crate) fn rotate(&self, id: &str, new_url: Option<String>) -> Option<(String, String)> {
        let mut g = self.lock();
        let e = g.sessions.get_mut(id)?;
        if e.info.status == SessionStatus::Terminated {
            return None;
        }
        let token = random_token();
        let old = std::mem::replace(&mut e.token, token.clone());
        e.superseded.push(old);
        if e.superseded.len() > 64 {
            e.superseded.remove(0);
        }
        if let Some(u) = new_url {
            e.info.stream_url = u;
        }
        e.info.resumes += 1;
        Some((token, e.info.stream_url.clone()))
    }

    /// Checks an OpenDataChannel token for `id` in constant time.
    pub(crate) fn check_token(&self, id: &str, token: &str) -> TokenCheck {
        let g = self.lock();
        let Some(e) = g.sessions.get(id) else {
            return TokenCheck::UnknownSession;
        };
        if e.info.status == SessionStatus::Terminated {
            return TokenCheck::Terminated;
        }
        if eq_ct(&e.token, token) {
            return TokenCheck::Ok;
        }
        if e.superseded.iter().any(|t| eq_ct(t, token)) {
            return TokenCheck::Stale;
        }
        if g.sessions.values().any(|o| o.info.id != id && eq_ct(&o.token, token)) {
            return TokenCheck::OtherSession;
        }
        TokenCheck::Wrong
    }

    pub(crate) fn opened(&self, id: &str) {
        if let Some(e) = self.lock().sessions.get_mut(id) {
            e.info.opens += 1;
        }
    }

    pub(crate) fn set_status(&self, id: &str, status: SessionStatus) {
        let mut g = self.lock();
        let Some(e) = g.sessions.get_mut(id) else { return };
        if e.info.status == SessionStatus::Terminated {
            return;
        }
        e.info.status = status;
        if status == SessionStatus::Terminated {
            e.info.ended = Some(SystemTime::now());
            g.history.push_back(id.to_owned());
            while g.history.len() > HISTORY {
                if let Some(old) = g.history.pop_front() {
                    g.sessions.remove(&old);
                }
            }
        }
    }

    /// The session task ended: nothing can be sent to it any more.
    pub(crate) fn forget_live(&self, id: &str) {
        if let Some(e) = self.lock().sessions.get_mut(id) {
            e.tx = None;
        }
    }

    pub(crate) fn record_violation(&self, id: &str, req: Req, detail: String) {
        tracing::info!(session = id, req = %req, "{detail}");
        if let Some(e) = self.lock().sessions.get_mut(id) {
            if e.info.violations.len() < MAX_VIOLATIONS {
                e.info.violations.push((req, detail));
            }
        }
    }

    pub(crate) fn record_refusal(&self, id: &str, why: String) {
        tracing::info!(session = id, "OpenDataChannel refused: {why}");
        if let Some(e) = self.lock().sessions.get_mut(id) {
            if e.info.refusals.len() < MAX_VIOLATIONS {
                e.info.refusals.push(why);
            }
        }
    }

    pub(crate) fn senders(&self) -> Vec<mpsc::Sender<ToSession>> {
        self.lock().sessions.values().filter_map(|e| e.tx.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> SessionInfo {
        SessionInfo {
            id: id.into(),
            target: "i-1".into(),
            document_name: None,
            reason: None,
            owner: "o".into(),
            status: SessionStatus::Connecting,
            started: SystemTime::now(),
            ended: None,
            stream_url: "ws://x".into(),
            resumes: 0,
            opens: 0,
            violations: vec![],
            refusals: vec![],
        }
    }

    #[test]
    fn tokens_rotate_and_old_ones_are_stale() {
        let r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        r.insert(info("a"), "t0".into(), tx.clone(), None);
        r.insert(info("b"), "tb".into(), tx, None);
        assert_eq!(r.check_token("a", "t0"), TokenCheck::Ok);
        let (t1, _) = r.rotate("a", None).unwrap();
        assert_ne!(t1, "t0");
        assert!(t1.len() >= 64, "at least 256 bits of token");
        assert_eq!(r.check_token("a", "t0"), TokenCheck::Stale);
        assert_eq!(r.check_token("a", &t1), TokenCheck::Ok);
        assert_eq!(r.check_token("a", "tb"), TokenCheck::OtherSession);
        assert_eq!(r.check_token("a", "nope"), TokenCheck::Wrong);
        assert_eq!(r.check_token("zz", "t0"), TokenCheck::UnknownSession);
        r.set_status("a", SessionStatus::Terminated);
        assert_eq!(r.check_token("a", &t1), TokenCheck::Terminated);
        assert!(r.rotate("a", None).is_none());
        // Terminated is final.
        r.set_status("a", SessionStatus::Connected);
        assert_eq!(r.get("a").unwrap().status, SessionStatus::Terminated);
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_token(), random_token());
        let id = random_session_id("harness");
        assert!(id.starts_with("harness-") && id.len() == "harness-".len() + 17, "{id}");
    }
}
