//! `summary.md`, for a CI step summary: a totals line, the scenarios that did not pass and the
//! requirement coverage. Bounded in size (step summaries are limited to 1 MiB).

use std::fmt::Write as _;

use ssm_scenario::check::Verdict;

use crate::model::Run;
use crate::summary::{Coverage, Summary};
use crate::text;

/// Rows of the non-passing table before the rest is only counted.
const MAX_ROWS: usize = 500;
/// Characters of a headline in the table.
const MAX_HEADLINE: usize = 240;

/// Escapes text for a GitHub-flavoured Markdown table cell.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in text::clip(s, usize::MAX).chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A code span that survives any backticks inside it; pipes stay escaped for the table.
fn code(s: &str) -> String {
    let s = text::clip(s, usize::MAX).replace('|', "\\|");
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

pub(crate) fn render(run: &Run<'_>, summary: &Summary) -> String {
    let t = &summary.totals;
    let info = run.info;
    let mut md = String::new();
    let icon = if t.failed > 0 || t.errors > 0 { "❌" } else { "✅" };
    let _ = writeln!(
        md,
        "### {icon} ssm-harness `{}` on {}: {} passed, {} failed, {} non-strict, {} xfail, {} skipped, {} errors ({} scenarios, seed {}{}, {})",
        cell(&info.imp),
        info.backend.name(),
        t.passed,
        t.failed,
        t.non_strict,
        t.xfail,
        t.skipped,
        t.errors,
        run.scenarios(),
        info.seed,
        if info.strict { ", strict" } else { "" },
        text::secs(run.wall_ms),
    );
    md.push('\n');

    let not_passing: Vec<_> = run.entries.iter().filter(|e| e.result.verdict != Verdict::Pass).collect();
    if not_passing.is_empty() {
        md.push_str("Every scenario passed.\n\n");
    } else {
        md.push_str("| verdict | scenario | headline | replay |\n|---|---|---|---|\n");
        for e in not_passing.iter().take(MAX_ROWS) {
            let r = &e.result;
            let headline = r.reason.as_deref().unwrap_or("");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                r.verdict.name(),
                cell(&r.id),
                cell(&text::clip(headline, MAX_HEADLINE)),
                code(&r.replay)
            );
        }
        if not_passing.len() > MAX_ROWS {
            let _ = writeln!(md, "\n… and {} more; see `summary.json`.", not_passing.len() - MAX_ROWS);
        }
        md.push('\n');
    }

    let count = |c: Coverage| summary.requirements.values().filter(|r| r.outcome == c).count();
    let _ = writeln!(
        md,
        "<details><summary>Requirement coverage: {} fail, {} non-strict, {} pass, {} not exercised, {} not covered</summary>\n",
        count(Coverage::Fail),
        count(Coverage::NonStrict),
        count(Coverage::Pass),
        count(Coverage::NotExercised),
        count(Coverage::NotCovered),
    );
    md.push_str("| requirement | level | outcome | scenarios |\n|---|---|---|---|\n");
    for (req, c) in &summary.requirements {
        let _ = writeln!(
            md,
            "| {req} | {} | {} | {} |",
            c.level,
            c.outcome.name().replace('_', " "),
            c.scenarios.len()
        );
    }
    md.push_str("\n</details>\n");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_code_spans_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc <x>"), "a\\|b c &lt;x&gt;");
        assert_eq!(code("run x"), "`run x`");
        assert_eq!(code("a `b` c|d"), "`` a `b` c\\|d ``");
    }
}
