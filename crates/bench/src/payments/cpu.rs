//! CPU accounting from Linux `/proc`: where the time of a round went, without a
//! profiler. Everything returns zero where `/proc` is not available.

use std::time::Duration;

fn schedstat_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// On-CPU time of the calling thread so far (scheduler accounting, nanoseconds).
pub fn thread_cpu() -> Duration {
    Duration::from_nanos(schedstat_ns("/proc/thread-self/schedstat"))
}

/// Summed on-CPU time of this process's threads whose name starts with `prefix`
/// (the kernel truncates names to 15 bytes).
pub fn threads_cpu(prefix: &str) -> Duration {
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for task in dir.flatten() {
            let p = task.path();
            let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            if name.trim_end().starts_with(prefix) {
                total += schedstat_ns(&p.join("schedstat").to_string_lossy());
            }
        }
    }
    Duration::from_nanos(total)
}

/// On-CPU time of the whole process so far (every thread, alive or ended).
pub fn process_cpu() -> Duration {
    // utime + stime of /proc/self/stat, in clock ticks (100 Hz on Linux).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = s
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the ')' the fields start at "state" (field 3); utime is 14, stime 15.
    Duration::from_millis((tick(11) + tick(12)) * 10)
}

/// Machine-wide CPU counters: (busy, total) jiffies over all cores, including other
/// processes (to show how noisy the machine was).
pub fn machine() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Number of cores the machine reports.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
