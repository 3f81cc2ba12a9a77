//! Loading scenario files, with errors that name the file, line, key and a hint.

// A scenario error is built at most once per file and carries everything a person needs to fix
// the file; its size does not matter.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::path::{Path, PathBuf};

use ssm_channel::ImplName;

use crate::model::{Scenario, Step, END_NAMES};

/// A scenario file that cannot be used. `ssm-harness run` exits 2 on these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The offending key, e.g. `step[2].hex` or `link.loss`.
    pub key: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(k) = &self.key {
            write!(f, "`{k}`: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |i| before.len() - i - 1) + 1;
    (line, col)
}

/// The 1-based line of the `n`-th (0-based) occurrence of a line starting with `header`.
fn nth_header_line(text: &str, header: &str, n: usize) -> Option<usize> {
    text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with(header)).nth(n).map(|(i, _)| i + 1)
}

/// The 1-based line of the first line that assigns `key`.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

fn hint_for(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("keys are listed in scenarios/README.md; check the spelling and the table it is in".into())
    } else if message.contains("unknown variant") {
        Some("the allowed values are listed after `expected`".into())
    } else if message.contains("unknown requirement id") {
        Some("requirement ids are listed in scenarios/requirements.toml".into())
    } else if message.contains("missing field") {
        Some("this key is required".into())
    } else if message.contains("invalid type") {
        Some("check the value's type: strings are quoted, numbers are not".into())
    } else {
        None
    }
}

/// Parses one scenario file's text. `file` is used in errors and to check that the id matches
/// the file name.
pub fn parse_scenario(file: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let err = |line, key: Option<&str>, message: String, hint: Option<&str>| ScenarioError {
        file: file.to_path_buf(),
        line,
        column: None,
        key: key.map(str::to_owned),
        message,
        hint: hint.map(str::to_owned),
    };
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let key = e.span().and_then(|s| {
            let k = text.get(s.clone())?.trim();
            (!k.is_empty() && k.len() < 40 && !k.contains('\n')).then(|| k.to_owned())
        });
        let message = e.message().trim().to_owned();
        ScenarioError { file: file.to_path_buf(), line, column, key, hint: hint_for(&message), message }
    })?;

    if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
        if stem != scenario.id {
            return Err(err(
                key_line(text, "id"),
                Some("id"),
                format!("id `{}` does not match the file name `{stem}`", scenario.id),
                Some("name the file after its id"),
            ));
        }
    }
    if scenario.requirements.is_empty() {
        return Err(err(
            key_line(text, "requirements"),
            Some("requirements"),
            "a scenario must cite at least one requirement".into(),
            Some("e.g. requirements = [\"RES-006\"]"),
        ));
    }
    if let Some(peer) = &scenario.peer {
        if let Err(e) = peer.parse::<ImplName>() {
            return Err(err(key_line(text, "peer"), Some("peer"), e.to_string(), None));
        }
    }
    let l = &scenario.link;
    if !(0.0..1.0).contains(&l.loss) {
        return Err(err(
            key_line(text, "loss"),
            Some("link.loss"),
            format!("loss {} is not a probability in [0, 1)", l.loss),
            None,
        ));
    }
    if scenario.duration_ms == 0 || scenario.duration_ms > 24 * 3600 * 1000 {
        return Err(err(
            key_line(text, "duration_ms"),
            Some("duration_ms"),
            format!("duration_ms {} is outside 1..=86400000", scenario.duration_ms),
            None,
        ));
    }
    if let Some(end) = &scenario.expect.end {
        if !END_NAMES.contains(&end.as_str()) {
            return Err(err(
                key_line(text, "end"),
                Some("expect.end"),
                format!("unknown end `{end}`"),
                Some(&format!("one of {}", END_NAMES.join(", "))),
            ));
        }
    }
    for (i, step) in scenario.steps.iter().enumerate() {
        let line = nth_header_line(text, "[[step]]", i);
        let key = |k: &str| format!("step[{i}].{k}");
        if let Step::Send { text: t, hex, repeat, .. } = step {
            match (t, hex) {
                (None, None) | (Some(_), Some(_)) => {
                    return Err(err(
                        line,
                        Some(&key("text")),
                        "a send step needs exactly one of `text` and `hex`".into(),
                        None,
                    ))
                }
                (None, Some(h)) if hex::decode(h).is_err() => {
                    return Err(err(line, Some(&key("hex")), format!("`{h}` is not hex"), None))
                }
                (Some(t), None) if t.is_empty() => {
                    return Err(err(
                        line,
                        Some(&key("text")),
                        "empty text: stream messages need a payload (FRAME-012)".into(),
                        None,
                    ))
                }
                _ => {}
            }
            if repeat.is_some_and(|r| r == 0 || r > 100_000) {
                return Err(err(line, Some(&key("repeat")), "repeat must be in 1..=100000".into(), None));
            }
        }
    }
    Ok(scenario)
}

/// Finds every `*.toml` scenario below `dir` (skipping `requirements.toml` and `xfail.toml`),
/// in sorted path order.
pub fn find_scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml")
                && !matches!(p.file_name().and_then(|n| n.to_str()), Some("requirements.toml" | "xfail.toml"))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every scenario below `dir`; ids must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Scenario)>, ScenarioError> {
    let files = find_scenario_files(dir).map_err(|e| ScenarioError {
        file: dir.to_path_buf(),
        line: None,
        column: None,
        key: None,
        message: format!("cannot read the scenario directory: {e}"),
        hint: None,
    })?;
    let mut out: Vec<(PathBuf, Scenario)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| ScenarioError {
            file: f.clone(),
            line: None,
            column: None,
            key: None,
            message: format!("cannot read: {e}"),
            hint: None,
        })?;
        let s = parse_scenario(&f, &text)?;
        if let Some((other, _)) = out.iter().find(|(_, o)| o.id == s.id) {
            return Err(ScenarioError {
                file: f.clone(),
                line: key_line(&text, "id"),
                column: None,
                key: Some("id".into()),
                message: format!("id `{}` is also used by {}", s.id, other.display()),
                hint: None,
            });
        }
        out.push((f, s));
    }
    Ok(out)
}
