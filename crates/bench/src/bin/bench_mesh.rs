//! `cargo run --release --bin bench-mesh` (root): the mesh over network namespaces.
//!
//! ```text
//!   h0 ── h1 ── h2 ── h3        (3 hops from h0 to h3; links only between neighbours,
//!          └─ h4 ─┘              no IP forwarding; h4 is a longer bypass of h1–h2)
//! ```
//!
//! - Throughput h0 → h3: a 16 MiB file through `smartmesh node` processes (sealed end
//!   to end, routed, metered: the carriers charge a price and sign nothing away), side by
//!   side with a plain TCP relay chain over the same namespaces (h1 and h2 copy bytes).
//! - Latency each hop adds: a small message's round trip (delivery + acknowledgement)
//!   over 3 hops against 1 hop.
//! - Convergence: the h1–h2 link is cut; time until h1 routes to h3 through h4.
//!
//! Ends with `mesh_mbps=`, `plain_relay_mbps=`, `throughput_ratio=`,
//! `added_latency_per_hop_ms=`, `convergence_ms=` (medians of several runs).

use serde_json::Value;
use smartmesh_testkit::netns::{Hosts, is_root};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const FILE_BYTES: usize = 16 << 20;
const RELAY_BYTES: usize = 64 << 20;
const RUNS: usize = 3;
const PINGS: usize = 15;
const RELAY_PORT: u16 = 9_000;
const P2P_PORT: u16 = 7_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("relay") => relay(&args[2], &args[3]),
        Some("sink") => sink(&args[2]),
        Some("source") => source(&args[2], args[3].parse().unwrap_or(RELAY_BYTES)),
        _ => bench(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-mesh: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect_retrying(addr: &str) -> Result<TcpStream, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if Instant::now() > deadline => return Err(format!("connect {addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A plain TCP relay: each accepted connection is copied both ways to `next`.
fn relay(listen: &str, next: &str) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    for incoming in listener.incoming() {
        let inbound = incoming.map_err(|e| e.to_string())?;
        let _ = inbound.set_nodelay(true);
        let outbound = connect_retrying(next)?;
        let (mut a_read, mut b_write) = (
            inbound.try_clone().map_err(|e| e.to_string())?,
            outbound.try_clone().map_err(|e| e.to_string())?,
        );
        let (mut b_read, mut a_write) = (outbound, inbound);
        let forward = std::thread::spawn(move || {
            let _ = std::io::copy(&mut a_read, &mut b_write);
            let _ = b_write.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut b_read, &mut a_write);
        let _ = forward.join();
    }
    Ok(())
}

/// Reads each connection to its end, then answers one byte.
fn sink(listen: &str) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"))?;
    let mut buf = vec![0u8; 1 << 16];
    for incoming in listener.incoming() {
        let mut s = incoming.map_err(|e| e.to_string())?;
        while s.read(&mut buf).map_err(|e| e.to_string())? > 0 {}
        let _ = s.write_all(&[1]);
    }
    Ok(())
}

/// Sends `bytes` and waits for the sink's answer; prints the seconds taken.
fn source(addr: &str, bytes: usize) -> Result<(), String> {
    let mut s = connect_retrying(addr)?;
    let chunk = vec![7u8; 1 << 16];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n;
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack).map_err(|e| e.to_string())?;
    println!("{}", start.elapsed().as_secs_f64());
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn smartmesh_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no binary directory")?;
    let bin = dir.join("smartmesh");
    let release = dir.ends_with("release");
    eprintln!("building the smartmesh binary (cargo build -p smartmesh-cli)…");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "-q", "-p", "smartmesh-cli", "--bin", "smartmesh"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(|e| format!("cargo: {e}"))?;
    if !status.success() || !bin.exists() {
        return Err(format!("could not build {}", bin.display()));
    }
    Ok(bin)
}

fn cli(hosts: &Hosts, host: usize, bin: &Path, dir: &Path, args: &[&str]) -> Result<Value, String> {
    let out = hosts
        .command(host, bin.to_str().ok_or("path")?)
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "smartmesh {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out: {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn next_hop(hosts: &Hosts, host: usize, bin: &Path, dir: &Path, to: &str) -> Option<String> {
    let routes = cli(hosts, host, bin, dir, &["routes"]).ok()?;
    routes["routes"]
        .as_array()?
        .iter()
        .find(|r| {
            r["destination"]
                .as_str()
                .is_some_and(|d| d.eq_ignore_ascii_case(to))
        })
        .and_then(|r| r["next_hop"].as_str().map(str::to_lowercase))
}

fn bench() -> Result<(), String> {
    if !is_root() {
        return Err("needs root (network namespaces); run it as root".into());
    }
    let bin = smartmesh_binary()?;
    let own = std::env::current_exe().map_err(|e| e.to_string())?;
    let own = own.to_str().ok_or("path")?.to_owned();
    let mut hosts = Hosts::create("smb", 5)?;
    let l01 = hosts.link(0, 1)?;
    let l12 = hosts.link(1, 2)?;
    let l23 = hosts.link(2, 3)?;
    let l14 = hosts.link(1, 4)?;
    let l42 = hosts.link(4, 2)?;

    // Plain TCP relay chain h0 → h1 → h2 → h3.
    eprintln!(
        "plain relay: {} MiB over 3 hops, {RUNS} runs",
        RELAY_BYTES >> 20
    );
    let at = |addr: &str| format!("{addr}:{RELAY_PORT}");
    let mut relays = Procs(Vec::new());
    for (host, args) in [
        (3, vec!["sink".to_owned(), at(&l23.addrs.1)]),
        (2, vec!["relay".into(), at(&l12.addrs.1), at(&l23.addrs.1)]),
        (1, vec!["relay".into(), at(&l01.addrs.1), at(&l12.addrs.1)]),
    ] {
        relays.0.push(
            hosts
                .command(host, &own)
                .args(&args)
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?,
        );
    }
    let mut plain = Vec::new();
    for _ in 0..RUNS {
        let out = hosts
            .command(0, &own)
            .args(["source", &at(&l01.addrs.1), &RELAY_BYTES.to_string()])
            .output()
            .map_err(|e| e.to_string())?;
        let secs: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("relay source: {}", String::from_utf8_lossy(&out.stderr)))?;
        plain.push(RELAY_BYTES as f64 * 8.0 / secs / 1e6);
    }
    drop(relays);
    let plain_mbps = median(plain);
    eprintln!("plain relay median {plain_mbps:.0} Mbit/s");

    // The mesh: one node per host.
    let tmp = std::env::temp_dir().join(format!("bench-mesh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let dirs: Vec<PathBuf> = (0..5).map(|i| tmp.join(format!("h{i}"))).collect();
    let links = [&l01, &l12, &l23, &l14, &l42];
    let mut nodes = Procs(Vec::new());
    let mut addresses = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut args: Vec<String> = vec![
            "node".into(),
            "--dev-key".into(),
            (i + 1).to_string(),
            "--data-dir".into(),
            dir.to_str().ok_or("path")?.into(),
            "--listen".into(),
            format!("/ip4/0.0.0.0/tcp/{P2P_PORT}"),
            "--no-mdns".into(),
            "--api-listen".into(),
            "127.0.0.1:5880".into(),
            "--mesh-price".into(),
            if i == 0 || i == 3 { "0" } else { "1" }.into(),
            "--mesh-settle-threshold".into(),
            u128::MAX.to_string(),
            "--mesh-credit-limit".into(),
            u128::MAX.to_string(),
        ];
        // Each node dials its neighbours with a smaller index.
        for l in links {
            if l.hosts.1 == i {
                args.push("--peer".into());
                args.push(format!("/ip4/{}/tcp/{P2P_PORT}", l.addrs.0));
            }
            if l.hosts.0 == i && l.hosts.1 < i {
                args.push("--peer".into());
                args.push(format!("/ip4/{}/tcp/{P2P_PORT}", l.addrs.1));
            }
        }
        let mut child = hosts
            .command(i, bin.to_str().ok_or("path")?)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        nodes.0.push(child);
        let mut ready = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(rest) = line.strip_prefix("ready address=") {
                ready = rest.split_whitespace().next().map(str::to_lowercase);
                break;
            }
        }
        addresses.push(ready.ok_or(format!("node h{i} did not start"))?);
    }
    let (a1, a3, a4) = (&addresses[1], &addresses[3], &addresses[4]);
    wait_for("a 3-hop route h0 → h3", Duration::from_secs(60), || {
        (next_hop(&hosts, 0, &bin, &dirs[0], a3).as_deref() == Some(a1.as_str())
            && next_hop(&hosts, 1, &bin, &dirs[1], a3).as_deref() == Some(addresses[2].as_str()))
        .then_some(())
    })?;
    let send = |from: usize, to: &str, payload: &[&str]| -> Result<f64, String> {
        let mut args = vec!["send", to];
        args.extend_from_slice(payload);
        args.extend_from_slice(&["--wait", "120"]);
        let v = cli(&hosts, from, &bin, &dirs[from], &args)?;
        v["delivery_us"]
            .as_u64()
            .map(|us| us as f64)
            .ok_or(format!("no delivery time: {v}"))
    };
    // Warm up both sessions.
    send(0, a3, &["warm up"])?;
    send(0, a1, &["warm up"])?;

    let file = tmp.join("payload.bin");
    std::fs::write(&file, vec![0x5au8; FILE_BYTES]).map_err(|e| e.to_string())?;
    let file = file.to_str().ok_or("path")?.to_owned();
    eprintln!(
        "mesh: {} MiB file over 3 hops, {RUNS} runs",
        FILE_BYTES >> 20
    );
    let mut mesh = Vec::new();
    for _ in 0..RUNS {
        let us = send(0, a3, &["--file", &file])?;
        mesh.push(FILE_BYTES as f64 * 8.0 / us);
    }
    let mesh_mbps = median(mesh);
    eprintln!("mesh median {mesh_mbps:.0} Mbit/s");

    eprintln!("latency: {PINGS} small messages over 1 and 3 hops");
    let mut one = Vec::new();
    let mut three = Vec::new();
    for _ in 0..PINGS {
        one.push(send(0, a1, &["ping"])?);
        three.push(send(0, a3, &["ping"])?);
    }
    let (one, three) = (median(one), median(three));
    // A round trip over 3 hops crosses 4 more hops than over 1 (2 each way).
    let per_hop_ms = (three - one) / 4.0 / 1000.0;
    eprintln!(
        "round trip 1 hop {:.2} ms, 3 hops {:.2} ms",
        one / 1000.0,
        three / 1000.0
    );

    eprintln!("convergence: cutting h1–h2");
    hosts.set_link(&l12, false)?;
    let cut = Instant::now();
    wait_for("h1 reroutes through h4", Duration::from_secs(60), || {
        (next_hop(&hosts, 1, &bin, &dirs[1], a3).as_deref() == Some(a4.as_str())).then_some(())
    })?;
    let convergence_ms = cut.elapsed().as_secs_f64() * 1000.0;
    send(0, a3, &["after the cut"])?;
    drop(nodes);
    let _ = std::fs::remove_dir_all(&tmp);

    println!("mesh_mbps={mesh_mbps:.1}");
    println!("plain_relay_mbps={plain_mbps:.1}");
    println!("throughput_ratio={:.3}", mesh_mbps / plain_mbps);
    println!("added_latency_per_hop_ms={per_hop_ms:.3}");
    println!("convergence_ms={convergence_ms:.0}");
    Ok(())
}
