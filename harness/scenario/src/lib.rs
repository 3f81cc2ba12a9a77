//! Scenarios, the requirement catalogue, traces and the checks that turn a trace into verdicts.

pub mod catalogue;
pub mod check;
pub mod load;
pub mod model;
pub mod relay;
pub mod trace;

pub use load::{load_dir, parse_scenario, ScenarioError};
pub use model::Scenario;
pub use trace::{Record, Trace, What};
