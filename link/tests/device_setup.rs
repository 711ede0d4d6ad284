//! Every namespace gets the devices, addresses and settings the driver
//! documents: a TUN at MTU 1500 with txqueuelen 10000, loopback up, IPv6
//! off, the address plan, and nothing of it in the test's own namespace.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::process::Command;

use wirebench_link::{Link, LinkSpec, MTU, TUN_NAME, TXQUEUELEN, run_in_netns};

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn read_sysctl(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[test]
fn namespaces_have_the_documented_devices() {
    if !common::link_available() {
        return;
    }
    let host_ipv6 = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").ok();
    let host_links = ip(&["-o", "link"]);
    let link = Link::up(&"rtt=1ms".parse::<LinkSpec>().unwrap(), 3, 1).unwrap();
    assert_eq!(link.netns_names().len(), 4);
    assert_eq!(link.server_addr().to_string(), "10.201.0.1");
    let addrs: Vec<String> = (0..3).map(|i| link.client_addr(i).unwrap().to_string()).collect();
    assert_eq!(addrs, ["10.201.1.1", "10.201.1.2", "10.201.1.3"]);
    assert!(link.client_addr(3).is_err() && link.client_netns(3).is_err());

    for (i, name) in link.netns_names().iter().enumerate() {
        let tun = ip(&["-n", name, "-o", "link", "show", "dev", TUN_NAME]);
        assert!(tun.contains(&format!("mtu {MTU} ")), "{name}: {tun}");
        assert!(tun.contains(&format!("qlen {TXQUEUELEN}")), "{name}: {tun}");
        assert!(tun.contains(",UP,") || tun.contains("<UP,") || tun.contains(",UP>"), "{name}: {tun}");
        let lo = ip(&["-n", name, "-o", "link", "show", "dev", "lo"]);
        assert!(lo.contains("UP"), "{name}: {lo}");
        let expected = if i == 0 { link.server_addr() } else { link.client_addr(i - 1).unwrap() };
        let v4 = ip(&["-n", name, "-o", "-4", "addr", "show", "dev", TUN_NAME]);
        assert!(v4.contains(&format!("inet {expected}/32")), "{name}: {v4}");
        let v6 = ip(&["-n", name, "-o", "-6", "addr"]);
        assert_eq!(v6.trim(), "", "{name} has IPv6 addresses");
        let path = if i == 0 { link.server_netns() } else { link.client_netns(i - 1).unwrap() };
        let (all, tun) = run_in_netns(path, || {
            Ok((
                read_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6"),
                read_sysctl(&format!("/proc/sys/net/ipv6/conf/{TUN_NAME}/disable_ipv6")),
            ))
        })
        .unwrap();
        assert_eq!((all.as_str(), tun.as_str()), ("1", "1"), "{name}");
    }
    // Nothing changed where the test runs.
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").ok(), host_ipv6);
    assert_eq!(ip(&["-o", "link"]), host_links);
    assert!(!ip(&["-o", "link"]).contains(TUN_NAME));
}
