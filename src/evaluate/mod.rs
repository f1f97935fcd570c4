//! `incidentflow eval`: the command's flags checked and handed to the `incidentflow-eval` crate,
//! whose report is printed (and written as JSON with `--out`).

use incidentflow_eval::eval;

use crate::cli::EvalArgs;
use crate::error::JobError;

/// `incidentflow eval`: checks the flags, scores, prints the report (and writes its JSON with
/// `--out`).
pub fn command(args: EvalArgs) -> Result<(), JobError> {
    if args.anomalies.is_none() && args.incidents.is_none() {
        return Err(JobError::Usage(
            "eval needs --anomalies FILE and/or --incidents FILE to score".into(),
        ));
    }
    if args.truth.is_none() && args.feedback.is_none() {
        return Err(JobError::Usage(
            "eval scores against --truth FILE (injected faults) and/or --feedback FILE (responder labels)".into(),
        ));
    }
    if args.feedback.is_some() && args.incidents.is_none() {
        return Err(JobError::Usage(
            "--feedback labels incidents: give the job's --incidents FILE too".into(),
        ));
    }
    let grace = incidentflow_dataflows::time::parse_duration(&args.grace)
        .map_err(|e| JobError::Usage(format!("--grace: {e}")))?;
    let duration = |flag: &str, text: &str| {
        incidentflow_dataflows::time::parse_duration(text)
            .map_err(|e| JobError::Usage(format!("--{flag} {text}: {e}")))
    };
    let text = eval::run(
        eval::EvalInputs {
            truth: args.truth.as_deref(),
            anomalies: args.anomalies.as_deref(),
            challengers: args.challengers.as_deref(),
            incidents: args.incidents.as_deref(),
            feedback: args.feedback.as_deref(),
            grace_ms: grace,
            episode_gap_ms: duration("episode-gap", &args.episode_gap)?,
            interval_ms: duration("interval", &args.interval)?,
        },
        args.out.as_deref(),
    )?;
    print!("{text}");
    if let Some(out) = &args.out {
        eprintln!("incidentflow eval: wrote {}", out.display());
    }
    Ok(())
}
