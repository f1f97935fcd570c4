//! A static topology may be a YAML file of edges, valid from the start.

use incidentflow_dataflows::records::EdgeChange;

use crate::error::JobError;

pub fn is_yaml(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// A static topology in YAML: `edges: [{caller: web, callee: checkout, namespace: shop}, ...]`,
/// valid from the beginning. An entry with an empty name stops the job with its position: a
/// topology file is configuration, not a stream.
pub fn static_yaml_topology(path: &std::path::Path) -> Result<Vec<EdgeChange>, JobError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        edges: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        caller: String,
        callee: String,
        namespace: Option<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| JobError::Input {
        what: "topology",
        name: path.display().to_string(),
        source,
    })?;
    let bad = |message: String| JobError::Config {
        path: path.to_owned(),
        message,
    };
    let file: File = serde_saphyr::from_str(&text)
        .map_err(|e| bad(e.to_string().lines().next().unwrap_or_default().to_string()))?;
    file.edges
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            if e.caller.trim().is_empty() || e.callee.trim().is_empty() {
                return Err(bad(format!("edge {} has an empty caller or callee", i + 1)));
            }
            Ok(EdgeChange {
                timestamp: 0,
                caller: std::sync::Arc::from(e.caller.as_str()),
                callee: std::sync::Arc::from(e.callee.as_str()),
                add: true,
                namespace: e.namespace.map(|n| std::sync::Arc::from(n.as_str())),
            })
        })
        .collect()
}
