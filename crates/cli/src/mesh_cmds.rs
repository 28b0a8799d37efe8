//! The mesh commands over a running node's REST API: `send`, `inbox`, `routes`.

use crate::client_cmds::{ClientOpts, address, api_error};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `smartmesh send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The destination node's address.
    to: String,
    /// The text to send (or --file).
    text: Option<String>,
    /// Send this file instead of a text (at most 16 MiB).
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    file: Option<PathBuf>,
    /// Wait until the destination acknowledged every part (at most this many seconds).
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs `smartmesh send`.
pub async fn send(args: SendArgs) -> Result<(), String> {
    let to = address(&args.to)?;
    let (name, body) = match (&args.text, &args.file) {
        (Some(text), None) => (String::new(), text.clone().into_bytes()),
        (None, Some(path)) => {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{} has no usable file name", path.display()))?
                .to_owned();
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if meta.len() > smartmesh_mesh::payload::MAX_MESSAGE as u64 {
                return Err(format!(
                    "{} is {} bytes; the mesh carries files of at most {} bytes",
                    path.display(),
                    meta.len(),
                    smartmesh_mesh::payload::MAX_MESSAGE
                ));
            }
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            (name, bytes)
        }
        _ => return Err("give a TEXT or --file FILE".into()),
    };
    let api = args.client.client()?;
    let to_text = to.to_string();
    let queued = if name.is_empty() {
        let text = String::from_utf8(body).map_err(|_| "the text is not UTF-8".to_owned())?;
        api.send_message(&to_text, &text).await
    } else {
        api.send_file(&to_text, &name, body).await
    }
    .map_err(api_error)?;
    if let Some(secs) = args.wait {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let outbox = api.outbox().await.map_err(api_error)?;
            let entry = outbox.into_iter().find(|m| m.id == queued.id);
            match &entry {
                Some(m) if m.status == "delivered" => {
                    return args.client.show(m, |m| {
                        let took = m.delivery_us.map_or(String::new(), |us| {
                            format!(" in {:.1} ms", us as f64 / 1000.0)
                        });
                        format!("delivered {} ({} bytes) to {to}{took}", m.id, m.bytes)
                    });
                }
                Some(m) if m.status == "expired" => {
                    return Err(format!("message {} expired", m.id));
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let acked = entry.as_ref().map_or(0, |m| m.acked);
                let parts = entry.as_ref().map_or(0, |m| m.parts);
                return Err(format!(
                    "message {} not delivered within {secs} s ({acked} of {parts} parts acknowledged); it stays queued",
                    queued.id
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    args.client.show(&queued, |q| {
        format!("queued {} ({} bytes) for {to}", q.id, q.bytes)
    })
}

/// `smartmesh inbox`.
#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Save every received file (and text) into this directory.
    #[arg(long, value_name = "DIR")]
    save: Option<PathBuf>,
    #[command(flatten)]
    client: ClientOpts,
}

fn safe_name(name: &str, id: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        format!("{id}.txt")
    } else {
        format!("{}-{clean}", &id[..8.min(id.len())])
    }
}

async fn save_all(
    api: &smartmesh_api::ApiClient,
    list: &[smartmesh_api::types::InboxEntry],
    dir: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for m in list {
        let bytes = api.inbox_message(&m.id).await.map_err(api_error)?;
        let path = dir.join(safe_name(&m.name, &m.id));
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("saved {}", path.display());
    }
    Ok(())
}

/// Runs `smartmesh inbox`.
pub async fn inbox(args: InboxArgs) -> Result<(), String> {
    let api = args.client.client()?;
    let list = api.inbox().await.map_err(api_error)?;
    if let Some(dir) = &args.save {
        save_all(&api, &list, dir).await?;
    }
    args.client.show(&list, |l| {
        if l.is_empty() {
            return "no messages".into();
        }
        l.iter()
            .map(|m| match &m.text {
                Some(text) => format!("{}  from {}  {}", m.id, m.from, text),
                None => format!(
                    "{}  from {}  file {:?} ({} bytes)",
                    m.id, m.from, m.name, m.bytes
                ),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `smartmesh routes`.
#[derive(Debug, Args)]
pub struct RoutesArgs {
    #[command(flatten)]
    client: ClientOpts,
}

/// What `smartmesh routes` shows.
#[derive(serde::Serialize)]
struct RoutesOut {
    #[serde(flatten)]
    routes: smartmesh_api::types::MeshRoutes,
    gateways: Vec<smartmesh_api::types::MeshGateway>,
}

/// Runs `smartmesh routes`.
pub async fn routes(args: RoutesArgs) -> Result<(), String> {
    let api = args.client.client()?;
    let out = RoutesOut {
        routes: api.mesh_routes().await.map_err(api_error)?,
        gateways: api.mesh_gateways().await.map_err(api_error)?,
    };
    args.client.show(&out, |o| {
        let r = &o.routes;
        let mut lines = vec![format!("{} neighbour links:", r.neighbours.len())];
        for n in &r.neighbours {
            let rtt = n.rtt_us.map_or("rtt ?".to_owned(), |us| {
                format!("rtt {:.2} ms", us as f64 / 1000.0)
            });
            lines.push(format!("  {}  cost {}  {rtt}", n.address, n.cost));
        }
        lines.push(format!("{} routes:", r.routes.len()));
        for route in &r.routes {
            lines.push(format!(
                "  {} via {}  metric {}  price {}/KiB",
                route.destination, route.next_hop, route.metric, route.price_per_kib
            ));
        }
        lines.push(format!("{} gateways (best first):", o.gateways.len()));
        for g in &o.gateways {
            lines.push(format!(
                "  {}  uplink {}/KiB  carriers {}/KiB  metric {}",
                g.gateway, g.price_per_kib, g.route_price_per_kib, g.metric
            ));
        }
        lines.join("\n")
    })
}

/// `smartmesh earnings`.
#[derive(Debug, Args)]
pub struct EarningsArgs {
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs `smartmesh earnings`: pay-for-forward accounts per neighbour.
pub async fn earnings(args: EarningsArgs) -> Result<(), String> {
    let api = args.client.client()?;
    let accounts = api.mesh_accounts().await.map_err(api_error)?;
    args.client.show(&accounts, |list| {
        if list.is_empty() {
            return "no mesh accounts yet".into();
        }
        let mut total = smartmesh_primitives::U256::ZERO;
        let mut lines = Vec::new();
        for a in list {
            total = total.saturating_add(a.earned.0);
            lines.push(format!(
                "{}  {}\n  carried for it {} bytes, earned {}; it owes {} (paid {})\n  it carried {} bytes for us; we owe {} (paid {})",
                a.neighbour,
                a.standing,
                a.bytes_carried_for_them,
                a.earned,
                a.owed_to_us,
                a.credited_from_them,
                a.bytes_carried_by_them,
                a.owed_by_us,
                a.paid_to_them,
            ));
        }
        lines.push(format!("earned in all: {total} base units"));
        lines.join("\n")
    })
}
