//! Network namespaces as hosts for tests and benchmarks (root only): each host has its
//! own loopback; links are veth pairs between two hosts with a /30 each; no IP
//! forwarding anywhere, so a host reaches only its direct neighbours. Everything is
//! removed on drop.

use std::process::Command;

/// Whether we run as root (namespaces need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One link between two hosts.
#[derive(Debug, Clone)]
pub struct Link {
    /// Host indices.
    pub hosts: (usize, usize),
    /// Interface names on each side.
    pub ifaces: (String, String),
    /// Addresses on each side (no prefix length).
    pub addrs: (String, String),
}

/// A set of hosts (namespaces) and links.
#[derive(Debug)]
pub struct Hosts {
    names: Vec<String>,
    links: Vec<Link>,
    tag: String,
}

impl Hosts {
    /// Creates `count` hosts named `<prefix><pid>-<i>` with loopback up.
    pub fn create(prefix: &str, count: usize) -> Result<Self, String> {
        let tag = format!("{}", std::process::id() % 100_000);
        let mut hosts = Self {
            names: Vec::new(),
            links: Vec::new(),
            tag: tag.clone(),
        };
        for i in 0..count {
            let name = format!("{prefix}{tag}-{i}");
            let _ = ip(&["netns", "del", &name]);
            ip(&["netns", "add", &name])?;
            hosts.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// The namespace name of host `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Links hosts `a` and `b` with 10.<200+n/250>.<n%250>.1/.2 (n = the link's number).
    pub fn link(&mut self, a: usize, b: usize) -> Result<Link, String> {
        let n = self.links.len();
        let ifaces = (format!("v{}x{n}a", self.tag), format!("v{}x{n}b", self.tag));
        let net = format!("10.{}.{}", 200 + n / 250, n % 250);
        let addrs = (format!("{net}.1"), format!("{net}.2"));
        ip(&[
            "link",
            "add",
            &ifaces.0,
            "netns",
            &self.names[a],
            "type",
            "veth",
            "peer",
            "name",
            &ifaces.1,
            "netns",
            &self.names[b],
        ])?;
        for (host, iface, addr) in [(a, &ifaces.0, &addrs.0), (b, &ifaces.1, &addrs.1)] {
            let ns = &self.names[host];
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", iface])?;
            ip(&["-n", ns, "link", "set", iface, "up"])?;
        }
        let link = Link {
            hosts: (a, b),
            ifaces,
            addrs,
        };
        self.links.push(link.clone());
        Ok(link)
    }

    /// Cuts (`up = false`) or restores a link, on both sides.
    pub fn set_link(&self, link: &Link, up: bool) -> Result<(), String> {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.names[link.hosts.0],
            "link",
            "set",
            &link.ifaces.0,
            state,
        ])?;
        ip(&[
            "-n",
            &self.names[link.hosts.1],
            "link",
            "set",
            &link.ifaces.1,
            state,
        ])
    }

    /// A command run inside host `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i], program]);
        cmd
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
