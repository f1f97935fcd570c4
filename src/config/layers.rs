//! Where the job's settings come from, in order of precedence: the defaults, then the TOML file
//! (`--config`), then the environment (`INCIDENTFLOW__SECTION__KEY=value`), then the flags (applied
//! by `main`). Each layer is checked on its own first, so that an unknown key is reported with the
//! file or the variable it came from; secrets may come only from the environment or from files.

use toml::{Table, Value};

/// The prefix of the environment variables that set job settings.
pub const ENV_PREFIX: &str = "INCIDENTFLOW__";

/// Keys that hold secrets: allowed in the environment, never in the job file (which lives in a
/// ConfigMap or a repository); each has a `<key>_file` twin naming a file that holds the value.
pub const SECRET_KEYS: &[&str] = &["webhook_url", "routing_key", "sasl_password"];

/// Reads the job file as a layer.
pub fn file_layer(text: &str) -> Result<Table, String> {
    let table: Table = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    if let Some(key) = secret_in(&table, "") {
        return Err(format!(
            "{key} is a secret and does not belong in the job file: set it in the environment \
             ({}) or name a file holding it with {key}_file",
            env_name(&key)
        ));
    }
    Ok(table)
}

/// The environment's settings: every `INCIDENTFLOW__A__B__C=value` becomes `a.b.c = value`, the
/// value read as TOML when it is a TOML value (`4.5`, `true`, `["a"]`) and as text otherwise.
pub fn env_layer(vars: impl IntoIterator<Item = (String, String)>) -> Result<Table, String> {
    let mut table = Table::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "environment variable {name}: expected {ENV_PREFIX}SECTION__KEY"
            ));
        }
        let value = toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(Value::String(raw));
        let mut at = &mut table;
        for part in &path[..path.len() - 1] {
            let entry = at
                .entry(part.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            at = match entry {
                Value::Table(t) => t,
                _ => {
                    return Err(format!(
                        "environment variable {name}: {part} is a value, not a section"
                    ))
                }
            };
        }
        at.insert(path[path.len() - 1].clone(), value);
    }
    Ok(table)
}

/// `base` with `over` laid on top: tables merge key by key, anything else is replaced.
pub fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The dotted key of the first secret set in `table`, if any.
fn secret_in(table: &Table, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(t) => {
                if let Some(found) = secret_in(t, &dotted) {
                    return Some(found);
                }
            }
            _ if SECRET_KEYS.contains(&key.as_str()) => return Some(dotted),
            _ => {}
        }
    }
    None
}

/// The environment variable that sets a dotted key.
pub fn env_name(dotted: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        dotted.to_ascii_uppercase().replace('.', "__")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_variables_become_nested_keys_with_typed_values() {
        let layer = env_layer(vars(&[
            ("INCIDENTFLOW__ZSCORE__THRESHOLD", "4.5"),
            ("INCIDENTFLOW__KAFKA__BROKERS", "k1:9092,k2:9092"),
            ("INCIDENTFLOW__ALERTS__PD__ROUTING_KEY", "abc"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(layer["zscore"]["threshold"].as_float(), Some(4.5));
        assert_eq!(layer["kafka"]["brokers"].as_str(), Some("k1:9092,k2:9092"));
        assert_eq!(layer["alerts"]["pd"]["routing_key"].as_str(), Some("abc"));
        assert!(!layer.contains_key("path"));
        let e = env_layer(vars(&[
            ("INCIDENTFLOW__ZSCORE", "1"),
            ("INCIDENTFLOW__ZSCORE__X", "2"),
        ]))
        .err()
        .unwrap();
        assert!(e.contains("zscore is a value, not a section"), "{e}");
        let e = env_layer(vars(&[("INCIDENTFLOW____X", "1")]))
            .err()
            .unwrap();
        assert!(e.contains("expected INCIDENTFLOW__SECTION__KEY"), "{e}");
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let mut base: Table = toml::from_str("[a]\nx = 1\ny = 2\n").unwrap();
        merge(
            &mut base,
            toml::from_str("[a]\ny = 3\n[b]\nz = 4\n").unwrap(),
        );
        assert_eq!(base["a"]["x"].as_integer(), Some(1));
        assert_eq!(base["a"]["y"].as_integer(), Some(3));
        assert_eq!(base["b"]["z"].as_integer(), Some(4));
    }

    #[test]
    fn secrets_are_refused_in_the_file_without_showing_them() {
        let e = file_layer("[alerts.pd]\nkind = \"pagerduty\"\nrouting_key = \"R0UTING\"\n")
            .err()
            .unwrap();
        assert!(e.contains("alerts.pd.routing_key is a secret"), "{e}");
        assert!(e.contains("INCIDENTFLOW__ALERTS__PD__ROUTING_KEY"), "{e}");
        assert!(!e.contains("R0UTING"), "{e}");
        assert!(file_layer("[alerts.pd]\nrouting_key_file = \"/run/secrets/pd\"\n").is_ok());
    }
}
