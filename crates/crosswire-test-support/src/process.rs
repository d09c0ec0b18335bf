//! Signals to a child process and figures read from `/proc` (Linux).

use rustix::process::{kill_process, Pid, Signal};

fn signal(pid: u32, signal: Signal, name: &str) {
    let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
    let Some(target) = raw else {
        panic!("{pid} is not a process id");
    };
    if let Err(e) = kill_process(target, signal) {
        panic!("cannot send {name} to process {pid}: {e}");
    }
}

/// Freezes the process (SIGSTOP): it keeps its sockets open and answers
/// nothing until [`resume`].
pub fn pause(pid: u32) {
    signal(pid, Signal::STOP, "SIGSTOP");
}

/// Lets a frozen process run again (SIGCONT).
pub fn resume(pid: u32) {
    signal(pid, Signal::CONT, "SIGCONT");
}

/// The resident memory of the process, in KiB (`VmRSS` of
/// `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = match std::fs::read_to_string(&path) {
        Ok(status) => status,
        Err(e) => panic!("cannot read {path}: {e}"),
    };
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok());
    match rss {
        Some(kib) => kib,
        None => panic!("no VmRSS in {path}"),
    }
}

/// How many file descriptors the process holds open (0 once it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runs `spawn` (which starts a server on `port` and says whether it came
/// up) until it succeeds, for up to 10 s: a port just freed by a killed
/// server may still be held for a moment.
pub(crate) fn start_on_port(program: &str, port: u16, mut spawn: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spawn() {
        assert!(
            std::time::Instant::now() < deadline,
            "could not start {program} on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me) > 0);
        assert!(open_fds(me) >= 3);
    }
}
