//! Helpers shared by the end-to-end tests: run the real binary on real files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory under the target dir, emptied for each test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The `incidentflow` binary under test.
pub fn incidentflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_incidentflow"))
}

/// Runs `incidentflow run` with `args`, panicking with its stderr if it fails.
pub fn run_ok(args: &[&str]) -> Output {
    let out = incidentflow().arg("run").args(args).output().expect("spawn incidentflow");
    assert!(out.status.success(), "incidentflow run {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The lines of a file.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(String::from).collect()
}

/// The lines of a file, sorted.
pub fn sorted_lines(path: &Path) -> Vec<String> {
    let mut l = lines(path);
    l.sort();
    l
}

/// The JSON summary a run wrote with `--summary-out`.
pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("summary written")).expect("summary is JSON")
}

/// Parses every line of a JSON Lines file.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    lines(path).iter().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// RFC 3339 UTC text of epoch milliseconds.
pub fn rfc3339(ms: u64) -> String {
    incidentflow_dataflows::time::format_rfc3339(ms)
}

/// A sample line.
pub fn sample(ts: u64, namespace: &str, service: &str, metric: &str, value: f64) -> String {
    format!(r#"{{"schema_version":1,"timestamp":"{}","namespace":"{namespace}","service":"{service}","metric_name":"{metric}","value":{value}}}"#, rfc3339(ts))
}

/// Deterministic pseudo-random numbers (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 2026-11-25T00:00:00Z
pub const T0: u64 = 1_795_564_800_000;
