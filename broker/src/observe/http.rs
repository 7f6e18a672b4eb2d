//! The operator's HTTP server (hyper 1, HTTP/1.1, GET only):
//!
//! - `/` the live dashboard (one HTML page with its script and style, built into the binary; it
//!   polls the JSON API below and draws its charts as inline SVG: nothing is fetched elsewhere);
//! - `/metrics` Prometheus text exposition;
//! - `/api/channels` the channel lines, exactly as `supra channels --json` prints them;
//! - `/api/overview` the broker, its sold streams' counters, links and chain health;
//! - `/api/history` samples of messages and wei over time;
//! - `/api/transactions` recent judge transactions.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use super::{ChainHealth, LinkRecord, Sources, View};
use crate::node::now_ms;

const PAGE: &str = include_str!("page.html");

/// `/api/overview` (and `$SYS/supra/broker`).
#[derive(Serialize)]
pub(super) struct Overview {
    pub(super) address: alloy_primitives::Address,
    pub(super) started_ms: u64,
    pub(super) now_ms: u64,
    pub(super) streams: Vec<StreamFigures>,
    pub(super) links: Vec<LinkRecord>,
    pub(super) chain: ChainHealth,
    pub(super) local_publishes: u64,
    pub(super) delivered: u64,
    pub(super) frames_rejected: u64,
}

pub(super) fn overview(sources: &Sources, view: &View) -> Overview {
    let observer = &sources.observer;
    Overview {
        address: observer.address,
        started_ms: observer.started_ms,
        now_ms: now_ms(),
        streams: view
            .snapshot
            .streams
            .iter()
            .map(|s| StreamFigures {
                topic: s.topic.clone(),
                published: s.published,
                signed: s.stats.signed,
                frames_sent: s.stats.frames_sent,
                retransmitted: s.stats.retransmits,
                posts: s.stats.posts,
                acks_received: s.stats.acks_received,
            })
            .collect(),
        links: observer.links(),
        chain: observer.chain(),
        local_publishes: view.snapshot.node.local_publishes,
        delivered: view.snapshot.node.delivered,
        frames_rejected: view.snapshot.node.frames_rejected,
    }
}

#[derive(Serialize)]
pub(super) struct StreamFigures {
    topic: String,
    published: u64,
    signed: u64,
    frames_sent: u64,
    retransmitted: u64,
    posts: u64,
    acks_received: u64,
}

/// Binds the server's address (an error here stops the broker's start: the operator asked for it).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until the broker stops.
pub fn serve(listener: TcpListener, sources: Sources) {
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("http listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let sources = sources.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let sources = sources.clone();
                    async move { Ok::<_, Infallible>(answer(&sources, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!("http: {e}");
                }
            });
        }
    });
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = content_type.parse() {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    response
}

fn json(value: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", e.to_string()),
    }
}

fn unavailable(e: String) -> Response<Full<Bytes>> {
    reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", e)
}

async fn answer(sources: &Sources, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "only GET here\n");
    }
    let observer = &sources.observer;
    match req.uri().path() {
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        "/metrics" => match sources.read().await {
            Ok(_) => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", observer.metrics.encode()),
            Err(e) => unavailable(e),
        },
        "/api/channels" => match sources.read().await {
            Ok(view) => json(&view.lines),
            Err(e) => unavailable(e),
        },
        "/api/overview" => match sources.read().await {
            Ok(view) => json(&overview(sources, &view)),
            Err(e) => unavailable(e),
        },
        "/api/history" => json(&observer.history()),
        "/api/transactions" => json(&observer.transactions()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found: try /, /metrics or /api/channels\n"),
    }
}
