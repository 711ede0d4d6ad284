//! CPU time of a process or thread, from `getrusage(2)`.

use std::time::Duration;

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on our behalf.
    pub system: Duration,
}

impl CpuTime {
    /// The whole process so far.
    pub fn process() -> CpuTime {
        rusage(libc::RUSAGE_SELF)
    }

    /// The calling thread so far.
    pub fn thread() -> CpuTime {
        rusage(libc::RUSAGE_THREAD)
    }

    /// `self - earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }

    /// User plus system.
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

impl std::ops::Add for CpuTime {
    type Output = CpuTime;
    fn add(self, o: CpuTime) -> CpuTime {
        CpuTime { user: self.user + o.user, system: self.system + o.system }
    }
}

fn rusage(who: libc::c_int) -> CpuTime {
    // SAFETY: getrusage writes a plain-old-data struct we own; a zeroed
    // rusage is a valid value to start from.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            return CpuTime::default();
        }
        usage
    };
    let micros = |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    CpuTime { user: micros(usage.ru_utime), system: micros(usage.ru_stime) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_work_shows_as_thread_and_process_time() {
        // Spin until each clock moves (however loaded the machine); the
        // wall-clock bound only stops a broken clock from hanging. The two
        // are not compared with each other: getrusage splits user and system
        // time from tick samples, per thread and per process apart, so over
        // a few milliseconds a thread can show a little more than its
        // process.
        fn spin_until(moved: impl Fn() -> bool) {
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while !moved() {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                assert!(start.elapsed() < Duration::from_secs(30), "CPU time never advanced");
            }
        }
        let thread = CpuTime::thread();
        let process = CpuTime::process();
        spin_until(|| CpuTime::thread().since(thread).total() >= Duration::from_millis(5));
        spin_until(|| CpuTime::process().since(process).total() >= Duration::from_millis(5));
    }
}
