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
                if a > b || b >= libc::CPU_SETSIZE as usize {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => {
                let cpu: usize = part.parse().map_err(|_| bad())?;
                if cpu >= libc::CPU_SETSIZE as usize {
                    return Err(bad());
                }
                cpus.push(cpu);
            }
        }
    }
    Ok(cpus)
}

/// A CPU list as one command-line value (clap would take a bare `Vec` for
/// a list of values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Parses a CPU list whose every CPU this process may use.
pub fn parse_usable_cpus(s: &str) -> Result<CpuList, String> {
    let cpus = parse_cpus(s)?;
    if cpus.is_empty() {
        return Err("expected at least one CPU, e.g. 1-3".into());
    }
    let usable = usable_cpus().map_err(|e| format!("cannot read this process's CPUs: {e}"))?;
    match cpus.iter().find(|c| !usable.contains(c)) {
        Some(cpu) => Err(format!("CPU {cpu} is not one this process can use (usable: {})", format_cpus(&usable))),
        None => Ok(CpuList(cpus)),
    }
}

/// Formats a CPU list compactly: `0`, `1-3`.
pub fn format_cpus(cpus: &[usize]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(a), Some(b)) if cpus.len() == b - a + 1 && a != b => format!("{a}-{b}"),
        _ => cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
    }
}

/// The split used by default: the client on the first usable CPU, the
/// server on the rest. `None` on a single CPU, where there is nothing to
/// split.
pub fn default_split(usable: &[usize]) -> Option<(Vec<usize>, Vec<usize>)> {
    match usable {
        [first, rest @ ..] if !rest.is_empty() => Some((vec![*first], rest.to_vec())),
        _ => None,
    }
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn usable_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data that sched_getaffinity fills in;
    // CPU_ISSET reads within it for numbers below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0,2-3").unwrap(), vec![0, 2, 3]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("0-99999999999").is_err(), "no huge lists");
        assert!(parse_cpus("1024").is_err());
        assert_eq!(format_cpus(&[1, 2, 3]), "1-3");
        assert_eq!(format_cpus(&[0]), "0");
        assert_eq!(default_split(&[0, 1]), Some((vec![0], vec![1])));
        assert_eq!(default_split(&[2, 5, 7]), Some((vec![2], vec![5, 7])));
        assert_eq!(default_split(&[0]), None);
        let usable = usable_cpus().unwrap();
        assert!(!usable.is_empty() && usable.len() <= std::thread::available_parallelism().unwrap().get());
    }

    #[test]
    fn pinning_a_thread_works() {
        std::thread::spawn(|| pin_current_thread(&[0]).unwrap()).join().unwrap();
    }
}
