//! The commands that talk to a running node over its REST API: `status`, `channel`,
//! `pay`, `payments`, `peers`, `events`, `fee`.

use crate::node::{DEFAULT_API, DEFAULT_DATA_DIR, NodeFile, node_file};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use smartmesh_api::types::{
    Amount, AmountError, ChannelInfo, FeeRequest, OpenChannelRequest, PaymentInfo, PaymentMode,
    PaymentRequest, TotalRequest, codes,
};
use smartmesh_api::{ApiClient, ClientError};
use smartmesh_primitives::Address;
use std::path::PathBuf;

/// How to reach the node (shared by every client command).
#[derive(Debug, Args)]
pub struct ClientOpts {
    /// The node's data directory (for its node.json and api-token).
    #[arg(long, global = true, env = "SMARTMESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// API base URL (default: from <data-dir>/node.json, else http://127.0.0.1:5880).
    #[arg(long, global = true, env = "SMARTMESH_API", value_name = "URL")]
    api: Option<String>,
    /// File holding the API token (default <data-dir>/api-token).
    #[arg(
        long,
        global = true,
        env = "SMARTMESH_API_TOKEN_FILE",
        value_name = "FILE"
    )]
    token_file: Option<PathBuf>,
    /// Print the node's JSON answer instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl ClientOpts {
    pub(crate) fn client(&self) -> Result<ApiClient, String> {
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let url = match &self.api {
            Some(url) => url.clone(),
            None => std::fs::read_to_string(node_file(&dir))
                .ok()
                .and_then(|t| serde_json::from_str::<NodeFile>(&t).ok())
                .map(|f| f.api_url)
                .unwrap_or_else(|| format!("http://{DEFAULT_API}")),
        };
        let token_path = self
            .token_file
            .clone()
            .unwrap_or_else(|| dir.join("api-token"));
        let token = std::fs::read_to_string(&token_path).map_err(|e| {
            format!(
                "cannot read the API token {}: {e} (is `smartmesh node` running with --data-dir {}? or pass --token-file)",
                token_path.display(),
                dir.display()
            )
        })?;
        ApiClient::new(&url, token.trim()).map_err(|e| e.to_string())
    }

    pub(crate) fn show<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> String,
    ) -> Result<(), String> {
        if self.json {
            let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
            println!("{json}");
        } else {
            println!("{}", text(value));
        }
        Ok(())
    }
}

pub(crate) fn api_error(e: ClientError) -> String {
    match e {
        ClientError::Unreachable { url, .. } => {
            format!("cannot reach the node at {url} — is `smartmesh node` running?")
        }
        ClientError::Api { code, message, .. } => format!("{message} ({code})"),
        other => other.to_string(),
    }
}

/// An amount in base units, refused with the code the node would give.
fn amount(text: &str) -> Result<Amount, String> {
    text.parse().map_err(|e: AmountError| {
        let code = match e {
            AmountError::NotDecimal(_) => codes::INVALID_AMOUNT,
            AmountError::Overflow(_) => codes::AMOUNT_OVERFLOW,
        };
        format!("{e} ({code})")
    })
}

/// A channel id: a decimal number (checked here so nothing but digits reaches a URL).
fn channel_id(text: &str) -> Result<&str, String> {
    if text.is_empty() || text.len() > 78 || !text.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = text.chars().take(80).collect();
        return Err(format!(
            "channel id must be a decimal number (see `smartmesh channel list`), got {shown:?} ({})",
            codes::INVALID_PARAMETER
        ));
    }
    Ok(text)
}

/// A payment id: a decimal number below 2^64.
fn payment_id(text: &str) -> Result<&str, String> {
    match text.parse::<u64>() {
        Ok(_) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(text),
        _ => {
            let shown: String = text.chars().take(80).collect();
            Err(format!(
                "payment id must be a decimal number below 2^64 (see `smartmesh payments`), got {shown:?} ({})",
                codes::INVALID_PARAMETER
            ))
        }
    }
}

pub(crate) fn address(text: &str) -> Result<Address, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address (0x followed by 40 hex digits)"))
}

/// `smartmesh status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs `smartmesh status`.
pub async fn status(args: StatusArgs) -> Result<(), String> {
    let api = args.client.client()?;
    let status = api.status().await.map_err(api_error)?;
    args.client.show(&status, |s| {
        let chain = &s.chain;
        let chain_line = match chain.status.as_str() {
            "unreachable" => format!(
                "UNREACHABLE — on-chain actions queued: {}; payments over open channels continue",
                chain.queued_onchain_actions
            ),
            "syncing" => format!(
                "syncing (scanned block {} of {})",
                chain.scanned_block,
                chain.head_block.map_or("?".into(), |h| h.to_string())
            ),
            other => format!("{other} at block {}", chain.scanned_block),
        };
        let mut out = format!(
            "address   {}\npeer id   {}\nchain     {} ({}, chain id {})\npeers     {} connected\nchannels  {} open, {} other\nqueued    {} channel messages, {} on-chain actions",
            s.node.address,
            s.node.peer_id,
            chain_line,
            chain.endpoint,
            chain.chain_id,
            s.connected_peers,
            s.channels_open,
            s.channels_other,
            chain.queued_messages,
            chain.queued_onchain_actions,
        );
        for t in &s.tokens {
            out.push_str(&format!(
                "\n{:<9} on chain {}, off chain capacity {}",
                t.symbol,
                t.onchain_balance.map_or("unknown (chain unreachable)".into(), |b| b.to_string()),
                t.offchain_capacity
            ));
        }
        out
    })
}

/// `smartmesh channel …`.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    #[command(subcommand)]
    command: ChannelCommand,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
enum ChannelCommand {
    /// Our channels.
    List,
    /// One channel.
    Show {
        /// Channel id.
        id: String,
    },
    /// Open a channel with PARTNER depositing DEPOSIT (needs the chain).
    Open {
        /// The partner's address.
        partner: String,
        /// Our deposit, base units.
        #[arg(allow_hyphen_values = true)]
        deposit: String,
        /// Settle timeout, seconds.
        #[arg(long)]
        settle_timeout: Option<u64>,
    },
    /// Raise our total deposit to TOTAL.
    Deposit {
        /// Channel id.
        id: String,
        /// New total deposit, base units.
        #[arg(allow_hyphen_values = true)]
        total: String,
    },
    /// Withdraw up to a new total (co-signed by the partner).
    Withdraw {
        /// Channel id.
        id: String,
        /// New total withdrawn, base units.
        #[arg(allow_hyphen_values = true)]
        total: String,
    },
    /// Close on chain (queued while the chain is unreachable).
    Close {
        /// Channel id.
        id: String,
    },
    /// Settle a closed channel after its timeout.
    Settle {
        /// Channel id.
        id: String,
    },
}

fn channel_line(c: &ChannelInfo) -> String {
    let mut line = format!(
        "{:>4}  {}  {:<8}  ours {} / partner {}  (deposits {} / {})",
        c.channel_id,
        c.partner,
        c.status,
        c.our_capacity,
        c.partner_capacity,
        c.our_deposit,
        c.partner_deposit
    );
    if let Some(outcome) = &c.outcome {
        line.push_str(&format!("  outcome {outcome:?}"));
    }
    line
}

/// A channel command with its input checked (nothing is sent before this succeeds).
enum ChannelCall {
    List,
    Show(String),
    Open(OpenChannelRequest),
    Deposit(String, TotalRequest),
    Withdraw(String, TotalRequest),
    Close(String),
    Settle(String),
}

impl ChannelCommand {
    fn check(self) -> Result<ChannelCall, String> {
        let id = |text: &str| channel_id(text).map(str::to_owned);
        let total = |text: &str| amount(text).map(|total| TotalRequest { total });
        Ok(match self {
            ChannelCommand::List => ChannelCall::List,
            ChannelCommand::Show { id: text } => ChannelCall::Show(id(&text)?),
            ChannelCommand::Open {
                partner,
                deposit,
                settle_timeout,
            } => ChannelCall::Open(OpenChannelRequest {
                partner: address(&partner)?,
                deposit: amount(&deposit)?,
                settle_timeout,
            }),
            ChannelCommand::Deposit { id: text, total: t } => {
                ChannelCall::Deposit(id(&text)?, total(&t)?)
            }
            ChannelCommand::Withdraw { id: text, total: t } => {
                ChannelCall::Withdraw(id(&text)?, total(&t)?)
            }
            ChannelCommand::Close { id: text } => ChannelCall::Close(id(&text)?),
            ChannelCommand::Settle { id: text } => ChannelCall::Settle(id(&text)?),
        })
    }
}

/// Runs `smartmesh channel …`.
pub async fn channel(args: ChannelArgs) -> Result<(), String> {
    let call = args.command.check()?;
    let api = args.client.client()?;
    let one = |c: &ChannelInfo| channel_line(c);
    let c = match call {
        ChannelCall::List => {
            let list = api.channels().await.map_err(api_error)?;
            return args.client.show(&list, |l| {
                if l.is_empty() {
                    "no channels".into()
                } else {
                    l.iter().map(channel_line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        ChannelCall::Show(id) => api.channel(&id).await,
        ChannelCall::Open(request) => api.open_channel(&request).await,
        ChannelCall::Deposit(id, total) => api.deposit(&id, &total).await,
        ChannelCall::Withdraw(id, total) => api.withdraw(&id, &total).await,
        ChannelCall::Close(id) => api.close(&id).await,
        ChannelCall::Settle(id) => api.settle(&id).await,
    }
    .map_err(api_error)?;
    args.client.show(&c, one)
}

/// How a payment travels.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Auto,
    Direct,
    Mediated,
}

/// `smartmesh pay TARGET AMOUNT`.
#[derive(Debug, Args)]
pub struct PayArgs {
    /// The payee's address.
    target: String,
    /// Amount it receives, base units.
    #[arg(allow_hyphen_values = true)]
    amount: String,
    /// Direct, mediated, or auto (direct when we have a channel with the target).
    #[arg(long, value_enum, default_value = "auto")]
    mode: Mode,
    /// Answer as soon as the payment is on its way instead of waiting for its outcome.
    #[arg(long)]
    no_wait: bool,
    #[command(flatten)]
    client: ClientOpts,
}

fn payment_line(p: &PaymentInfo) -> String {
    let mut line = format!("payment {}: {} ({})", p.payment_id, p.status, p.role);
    if let Some(a) = &p.amount {
        line.push_str(&format!(", amount {a}"));
    }
    if let Some(t) = &p.target {
        line.push_str(&format!(", to {t}"));
    }
    if let Some(i) = &p.initiator {
        line.push_str(&format!(", from {i}"));
    }
    if let Some(f) = &p.fee_earned {
        line.push_str(&format!(", fee earned {f}"));
    }
    if let Some(f) = &p.failure {
        line.push_str(&format!(": {f}"));
    }
    line
}

/// Runs `smartmesh pay`.
pub async fn pay(args: PayArgs) -> Result<(), String> {
    let request = PaymentRequest {
        target: address(&args.target)?,
        amount: amount(&args.amount)?,
        mode: match args.mode {
            Mode::Auto => PaymentMode::Auto,
            Mode::Direct => PaymentMode::Direct,
            Mode::Mediated => PaymentMode::Mediated,
        },
        wait: !args.no_wait,
        timeout_ms: None,
    };
    let api = args.client.client()?;
    let payment = api.pay(&request).await.map_err(api_error)?;
    args.client.show(&payment, payment_line)?;
    if payment.status == "failed" {
        return Err("the payment failed".into());
    }
    Ok(())
}

/// `smartmesh payments [ID]`.
#[derive(Debug, Args)]
pub struct PaymentsArgs {
    /// One payment id (all when absent).
    id: Option<String>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs `smartmesh payments`.
pub async fn payments(args: PaymentsArgs) -> Result<(), String> {
    if let Some(id) = &args.id {
        payment_id(id)?;
    }
    let api = args.client.client()?;
    match &args.id {
        Some(id) => {
            let p = api.payment(id).await.map_err(api_error)?;
            args.client.show(&p, payment_line)
        }
        None => {
            let list = api.payments().await.map_err(api_error)?;
            args.client.show(&list, |l| {
                l.iter().map(payment_line).collect::<Vec<_>>().join("\n")
            })
        }
    }
}

/// `smartmesh peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs `smartmesh peers`.
pub async fn peers(args: PeersArgs) -> Result<(), String> {
    let api = args.client.client()?;
    let list = api.peers().await.map_err(api_error)?;
    args.client.show(&list, |l| {
        if l.is_empty() {
            return "no peers".into();
        }
        l.iter()
            .map(|p| {
                format!(
                    "{}  {}  {}  {}",
                    p.address,
                    if p.connected {
                        "connected"
                    } else {
                        "disconnected"
                    },
                    p.source,
                    p.addrs.join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `smartmesh events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events after this sequence number.
    #[arg(long)]
    since: Option<u64>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs `smartmesh events`.
pub async fn events(args: EventsArgs) -> Result<(), String> {
    let api = args.client.client()?;
    let list = api.events(args.since).await.map_err(api_error)?;
    args.client.show(&list, |l| {
        l.iter()
            .map(|e| format!("{:>6}  {:<18} {}", e.seq, e.kind, e.detail))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `smartmesh fee set NODE FLAT PPM`.
#[derive(Debug, Args)]
pub struct FeeArgs {
    #[command(subcommand)]
    command: FeeCommand,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Subcommand)]
enum FeeCommand {
    /// Set a node's mediation fee (ours, or another node's for routing).
    Set {
        /// The node.
        node: String,
        /// Flat part, base units.
        #[arg(allow_hyphen_values = true)]
        flat: String,
        /// Proportional part, millionths.
        ppm: u64,
    },
}

/// Runs `smartmesh fee`.
pub async fn fee(args: FeeArgs) -> Result<(), String> {
    let FeeCommand::Set { node, flat, ppm } = &args.command;
    let request = FeeRequest {
        node: address(node)?,
        flat: amount(flat)?,
        proportional_ppm: *ppm,
    };
    let api = args.client.client()?;
    let set = api.set_fee(&request).await.map_err(api_error)?;
    args.client.show(&set, |_| {
        format!(
            "fee of {} set: {} + {} ppm",
            request.node, request.flat, request.proportional_ppm
        )
    })
}
