//! `incidentflow review incidents.jsonl`: a responder's summary of incident versions, one block
//! per incident (severity, services, the hypothesis with its reasons, and the timeline of its
//! versions). The end-of-run summary prints the same blocks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::error::JobError;

/// Renders incident versions (JSON values as written by the job) grouped by incident, in order
/// of creation.
pub fn render(versions: &[Value]) -> String {
    let mut by_id: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for v in versions {
        by_id
            .entry(v["incident_id"].as_str().unwrap_or("?"))
            .or_default()
            .push(v);
    }
    let mut incidents: Vec<(&str, Vec<&Value>)> = by_id.into_iter().collect();
    for (_, list) in incidents.iter_mut() {
        list.sort_by_key(|v| v["version"].as_u64().unwrap_or(0));
    }
    incidents.sort_by(|a, b| {
        (a.1[0]["created_at"].as_str(), a.0).cmp(&(b.1[0]["created_at"].as_str(), b.0))
    });
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} incident{}",
        incidents.len(),
        if incidents.len() == 1 { "" } else { "s" }
    );
    for (id, list) in &incidents {
        let last = list[list.len() - 1];
        let services: Vec<&str> = last["services"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let status = match (last["status"].as_str(), last["merged_into"].as_str()) {
            (Some("resolved"), Some(into)) => format!("merged into {into}"),
            (Some(st), _) => st.to_string(),
            _ => "?".into(),
        };
        let _ = writeln!(
            s,
            "\n{} {id}  [{}]  {}",
            last["severity"].as_str().unwrap_or("?").to_uppercase(),
            status,
            clock_range(list[0], last)
        );
        let _ = writeln!(
            s,
            "  services ({}): {}",
            services.len(),
            services.join(", ")
        );
        let silent: std::collections::BTreeSet<&str> = list
            .iter()
            .flat_map(|v| v["silent_services"].as_array().into_iter().flatten())
            .filter_map(|x| x.as_str())
            .collect();
        if !silent.is_empty() {
            let names: Vec<&str> = silent.into_iter().collect();
            let _ = writeln!(
                s,
                "  linked through (no anomaly of their own): {}",
                names.join(", ")
            );
        }
        let _ = writeln!(s, "  anomalies: {}", last["event_count"]);
        let causes = last["hypothesis"]["ranked_causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  likely cause (confidence {:.2}):",
            last["hypothesis"]["confidence"].as_f64().unwrap_or(0.0)
        );
        for (k, c) in causes.iter().take(3).enumerate() {
            let reasons: Vec<&str> = c["reasons"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "    {}. {} ({:.2}): {}",
                k + 1,
                c["service"].as_str().unwrap_or("?"),
                c["score"].as_f64().unwrap_or(0.0),
                reasons.join(", ")
            );
        }
        if causes.len() > 3 {
            let _ = writeln!(s, "    ... {} more", causes.len() - 3);
        }
        if let Some(deploys) = last["deploys"].as_array().filter(|d| !d.is_empty()) {
            for d in deploys {
                let _ = writeln!(
                    s,
                    "  deploy: {} {} at {}",
                    d["service"].as_str().unwrap_or("?"),
                    d["version"].as_str().unwrap_or("?"),
                    d["timestamp"].as_str().unwrap_or("?")
                );
            }
        }
        let _ = writeln!(s, "  timeline:");
        for v in list {
            let _ = writeln!(
                s,
                "    {}  v{} {:<8} {}",
                v["updated_at"].as_str().unwrap_or("?"),
                v["version"],
                v["status"].as_str().unwrap_or("?"),
                v["change"].as_str().unwrap_or("")
            );
        }
    }
    s
}

fn clock_range(first: &Value, last: &Value) -> String {
    format!(
        "{} .. {}",
        first["created_at"].as_str().unwrap_or("?"),
        last["updated_at"].as_str().unwrap_or("?")
    )
}

/// Reads an incidents file and renders it.
pub fn run(path: &Path) -> Result<String, JobError> {
    let text = std::fs::read_to_string(path).map_err(|source| JobError::Input {
        what: "incidents",
        name: path.display().to_string(),
        source,
    })?;
    let mut versions = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line).map_err(|e| {
            JobError::InvalidFile(format!("{} line {}: not JSON: {e}", path.display(), i + 1))
        })?;
        if v["incident_id"].as_str().is_none() {
            return Err(JobError::InvalidFile(format!(
                "{} line {}: not an incident (no incident_id)",
                path.display(),
                i + 1
            )));
        }
        versions.push(v);
    }
    Ok(render(&versions))
}
