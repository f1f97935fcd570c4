//! `incidentflow review incidents.jsonl`: a responder's summary of incident versions, one block
//! per incident (severity, services, the hypothesis with its reasons, and the timeline of its
//! versions). The end-of-run summary prints the same blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use incidentflow_dataflows::decode::json_lines;
use incidentflow_dataflows::incident::{IncidentRecord, Status};

use crate::error::JobError;

/// Renders incident versions grouped by incident, in order of creation.
pub fn render(versions: &[IncidentRecord]) -> String {
    let mut by_id: BTreeMap<&str, Vec<&IncidentRecord>> = BTreeMap::new();
    for v in versions {
        by_id.entry(&v.incident_id).or_default().push(v);
    }
    let mut incidents: Vec<(&str, Vec<&IncidentRecord>)> = by_id.into_iter().collect();
    for (_, list) in incidents.iter_mut() {
        list.sort_by_key(|v| v.version);
    }
    incidents.sort_by(|a, b| (&a.1[0].created_at, a.0).cmp(&(&b.1[0].created_at, b.0)));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} incident{}",
        incidents.len(),
        if incidents.len() == 1 { "" } else { "s" }
    );
    for (id, list) in &incidents {
        render_one(&mut s, id, list);
    }
    s
}

/// One incident's block: its last version's view, and the timeline of every version.
fn render_one(s: &mut String, id: &str, list: &[&IncidentRecord]) {
    let last = list[list.len() - 1];
    let status = match (last.status, &last.merged_into) {
        (Status::Resolved, Some(into)) => format!("merged into {into}"),
        (st, _) => st.as_str().to_string(),
    };
    let _ = writeln!(
        s,
        "\n{} {id}  [{}]  {} .. {}",
        last.severity.as_str().to_uppercase(),
        status,
        list[0].created_at,
        last.updated_at
    );
    let _ = writeln!(
        s,
        "  services ({}): {}",
        last.services.len(),
        last.services.join(", ")
    );
    let silent: BTreeSet<&str> = list
        .iter()
        .flat_map(|v| v.silent_services.iter().map(String::as_str))
        .collect();
    if !silent.is_empty() {
        let names: Vec<&str> = silent.into_iter().collect();
        let _ = writeln!(
            s,
            "  linked through (no anomaly of their own): {}",
            names.join(", ")
        );
    }
    let _ = writeln!(s, "  anomalies: {}", last.event_count);
    let causes = &last.hypothesis.ranked_causes;
    let _ = writeln!(
        s,
        "  likely cause (confidence {:.2}):",
        last.hypothesis.confidence
    );
    for (k, c) in causes.iter().take(3).enumerate() {
        let _ = writeln!(
            s,
            "    {}. {} ({:.2}): {}",
            k + 1,
            c.service,
            c.score,
            c.reasons.join(", ")
        );
    }
    if causes.len() > 3 {
        let _ = writeln!(s, "    ... {} more", causes.len() - 3);
    }
    for d in &last.deploys {
        let _ = writeln!(
            s,
            "  deploy: {} {} at {}",
            d.service, d.version, d.timestamp
        );
    }
    let _ = writeln!(s, "  timeline:");
    for v in list {
        let _ = writeln!(
            s,
            "    {}  v{} {:<8} {}",
            v.updated_at,
            v.version,
            v.status.as_str(),
            v.change
        );
    }
}

/// Reads an incidents file and renders it.
pub fn run(path: &Path) -> Result<String, JobError> {
    let text = std::fs::read(path).map_err(|source| JobError::Input {
        what: "incidents",
        name: path.display().to_string(),
        source,
    })?;
    let mut versions = Vec::new();
    for (number, line) in json_lines(&text) {
        let v: IncidentRecord = serde_json::from_slice(line).map_err(|e| {
            JobError::InvalidFile(format!(
                "{} line {number}: not an incident version: {e}",
                path.display()
            ))
        })?;
        versions.push(v);
    }
    Ok(render(&versions))
}
