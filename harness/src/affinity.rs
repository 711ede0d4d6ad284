//! CPU pinning: the client thread and the server process on disjoint
//! CPUs, so neither steals the other's core and runs are repeatable.

/// Pins the calling thread (and threads it creates later) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it for CPU
    // numbers below CPU_SETSIZE, which is checked.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(std::io::Error::other(format!("CPU {cpu} is out of range")));
            }
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Parses `0`, `1-3`, `0,2-3`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list {s:?}: expected e.g. 0,2-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(cpus)
}

/// Formats a CPU list compactly: `0`, `1-3`.
pub fn format_cpus(cpus: &[usize]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(a), Some(b)) if cpus.len() == b - a + 1 && a != b => format!("{a}-{b}"),
        _ => cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
    }
}

/// The split used by default: the client on CPU 0, the server on the
/// rest. `None` on a single CPU, where there is nothing to split.
pub fn default_split(cores: usize) -> Option<(Vec<usize>, Vec<usize>)> {
    (cores >= 2).then(|| (vec![0], (1..cores).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0,2-3").unwrap(), vec![0, 2, 3]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
        assert_eq!(format_cpus(&[1, 2, 3]), "1-3");
        assert_eq!(format_cpus(&[0]), "0");
        assert_eq!(default_split(2), Some((vec![0], vec![1])));
        assert_eq!(default_split(1), None);
    }

    #[test]
    fn pinning_a_thread_works() {
        std::thread::spawn(|| pin_current_thread(&[0]).unwrap()).join().unwrap();
    }
}
