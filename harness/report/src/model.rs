//! What the reporter keeps of each result, and the sorted run every output is rendered from.

use ssm_runner::{RunInfo, ScenarioResult, Totals};
use ssm_scenario::catalogue::Catalogue;
use ssm_scenario::check::Verdict;
use ssm_scenario::{Record, Trace};

use crate::{MSD_AFTER, MSD_BEFORE, WIRE_LOG_LIMIT};

/// One scenario's result without its full trace (that went to `traces/` on arrival), plus the
/// parts of the trace the HTML page shows.
#[derive(Debug)]
pub(crate) struct Entry {
    pub result: ScenarioResult,
    /// Relative to the report directory.
    pub trace_file: String,
    pub records: usize,
    /// The first [`WIRE_LOG_LIMIT`] records.
    pub log: Vec<Record>,
    /// For a FAIL: the records around the first failure.
    pub msd: Option<Window>,
}

/// A slice of a trace around the first failure.
#[derive(Debug)]
pub(crate) struct Window {
    /// Index in the trace of the first record in `records`.
    pub first: usize,
    pub records: Vec<Record>,
    /// Virtual time (ns) of the first failure, if the judge placed it.
    pub failure_at: Option<u64>,
}

impl Entry {
    pub fn new(result: &ScenarioResult, trace_file: String) -> Entry {
        let trace = &result.trace.records;
        let failure_at = result.judgement.as_ref().and_then(|j| j.first_failure_at);
        let msd = (result.verdict == Verdict::Fail && !trace.is_empty()).then(|| {
            // The first record at or after the failure; without a time, the end of the run.
            let pivot = failure_at
                .map_or(trace.len(), |at| trace.iter().position(|r| r.t >= at).unwrap_or(trace.len()));
            let first = pivot.saturating_sub(MSD_BEFORE);
            let end = (pivot + MSD_AFTER).min(trace.len());
            let first = if failure_at.is_none() { end.saturating_sub(MSD_BEFORE + MSD_AFTER) } else { first };
            Window { first, records: trace[first..end].to_vec(), failure_at }
        });
        let mut kept = result.clone();
        kept.trace = Trace::default();
        Entry {
            result: kept,
            trace_file,
            records: trace.len(),
            log: trace[..trace.len().min(WIRE_LOG_LIMIT)].to_vec(),
            msd,
        }
    }
}

/// A finished run, its results sorted by scenario id.
#[derive(Debug)]
pub(crate) struct Run<'a> {
    pub run_id: &'a str,
    pub info: &'a RunInfo,
    pub wall_ms: u64,
    pub entries: &'a [Entry],
    pub catalogue: &'a Catalogue,
    /// Counted from the results themselves.
    pub totals: Totals,
}

impl<'a> Run<'a> {
    pub fn new(
        run_id: &'a str,
        info: &'a RunInfo,
        wall_ms: u64,
        entries: &'a [Entry],
        catalogue: &'a Catalogue,
    ) -> Run<'a> {
        let mut totals = Totals::default();
        for e in entries {
            totals.add(e.result.verdict);
        }
        Run { run_id, info, wall_ms, entries, catalogue, totals }
    }

    pub fn scenarios(&self) -> usize {
        self.entries.len()
    }
}
