//! Peer links between brokers: TCP, the mutual-authentication handshake, and frame I/O.
//!
//! A seller accepts buyers on its peer listener; a buyer dials each seller it buys from and
//! redials with backoff when the link drops. Once both sides are authenticated, the link is handed
//! to the broker's node as a [`LinkUp`] event and carries frames both ways until either side
//! closes it. Anything that is not a well-formed frame closes the link; nothing a peer sends can
//! panic the broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256};
use supra_channel::handshake::{Initiator, PeerInfo, Responder};
use supra_channel::sign::Keypair;
use supra_channel::types::Domain;
use supra_channel::wire::{Frame, FrameBytes, FrameDecoder, FrameRun};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a peer may take to complete the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A link sends a keepalive this often...
const PING_EVERY: Duration = Duration::from_secs(5);
/// ...and is dropped when nothing arrived for this long (a peer that died without closing its
/// socket, or a network that silently lost the connection).
const SILENCE_LIMIT: Duration = Duration::from_secs(15);
/// Runs of frames queued for one link before the node's sends to it are dropped (the engines
/// retransmit). A run is one frame, or one batch of a stream (at most `max_batch` frames); the
/// window W bounds what a channel has unacknowledged anyway.
const LINK_QUEUE: usize = 1024;

/// A link's identity within this broker process.
pub type LinkId = u64;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// Which side of the link this broker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the link: the peer is a buyer.
    Seller,
    /// We dialled: the peer is a seller.
    Buyer,
}

/// An authenticated link, handed to the node.
#[derive(Debug)]
pub struct LinkUp {
    pub id: LinkId,
    pub role: Role,
    pub peer: PeerInfo,
    pub tx: LinkSender,
}

/// Sends frames on a link; never blocks the node (a full queue drops the frame).
#[derive(Debug, Clone)]
pub struct LinkSender {
    tx: mpsc::Sender<FrameRun>,
}

impl LinkSender {
    /// Queues an encoded frame; false if the link is gone or its queue is full.
    pub fn send(&self, frame: FrameBytes) -> bool {
        self.send_run(Arc::new([frame]))
    }

    /// Queues encoded frames, written in order (a batch shared with other links); false if the
    /// link is gone or its queue is full.
    pub fn send_run(&self, frames: FrameRun) -> bool {
        self.tx.try_send(frames).is_ok()
    }
}

/// What links tell the node.
#[derive(Debug)]
pub enum LinkEvent {
    Up(LinkUp),
    Frame { id: LinkId, peer: Address, frame: Frame },
    Down { id: LinkId, peer: Address, reason: String },
}

/// Why a link attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("peer sent a malformed frame: {0}")]
    Wire(#[from] supra_channel::wire::WireError),
    #[error("handshake: {0}")]
    Handshake(#[from] supra_channel::handshake::HandshakeError),
    #[error("handshake timed out")]
    Timeout,
    #[error("peer closed the connection")]
    Closed,
    #[error("peer {0} is not allowed")]
    NotAllowed(Address),
    #[error("peer refused: {0}")]
    Refused(String),
    #[error("peer silent for {0:?}")]
    Silent(Duration),
}

/// Identity and policy shared by every link of this broker.
#[derive(Clone)]
pub struct LinkContext {
    pub domain: Domain,
    pub key: Arc<Keypair>,
    /// Buyers allowed to connect (empty: anyone).
    pub allow: Arc<Vec<Address>>,
    pub events: mpsc::UnboundedSender<LinkEvent>,
    /// Cancelled when the broker stops: links write what the node queued, then close.
    pub closing: CancellationToken,
    /// The listener, dialers and links, so that a graceful stop can wait for them.
    pub tasks: TaskTracker,
    /// Counts links up and down (metrics, dashboard).
    pub observer: Arc<crate::observe::Observer>,
}

fn fresh_nonce() -> B256 {
    B256::from(rand::random::<[u8; 32]>())
}

/// Reads frames from a TCP stream through the strict decoder.
struct FrameReader {
    stream: tokio::net::tcp::OwnedReadHalf,
    decoder: FrameDecoder,
    buf: Vec<u8>,
}

impl FrameReader {
    async fn next(&mut self) -> Result<Frame, LinkError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(frame);
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.decoder.feed(&self.buf[..n])?;
        }
    }
}

async fn write_frame(writer: &mut tokio::net::tcp::OwnedWriteHalf, frame: &Frame) -> Result<(), LinkError> {
    writer.write_all(&frame.encode()?).await?;
    Ok(())
}

fn split(stream: TcpStream) -> (FrameReader, tokio::net::tcp::OwnedWriteHalf) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    (FrameReader { stream: read, decoder: FrameDecoder::new(), buf: vec![0; 64 * 1024] }, write)
}

/// Accepts buyer brokers on `listener` for as long as the broker runs.
pub async fn serve(listener: TcpListener, ctx: LinkContext) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = ctx.closing.cancelled() => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("peer listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        ctx.tasks.clone().spawn(async move {
            if let Err(e) = accept(stream, ctx).await {
                tracing::info!("peer {addr} refused: {e}");
            }
        });
    }
}

async fn accept(stream: TcpStream, ctx: LinkContext) -> Result<(), LinkError> {
    let (mut reader, mut writer) = split(stream);
    let handshake = async {
        let mut responder = Responder::new(ctx.domain, &ctx.key, fresh_nonce());
        let hello = reader.next().await?;
        let reply = responder.on_hello(&ctx.key, hello)?;
        write_frame(&mut writer, &reply).await?;
        let auth = reader.next().await?;
        Ok::<_, LinkError>(responder.on_auth(auth)?)
    };
    let peer = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(result) => result?,
        Err(_) => return Err(LinkError::Timeout),
    };
    if !ctx.allow.is_empty() && !ctx.allow.contains(&peer.address) {
        let refusal = Frame::Error { code: 403, reason: format!("{} is not allowed to buy here", peer.address) };
        let _ = write_frame(&mut writer, &refusal).await;
        return Err(LinkError::NotAllowed(peer.address));
    }
    run_link(Role::Seller, peer, reader, writer, &ctx).await;
    Ok(())
}

/// Dials `endpoint` and authenticates `expected` there.
async fn dial(endpoint: &str, expected: Address, ctx: &LinkContext) -> Result<(PeerInfo, FrameReader, tokio::net::tcp::OwnedWriteHalf), LinkError> {
    let attempt = async {
        let stream = TcpStream::connect(endpoint).await?;
        let (mut reader, mut writer) = split(stream);
        let (initiator, hello) = Initiator::new(ctx.domain, &ctx.key, fresh_nonce(), Some(expected));
        write_frame(&mut writer, &hello).await?;
        let reply = reader.next().await?;
        if let Frame::Error { reason, .. } = reply {
            return Err(LinkError::Refused(reason));
        }
        let (auth, peer) = initiator.on_hello(&ctx.key, reply)?;
        write_frame(&mut writer, &auth).await?;
        Ok((peer, reader, writer))
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(LinkError::Timeout),
    }
}

/// Keeps a link to the seller at `endpoint` up: dials, authenticates, runs the link, and redials
/// with exponential backoff (0.2 s to 10 s) whenever it drops.
pub async fn keep_dialing(endpoint: String, seller: Address, ctx: LinkContext) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let dialled = tokio::select! {
            dialled = dial(&endpoint, seller, &ctx) => dialled,
            _ = ctx.closing.cancelled() => return,
        };
        match dialled {
            Ok((peer, reader, writer)) => {
                backoff = Duration::from_millis(200);
                run_link(Role::Buyer, peer, reader, writer, &ctx).await;
            }
            Err(e) => tracing::info!("seller {seller} at {endpoint}: {e}; retrying in {backoff:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctx.closing.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Runs an authenticated link until it closes: frames in go to the node, frames from the node go
/// out (written in batches: one flush per burst).
async fn write_run<W: tokio::io::AsyncWrite + Unpin>(writer: &mut W, run: &FrameRun) -> std::io::Result<()> {
    for frame in run.iter() {
        writer.write_all(frame).await?;
    }
    Ok(())
}

async fn run_link(role: Role, peer: PeerInfo, mut reader: FrameReader, writer: tokio::net::tcp::OwnedWriteHalf, ctx: &LinkContext) {
    let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<FrameRun>(LINK_QUEUE);
    let pinger = LinkSender { tx: tx.clone() };
    if ctx.events.send(LinkEvent::Up(LinkUp { id, role, peer, tx: LinkSender { tx } })).is_err() {
        return;
    }
    let closing = ctx.closing.clone();
    ctx.observer.link(role, peer.address, true);
    let writing = async move {
        let mut writer = BufWriter::with_capacity(256 * 1024, writer);
        loop {
            let frame = tokio::select! {
                biased;
                frame = rx.recv() => frame,
                _ = closing.cancelled() => {
                    // The broker is stopping and its node has sent its last frames: write them,
                    // then close our side (FIN), so that the peer sees a clean end, not silence.
                    while let Ok(run) = rx.try_recv() {
                        write_run(&mut writer, &run).await?;
                    }
                    writer.flush().await?;
                    writer.shutdown().await?;
                    return Ok::<_, std::io::Error>("this broker is stopping");
                }
            };
            let Some(run) = frame else { return Ok("closed by this broker") };
            write_run(&mut writer, &run).await?;
            while let Ok(run) = rx.try_recv() {
                write_run(&mut writer, &run).await?;
            }
            writer.flush().await?;
        }
    };
    let events = ctx.events.clone();
    let reading = async move {
        loop {
            let frame = match tokio::time::timeout(SILENCE_LIMIT, reader.next()).await {
                Ok(frame) => frame?,
                Err(_) => return Err::<(), _>(LinkError::Silent(SILENCE_LIMIT)),
            };
            if events.send(LinkEvent::Frame { id, peer: peer.address, frame }).is_err() {
                // The node has stopped: the broker is stopping, and the writer closes the link
                // once it has written the node's last frames.
                std::future::pending::<()>().await;
            }
        }
    };
    let pinging = async move {
        let mut nonce = 0u64;
        loop {
            tokio::time::sleep(PING_EVERY).await;
            nonce += 1;
            // A full queue just skips this ping: the link is busy, so it is not silent.
            if let Ok(frame) = (Frame::Ping { nonce }).encode_shared() {
                pinger.send(frame);
            }
        }
    };
    let reason = tokio::select! {
        r = writing => match r { Ok(why) => why.to_owned(), Err(e) => e.to_string() },
        r = reading => match r { Ok(()) => String::new(), Err(e) => e.to_string() },
        _ = pinging => "closed by this broker".to_owned(),
    };
    ctx.observer.link(role, peer.address, false);
    let _ = ctx.events.send(LinkEvent::Down { id, peer: peer.address, reason });
}

/// The address a peer listener actually bound (for port 0 in tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
