//! The job file's parsing, layering and checks.

use super::*;

#[test]
fn an_empty_file_is_the_defaults() {
    let c = JobConfig::parse("").unwrap();
    assert_eq!(c, JobConfig::default());
    assert_eq!(c.baseline_config(), BaselineConfig::default());
}

#[test]
fn values_are_read() {
    let c = JobConfig::parse("[baseline]\nwindow = \"1h\"\nmin_points = 12\n[zscore]\nthreshold = 4.5\n[time]\nallowed_lateness = \"2m\"\n").unwrap();
    assert_eq!(c.baseline.window, Millis(3_600_000));
    assert_eq!(c.baseline_config().min_points, 12);
    assert_eq!(c.zscore.threshold, 4.5);
    assert_eq!(c.time.allowed_lateness, Millis(120_000));
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let e = JobConfig::parse("[baseline]\nwindo = \"1h\"\n").unwrap_err();
    assert!(e.contains("unknown field `windo`"), "{e}");
    let e = JobConfig::parse("[baseline]\nwindow = \"1 hour\"\n").unwrap_err();
    assert!(e.contains("unknown unit"), "{e}");
    let e = JobConfig::parse("[zscore]\nthreshold = -1.0\n").unwrap_err();
    assert!(e.contains("zscore.threshold"), "{e}");
    let e = JobConfig::parse("[baseline]\nmin_points = 1\n").unwrap_err();
    assert!(e.contains("baseline.min_points"), "{e}");
}

#[test]
fn the_default_file_is_the_defaults_with_every_key_explained() {
    let parsed = JobConfig::parse(DEFAULT_FILE).unwrap();
    assert_eq!(parsed, JobConfig::default());
    // Every key of every section appears, with a comment line above it (or on it).
    let defaults = toml::Table::try_from(JobConfig::default()).unwrap();
    let lines: Vec<&str> = DEFAULT_FILE.lines().collect();
    for (section, table) in &defaults {
        let Some(table) = table.as_table().filter(|t| !t.is_empty()) else {
            continue; // alerts: shown as examples below
        };
        let header = format!("[{section}]");
        let start = lines.iter().position(|l| *l == header);
        let start = start.unwrap_or_else(|| panic!("{header} is missing"));
        for key in table.keys() {
            let at = lines[start..]
                .iter()
                .position(|l| l.starts_with(&format!("{key} =")))
                .unwrap_or_else(|| panic!("{section}.{key} is missing"));
            // Keys may share the comment above a group of them.
            let above = lines[..start + at]
                .iter()
                .rev()
                .find(|l| !l.contains(" = ") || l.starts_with('#'));
            assert!(
                above.is_some_and(|l| l.starts_with('#')),
                "{section}.{key} has no comment"
            );
        }
    }
    // The sections that are empty by default are shown as commented examples, which parse.
    let examples: String = DEFAULT_FILE
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.starts_with('[')
                || l.split_once('=')
                    .is_some_and(|(k, _)| !k.trim().contains(' ') && !k.trim().is_empty())
        })
        .collect::<Vec<_>>()
        .join("\n");
    let table: toml::Table = toml::from_str(&examples).unwrap();
    let example = JobConfig::from_table(table).unwrap();
    assert_eq!(example.alerts.len(), 3);
    assert_eq!(example.runbooks.len(), 1);
    assert_eq!(example.silences.len(), 1);
}

#[test]
fn the_environment_overrides_the_file_and_is_named_when_wrong() {
    let dir = std::env::temp_dir().join(format!("incidentflow-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("job.toml");
    std::fs::write(
        &file,
        "[zscore]\nthreshold = 5.0\n[baseline]\nmin_points = 10\n",
    )
    .unwrap();
    let env = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let c = JobConfig::load_layered(
        Some(&file),
        env(&[("INCIDENTFLOW__ZSCORE__THRESHOLD", "6.5")]),
    )
    .unwrap();
    assert_eq!(
        c.zscore.threshold, 6.5,
        "the environment wins over the file"
    );
    assert_eq!(c.baseline.min_points, 10, "the file wins over the defaults");
    assert_eq!(
        c.baseline.window,
        Millis(30 * 60_000),
        "defaults fill the rest"
    );
    let e = JobConfig::load_layered(
        Some(&file),
        env(&[("INCIDENTFLOW__ZSCORE__TRESHOLD", "6.5")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("environment") && e.contains("unknown field `treshold`"),
        "{e}"
    );
    std::fs::write(&file, "[zscore]\ntreshold = 5.0\n").unwrap();
    let e = JobConfig::load_layered(Some(&file), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("job.toml") && e.contains("unknown field `treshold`"),
        "{e}"
    );
    // A secret from a file, never shown.
    let key_file = dir.join("pd-key");
    std::fs::write(&key_file, "R0UTINGKEY\n").unwrap();
    let text = format!(
        "[alerts.pd]\nkind = \"pagerduty\"\nrouting_key_file = \"{}\"\n",
        key_file.display()
    );
    std::fs::write(&file, text).unwrap();
    let c = JobConfig::load_layered(Some(&file), env(&[])).unwrap();
    assert_eq!(c.alerts["pd"].routing_key.expose(), "R0UTINGKEY");
    assert!(!format!("{c:?}").contains("R0UTINGKEY"));
    assert!(!toml::to_string(&c).unwrap().contains("R0UTINGKEY"));
    // Or from the environment.
    std::fs::write(&file, "[alerts.pd]\nkind = \"pagerduty\"\n").unwrap();
    let c = JobConfig::load_layered(
        Some(&file),
        env(&[("INCIDENTFLOW__ALERTS__PD__ROUTING_KEY", "FR0MENV")]),
    )
    .unwrap();
    assert_eq!(c.alerts["pd"].routing_key.expose(), "FR0MENV");
    // The Kafka SASL password: from a file, handed to librdkafka, never shown.
    let password_file = dir.join("kafka-password");
    std::fs::write(&password_file, "PA55WORD\n").unwrap();
    let text = format!(
        "[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"job\"\nsasl_password_file = \"{}\"\n",
        password_file.display()
    );
    std::fs::write(&file, text).unwrap();
    let c = JobConfig::load_layered(Some(&file), env(&[])).unwrap();
    assert!(c
        .kafka_security()
        .contains(&("sasl.password", "PA55WORD".to_string())));
    assert!(!format!("{c:?}").contains("PA55WORD"));
    assert!(!toml::to_string(&c).unwrap().contains("PA55WORD"));
    // ...and refused in the job file itself.
    std::fs::write(&file, "[kafka]\nsasl_password = \"PA55WORD\"\n").unwrap();
    let e = JobConfig::load_layered(Some(&file), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sasl_password") && !e.contains("PA55WORD"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_validation_error_names_the_key_and_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        ("[baseline]\nwindow = \"0s\"\n", "baseline.window must be longer than 0s"),
        ("[baseline]\nmin_points = 1\n", "baseline.min_points is 1; it must be at least 2"),
        ("[zscore]\nthreshold = 0.0\n", "zscore.threshold is 0; it must be a number above 0"),
        ("[correlation]\nmax_duration = \"0s\"\n", "correlation.max_duration must be longer than 0s"),
        ("[correlation]\nkeep_alive_score = -1.0\n", "correlation.keep_alive_score is -1; it must be between 0 and 1"),
        ("[correlation]\nstrong_score = 1.5\n", "correlation.strong_score is 1.5; it must be between 0 and 1"),
        ("[time]\ntick = \"0s\"\n", "time.tick must be at least 1ms"),
        ("[input]\nmax_line_bytes = 10\n", "input.max_line_bytes is 10; it must be at least 256"),
        ("[input]\npartition_bytes = 10\n", "input.partition_bytes is 10; it must be at least 4096"),
        ("[kafka]\nbrokers = \"kafka\"\n", "kafka.brokers is \"kafka\"; it must be host:port"),
        ("[kafka]\nsamples_topic = \"raw metrics\"\n", "kafka.samples_topic is \"raw metrics\"; a topic name is 1 to 249 of"),
        ("[kafka]\nincidents_topic = \"\"\n", "kafka.incidents_topic is \"\""),
        ("[metrics]\naddr = \"localhost\"\n", "metrics.addr is \"localhost\"; it must be host:port with an IP address"),
        ("[alerts.x]\nurl = \"http://am:9093\"\n", "alerts.x.kind is missing: say alertmanager, pagerduty, webhook or slack"),
        ("[alerts.x]\nkind = \"opsgenie\"\n", "unknown variant `opsgenie`, expected one of `alertmanager`, `pagerduty`, `webhook`, `slack`"),
        ("[alerts.x]\nkind = \"alertmanager\"\n", "alerts.x.url is missing"),
        ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"am:9093\"\n", "alerts.x.url is \"am:9093\"; it must be an http:// or https:// URL with a host"),
        ("[alerts.x]\nkind = \"pagerduty\"\n", "alerts.x.routing_key is missing: set INCIDENTFLOW__ALERTS__X__ROUTING_KEY or alerts.x.routing_key_file"),
        ("[alerts.x]\nkind = \"slack\"\n", "alerts.x.webhook_url is missing: set INCIDENTFLOW__ALERTS__X__WEBHOOK_URL or alerts.x.webhook_url_file"),
        ("[alerts.x]\nkind = \"webhook\"\nwebhook_url_file = \"/nonexistent/hook\"\n", "alerts.x.webhook_url_file /nonexistent/hook: cannot read it"),
        ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"http://am\"\ntimeout = \"0s\"\n", "alerts.x.timeout must be longer than 0s"),
        ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"http://am\"\nretries = 50\n", "alerts.x.retries is 50; at most 20"),
        ("[detectors]\nchampion = \"robust\"\nchallengers = [\"zscore\", \"robust\"]\n", "detectors.challengers names the champion robust: a detector is one or the other"),
        ("[detectors]\nchallengers = [\"prophet\"]\n", "unknown variant `prophet`, expected one of `zscore`, `robust`, `level_shift`, `trend`, `seasonal`"),
        ("[kafka]\nsecurity_protocol = \"tls\"\n", "kafka.security_protocol is \"tls\"; say plaintext, ssl, sasl_plaintext or sasl_ssl"),
        ("[kafka]\nsecurity_protocol = \"sasl_ssl\"\n", "kafka.sasl_mechanism is \"\"; with sasl_ssl say PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
        ("[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\n", "kafka.sasl_username is missing: sasl_ssl needs it"),
        ("[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\nsasl_username = \"job\"\n", "kafka.sasl_password is missing: set INCIDENTFLOW__KAFKA__SASL_PASSWORD or kafka.sasl_password_file"),
        ("[kafka]\nsasl_username = \"job\"\n", "kafka.sasl_mechanism and sasl_username need security_protocol sasl_plaintext or sasl_ssl (it is plaintext)"),
        ("[alerts.x]\nkind = \"alertmanager\"\nurl = \"http://am\"\nresend_interval = \"10ms\"\n", "alerts.x.resend_interval must be at least 1s"),
        ("[alerts.x]\nkind = \"webhook\"\nwebhook_url = \"http://hook\"\n", "alerts.x.webhook_url is a secret and does not belong in the job file"),
        ("[[runbooks]]\nname = \"r\"\n", "runbooks[0] has neither url nor action"),
        ("[[runbooks]]\nurl = \"wiki/db\"\n", "runbooks[0].url is \"wiki/db\"; it must be an http:// or https:// URL"),
        ("[[runbooks]]\naction = \"a\"\ndirection = \"sideways\"\n", "runbooks[0].direction is \"sideways\"; it must be up, down or left out"),
        ("[[silences]]\nstart = \"tomorrow\"\nend = \"2026-11-25T03:00:00Z\"\n", "silences[0].start is \"tomorrow\""),
        ("[[silences]]\nstart = \"2026-11-25T03:00:00Z\"\nend = \"2026-11-25T01:00:00Z\"\n", "silences[0]: end must be later than start"),
        ("[zscore]\nthreshold = \"high\"\n", "invalid type: string \"high\", expected f64"),
        ("[nonsense]\n", "unknown field `nonsense`"),
    ];
    for (text, expected) in cases {
        let e = JobConfig::parse(text).unwrap_err();
        assert!(
            e.contains(expected),
            "{text:?}\n  gave: {e}\n  want: {expected}"
        );
    }
    // A secret in a message is hidden.
    let dir = std::env::temp_dir().join(format!("incidentflow-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hook = dir.join("hook");
    std::fs::write(&hook, "not-a-url-S3CRET").unwrap();
    let text = format!(
        "[alerts.x]\nkind = \"slack\"\nwebhook_url_file = \"{}\"\n",
        hook.display()
    );
    let e = JobConfig::parse(&text).unwrap_err();
    assert!(
        e.contains("alerts.x.webhook_url is (hidden)") && !e.contains("S3CRET"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
