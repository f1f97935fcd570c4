//! The loop the load generator exists for: generate the small scenario, run the job on it, and
//! score the anomalies with `incidentflow eval` against the scenario's ground truth.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use common::*;
use incidentflow_loadgen::files::write_dir;
use incidentflow_loadgen::scenario::{Scenario, ScenarioConfig};

#[test]
fn the_small_scenario_is_detected_and_scored() {
    let dir = scratch("scenario-eval");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let anomalies = dir.join("anomalies.jsonl");
    run_ok(&[
        "--input",
        dir.join("samples.jsonl").to_str().unwrap(),
        "--anomalies-out",
        anomalies.to_str().unwrap(),
    ]);

    let report = dir.join("eval.json");
    let out = succeeded(
        incidentflow()
            .args([
                "eval",
                "--truth",
                dir.join("truth.jsonl").to_str().unwrap(),
                "--anomalies",
                anomalies.to_str().unwrap(),
            ])
            .args(["--out", report.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("precision") && printed.contains("fault-001"),
        "{printed}"
    );

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["faults"], 4);
    assert_eq!(
        r["anomalies"]["recall"], 1.0,
        "every injected fault is seen by the z-score: {r:#}"
    );
    let precision = r["anomalies"]["precision"].as_f64().unwrap();
    assert!(precision >= 0.9, "{precision}");
    // As episodes, the champion meets the targets: precision 0.9, recall 0.95, a median delay of
    // at most two sample intervals (30 s here).
    let champion = &r["detectors"][0];
    assert_eq!(champion["champion"], true);
    assert!(champion["precision"].as_f64().unwrap() >= 0.9, "{champion}");
    assert!(champion["recall"].as_f64().unwrap() >= 0.95, "{champion}");
    assert!(
        champion["delay_p50_ms"].as_u64().unwrap() <= 60_000,
        "{champion}"
    );
    assert!(r["incidents"].is_null(), "no incidents were given");

    // eval refuses to run with nothing to score.
    let out = incidentflow()
        .args(["eval", "--truth", dir.join("truth.jsonl").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Correlation on the small scenario with its topology and deploys: every fault becomes an
/// incident, no incident is noise, the anomalies compress, and the root is among the first three
/// causes. (Top-1 is not asserted here: on an 11-service graph two overlapping faults share one
/// incident, so only one of them can rank first; docs/quality.md gives the figures per scenario.)
#[test]
fn the_small_scenario_gives_one_incident_per_problem_with_the_root_ranked() {
    let dir = scratch("scenario-eval-incidents");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    run_on_scenario_files(&dir, "anomalies.jsonl", "incidents.jsonl");
    succeeded(
        incidentflow()
            .args(["eval", "--truth", &p("truth.jsonl")])
            .args(["--anomalies", &p("anomalies.jsonl")])
            .args(["--incidents", &p("incidents.jsonl")])
            .args(["--out", &p("eval.json")])
            .output()
            .unwrap(),
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    let i = &r["incidents"];
    assert_eq!(i["recall"], 1.0, "{i:#}");
    assert!(i["precision"].as_f64().unwrap() >= 0.9, "{i:#}");
    assert!(i["compression"].as_f64().unwrap() >= 10.0, "{i:#}");
    assert_eq!(i["root_cause_top3"], 1.0, "{i:#}");
    assert!(i["root_cause_top1"].as_f64().unwrap() >= 0.5, "{i:#}");
}

/// The champion and its challengers on the small scenario: the challengers' episodes come out
/// tagged, and eval puts every detector side by side as episodes.
#[test]
fn eval_compares_the_champion_and_the_challengers_as_episodes() {
    let dir = scratch("scenario-eval-challengers");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(
        dir.join("job.toml"),
        "[detectors]\nchampion = \"zscore\"\nchallengers = [\"robust\", \"level_shift\", \"trend\"]\n",
    )
    .unwrap();
    run_ok(&[
        "--config",
        &p("job.toml"),
        "--input",
        &p("samples.jsonl"),
        "--anomalies-out",
        &p("anomalies.jsonl"),
        "--challengers-out",
        &p("challengers.jsonl"),
    ]);
    let out = incidentflow()
        .args(["eval", "--truth", &p("truth.jsonl")])
        .args(["--anomalies", &p("anomalies.jsonl")])
        .args(["--challengers", &p("challengers.jsonl")])
        .args(["--interval", "30s", "--out", &p("eval.json")])
        .output()
        .unwrap();
    let out = succeeded(out);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("zscore (champion)"), "{printed}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap();
    let rows = r["detectors"].as_array().unwrap();
    assert_eq!(rows[0]["detector"], "zscore");
    assert_eq!(rows[0]["champion"], true);
    let names: Vec<&str> = rows
        .iter()
        .map(|d| d["detector"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for row in rows {
        let (episodes, matching) = (
            row["episodes"].as_u64().unwrap(),
            row["matching"].as_u64().unwrap(),
        );
        assert!(matching <= episodes && episodes > 0, "{row}");
        let recall = row["recall"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&recall), "{row}");
    }
    // The z-score sees every fault; as episodes its anomalies are fewer than its samples.
    assert_eq!(rows[0]["recall"], 1.0);
    let samples = r["anomalies"]["total"].as_u64().unwrap();
    assert!(rows[0]["episodes"].as_u64().unwrap() < samples, "{r:#}");
    eprintln!("{printed}");
}

/// Warm start: with `--report-from`, everything before is learned and nothing of it reported;
/// what is reported after is exactly what the full run reports there (the detectors' state is the
/// same), challengers included.
#[test]
fn a_warm_start_reports_from_its_time_what_the_full_run_reports_there() {
    let dir = scratch("scenario-warm-start");
    let scenario = Scenario::new(ScenarioConfig::named("small", 1).unwrap());
    write_dir(&scenario, &dir, 0).unwrap();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(
        dir.join("job.toml"),
        "[detectors]\nchallengers = [\"robust\", \"level_shift\", \"trend\"]\n",
    )
    .unwrap();
    let run = |tag: &str, extra: &[&str]| {
        let mut args = vec![
            "--config".to_string(),
            p("job.toml"),
            "--input".into(),
            p("samples.jsonl"),
            "--anomalies-out".into(),
            p(&format!("anomalies-{tag}.jsonl")),
            "--challengers-out".into(),
            p(&format!("challengers-{tag}.jsonl")),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&args);
    };
    run("full", &[]);
    // Half way through the scenario's six hours.
    let from = rfc3339(scenario.config.start + 3 * 3_600_000);
    run("warm", &["--report-from", &from]);
    for what in ["anomalies", "challengers"] {
        let after = |tag: &str| -> Vec<String> {
            lines(&dir.join(format!("{what}-{tag}.jsonl")))
                .into_iter()
                .filter(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["timestamp"].as_str().unwrap() >= from.as_str()
                })
                .collect()
        };
        let warm = lines(&dir.join(format!("{what}-warm.jsonl")));
        assert!(!warm.is_empty(), "{what}");
        assert_eq!(warm, after("full"), "{what}");
        assert!(lines(&dir.join(format!("{what}-full.jsonl"))).len() > warm.len());
    }
}

/// `n` samples of `service`'s latency about `every` ms apart (with up to a fifth of it in jitter),
/// level 100 with noise of 2, and a spike of 30 at `spike`.
fn sparse_series(
    service: &str,
    n: u64,
    every: u64,
    spike: u64,
    rng: &mut Rng,
) -> Vec<(u64, String)> {
    (0..n)
        .map(|i| {
            let ts = T0 + i * every + rng.below(every / 5);
            let value = 100.0 + (rng.unit() - 0.5) * 4.0 + if i == spike { 30.0 } else { 0.0 };
            (ts, sample(ts, "shop", service, "latency", value))
        })
        .collect()
}

/// With no settings, a series sampled about every five minutes and one sampled every hour are
/// both judged (the champion counts samples, not time) and their spikes found, and nothing says
/// a series could not be judged. The z-score, as champion, still cannot judge the five-minute
/// series in its default 30-minute window: the job says so, names the series and the window it
/// needs, and with that window the z-score judges it.
#[test]
fn five_minute_and_hourly_series_are_judged_with_the_defaults() {
    let dir = scratch("sparse");
    let mut rng = Rng::new(5, 0);
    let mut lines = sparse_series("db", 300, 300_000, 250, &mut rng);
    lines.extend(sparse_series("batch", 200, 3_600_000, 150, &mut rng));
    lines.sort();
    let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
    let input = dir.join("sparse.jsonl");
    std::fs::write(&input, text).unwrap();
    let out = dir.join("anomalies.jsonl");
    let said = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
    };
    let run = |config: Option<&str>| {
        let mut args = vec![
            "--input",
            input.to_str().unwrap(),
            "--anomalies-out",
            out.to_str().unwrap(),
        ];
        if let Some(c) = config {
            args.extend(["--config", c]);
        }
        said(&run_ok(&args))
    };
    let default = run(None);
    assert!(!default.contains("not judged"), "{default}");
    let mut opened: Vec<(String, String)> = json_lines(&out)
        .iter()
        .filter(|a| a["episode"]["status"] == "open")
        .map(|a| {
            (
                a["service"].as_str().unwrap().to_string(),
                a["detector"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    opened.sort();
    assert_eq!(
        opened,
        [
            ("batch".to_string(), "change".to_string()),
            ("db".to_string(), "change".to_string())
        ],
        "one episode each, at its spike"
    );

    let job = dir.join("job.toml");
    std::fs::write(&job, "[detectors]\nchampion = \"zscore\"\n").unwrap();
    let zscore = run(Some(job.to_str().unwrap()));
    assert!(zscore.contains("not judged"), "{zscore}");
    assert!(zscore.contains("shop/db/latency"), "{zscore}");
    assert!(
        zscore.contains("set baseline.window to at least 1h40m")
            || zscore.contains("set baseline.window to at least 2h"),
        "{zscore}"
    );
    std::fs::write(
        &job,
        "[detectors]\nchampion = \"zscore\"\n[baseline]\nwindow = \"2h\"\n",
    )
    .unwrap();
    run(Some(job.to_str().unwrap()));
    let found = std::fs::read_to_string(&out).unwrap();
    assert!(
        found.contains("\"service\":\"db\"") && found.contains("\"status\":\"open\""),
        "{found}"
    );
}
