//! Loading scenario files, with errors that name the file, line, key and a hint.

// A scenario error is built at most once per file and carries everything a person needs to fix
// the file; its size does not matter.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use ssm_channel::{Impl, ImplName};

use crate::model::{Breakage, Scenario, Step, END_NAMES};

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
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
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

/// The header a line opens, if it is one: (`step`, true) for `[[step]]`, (`link`, false) for
/// `[link]`.
fn header_of(line: &str) -> Option<(&str, bool)> {
    let t = line.trim_start();
    let t = t.split_once('#').map_or(t, |(a, _)| a).trim_end();
    let (n, array) = match t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
        Some(n) => (n, true),
        None => (t.strip_prefix('[')?.strip_suffix(']')?, false),
    };
    let n = n.trim();
    let name_like = n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | ' '));
    (!n.is_empty() && name_like).then_some((n, array))
}

/// The table a 0-based line belongs to: its dotted name with the array index (`step[1]`,
/// `faults.frames[0]`, `link`).
fn table_at(text: &str, line0: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let upto = line0.min(lines.len().saturating_sub(1));
    let (hl, (name, array)) =
        (0..=upto).rev().find_map(|i| lines.get(i).and_then(|l| header_of(l)).map(|h| (i, h)))?;
    if !array {
        return Some(name.to_owned());
    }
    let index = lines[..hl].iter().filter(|l| header_of(l) == Some((name, true))).count();
    Some(format!("{name}[{index}]"))
}

/// The dotted key path that is being assigned at byte `col` of `line` (inline tables
/// included), e.g. `when.seq` for `when = { seq = [` .
fn inline_path(line: &str, col: usize) -> Vec<String> {
    enum Level {
        Table(String),
        Array,
    }
    let prefix = line.get(..col).unwrap_or(line);
    let mut stack: Vec<Level> = Vec::new();
    let mut current: Option<String> = None;
    let mut ident = String::new();
    let mut ended = false;
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                while let Some(d) = chars.next() {
                    if d == '\\' && c == '"' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                ident.clear();
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                if ended {
                    ident.clear();
                    ended = false;
                }
                ident.push(c);
            }
            c if c.is_whitespace() => ended = true,
            '=' => {
                current = Some(std::mem::take(&mut ident));
            }
            '{' => stack.push(Level::Table(current.take().unwrap_or_default())),
            '[' => stack.push(Level::Array),
            '}' | ']' => {
                stack.pop();
                current = None;
            }
            ',' if !matches!(stack.last(), Some(Level::Array)) => current = None,
            _ => {}
        }
        if !c.is_whitespace() && !c.is_ascii_alphanumeric() && !matches!(c, '_' | '-' | '.') {
            ident.clear();
            ended = false;
        }
    }
    let mut path: Vec<String> = stack
        .into_iter()
        .filter_map(|l| match l {
            Level::Table(k) if !k.is_empty() => Some(k),
            _ => None,
        })
        .collect();
    path.extend(current);
    path
}

/// The text between backticks after `marker` in a serde message: `X` in "unknown field `X`".
fn quoted_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &message[message.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix('`')?;
    Some(&rest[..rest.find('`')?])
}

/// How serde describes a value in "invalid type" / "invalid value" messages.
fn unexpected(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(format!("string {s:?}")),
        toml::Value::Integer(i) => Some(format!("integer `{i}`")),
        toml::Value::Float(f) => Some(format!("floating point `{f}`")),
        toml::Value::Boolean(b) => Some(format!("boolean `{b}`")),
        _ => None,
    }
}

/// The path inside `v` of the value a table-level message is about.
fn field_in(v: &toml::Value, message: &str) -> Option<Vec<String>> {
    let t = v.as_table()?;
    if let Some(f) =
        quoted_after(message, "unknown field ").or_else(|| quoted_after(message, "missing field "))
    {
        // The field may belong to an inline table one level down (`action = { kind = ... }`).
        if t.contains_key(f) || message.starts_with("missing") {
            return Some(vec![f.to_owned()]);
        }
        for (k, sub) in t {
            if sub.as_table().is_some_and(|s| s.contains_key(f)) {
                return Some(vec![k.clone(), f.to_owned()]);
            }
        }
        return Some(vec![f.to_owned()]);
    }
    if let Some(variant) = quoted_after(message, "unknown variant ") {
        fn find(v: &toml::Value, want: &str, path: &mut Vec<String>) -> bool {
            match v {
                toml::Value::String(s) => s == want,
                toml::Value::Table(t) => t.iter().any(|(k, sub)| {
                    path.push(k.clone());
                    find(sub, want, path) || {
                        path.pop();
                        false
                    }
                }),
                _ => false,
            }
        }
        let mut path = Vec::new();
        return find(v, variant, &mut path).then_some(path);
    }
    let matching: Vec<&String> = t
        .iter()
        .filter(|(_, sub)| {
            unexpected(sub).is_some_and(|d| {
                message.starts_with(&format!("invalid type: {d},"))
                    || message.starts_with(&format!("invalid value: {d},"))
            })
        })
        .map(|(k, _)| k)
        .collect();
    match matching.as_slice() {
        [one] => Some(vec![(*one).clone()]),
        _ => None,
    }
}

/// For an error reported at a table header: the element of an array of tables that fails, and
/// its own message. `name` is the dotted table name, e.g. `faults.frames`.
fn failing_element(text: &str, name: &str) -> Option<(usize, toml::Value, String)> {
    fn first_bad<T: DeserializeOwned>(items: &[toml::Value]) -> Option<(usize, toml::Value, String)> {
        items.iter().enumerate().find_map(|(i, v)| {
            v.clone().try_into::<T>().err().map(|e| (i, v.clone(), e.message().trim().to_owned()))
        })
    }
    let root: toml::Table = toml::from_str(text).ok()?;
    let mut v: Option<&toml::Value> = None;
    for seg in name.split('.') {
        v = match v {
            None => root.get(seg),
            Some(x) => x.as_table()?.get(seg),
        };
    }
    let items = v?.as_array()?;
    match name {
        "step" => first_bad::<Step>(items),
        "faults.frames" => first_bad::<ssm_fault::FrameRule>(items),
        "faults.timed" => first_bad::<ssm_fault::TimedFault>(items),
        "faults.api" => first_bad::<ssm_fault::ApiRule>(items),
        _ => None,
    }
}

/// The value at a table (`faults.api[0]`) and a key path inside it.
fn value_at(text: &str, table: Option<&str>, path: &[String]) -> Option<toml::Value> {
    let mut cur = toml::Value::Table(toml::from_str::<toml::Table>(text).ok()?);
    let mut segs: Vec<(String, Option<usize>)> = Vec::new();
    for seg in table.map(|t| t.split('.').collect::<Vec<_>>()).unwrap_or_default() {
        match seg.strip_suffix(']').and_then(|s| s.split_once('[')) {
            Some((name, i)) => segs.push((name.to_owned(), i.parse().ok())),
            None => segs.push((seg.to_owned(), None)),
        }
    }
    segs.extend(path.iter().map(|p| (p.clone(), None)));
    for (name, index) in segs {
        cur = cur.as_table()?.get(&name)?.clone();
        if let Some(i) = index {
            cur = cur.as_array()?.get(i)?.clone();
        }
    }
    Some(cur)
}

/// The 1-based line assigning `key` in the table whose header is on 0-based line `header`.
fn key_line_in_table(text: &str, header: usize, key: &str) -> Option<usize> {
    let body: Vec<&str> = text.lines().skip(header + 1).take_while(|l| header_of(l).is_none()).collect();
    key_line(&body.join("\n"), key).map(|l| l + header + 1)
}

/// A TOML or serde error, with the line and the dotted key it is about.
fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> ScenarioError {
    let mut out = ScenarioError {
        file: file.to_path_buf(),
        line: None,
        column: None,
        key: None,
        message: e.message().trim().to_owned(),
        hint: None,
    };
    if let Some(span) = e.span() {
        let (line, col) = line_col(text, span.start);
        out.line = Some(line);
        out.column = Some(col);
        let spanned = text.get(span.clone()).unwrap_or("").trim();
        let line_text = text.lines().nth(line - 1).unwrap_or("");
        if let Some((name, array)) = header_of(line_text).filter(|_| spanned.starts_with('[')) {
            // The error is about a whole table (missing fields, and every error inside a
            // tagged table such as a step, come out this way): find the table and the key.
            let (prefix, header0, value) = match array.then(|| failing_element(text, name)).flatten() {
                Some((i, v, message)) => {
                    out.message = message;
                    let header0 = text
                        .lines()
                        .enumerate()
                        .filter(|(_, l)| header_of(l) == Some((name, true)))
                        .nth(i)
                        .map_or(line - 1, |(n, _)| n);
                    (format!("{name}[{i}]"), header0, Some(v))
                }
                None => {
                    let root: Option<toml::Table> = toml::from_str(text).ok();
                    let v = root.and_then(|r| {
                        let mut cur: Option<toml::Value> = Some(toml::Value::Table(r));
                        for seg in name.split('.') {
                            cur = cur.and_then(|c| c.as_table().and_then(|t| t.get(seg).cloned()));
                        }
                        cur
                    });
                    (name.to_owned(), line - 1, v)
                }
            };
            let field = value.as_ref().and_then(|v| field_in(v, &out.message));
            out.line = field
                .as_ref()
                .and_then(|f| f.first())
                .and_then(|k| key_line_in_table(text, header0, k))
                .or(Some(header0 + 1));
            out.column = None;
            out.key = Some(match field {
                Some(f) => format!("{prefix}.{}", f.join(".")),
                None => prefix,
            });
        } else {
            // A key or a value on one line: its table, the key assigned, inline tables inside.
            let line_start = span.start - (col - 1);
            let mut path = inline_path(line_text, span.start - line_start);
            let after = text.get(span.end..).unwrap_or("").trim_start();
            if !spanned.is_empty() && after.starts_with('=') && !spanned.contains(['\n', ' ', '"']) {
                path.push(spanned.to_owned());
            }
            let table = table_at(text, line - 1);
            if spanned.starts_with('{') {
                // A whole inline table (every error inside a tagged one comes out this way).
                let v = value_at(text, table.as_deref(), &path);
                path.extend(v.and_then(|v| field_in(&v, &out.message)).unwrap_or_default());
            }
            let dotted = path.join(".");
            out.key = match (table, dotted.is_empty()) {
                (_, true) if out.message.starts_with("missing field") => {
                    quoted_after(&out.message, "missing field ").map(str::to_owned)
                }
                (_, true) => None,
                (Some(t), false) => Some(format!("{t}.{dotted}")),
                (None, false) => Some(dotted),
            };
        }
    } else if let Some(f) = quoted_after(&out.message, "missing field ") {
        out.key = Some(f.to_owned());
    }
    out.hint = hint_for(&out.message);
    out
}

/// A fault plan [`ssm_fault::FaultPlan::check`] refuses, at its rule's line.
fn plan_error(file: &Path, text: &str, e: &ssm_fault::PlanError) -> ScenarioError {
    use ssm_fault::{PlanError, RuleId};
    let (list, i) = match e.rule() {
        RuleId::Frame(i) => ("frames", i),
        RuleId::Timed(i) => ("timed", i),
        RuleId::Api(i) => ("api", i),
    };
    let key: String = match e {
        PlanError::OutOfRange { key, .. }
        | PlanError::EmptyRange { key, .. }
        | PlanError::Contradiction { key, .. } => (*key).to_owned(),
        PlanError::EmptyWindow { .. } if list == "frames" => "when.from_ms".into(),
        PlanError::EmptyWindow { .. } => "from_ms".into(),
        PlanError::BadMessageType { .. } => "when.message_type".into(),
        PlanError::DuplicateName { .. } => "name".into(),
    };
    let header = text
        .lines()
        .enumerate()
        .filter(|(_, l)| header_of(l) == Some((&format!("faults.{list}"), true)))
        .nth(i)
        .map(|(n, _)| n);
    let first = key.split('.').next().unwrap_or(&key);
    let line = header.map(|h| key_line_in_table(text, h, first).unwrap_or(h + 1));
    let full = e.to_string();
    let message = full.strip_prefix(&format!("{}: ", e.rule())).unwrap_or(&full).to_owned();
    ScenarioError {
        file: file.to_path_buf(),
        line,
        column: None,
        key: Some(format!("faults.{list}[{i}].{key}")),
        message,
        hint: Some("fault rules are described under [faults] in scenarios/README.md".into()),
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
    let scenario: Scenario = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;

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
        let plays = scenario.under_test.peer();
        let name = peer.parse::<ImplName>().map_err(|e| {
            err(
                key_line(text, "peer"),
                Some("peer"),
                e.to_string(),
                Some("the peer is the role not under test; leave `peer` out for conformant"),
            )
        })?;
        let roles: Vec<ssm_channel::Role> = match (name.role, name.imp) {
            (Some(r), _) => vec![r],
            (None, Impl::Mutant(m)) => m.roles().to_vec(),
            (None, _) => vec![ssm_channel::Role::Client, ssm_channel::Role::Agent],
        };
        if !roles.contains(&plays) {
            return Err(err(
                key_line(text, "peer"),
                Some("peer"),
                format!(
                    "`{peer}` cannot play the {plays}: the peer plays the {plays} when under_test = \"{}\"",
                    scenario.under_test
                ),
                Some(match plays {
                    ssm_channel::Role::Client => {
                        "a client peer is conformant, plugin-2024 or a client mutant"
                    }
                    ssm_channel::Role::Agent => "an agent peer is conformant, agent-2024 or an agent mutant",
                }),
            ));
        }
    }
    if scenario.kms_encryption && !scenario.session.supports_kms() {
        return Err(err(
            key_line(text, "kms_encryption"),
            Some("kms_encryption"),
            "port sessions are never encrypted: the agent requests KMSEncryption for every plugin but Port"
                .into(),
            Some("use session = \"shell\", \"interactive_commands\" or \"non_interactive_commands\""),
        ));
    }
    let sv = &scenario.service;
    for (k, v) in [
        ("idle_timeout_ms", sv.idle_timeout_ms),
        ("max_duration_ms", sv.max_duration_ms),
        ("bye_interval_ms", sv.bye_interval_ms),
    ] {
        if v == Some(0) {
            return Err(err(
                key_line(text, k),
                Some(&format!("service.{k}")),
                format!("{k} = 0: the service would act at every instant"),
                Some("at least 1 ms; leave the key out to disable it"),
            ));
        }
    }
    if let Err(e) = scenario.faults.check() {
        return Err(plan_error(file, text, &e));
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
        if let Step::Disconnect { how, code: Some(code), .. } = step {
            if *how != Breakage::Close {
                return Err(err(
                    line,
                    Some(&key("code")),
                    "`code` needs how = \"close\" (a reset sends no close frame)".into(),
                    None,
                ));
            }
            if !(1000..=4999).contains(code) {
                return Err(err(
                    line,
                    Some(&key("code")),
                    format!("close code {code} is outside 1000..=4999"),
                    Some("1000 is a normal close, 1006 an abnormal one"),
                ));
            }
        }
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
