//! `scenarios/requirements.toml`: the requirement catalogue, and `scenarios/xfail.toml`: the
//! expected failures.

use serde::Deserialize;
use ssm_spec::{Level, Req};

/// One requirement as the catalogue states it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub id: Req,
    pub level: Level,
    pub statement: String,
    /// What the reference implementations do.
    pub reference: String,
    pub source: String,
    /// False for requirements no simulation can judge.
    #[serde(default = "yes")]
    pub simulated: bool,
    /// Why not, when `simulated` is false.
    #[serde(default)]
    pub why_not: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    requirement: Vec<Requirement>,
}

/// All 71 requirements.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub requirements: Vec<Requirement>,
}

/// What is wrong with a catalogue file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("{id} is listed {count} times")]
    Duplicate { id: Req, count: usize },
    #[error("{0} is missing from the catalogue")]
    Missing(Req),
    #[error("{id} has level {file} in the catalogue but {builtin} in the harness")]
    Level { id: Req, file: Level, builtin: Level },
    #[error("{0} is marked `simulated = false` without a `why_not`")]
    NoReason(Req),
}

impl Catalogue {
    /// Parses and cross-checks the catalogue against the built-in requirement list.
    pub fn parse(text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = toml::from_str(text)?;
        for r in Req::ALL {
            let count = file.requirement.iter().filter(|x| x.id == *r).count();
            match count {
                0 => return Err(CatalogueError::Missing(*r)),
                1 => {}
                n => return Err(CatalogueError::Duplicate { id: *r, count: n }),
            }
        }
        for x in &file.requirement {
            if x.level != x.id.level() {
                return Err(CatalogueError::Level { id: x.id, file: x.level, builtin: x.id.level() });
            }
            if !x.simulated && x.why_not.as_deref().is_none_or(str::is_empty) {
                return Err(CatalogueError::NoReason(x.id));
            }
        }
        Ok(Catalogue { requirements: file.requirement })
    }

    pub fn get(&self, id: Req) -> Option<&Requirement> {
        self.requirements.iter().find(|r| r.id == id)
    }
}

/// One expected failure: `scenario` run with `impl` is known to fail, for `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XFail {
    pub scenario: String,
    /// The implementation it applies to (`conformant`, `plugin-2024`, ...); all when absent.
    #[serde(default, rename = "impl")]
    pub imp: Option<String>,
    /// The requirement expected to fail; any when absent.
    #[serde(default)]
    pub requirement: Option<Req>,
    pub reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct XFailFile {
    #[serde(default)]
    xfail: Vec<XFail>,
}

/// Parses `xfail.toml`; every entry needs a non-empty reason.
pub fn parse_xfail(text: &str) -> Result<Vec<XFail>, toml::de::Error> {
    let f: XFailFile = toml::from_str(text)?;
    Ok(f.xfail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOGUE: &str = include_str!("../../../scenarios/requirements.toml");

    #[test]
    fn the_committed_catalogue_lists_all_71_requirements_with_matching_levels() {
        let c = Catalogue::parse(CATALOGUE).unwrap();
        assert_eq!(c.requirements.len(), 71);
        for r in &c.requirements {
            assert!(!r.statement.is_empty(), "{} has no statement", r.id);
        }
    }

    #[test]
    fn a_missing_or_mislevelled_requirement_is_an_error() {
        let without_first = CATALOGUE.replacen("id = \"FRAME-001\"", "id = \"FRAME-002\"", 1);
        assert!(matches!(Catalogue::parse(&without_first), Err(CatalogueError::Missing(Req::Frame001))));
        let mislevelled = CATALOGUE.replacen(
            "id = \"FRAME-008\"\nlevel = \"SHOULD\"",
            "id = \"FRAME-008\"\nlevel = \"MUST\"",
            1,
        );
        assert!(matches!(
            Catalogue::parse(&mislevelled),
            Err(CatalogueError::Level { id: Req::Frame008, .. })
        ));
    }

    #[test]
    fn the_committed_xfail_file_parses_with_reasons() {
        let x = parse_xfail(include_str!("../../../scenarios/xfail.toml")).unwrap();
        for e in x {
            assert!(!e.reason.trim().is_empty(), "xfail for {} has no reason", e.scenario);
        }
    }
}
