//! Streams for applications: [`MeshStream`] (one TCP-like byte stream through a
//! gateway), [`pipe`] (a TCP socket joined to a stream, both ways) and a SOCKS5 server
//! whose CONNECTs travel through the mesh to the best gateway.

use crate::service::StreamKey;
use crate::{MeshHandle, MeshServiceError};
use smartmesh_primitives::Address;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How long a SOCKS client waits for the gateway to connect.
const OPEN_WAIT: Duration = Duration::from_secs(30);
/// SOCKS connections served at once.
const MAX_CLIENTS: usize = 256;

/// One byte stream through the mesh.
#[derive(Debug)]
pub struct MeshStream {
    pub(crate) key: StreamKey,
    pub(crate) gateway: Address,
    pub(crate) handle: MeshHandle,
    pub(crate) incoming: mpsc::Receiver<Vec<u8>>,
    pub(crate) opened: Option<oneshot::Receiver<Result<(), String>>>,
}

impl MeshStream {
    /// The gateway at the other end.
    pub fn gateway(&self) -> Address {
        self.gateway
    }

    /// Waits until the gateway connected (or refused).
    pub async fn opened(&mut self) -> Result<(), MeshServiceError> {
        match self.opened.take() {
            None => Ok(()),
            Some(rx) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(MeshServiceError::StreamRefused(reason)),
                Err(_) => Err(MeshServiceError::StreamClosed),
            },
        }
    }

    /// Sends bytes (waits while the stream's buffer is full).
    pub async fn write(&self, bytes: Vec<u8>) -> Result<(), MeshServiceError> {
        self.handle.stream_write(self.key, bytes, false).await
    }

    /// Ends our side (the peer reads to the end).
    pub async fn finish(&self) -> Result<(), MeshServiceError> {
        self.handle.stream_write(self.key, Vec::new(), true).await
    }

    /// The next bytes from the peer; None at its end.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        self.incoming.recv().await
    }

    /// Aborts the stream.
    pub fn reset(&self) {
        self.handle.stream_reset(self.key);
    }
}

/// Joins a TCP socket and a stream both ways until both ends are finished.
pub async fn pipe(tcp: TcpStream, mut stream: MeshStream) {
    let _ = tcp.set_nodelay(true);
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let writer = stream.handle.clone();
    let key = stream.key;
    let upstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tcp_read.read(&mut buf).await {
                Ok(0) => {
                    let _ = writer.stream_write(key, Vec::new(), true).await;
                    return true;
                }
                Ok(n) => {
                    if writer
                        .stream_write(key, buf[..n].to_vec(), false)
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    };
    let downstream = async {
        while let Some(bytes) = stream.incoming.recv().await {
            if tcp_write.write_all(&bytes).await.is_err() {
                return false;
            }
        }
        let _ = tcp_write.shutdown().await;
        true
    };
    let (up, down) = tokio::join!(upstream, downstream);
    if !(up && down) {
        stream.reset();
    }
}

/// Serves SOCKS5 (no authentication, CONNECT) on `listener`: each connection goes
/// through the mesh to the best gateway.
pub async fn serve_socks(listener: TcpListener, mesh: MeshHandle) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(client);
            continue;
        };
        let mesh = mesh.clone();
        tokio::spawn(async move {
            if let Err(e) = socks_client(client, mesh).await {
                tracing::debug!(error = %e, "SOCKS client");
            }
            drop(permit);
        });
    }
}

/// SOCKS5 reply codes.
const REPLY_OK: u8 = 0;
const REPLY_FAILURE: u8 = 1;
const REPLY_NETWORK_UNREACHABLE: u8 = 3;
const REPLY_REFUSED: u8 = 5;
const REPLY_COMMAND: u8 = 7;
const REPLY_ADDRESS: u8 = 8;

async fn reply(client: &mut TcpStream, code: u8) -> std::io::Result<()> {
    client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

async fn socks_client(mut client: TcpStream, mesh: MeshHandle) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await.map_err(io)?;
    if head[0] != 5 {
        return Err("not SOCKS5".into());
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await.map_err(io)?;
    if !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await.map_err(io)?;
        return Err("the client offers no method without authentication".into());
    }
    client.write_all(&[5, 0]).await.map_err(io)?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await.map_err(io)?;
    if request[0] != 5 {
        return Err("bad request version".into());
    }
    let host = match request[3] {
        1 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a).await.map_err(io)?;
            Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut n = [0u8; 1];
            client.read_exact(&mut n).await.map_err(io)?;
            let mut name = vec![0u8; usize::from(n[0])];
            client.read_exact(&mut name).await.map_err(io)?;
            String::from_utf8(name).map_err(|_| "host name is not UTF-8".to_owned())?
        }
        4 => {
            let mut a = [0u8; 16];
            client.read_exact(&mut a).await.map_err(io)?;
            Ipv6Addr::from(a).to_string()
        }
        _ => {
            reply(&mut client, REPLY_ADDRESS).await.map_err(io)?;
            return Err("unknown address type".into());
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await.map_err(io)?;
    let port = u16::from_be_bytes(port);
    if request[1] != 1 {
        reply(&mut client, REPLY_COMMAND).await.map_err(io)?;
        return Err("only CONNECT is supported".into());
    }
    let mut stream = match mesh.open_stream(None, host.clone(), port).await {
        Ok(s) => s,
        Err(e) => {
            let code = match e {
                MeshServiceError::NoGateway => REPLY_NETWORK_UNREACHABLE,
                _ => REPLY_FAILURE,
            };
            reply(&mut client, code).await.map_err(io)?;
            return Err(e.to_string());
        }
    };
    match tokio::time::timeout(OPEN_WAIT, stream.opened()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            reply(&mut client, REPLY_REFUSED).await.map_err(io)?;
            return Err(e.to_string());
        }
        Err(_) => {
            stream.reset();
            reply(&mut client, REPLY_FAILURE).await.map_err(io)?;
            return Err(format!("{host}:{port}: the gateway did not answer"));
        }
    }
    reply(&mut client, REPLY_OK).await.map_err(io)?;
    pipe(client, stream).await;
    Ok(())
}
