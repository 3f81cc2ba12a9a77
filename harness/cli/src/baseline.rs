//! Expected-results files (`reports/baselines/*.json`): every scenario's verdict and the
//! requirements it fails, for one implementation. `run --against-baseline` fails on any change in
//! either direction, so a fix and a regression both need the file updated on purpose.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use ssm_runner::{RunOptions, ScenarioResult};

/// The schema version of baseline files.
pub const SCHEMA_VERSION: u32 = 1;

/// One scenario's expected result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub verdict: String,
    /// Requirements the scenario fails, sorted.
    pub failed: Vec<String>,
}

/// A whole expected-results file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub schema_version: u32,
    #[serde(rename = "impl")]
    pub imp: String,
    pub backend: String,
    pub seed: u64,
    pub strict: bool,
    pub scenarios: BTreeMap<String, Expected>,
}

/// Why a baseline file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read baseline {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("baseline {path} is not a baseline file: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("baseline {path} has schema version {found}, this harness writes {SCHEMA_VERSION}")]
    Version { path: String, found: u32 },
}

impl Baseline {
    pub fn of(opts: &RunOptions, results: &[ScenarioResult]) -> Self {
        let scenarios = results
            .iter()
            .map(|r| {
                let mut failed: Vec<String> = r
                    .judgement
                    .as_ref()
                    .map(|j| {
                        j.requirements
                            .iter()
                            .filter(|q| q.outcome == "fail")
                            .map(|q| q.req.to_string())
                            .chain(j.integrity.iter().map(|d| format!("{} (stream)", d.req)))
                            .collect()
                    })
                    .unwrap_or_default();
                failed.sort();
                failed.dedup();
                (r.id.clone(), Expected { verdict: r.verdict.name().to_owned(), failed })
            })
            .collect();
        Baseline {
            schema_version: SCHEMA_VERSION,
            imp: opts.imp.to_string(),
            backend: opts.backend.name().to_owned(),
            seed: opts.seed,
            strict: opts.strict,
            scenarios,
        }
    }

    pub fn read(path: &Path) -> Result<Self, BaselineError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| BaselineError::Read { path: p.clone(), source })?;
        let b: Baseline =
            serde_json::from_str(&text).map_err(|source| BaselineError::Parse { path: p.clone(), source })?;
        if b.schema_version != SCHEMA_VERSION {
            return Err(BaselineError::Version { path: p, found: b.schema_version });
        }
        Ok(b)
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Every difference between this (expected) and `got`, one line each. With `partial`, the
    /// run selected only some scenarios, so scenarios missing from it are not changes.
    pub fn diff(&self, got: &Baseline, partial: bool) -> Vec<String> {
        let mut out = Vec::new();
        for key in ["impl", "backend", "seed", "strict"] {
            let (a, b) = match key {
                "impl" => (self.imp.clone(), got.imp.clone()),
                "backend" => (self.backend.clone(), got.backend.clone()),
                "seed" => (self.seed.to_string(), got.seed.to_string()),
                _ => (self.strict.to_string(), got.strict.to_string()),
            };
            if a != b {
                out.push(format!("run {key} is {b}, the baseline was recorded with {a}"));
            }
        }
        for (id, e) in &self.scenarios {
            match got.scenarios.get(id) {
                None if partial => {}
                None => out.push(format!("{id}: in the baseline ({}) but not run", e.verdict)),
                Some(g) if g != e => out.push(format!(
                    "{id}: {} [{}] -> {} [{}]",
                    e.verdict,
                    e.failed.join(", "),
                    g.verdict,
                    g.failed.join(", ")
                )),
                Some(_) => {}
            }
        }
        for (id, g) in &got.scenarios {
            if !self.scenarios.contains_key(id) {
                out.push(format!(
                    "{id}: new scenario, {} [{}], not in the baseline",
                    g.verdict,
                    g.failed.join(", ")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(entries: &[(&str, &str, &[&str])]) -> Baseline {
        Baseline {
            schema_version: SCHEMA_VERSION,
            imp: "plugin-2024".into(),
            backend: "sim".into(),
            seed: 1,
            strict: false,
            scenarios: entries
                .iter()
                .map(|(id, v, f)| {
                    (
                        (*id).to_owned(),
                        Expected {
                            verdict: (*v).into(),
                            failed: f.iter().map(|x| (*x).to_owned()).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn changes_in_either_direction_are_reported() {
        let expected = b(&[("a", "FAIL", &["ACK-003"]), ("b", "PASS", &[]), ("c", "PASS", &[])]);
        let got = b(&[("a", "PASS", &[]), ("b", "FAIL", &["RTX-005"]), ("d", "PASS", &[])]);
        let d = expected.diff(&got, false);
        assert_eq!(d.len(), 4, "{d:#?}");
        assert!(d[0].starts_with("a: FAIL [ACK-003] -> PASS []"));
        assert!(d[1].starts_with("b: PASS [] -> FAIL [RTX-005]"));
        assert!(d[2].starts_with("c: in the baseline"));
        assert!(d[3].starts_with("d: new scenario"));
        assert!(expected.diff(&expected, false).is_empty());
        assert_eq!(expected.diff(&b(&[("a", "FAIL", &["ACK-003"])]), true), Vec::<String>::new());
    }

    #[test]
    fn a_different_seed_is_a_change() {
        let mut other = b(&[]);
        other.seed = 2;
        assert_eq!(b(&[]).diff(&other, false).len(), 1);
    }
}
