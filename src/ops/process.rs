//! This process's CPU time and peak memory, read from Linux's `/proc` (None elsewhere), for the
//! summary and the benchmark. Hand-written: two lines of two files; a crate for it would bring
//! the whole of /proc.

/// Peak resident memory of this process in bytes (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Clock ticks per second of `/proc/<pid>/stat`: Linux reports them in USER_HZ, which its user
/// ABI fixes at 100 whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system, all threads) this process has used (`/proc/self/stat`).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / USER_HZ)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_memory_and_time() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(super::peak_rss_bytes().is_some_and(|b| b > 1 << 20));
            assert!(super::cpu_seconds().is_some_and(|s| s >= 0.0));
        }
    }
}
