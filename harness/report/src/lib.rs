//! Reports of an ssm-harness run: `junit.xml`, `summary.json`, `summary.md`, `index.html` and one
//! `traces/<scenario>.jsonl` per scenario, all written from the runner's one stream of
//! [`RunEvent`]s (plus the requirement [`Catalogue`] for levels and statements).
//!
//! A [`Reporter`] writes into `reports/.<run-id>.partial` while the run goes on and renames it to
//! `reports/<run-id>` only once everything is written, so an interrupted run never leaves a
//! half-written report behind; it then points `reports/latest` at the new run. Results may arrive
//! in any order: every output is sorted by scenario id, and nothing in it depends on the order
//! of arrival or on the clock of the machine that writes it.
//!
//! ```no_run
//! # fn demo(events: Vec<ssm_runner::RunEvent>, catalogue: &ssm_scenario::catalogue::Catalogue)
//! # -> Result<(), ssm_report::ReportError> {
//! let mut reporter = ssm_report::Reporter::new("reports".as_ref(), "run-42", catalogue)?;
//! for ev in &events {
//!     reporter.on_event(ev)?;
//! }
//! let dir = reporter.finish()?; // reports/run-42
//! # let _ = dir; Ok(()) }
//! ```

mod html;
mod junit;
mod markdown;
mod model;
mod msd;
pub mod summary;
mod text;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ssm_runner::{RunEvent, RunInfo, ScenarioResult};
use ssm_scenario::catalogue::Catalogue;

use model::{Entry, Run};

/// Version of the `summary.json` schema; bumped whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// At most this many trace records per scenario appear in the HTML wire log.
pub const WIRE_LOG_LIMIT: usize = 2000;

/// Records drawn in a sequence diagram before the first failure.
pub const MSD_BEFORE: usize = 40;

/// Records drawn in a sequence diagram from the first failure on.
pub const MSD_AFTER: usize = 10;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run id cannot name a directory of its own under the report directory.
    #[error("run id `{id}` cannot name a report directory: {why}")]
    BadRunId { id: String, why: &'static str },
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The events did not come as `Started`, any number of `ScenarioFinished`, `Finished`.
    #[error("event out of order: {0}")]
    OutOfOrder(&'static str),
    /// Two results carry the same scenario id.
    #[error("scenario `{0}` was reported twice")]
    DuplicateScenario(String),
    /// `finish` was called before the run's `Finished` event.
    #[error("the run has not finished: no `Finished` event was reported")]
    NotFinished,
    #[error("cannot write junit.xml: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    #[error("cannot write summary.json: {0}")]
    Json(#[from] serde_json::Error),
}

impl ReportError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ReportError + 'a {
        move |source| ReportError::Io { action, path: path.to_path_buf(), source }
    }
}

/// Where the reporter is in the event stream.
#[derive(Debug)]
enum Stage {
    Waiting,
    Running(RunInfo),
    /// The run's info and wall time; totals are counted from the results themselves.
    Finished(RunInfo, u64),
}

/// Consumes one run's events and writes its report directory.
#[derive(Debug)]
pub struct Reporter {
    report_dir: PathBuf,
    run_id: String,
    catalogue: Catalogue,
    stage: Stage,
    entries: Vec<Entry>,
    /// The `.partial` directory exists and is ours to remove if the report is abandoned.
    partial_created: bool,
}

impl Reporter {
    /// A reporter that will write `report_dir/<run_id>/`. Checks the run id; touches no file
    /// until the run's `Started` event.
    pub fn new(report_dir: &Path, run_id: &str, catalogue: &Catalogue) -> Result<Self, ReportError> {
        check_run_id(run_id)?;
        Ok(Reporter {
            report_dir: report_dir.to_path_buf(),
            run_id: run_id.to_owned(),
            catalogue: catalogue.clone(),
            stage: Stage::Waiting,
            entries: Vec::new(),
            partial_created: false,
        })
    }

    /// The directory being written while the run goes on.
    pub fn partial_dir(&self) -> PathBuf {
        self.report_dir.join(format!(".{}.partial", self.run_id))
    }

    /// The directory the report ends up in.
    pub fn final_dir(&self) -> PathBuf {
        self.report_dir.join(&self.run_id)
    }

    /// Takes one event. `Started` creates the partial directory (replacing one an interrupted
    /// run left behind); each `ScenarioFinished` writes that scenario's trace.
    pub fn on_event(&mut self, ev: &RunEvent) -> Result<(), ReportError> {
        match ev {
            RunEvent::Started(info) => {
                if !matches!(self.stage, Stage::Waiting) {
                    return Err(ReportError::OutOfOrder("a second `Started`"));
                }
                self.start()?;
                self.stage = Stage::Running(info.clone());
            }
            RunEvent::ScenarioFinished(result) => {
                match self.stage {
                    Stage::Running(_) => {}
                    Stage::Waiting => return Err(ReportError::OutOfOrder("a result before `Started`")),
                    Stage::Finished(..) => return Err(ReportError::OutOfOrder("a result after `Finished`")),
                }
                self.add(result)?;
            }
            RunEvent::Finished { wall_ms, .. } => {
                let stage = std::mem::replace(&mut self.stage, Stage::Waiting);
                match stage {
                    Stage::Running(info) => self.stage = Stage::Finished(info, *wall_ms),
                    other => {
                        self.stage = other;
                        return Err(ReportError::OutOfOrder("`Finished` without a running run"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the summaries, moves the report into place, points `latest` at it and returns
    /// its directory. On error the partial directory is removed.
    pub fn finish(mut self) -> Result<PathBuf, ReportError> {
        let Stage::Finished(info, wall_ms) = &self.stage else {
            return Err(ReportError::NotFinished);
        };
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| a.result.id.cmp(&b.result.id));
        let run = Run::new(&self.run_id, info, *wall_ms, &entries, &self.catalogue);
        let partial = self.partial_dir();
        let summary = summary::Summary::of(&run);
        let mut json = serde_json::to_string_pretty(&summary)?;
        json.push('\n');
        write(&partial.join("summary.json"), json.as_bytes())?;
        write(&partial.join("junit.xml"), junit::render(&run)?.as_bytes())?;
        write(&partial.join("summary.md"), markdown::render(&run, &summary).as_bytes())?;
        write(&partial.join("index.html"), html::render(&run, &summary).as_bytes())?;
        let dir = self.commit()?;
        self.update_latest()?;
        Ok(dir)
    }

    fn start(&mut self) -> Result<(), ReportError> {
        fs::create_dir_all(&self.report_dir).map_err(ReportError::io("create", &self.report_dir))?;
        let partial = self.partial_dir();
        if fs::symlink_metadata(&partial).is_ok() {
            remove_any(&partial).map_err(ReportError::io("remove the stale", &partial))?;
        }
        fs::create_dir(&partial).map_err(ReportError::io("create", &partial))?;
        self.partial_created = true;
        let traces = partial.join("traces");
        fs::create_dir(&traces).map_err(ReportError::io("create", &traces))?;
        Ok(())
    }

    fn add(&mut self, result: &ScenarioResult) -> Result<(), ReportError> {
        if self.entries.iter().any(|e| e.result.id == result.id) {
            return Err(ReportError::DuplicateScenario(result.id.clone()));
        }
        let trace_file = format!("traces/{}.jsonl", text::file_stem(&result.id));
        let path = self.partial_dir().join(&trace_file);
        write(&path, result.trace.to_jsonl().as_bytes())?;
        self.entries.push(Entry::new(result, trace_file));
        Ok(())
    }

    /// Renames the partial directory into place, replacing a report of the same run id.
    fn commit(&mut self) -> Result<PathBuf, ReportError> {
        let partial = self.partial_dir();
        let dest = self.final_dir();
        if fs::symlink_metadata(&dest).is_ok() {
            let old = self.report_dir.join(format!(".{}.old", self.run_id));
            if fs::symlink_metadata(&old).is_ok() {
                remove_any(&old).map_err(ReportError::io("remove the stale", &old))?;
            }
            fs::rename(&dest, &old).map_err(ReportError::io("move aside", &dest))?;
            fs::rename(&partial, &dest).map_err(ReportError::io("move into place", &partial))?;
            self.partial_created = false;
            remove_any(&old).map_err(ReportError::io("remove", &old))?;
        } else {
            fs::rename(&partial, &dest).map_err(ReportError::io("move into place", &partial))?;
            self.partial_created = false;
        }
        Ok(dest)
    }

    /// Points `latest` at this run: a relative symlink on unix, `latest.txt` elsewhere.
    fn update_latest(&self) -> Result<(), ReportError> {
        let tmp = self.report_dir.join(".latest.tmp");
        if fs::symlink_metadata(&tmp).is_ok() {
            remove_any(&tmp).map_err(ReportError::io("remove the stale", &tmp))?;
        }
        #[cfg(unix)]
        let dest = {
            std::os::unix::fs::symlink(&self.run_id, &tmp).map_err(ReportError::io("create", &tmp))?;
            self.report_dir.join("latest")
        };
        #[cfg(not(unix))]
        let dest = {
            write(&tmp, format!("{}\n", self.run_id).as_bytes())?;
            self.report_dir.join("latest.txt")
        };
        fs::rename(&tmp, &dest).map_err(ReportError::io("replace", &dest))
    }
}

impl Drop for Reporter {
    /// An abandoned report (an error, or a run that never finished) leaves no partial directory.
    fn drop(&mut self) {
        if self.partial_created {
            let _ = fs::remove_dir_all(self.partial_dir());
        }
    }
}

fn check_run_id(id: &str) -> Result<(), ReportError> {
    let why = if id.is_empty() {
        Some("it is empty")
    } else if id.starts_with('.') {
        Some("it starts with a dot")
    } else if id == "latest" || id == "latest.txt" {
        Some("that name is the `latest` pointer")
    } else if id.chars().any(|c| matches!(c, '/' | '\\' | ':') || c.is_control()) {
        Some("it contains a path separator or a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(ReportError::BadRunId { id: id.to_owned(), why }),
        None => Ok(()),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    fs::write(path, bytes).map_err(ReportError::io("write", path))
}

fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_that_would_escape_the_report_directory_are_refused() {
        for bad in ["", ".hidden", "a/b", "..", "latest", "a\\b", "x\ny"] {
            assert!(matches!(check_run_id(bad), Err(ReportError::BadRunId { .. })), "{bad:?}");
        }
        for good in ["run-1", "2024-06-01T12.00.00-seed-7", "ci_123"] {
            assert!(check_run_id(good).is_ok(), "{good:?}");
        }
    }
}
