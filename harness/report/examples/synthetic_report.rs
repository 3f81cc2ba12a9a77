//! Writes the report of a small synthetic run (one scenario of every verdict, one of them a
//! FAIL with a sequence diagram) into the directory given as the only argument, and prints the
//! report's directory. Used by `.ci/browser-check`.

#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: synthetic_report <report-dir>");
        return ExitCode::from(2);
    };
    let catalogue = synthetic::catalogue();
    let result = (|| {
        let mut reporter = ssm_report::Reporter::new(&dir, "synthetic", &catalogue)?;
        for ev in synthetic::events() {
            reporter.on_event(&ev)?;
        }
        reporter.finish()
    })();
    match result {
        Ok(path) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synthetic_report: {e}");
            ExitCode::FAILURE
        }
    }
}
