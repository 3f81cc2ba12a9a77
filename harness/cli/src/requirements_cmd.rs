//! `ssm-harness requirements`: the coverage matrix. Every requirement of the protocol reference
//! with the scenarios that cite it and its outcome in the last run, and, for each requirement no
//! simulation can judge, why.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ssm_spec::Req;

use crate::exit::Status;
use crate::output::Output;
use crate::run_cmd::load_inputs;

const REQUIREMENTS_EXIT: &str = "Exit status:
  0  every requirement a simulation can judge is cited by at least one scenario
  1  a simulatable requirement has no scenario
  2  usage error, or a malformed scenario or requirement file";

#[derive(Debug, clap::Args)]
#[command(after_help = REQUIREMENTS_EXIT)]
pub struct RequirementsArgs {
    /// Where scenario files live
    #[arg(long, default_value = "scenarios")]
    scenarios: PathBuf,
    /// The run whose outcomes to show (its summary.json)
    #[arg(long, default_value = "reports/latest/summary.json")]
    summary: PathBuf,
    /// Text table or one JSON object
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

#[derive(Debug, serde::Serialize)]
struct Row {
    id: Req,
    level: String,
    statement: String,
    simulated: bool,
    why_not: Option<String>,
    scenarios: Vec<String>,
    last_outcome: Option<String>,
}

pub fn run(args: &RequirementsArgs, out: &mut Output) -> anyhow::Result<Status> {
    let (catalogue, _, scenarios) = load_inputs(&args.scenarios, &[])?;
    let last: Option<ssm_report::summary::Summary> =
        std::fs::read_to_string(&args.summary).ok().and_then(|t| serde_json::from_str(&t).ok());
    let mut cited: BTreeMap<Req, Vec<String>> = BTreeMap::new();
    for (_, s) in &scenarios {
        for r in &s.requirements {
            cited.entry(*r).or_default().push(s.id.clone());
        }
    }
    let rows: Vec<Row> = catalogue
        .requirements
        .iter()
        .map(|r| Row {
            id: r.id,
            level: r.level.to_string(),
            statement: r.statement.clone(),
            simulated: r.simulated,
            why_not: r.why_not.clone(),
            scenarios: cited.get(&r.id).cloned().unwrap_or_default(),
            last_outcome: last
                .as_ref()
                .and_then(|s| s.requirements.get(&r.id))
                .map(|c| c.outcome.name().to_owned()),
        })
        .collect();
    let uncovered: Vec<&Row> = rows.iter().filter(|r| r.simulated && r.scenarios.is_empty()).collect();
    if args.format == "json" {
        let v = serde_json::json!({
            "last_run": last.as_ref().map(|s| serde_json::json!({"impl": s.imp, "backend": s.backend, "seed": s.seed})),
            "requirements": rows,
        });
        out.write(format!("{}\n", serde_json::to_string_pretty(&v)?).as_bytes())?;
    } else {
        let mut text = String::new();
        match &last {
            Some(s) => text.push_str(&format!(
                "last run: impl {}, backend {}, seed {} ({})\n",
                s.imp,
                s.backend,
                s.seed,
                args.summary.display()
            )),
            None => text.push_str(&format!("last run: none ({} not found)\n", args.summary.display())),
        }
        text.push_str(&format!(
            "{:<10} {:<6} {:<13} {:<9} scenarios\n",
            "id", "level", "last outcome", "cited by"
        ));
        for r in &rows {
            let outcome = r.last_outcome.as_deref().unwrap_or("-");
            if !r.simulated {
                text.push_str(&format!(
                    "{:<10} {:<6} {:<13} {:<9} not simulated: {}\n",
                    r.id.id(),
                    r.level,
                    outcome,
                    r.scenarios.len(),
                    r.why_not.as_deref().unwrap_or("")
                ));
                continue;
            }
            let mut ids = r.scenarios.iter().take(6).cloned().collect::<Vec<_>>().join(", ");
            if r.scenarios.len() > 6 {
                ids.push_str(&format!(", ... ({} more)", r.scenarios.len() - 6));
            }
            if r.scenarios.is_empty() {
                ids = "NOT COVERED".into();
            }
            text.push_str(&format!(
                "{:<10} {:<6} {:<13} {:<9} {ids}\n",
                r.id.id(),
                r.level,
                outcome,
                r.scenarios.len()
            ));
        }
        let simulated = rows.iter().filter(|r| r.simulated).count();
        text.push_str(&format!(
            "{} requirements: {} simulated, {} covered by scenarios, {} not covered; {} judged elsewhere\n",
            rows.len(),
            simulated,
            simulated - uncovered.len(),
            uncovered.len(),
            rows.len() - simulated
        ));
        out.write(text.as_bytes())?;
    }
    Ok(if uncovered.is_empty() { Status::Success } else { Status::Violation })
}
