//! Hand-made signed statements (for a seller or buyer that does not follow its engine) and a
//! lossless, instantaneous link between a seller engine and its buyers' engines.

use alloy::primitives::{B256, U256, keccak256};
use supra_channel::buyer::{BuyerAction, BuyerChannel};
use supra_channel::seller::{SellerAction, Stream};
use supra_channel::proof::MessageProof;
use supra_channel::sign::{Keypair, Signature};
use supra_channel::types::{Ack, ChannelId, Domain, Message, Offer, StreamId, UnixMs};
use supra_channel::wire::Frame;

/// A signed stream message with its payload.
#[derive(Clone, Debug)]
pub struct Signed {
    pub message: Message,
    pub proof: MessageProof,
    pub payload: Vec<u8>,
    pub digest: B256,
}

impl Signed {
    /// The `Data` frame carrying it.
    pub fn frame(&self) -> Frame {
        Frame::Data(supra_channel::wire::Data {
            message: self.message.clone(),
            proof: self.proof.clone(),
            payload: self.payload.clone(),
        })
    }
}

/// A seller's hand-made signed chain: it can sign anything (two messages for one seq, timestamps
/// of its choosing).
pub struct ChainBuilder {
    pub domain: Domain,
    pub key: Keypair,
    pub stream: StreamId,
    /// Every message of the main chain, by seq.
    pub chain: Vec<Signed>,
    /// The currency its offers name (`Address::ZERO`: ETH).
    pub token: alloy::primitives::Address,
}

impl ChainBuilder {
    pub fn new(domain: Domain, key: Keypair, number: u128) -> ChainBuilder {
        let stream = StreamId::new(key.address(), number).expect("stream number");
        ChainBuilder {
            domain,
            key,
            stream,
            chain: Vec::new(),
            token: alloy::primitives::Address::ZERO,
        }
    }

    /// Signs a message for `seq` after `prev`, stamped `timestamp`, with a payload tagged `tag`.
    pub fn sign(&self, seq: u64, timestamp: UnixMs, prev: B256, tag: &str) -> Signed {
        let payload = format!("sealed {seq} {tag}").into_bytes();
        let message = Message {
            streamId: self.stream.as_b256(),
            seq,
            timestamp,
            payloadHash: keccak256(&payload),
            prev,
        };
        let digest = self.domain.digest(&message);
        Signed {
            proof: MessageProof::sign_single(&self.domain, &self.key, &message, digest),
            message,
            payload,
            digest,
        }
    }

    /// Appends the next message of the main chain.
    pub fn next(&mut self, timestamp: UnixMs) -> Signed {
        let seq = self.chain.len() as u64;
        let prev = self.chain.last().map_or(B256::ZERO, |m| m.digest);
        let m = self.sign(seq, timestamp, prev, "main");
        self.chain.push(m.clone());
        m
    }

    /// A signed offer of this stream for `buyer`.
    #[allow(clippy::too_many_arguments)]
    pub fn offer(
        &self,
        buyer: alloy::primitives::Address,
        price: U256,
        window: u64,
        start: u64,
        t_ack: u32,
        t_closure: u32,
        valid_until: u64,
        nonce: u64,
    ) -> (Offer, Signature) {
        let offer = Offer {
            streamId: self.stream.as_b256(),
            seller: self.key.address(),
            buyer,
            price,
            token: self.token,
            window,
            startSeq: start,
            tAck: t_ack,
            tClosure: t_closure,
            validUntil: valid_until,
            nonce: U256::from(nonce),
        };
        let sig = self.key.sign(&self.domain.digest(&offer));
        (offer, sig)
    }
}

/// An ack for `seq` with `cost`, signed by `key` (the buyer, or a forger).
pub fn ack(domain: &Domain, key: &Keypair, channel: ChannelId, seq: u64, digest: B256, cost: U256) -> (Ack, Signature) {
    let ack = Ack {
        channelId: channel.as_u256(),
        seq,
        digest,
        cost,
        timestamp: 1,
    };
    let sig = key.sign(&domain.digest(&ack));
    (ack, sig)
}

/// What moved over the lossless link.
#[derive(Default, Debug)]
pub struct Traffic {
    /// Acks the buyers sent (channel, ack, sig), in order.
    pub acks: Vec<(Ack, Signature)>,
    /// Chain actions the seller asked for, in order.
    pub seller_chain: Vec<SellerAction>,
    /// Chain actions the buyers asked for, in order.
    pub buyer_chain: Vec<BuyerAction>,
    /// Informational seller events.
    pub seller_events: Vec<supra_channel::seller::SellerEvent>,
}

/// Moves frames between `stream` and `buyers` at `now` until both sides are quiet. Data frames go
/// to every channel of the buyer (they share one link); `Opened` frames are dropped (the test
/// opens the seller's side itself).
pub fn pump(stream: &mut Stream, buyers: &mut [&mut BuyerChannel], now: UnixMs, traffic: &mut Traffic) {
    loop {
        let mut busy = false;
        let seller_actions: Vec<SellerAction> = stream.drain_actions().collect();
        for action in seller_actions {
            busy = true;
            match action {
                SellerAction::Persist(_) => {}
                SellerAction::Send { peer, frames } => {
                    for frame in frames.iter().cloned() {
                        let frame = Frame::decode(&frame).expect("frame decodes");
                        for b in buyers.iter_mut().filter(|b| b.offer().buyer == peer && !b.is_settled()) {
                            let _ = b.handle_frame(now, frame.clone());
                        }
                    }
                }
                SellerAction::Event(e) => traffic.seller_events.push(e),
                chain => traffic.seller_chain.push(chain),
            }
        }
        for b in buyers.iter_mut() {
            let buyer = b.offer().buyer;
            let actions: Vec<BuyerAction> = b.drain_actions().collect();
            for action in actions {
                busy = true;
                match action {
                    BuyerAction::Persist(_) | BuyerAction::Deliver { .. } | BuyerAction::Event(_) => {}
                    BuyerAction::Send(frame) => {
                        let frame = Frame::decode(&frame).expect("frame decodes");
                        match &frame {
                            Frame::Opened { .. } => continue,
                            Frame::Ack { ack, sig } => traffic.acks.push((ack.clone(), *sig)),
                            _ => {}
                        }
                        let _ = stream.handle_frame(now, buyer, frame);
                    }
                    chain => traffic.buyer_chain.push(chain),
                }
            }
        }
        if !busy {
            return;
        }
    }
}
