//! The awsJson1_1 surface of the mock (protocol reference 7): request parsing and validation
//! (API-004) and errors in the AWS shape (API-002).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error as an AWS service returns it: `{"__type": code, "message": text}` with a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct AwsError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AwsError { status, code, message: message.into() }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        AwsError::new(400, "ValidationException", message)
    }

    pub fn does_not_exist(session_id: &str) -> Self {
        AwsError::new(
            400,
            "DoesNotExistException",
            format!("Session {session_id} does not exist or is terminated."),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AwsError::new(500, "InternalServerError", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "__type": self.code, "message": self.message }))
            .unwrap_or_default()
    }
}

/// The operations the mock serves (`X-Amz-Target: AmazonSSM.<Operation>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    StartSession,
    ResumeSession,
    TerminateSession,
    DescribeSessions,
}

impl Operation {
    /// Reads `X-Amz-Target`.
    pub fn from_target(target: &str) -> Result<Operation, AwsError> {
        let op = target.strip_prefix("AmazonSSM.").ok_or_else(|| {
            AwsError::new(400, "UnknownOperationException", format!("unknown target {target:?}"))
        })?;
        Ok(match op {
            "StartSession" => Operation::StartSession,
            "ResumeSession" => Operation::ResumeSession,
            "TerminateSession" => Operation::TerminateSession,
            "DescribeSessions" => Operation::DescribeSessions,
            _ => {
                return Err(AwsError::new(
                    400,
                    "UnknownOperationException",
                    format!("operation {op} is not served by ssm-harness mock"),
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::StartSession => "StartSession",
            Operation::ResumeSession => "ResumeSession",
            Operation::TerminateSession => "TerminateSession",
            Operation::DescribeSessions => "DescribeSessions",
        }
    }
}

/// StartSession request (7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSession {
    pub target: String,
    pub document_name: Option<String>,
    pub reason: Option<String>,
    pub parameters: Vec<(String, Vec<String>)>,
}

/// A request naming one session (ResumeSession, TerminateSession).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    pub session_id: String,
}

/// DescribeSessions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeSessions {
    pub active: bool,
    pub max_results: usize,
    pub next_token: Option<String>,
    pub filters: Vec<(String, String)>,
}

/// The session response of StartSession and ResumeSession.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionResponse {
    pub session_id: String,
    pub token_value: Option<String>,
    pub stream_url: Option<String>,
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, AwsError> {
    let v: Value = serde_json::from_slice(if body.is_empty() { b"{}" } else { body }).map_err(|e| {
        AwsError::new(400, "SerializationException", format!("the request body is not JSON: {e}"))
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(AwsError::new(400, "SerializationException", "the request body is not a JSON object")),
    }
}

fn string(m: &serde_json::Map<String, Value>, key: &str, required: bool) -> Result<Option<String>, AwsError> {
    match m.get(key) {
        None | Some(Value::Null) if required => Err(AwsError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(key)
        ))),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AwsError::new(
            400,
            "SerializationException",
            format!("{key} must be a string"),
        )),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
}

fn length(key: &str, value: &str, min: usize, max: usize) -> Result<(), AwsError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must have length between {min} and {max}",
            lower_first(key)
        )));
    }
    Ok(())
}

fn session_ref(body: &[u8]) -> Result<SessionRef, AwsError> {
    let m = object(body)?;
    let session_id = string(&m, "SessionId", true)?.unwrap_or_default();
    length("SessionId", &session_id, 1, 96)?;
    Ok(SessionRef { session_id })
}

fn document_name_ok(d: &str) -> bool {
    (3..=128).contains(&d.len())
        && d.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'))
}

impl StartSession {
    /// Parses and validates (API-004).
    pub fn parse(body: &[u8]) -> Result<Self, AwsError> {
        let m = object(body)?;
        let target = string(&m, "Target", true)?.unwrap_or_default();
        length("Target", &target, 1, 400)?;
        let document_name = string(&m, "DocumentName", false)?;
        if let Some(d) = &document_name {
            if !document_name_ok(d) {
                return Err(AwsError::validation(format!(
                    "1 validation error detected: Value '{d}' at 'documentName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\\-.:/]{{3,128}}$"
                )));
            }
        }
        let reason = string(&m, "Reason", false)?;
        if let Some(r) = &reason {
            length("Reason", r, 1, 256)?;
            if r.contains('\n') || r.contains('\r') {
                return Err(AwsError::validation(
                    "1 validation error detected: Value at 'reason' failed to satisfy constraint: Member must satisfy regular expression pattern: ^.{1,256}$",
                ));
            }
        }
        let mut parameters = Vec::new();
        match m.get("Parameters") {
            None | Some(Value::Null) => {}
            Some(Value::Object(p)) => {
                for (k, v) in p {
                    length("Parameters key", k, 1, 255)?;
                    let Value::Array(items) = v else {
                        return Err(AwsError::new(
                            400,
                            "SerializationException",
                            format!("Parameters.{k} must be a list"),
                        ));
                    };
                    let mut values = Vec::new();
                    for it in items {
                        let Value::String(s) = it else {
                            return Err(AwsError::new(
                                400,
                                "SerializationException",
                                format!("Parameters.{k} must be a list of strings"),
                            ));
                        };
                        length("Parameters value", s, 1, 65535)?;
                        values.push(s.clone());
                    }
                    parameters.push((k.clone(), values));
                }
            }
            Some(_) => return Err(AwsError::new(400, "SerializationException", "Parameters must be a map")),
        }
        Ok(StartSession { target, document_name, reason, parameters })
    }

    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.first()).map(String::as_str)
    }
}

impl SessionRef {
    pub fn parse(body: &[u8]) -> Result<Self, AwsError> {
        session_ref(body)
    }
}

impl DescribeSessions {
    pub fn parse(body: &[u8]) -> Result<Self, AwsError> {
        let m = object(body)?;
        let state = string(&m, "State", true)?.unwrap_or_default();
        let active = match state.as_str() {
            "Active" => true,
            "History" => false,
            other => {
                return Err(AwsError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [Active, History]"
                )))
            }
        };
        let max_results = match m.get("MaxResults") {
            None | Some(Value::Null) => 200,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n @ 1..=200) => n as usize,
                _ => return Err(AwsError::validation("MaxResults must be between 1 and 200")),
            },
            Some(_) => {
                return Err(AwsError::new(400, "SerializationException", "MaxResults must be a number"))
            }
        };
        let next_token = string(&m, "NextToken", false)?;
        let mut filters = Vec::new();
        if let Some(Value::Array(fs)) = m.get("Filters") {
            for f in fs {
                let key = f.get("key").and_then(Value::as_str);
                let value = f.get("value").and_then(Value::as_str);
                match (key, value) {
                    (Some(k), Some(v)) => filters.push((k.to_owned(), v.to_owned())),
                    _ => return Err(AwsError::validation("each filter needs a key and a value")),
                }
            }
        }
        Ok(DescribeSessions { active, max_results, next_token, filters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_session_constraints() {
        assert!(StartSession::parse(br#"{"Target":"i-0123"}"#).is_ok());
        let e = StartSession::parse(br#"{}"#).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        let long = format!(r#"{{"Target":"{}"}}"#, "x".repeat(401));
        assert_eq!(StartSession::parse(long.as_bytes()).unwrap_err().code, "ValidationException");
        let bad_doc = br#"{"Target":"i-1","DocumentName":"a b"}"#;
        assert_eq!(StartSession::parse(bad_doc).unwrap_err().code, "ValidationException");
        let reason = format!(r#"{{"Target":"i-1","Reason":"{}"}}"#, "r".repeat(257));
        assert_eq!(StartSession::parse(reason.as_bytes()).unwrap_err().code, "ValidationException");
        let p = StartSession::parse(br#"{"Target":"i-1","Parameters":{"portNumber":["8080"]}}"#).unwrap();
        assert_eq!(p.parameter("portNumber"), Some("8080"));
        assert_eq!(StartSession::parse(b"[1]").unwrap_err().code, "SerializationException");
        assert_eq!(StartSession::parse(b"{").unwrap_err().code, "SerializationException");
    }

    #[test]
    fn session_id_length_is_enforced() {
        assert!(SessionRef::parse(br#"{"SessionId":"s-1"}"#).is_ok());
        assert_eq!(SessionRef::parse(br#"{"SessionId":""}"#).unwrap_err().code, "ValidationException");
        let long = format!(r#"{{"SessionId":"{}"}}"#, "s".repeat(97));
        assert_eq!(SessionRef::parse(long.as_bytes()).unwrap_err().code, "ValidationException");
        assert_eq!(SessionRef::parse(br#"{"SessionId":7}"#).unwrap_err().code, "SerializationException");
    }

    #[test]
    fn errors_have_the_aws_shape() {
        let e = AwsError::does_not_exist("s-1");
        let v: Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["__type"], "DoesNotExistException");
        assert!(v["message"].as_str().unwrap().contains("s-1"));
        assert_eq!(e.status, 400);
    }

    #[test]
    fn targets() {
        assert_eq!(Operation::from_target("AmazonSSM.ResumeSession").unwrap(), Operation::ResumeSession);
        assert!(Operation::from_target("AmazonSSM.SendCommand").is_err());
        assert!(Operation::from_target("ResumeSession").is_err());
    }
}
