//! Process figures in Prometheus' standard names (`process_*`), read from `/proc/self`
//! at scrape time (Linux; elsewhere they are simply absent).

use std::fmt::Write as _;

/// What `/proc/self` says about this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessFigures {
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// User + system CPU time so far, in ms.
    pub cpu_ms: Option<u64>,
}

/// User + system CPU time in ms from `/proc/self/stat`'s text: `utime` and `stime` are the
/// 14th and 15th fields, counted after the command name (in parentheses, and free to
/// hold spaces and parentheses itself), in `USER_HZ` ticks, which Linux fixes at 100/s.
fn stat_cpu_ms(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10)
}

/// This process's CPU time so far (user + system), in ms; `None` where `/proc` is absent.
/// Benches and tools report CPU per operation with it: on a shared machine it says more
/// than wall time.
pub fn cpu_time_ms() -> Option<u64> {
    stat_cpu_ms(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// `VmRSS:   1234 kB` → bytes.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn status_count(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].trim().parse().ok()
}

/// The soft limit from `/proc/self/limits`' "Max open files" row.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn read() -> ProcessFigures {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    ProcessFigures {
        resident_memory_bytes: status_kib(&status, "VmRSS:"),
        virtual_memory_bytes: status_kib(&status, "VmSize:"),
        threads: status_count(&status, "Threads:"),
        // The directory handle used to list it is counted too.
        open_fds: open_fds.map(|count| count.saturating_sub(1)),
        max_fds: max_open_files(&limits),
        cpu_ms: cpu_time_ms(),
    }
}

pub fn render(figures: &ProcessFigures, out: &mut String) {
    let rows = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            figures.resident_memory_bytes,
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            figures.virtual_memory_bytes,
        ),
        (
            "process_threads",
            "Operating system threads.",
            figures.threads,
        ),
        (
            "process_open_fds",
            "Open file descriptors.",
            figures.open_fds,
        ),
        (
            "process_max_fds",
            "Limit of open file descriptors.",
            figures.max_fds,
        ),
    ];
    if let Some(cpu_ms) = figures.cpu_ms {
        let name = "process_cpu_seconds_total";
        let _ = writeln!(
            out,
            "# HELP {name} Total user and system CPU time spent in seconds.\n# TYPE {name} counter\n{name} {}.{:03}",
            cpu_ms / 1000,
            cpu_ms % 1000
        );
    }
    for (name, help, value) in rows {
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let status = "Name:\tsegd\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10_485_760));
        assert_eq!(status_kib(status, "VmSize:"), Some(209_715_200));
        assert_eq!(status_count(status, "Threads:"), Some(7));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 1048576              files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        // A command name with a space and a parenthesis; utime 250, stime 31 ticks.
        let stat = "4242 (segd (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 7 0";
        assert_eq!(stat_cpu_ms(stat), Some(2_810));
        assert_eq!(stat_cpu_ms("4242 (segd) S 1"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let before = read();
        let files: Vec<std::fs::File> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let during = read();
        drop(files);
        assert!(during.resident_memory_bytes.unwrap() > 0);
        assert!(during.max_fds.unwrap() > 0);
        assert!(before.open_fds.is_some());
        assert!(during.open_fds.unwrap() >= 5, "{during:?}");
        assert!(during.cpu_ms.is_some(), "{during:?}");
    }
}
