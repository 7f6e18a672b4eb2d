//! The operator socket: `<data_dir>/supra.sock`, one JSON request and one JSON answer per line.
//! `supra channels`, `supra close`, `supra sell`, `supra buy`, `supra stop-selling` and
//! `supra stop-buying` talk to a running broker through it (the state store is locked by the
//! running broker, so they cannot read it themselves). The socket is the operator's: it is created
//! in the data directory, which only the broker's user should be able to enter.

use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};
use supra_channel::types::ChannelId;
use supra_judge::{ChannelStatus, Judge};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::market::{BuyOrder, SellOrder};
use crate::node::Command;
use crate::status::ChannelStatusLine;

/// A request on the operator socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Channels,
    Close { channel: ChannelId },
    Sell(SellOrder),
    Buy(BuyOrder),
    StopSelling { topic: String },
    StopBuying { topic: String, seller: Option<Address> },
}

/// An answer on the operator socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Channels(Vec<ChannelStatusLine>),
    Closing,
    /// What a market request did, in a sentence.
    Done(String),
    Error(String),
}

/// The socket path of a broker whose data directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("supra.sock")
}

/// Answers `Channels` from the node, completed with the judge's figures (deposit, R, status).
pub async fn channels(commands: &mpsc::Sender<Command>, judge: &Judge) -> Result<Vec<ChannelStatusLine>, String> {
    let (tx, rx) = oneshot::channel();
    commands.send(Command::Channels(tx)).await.map_err(|_| "broker is stopping".to_owned())?;
    let mut lines = rx.await.map_err(|_| "broker is stopping".to_owned())?;
    for line in &mut lines {
        if let Ok(info) = judge.channel(line.channel).await {
            line.deposit = info.deposit;
            line.claimed = info.claimed;
            if info.status == ChannelStatus::Settled {
                line.phase = "settled".into();
            }
        }
    }
    Ok(lines)
}

/// Asks the node to close a channel.
pub async fn close(commands: &mpsc::Sender<Command>, channel: ChannelId) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    commands.send(Command::Close(channel, tx)).await.map_err(|_| "broker is stopping".to_owned())?;
    rx.await.map_err(|_| "broker is stopping".to_owned())?
}

/// Asks the node for a market change and returns what it did.
async fn market(commands: &mpsc::Sender<Command>, command: impl FnOnce(oneshot::Sender<Result<String, String>>) -> Command) -> Answer {
    let (tx, rx) = oneshot::channel();
    if commands.send(command(tx)).await.is_err() {
        return Answer::Error("broker is stopping".into());
    }
    match rx.await {
        Ok(Ok(said)) => Answer::Done(said),
        Ok(Err(e)) => Answer::Error(e),
        Err(_) => Answer::Error("broker is stopping".into()),
    }
}

/// Serves the operator socket until the broker stops.
pub async fn serve(path: PathBuf, commands: mpsc::Sender<Command>, judge: Judge) -> std::io::Result<()> {
    // A socket file left by a broker that was killed is stale: the store's lock guarantees that
    // no other broker runs on this data directory.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (commands, judge) = (commands.clone(), judge.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(stream, &commands, &judge).await {
                    tracing::debug!("operator socket: {e}");
                }
            });
        }
    });
    Ok(())
}

async fn answer(stream: UnixStream, commands: &mpsc::Sender<Command>, judge: &Judge) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Channels) => channels(commands, judge).await.map_or_else(Answer::Error, Answer::Channels),
            Ok(Request::Close { channel }) => close(commands, channel).await.map_or_else(Answer::Error, |()| Answer::Closing),
            Ok(Request::Sell(order)) => market(commands, |tx| Command::Sell(order, tx)).await,
            Ok(Request::Buy(order)) => market(commands, |tx| Command::Buy(order, tx)).await,
            Ok(Request::StopSelling { topic }) => market(commands, |tx| Command::StopSelling(topic, tx)).await,
            Ok(Request::StopBuying { topic, seller }) => market(commands, |reply| Command::StopBuying { topic, seller, reply }).await,
            Err(e) => Answer::Error(format!("bad request: {e}")),
        };
        let mut text = serde_json::to_string(&answer).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
    Ok(())
}

/// Sends one request to a running broker and returns its answer.
pub async fn ask(data_dir: &Path, request: &Request) -> Result<Answer, String> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|e| format!("no broker answers at {} ({e}); is `supra run` running with this config?", path.display()))?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(request).map_err(|e| e.to_string())?;
    text.push('\n');
    write.write_all(text.as_bytes()).await.map_err(|e| e.to_string())?;
    let line = BufReader::new(read).lines().next_line().await.map_err(|e| e.to_string())?.ok_or("broker closed the socket")?;
    serde_json::from_str(&line).map_err(|e| format!("unreadable answer: {e}"))
}
