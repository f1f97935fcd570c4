//! The Kubernetes deployment under deploy/: the manifests against the Kubernetes API schemas
//! (kubernetes-validate, installed by scripts/test), the alert rules and the dashboard against
//! the metrics a running job serves, and the settings the manifests carry against the job.

#![allow(clippy::unwrap_used)] // tests may panic on what they did not expect

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// The validator scripts/test installed.
fn validator() -> Command {
    let path = std::env::var("INCIDENTFLOW_K8S_VALIDATOR").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/tools/kubernetes-validate/bin/kubernetes-validate"
        )
        .into()
    });
    assert!(
        Path::new(&path).exists(),
        "no manifest validator at {path}: run ./scripts/test, which installs it"
    );
    Command::new(path)
}

/// A manifest's YAML documents as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap())
        .collect()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas_and_a_broken_one_does_not() {
    let dir = deploy("kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 5, "{manifests:?}");
    let out = validator()
        .arg("--strict")
        .args(&manifests)
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    for kind in ["configmap", "secret", "service", "statefulset"] {
        assert!(
            report.contains(&format!("passed for resource {kind}/")),
            "{kind}: {report}"
        );
    }
    // The one kind the schemas lack is a custom resource: the tests below check it instead.
    assert!(
        report.contains("Couldn't find schema for kind PrometheusRule"),
        "{report}"
    );

    // The validator does refuse what Kubernetes would: a mistyped field, a wrong type.
    let scratch = scratch("deploy-broken");
    let broken = scratch.join("statefulset.yaml");
    let text = std::fs::read_to_string(dir.join("statefulset.yaml")).unwrap();
    std::fs::write(&broken, text.replace("replicas: 3", "replicas: \"three\"")).unwrap();
    let out = validator().arg("--strict").arg(&broken).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("spec.replicas"));
}

#[test]
fn the_statefulset_agrees_with_itself_and_with_the_job() {
    let set = &documents(&deploy("kubernetes/statefulset.yaml"))[0];
    let spec = &set["spec"];
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()
            .clone()
    };
    // The hostfile is written from REPLICAS: it must be the replica count.
    assert_eq!(
        env("REPLICAS")["value"],
        spec["replicas"].as_u64().unwrap().to_string()
    );
    assert_eq!(
        env("PROCESS_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    // The headless Service publishes the pods before they are ready, under the StatefulSet's name.
    let service = &documents(&deploy("kubernetes/service.yaml"))[0];
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(service["metadata"]["name"], spec["serviceName"]);
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"], "/healthz",
        "{container}"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30);

    // The script writes one host per replica and starts the job with its flags: run it with a
    // stand-in for the binary that prints its arguments.
    let script = container["args"][0].as_str().unwrap();
    let dir = scratch("deploy-script");
    let stand_in = dir.join("incidentflow");
    std::fs::write(&stand_in, "#!/bin/sh\necho \"$@\"\n").unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&stand_in)
        .status()
        .unwrap();
    let hostfile = dir.join("hostfile");
    let script = script
        .replace("/usr/local/bin/incidentflow", stand_in.to_str().unwrap())
        .replace("/tmp/hostfile", hostfile.to_str().unwrap());
    let out = succeeded(
        Command::new("sh")
            .args(["-c", &script])
            .env("REPLICAS", "3")
            .env("WORKERS", "2")
            .env("PROCESS_INDEX", "1")
            .env("POD_NAMESPACE", "aiops")
            .output()
            .unwrap(),
    );
    assert_eq!(
        std::fs::read_to_string(&hostfile).unwrap(),
        "incidentflow-0.incidentflow.aiops.svc.cluster.local:2101\n\
         incidentflow-1.incidentflow.aiops.svc.cluster.local:2101\n\
         incidentflow-2.incidentflow.aiops.svc.cluster.local:2101\n"
    );
    let args = String::from_utf8_lossy(&out.stdout);
    assert!(
        args.contains("--processes 3 --process-index 1 --hostfile"),
        "{args}"
    );
    // The job accepts those flags (a usage error would name the flag).
    let help = incidentflow().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.split_whitespace().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(flag),
            "{flag} is not a flag of incidentflow run"
        );
    }
}

#[test]
fn the_configmap_holds_a_valid_job_file() {
    let map = &documents(&deploy("kubernetes/configmap.yaml"))[0];
    let dir = scratch("deploy-config");
    let job = dir.join("job.toml");
    std::fs::write(&job, map["data"]["job.toml"].as_str().unwrap()).unwrap();
    // The Secret's files are not here: give the secrets through the environment instead.
    let out = succeeded(
        incidentflow()
            .args(["config", "validate", job.to_str().unwrap()])
            .env("INCIDENTFLOW__ALERTS__PAGERDUTY__ROUTING_KEY", "key")
            .env(
                "INCIDENTFLOW__ALERTS__SLACK__WEBHOOK_URL",
                "https://hooks.slack.com/services/x",
            )
            .output()
            .unwrap(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (3 alert outputs, 1 runbooks"));
    // The Secret has a key for every *_file the job file names.
    let secret = &documents(&deploy("kubernetes/secret.yaml"))[0];
    let text = map["data"]["job.toml"].as_str().unwrap();
    for line in text.lines().filter(|l| l.contains("_file = ")) {
        let file = line.rsplit('/').next().unwrap().trim_end_matches('"');
        assert!(
            secret["stringData"].get(file).is_some(),
            "no Secret key {file}"
        );
    }
}

/// The metric names the job serves: a running job's scrape, and the registry's families that
/// hold series only once something happened (Kafka partitions, alert outputs, side inputs,
/// feedback), touched through the library (from the TYPE lines: a counter's samples are named
/// with `_total`).
fn served_metrics() -> BTreeSet<String> {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut job = KillOnDrop(
        incidentflow()
            .args(["run", "--input", "-", "--metrics-addr", &addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let scrape = loop {
        if let Some((200, body)) = get(&addr, "/metrics") {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "no /metrics");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(job.0.stdin.take());
    job.0.wait().unwrap();
    let touched = incidentflow::ops::metrics::Metrics::new();
    touched.kafka_lag("raw.metrics[0]", 0);
    touched.alert_delivery("am", "delivered");
    touched.alert_retry("am");
    touched.side_input_refused("feedback");
    touched.feedback_from(Box::new(|| {
        let mut f = incidentflow_eval::feedback::FeedbackFigures::default();
        f.by_label.insert("useful", 1);
        f.root_cause.insert("all", Default::default());
        f
    }));
    let names = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| match l.split_once(' ').unwrap() {
                // OpenMetrics names a counter's family without `_total`, the classic format with.
                (name, "counter") if !name.ends_with("_total") => format!("{name}_total"),
                (name, _) => name.to_string(),
            })
            .collect()
    };
    let served = names(&scrape);
    let all = names(&touched.render());
    assert!(
        served.is_subset(&all),
        "the library's registry is the job's: {served:?} {all:?}"
    );
    all
}

/// The incidentflow metric names in an expression (a histogram's series named by family).
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("incidentflow_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        out.push(family);
    }
    out
}

#[test]
fn the_alert_rules_and_the_dashboard_name_only_metrics_the_job_serves() {
    let served = served_metrics();
    assert!(
        served.contains("incidentflow_records_read_total"),
        "{served:?}"
    );
    let rule = &documents(&deploy("kubernetes/prometheusrule.yaml"))[0];
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let mut alerts = BTreeSet::new();
    for r in rules {
        let expr = r["expr"].as_str().unwrap();
        assert!(r["labels"]["severity"].is_string(), "{r}");
        assert!(r["annotations"]["summary"].is_string(), "{r}");
        for name in metrics_in(expr) {
            assert!(
                served.contains(&name),
                "rule {}: {name} is not served",
                r["alert"]
            );
        }
        alerts.insert(r["alert"].as_str().unwrap().to_string());
    }
    // Lag, dead-letter rate, sink failures, no progress.
    for wanted in [
        "IncidentflowKafkaLag",
        "IncidentflowDeadLetterRate",
        "IncidentflowAlertDeliveryFailing",
        "IncidentflowOutputErrors",
        "IncidentflowNoProgress",
    ] {
        assert!(alerts.contains(wanted), "{alerts:?}");
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/incidentflow-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut shown = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            for name in metrics_in(target["expr"].as_str().unwrap()) {
                assert!(
                    served.contains(&name),
                    "panel {}: {name} is not served",
                    panel["title"]
                );
                shown.insert(name);
            }
        }
    }
    assert!(shown.len() >= 12, "{shown:?}");
}
