//! Durable records: snapshot for compaction, restore after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::Address;

use crate::records::SellerRecord;
use crate::seal::{Sealer, envelope_info};
use crate::sign::{Keypair, PublicKey};
use crate::types::{ChannelId, Domain, Stop, StreamId, UnixMs};

use super::*;

impl Stream {
    // ----- persistence -----------------------------------------------------------------------

    /// A minimal record list equivalent to everything persisted so far (for compaction):
    /// replaying it with [`restore`](Self::restore) gives the same state.
    pub fn snapshot(&self) -> Vec<SellerRecord> {
        let mut out = Vec::new();
        out.push(SellerRecord::OfferNonce {
            next: self.offer_nonce,
        });
        // The sealer's epoch: before the messages if its grants went out (a message of the
        // epoch follows), after them if they are still due.
        let epoch = SellerRecord::Epoch {
            epoch: self.sealer.epoch(),
            members: self.member_records(),
        };
        let due = self.sealer.grants_due();
        if !due {
            out.push(epoch.clone());
        }
        for m in &self.log {
            out.push(SellerRecord::Message {
                message: m.message.clone(),
                proof: m.proof.clone(),
                payload: m.payload.clone(),
            });
        }
        if due {
            out.push(epoch);
        }
        for (seq, p) in &self.posts {
            if p.confirmed {
                out.push(match p.mined_by {
                    Some(mined_at_secs) => SellerRecord::PostedAt {
                        seq: *seq,
                        timestamp: p.timestamp,
                        mined_at_secs,
                    },
                    None => SellerRecord::Posted {
                        seq: *seq,
                        timestamp: p.timestamp,
                    },
                });
            }
        }
        for o in self.offers.values() {
            out.push(SellerRecord::Offer {
                offer: o.offer.clone(),
                sig: o.sig,
                buyer_key: o.buyer_key.to_sec1_compressed().to_vec(),
            });
        }
        for c in self.channels.values() {
            out.push(SellerRecord::Offer {
                offer: c.offer.clone(),
                sig: c.offer_sig,
                buyer_key: c.buyer_key.to_sec1_compressed().to_vec(),
            });
            out.push(SellerRecord::Opened {
                channel_id: c.id,
                deposit: c.deposit,
            });
            if let Some(v) = &c.verified {
                out.push(SellerRecord::Ack {
                    ack: v.ack.clone(),
                    sig: v.sig,
                });
            }
            if let Some((p, _)) = &c.pending {
                out.push(SellerRecord::Ack {
                    ack: p.ack.clone(),
                    sig: p.sig,
                });
            }
            if !c.claimed.is_zero() {
                out.push(SellerRecord::Claimed {
                    channel_id: c.id,
                    total: c.claimed,
                });
            }
            if let Some(r) = &c.stop_rec {
                out.push(SellerRecord::Stop {
                    stop: r.stop.clone(),
                    sig: r.sig,
                    by_seller: r.by_seller,
                    owed_end: r.owed_end,
                });
            }
            if let Phase::Closing { at_secs } = c.phase {
                out.push(SellerRecord::CloseRequested {
                    channel_id: c.id,
                    at_secs,
                });
            }
            if let Some(upto) = c.posted_claim {
                out.push(SellerRecord::PostedClaim {
                    channel_id: c.id,
                    upto,
                });
            }
        }
        out
    }

    /// Rebuilds a stream from its records (in the order they were persisted, or a
    /// [`snapshot`](Self::snapshot)). The restored stream resumes from the last persisted
    /// message (it never re-signs a seq), keeps every persisted ack (re-verified now), treats
    /// every unacked message as sent at its timestamp, and waits for `link_up` / `Resume` to
    /// retransmit.
    pub fn restore(
        domain: Domain,
        key: Keypair,
        id: StreamId,
        terms: Terms,
        cfg: SellerConfig,
        records: impl IntoIterator<Item = SellerRecord>,
        now: UnixMs,
    ) -> Result<Self, SellerError> {
        let mut s = Self::new(domain, key, id, terms, cfg)?;
        s.now = now;
        let mut epoch: Option<(u64, BTreeMap<Address, PublicKey>, bool)> = None;
        let mut closing = Vec::new();
        for r in records {
            match r {
                SellerRecord::Epoch { epoch: e, members } => {
                    let mut m = BTreeMap::new();
                    for mr in members {
                        let k = PublicKey::from_sec1(&mr.key)
                            .map_err(|e| SellerError::Restore(e.to_string()))?;
                        m.insert(mr.address, k);
                    }
                    epoch = Some((e, m, true));
                }
                SellerRecord::Message {
                    message,
                    proof,
                    payload,
                } => {
                    if message.streamId != id.0 {
                        return Err(SellerError::Restore("message of another stream".into()));
                    }
                    if let (Ok(info), Some((e, _, due))) = (envelope_info(&payload), epoch.as_mut())
                        && info.epoch == *e
                    {
                        *due = false;
                    }
                    if message.seq < s.next_seq && !s.log.is_empty() {
                        continue;
                    }
                    if message.seq != s.next_seq || s.log.is_empty() {
                        s.log.clear();
                        s.log_base = message.seq;
                    }
                    let digest = s.domain.digest(&message);
                    s.next_seq = message.seq.saturating_add(1);
                    s.last_digest = digest;
                    s.last_ts = message.timestamp;
                    s.log
                        .push_back(Arc::new(SignedMessage::new(message, digest, proof, payload)?));
                }
                SellerRecord::Offer {
                    offer,
                    sig,
                    buyer_key,
                } => {
                    let buyer_key = PublicKey::from_sec1(&buyer_key)
                        .map_err(|e| SellerError::Restore(e.to_string()))?;
                    let nonce = u64::try_from(offer.nonce).unwrap_or(u64::MAX);
                    s.offer_nonce = s.offer_nonce.max(nonce.saturating_add(1));
                    let cid = ChannelId::from_offer_digest(s.domain.digest(&offer));
                    if !s.channels.contains_key(&cid) {
                        s.offers.insert(
                            cid,
                            PendingOffer {
                                offer,
                                sig,
                                buyer_key,
                            },
                        );
                    }
                }
                SellerRecord::OfferNonce { next } => s.offer_nonce = s.offer_nonce.max(next),
                SellerRecord::Opened {
                    channel_id,
                    deposit,
                } => {
                    if let Some(po) = s.offers.remove(&channel_id) {
                        s.channels
                            .insert(channel_id, Self::new_channel(channel_id, po, deposit));
                    }
                }
                SellerRecord::Ack { ack, sig } => {
                    let cid = ChannelId(ack.channelId);
                    let digest = s.domain.digest(&ack);
                    if let Some(c) = s.channels.get_mut(&cid)
                        && c.buyer_key.verify(&digest, &sig).is_ok()
                        && c.verified.as_ref().is_none_or(|v| v.ack.seq < ack.seq)
                    {
                        c.verified = Some(SignedAck { ack, sig });
                    }
                }
                SellerRecord::Stop {
                    stop,
                    sig,
                    by_seller,
                    owed_end,
                } => {
                    if let Some(c) = s.channels.get_mut(&ChannelId(stop.channelId))
                        && c.stop_rec.is_none()
                        && matches!(c.phase, Phase::Open | Phase::Closing { .. })
                    {
                        let end = owed_end.max(stop.seq.saturating_add(1)).max(c.start);
                        if c.phase == Phase::Open {
                            c.phase = Phase::Stopping { by_seller };
                        }
                        c.stop_rec = Some(StopRec {
                            stop,
                            sig,
                            by_seller,
                            owed_end: end,
                        });
                        c.owed_end = Some(c.owed_end.map_or(end, |e| e.min(end)));
                        c.stop_end = Some(c.stop_end.map_or(end, |e| e.min(end)));
                    }
                }
                SellerRecord::Posted { seq, timestamp } => {
                    s.posts.insert(
                        seq,
                        Posting {
                            confirmed: true,
                            timestamp,
                            mined_by: None,
                        },
                    );
                }
                SellerRecord::PostedAt {
                    seq,
                    timestamp,
                    mined_at_secs,
                } => {
                    s.posts.insert(
                        seq,
                        Posting {
                            confirmed: true,
                            timestamp,
                            mined_by: Some(mined_at_secs),
                        },
                    );
                }
                SellerRecord::ToppedUp {
                    channel_id,
                    deposit,
                } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.deposit = c.deposit.max(deposit);
                    }
                }
                SellerRecord::Claimed { channel_id, total } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.claimed = c.claimed.max(total);
                        c.claim_submitted = c.claimed;
                    }
                }
                SellerRecord::PostedClaim { channel_id, upto } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.posted_claim = Some(upto);
                    }
                }
                SellerRecord::CloseRequested {
                    channel_id,
                    at_secs,
                } => {
                    if let Some(c) = s.channels.get_mut(&channel_id) {
                        c.phase = Phase::Closing { at_secs };
                        closing.push((channel_id, at_secs));
                        if c.posted_claim.is_some() {
                            c.settle_at = Some(
                                at_secs
                                    .saturating_mul(1000)
                                    .saturating_add(c.t_closure_ms)
                                    .saturating_add(s.cfg.chain_grace_ms),
                            );
                        }
                    }
                }
                SellerRecord::Settled { channel_id } => {
                    s.channels.remove(&channel_id);
                }
            }
        }
        if let Some((e, m, due)) = epoch {
            s.sealer = Sealer::restore(&s.key, id, e, m, due);
        }
        for (cid, at_secs) in closing {
            s.apply_close_end(cid, at_secs);
        }
        // The seller's own Stop (its stop, or its answer to the buyer's, sent right after the
        // record): a Stop at the same seq again, for accusations past it and the cooperative close.
        for c in s.channels.values_mut() {
            if let Some(r) = &c.stop_rec {
                c.own_stop = Some(if r.by_seller {
                    (r.stop.clone(), r.sig)
                } else {
                    let seq = c.answer_stop_seq(r);
                    let stop = Stop {
                        channelId: c.id.0,
                        seq,
                        timestamp: now,
                    };
                    let sig = s.key.sign(&s.domain.digest(&stop));
                    (stop, sig)
                });
            }
        }
        // A channel or offer starting at the next message needs grants in it.
        if s.offers.values().any(|o| o.offer.startSeq >= s.next_seq)
            || s.channels.values().any(|c| c.start >= s.next_seq)
        {
            s.sealer.request_grants();
        }
        // Sent state is unknown after a crash: consider everything in the window sent at its
        // timestamp (conservative for posting deadlines), resend on the next link_up/Resume.
        let head = s.next_seq;
        let ids: Vec<ChannelId> = s.channels.keys().copied().collect();
        for cid in ids {
            let Some(c) = s.channels.get(&cid) else {
                continue;
            };
            let base = c.base_v();
            let limit = c
                .stop_end
                .map_or(head, |e| e.min(head))
                .min(c.owed_end.unwrap_or(head))
                .min(base.saturating_add(c.window));
            let times: SendTimes = (base..limit)
                .map(|q| s.message(q).map_or(now, |m| m.message.timestamp))
                .collect();
            if let Some(c) = s.channels.get_mut(&cid) {
                c.sent_base = base;
                c.sent_at = times;
                c.next_send = base;
                c.link_up = false;
            }
        }
        s.update_members();
        Ok(s)
    }
}
