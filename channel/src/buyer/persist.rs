//! Durable records: snapshot for compaction, restore after a restart.

use crate::records::BuyerRecord;
use crate::seal::EpochKey;
use crate::sign::Keypair;
use crate::types::{Domain, Stop, UnixMs};
use crate::wire::Frame;

use super::*;

impl BuyerChannel {
    // ----- persistence -----------------------------------------------------------------------

    /// A minimal record list equivalent to everything persisted so far.
    pub fn snapshot(&self) -> Vec<BuyerRecord> {
        let mut out = vec![BuyerRecord::Channel {
            offer: self.offer.clone(),
            sig: self.offer_sig,
        }];
        for (e, k) in self.opener.keys() {
            out.push(BuyerRecord::EpochKey {
                epoch: *e,
                key: k.0,
            });
        }
        out.push(BuyerRecord::Position {
            next_seq: self.next,
            last_digest: self.last_digest,
        });
        if let Some(end) = self.stop_end {
            out.push(BuyerRecord::Stopped {
                seq: end.saturating_sub(1),
                by_buyer: !self.seller_stopped,
            });
        }
        if let Some((stop, sig)) = &self.seller_stop {
            out.push(BuyerRecord::SellerStop {
                stop: stop.clone(),
                sig: *sig,
            });
        }
        if let Some(missing) = self.refused {
            out.push(BuyerRecord::AccusationRefused { missing });
        }
        if let Some(m) = self.accused {
            out.push(BuyerRecord::Accused { missing: m });
        }
        match self.phase {
            Phase::Closing => {
                if let Some(at_secs) = self.close_at_secs {
                    out.push(BuyerRecord::CloseRequested { at_secs });
                }
            }
            Phase::Settled => out.push(BuyerRecord::Settled),
            _ => {}
        }
        out
    }

    /// Rebuilds a channel from its records (first must be `Channel`). Deliveries resume right
    /// after the last persisted `Position`; the next ack is sent on `link_up`.
    pub fn restore(
        domain: Domain,
        key: Keypair,
        cfg: BuyerConfig,
        records: impl IntoIterator<Item = BuyerRecord>,
        now: UnixMs,
    ) -> Result<Self, BuyerError> {
        let mut it = records.into_iter();
        let Some(BuyerRecord::Channel { offer, sig }) = it.next() else {
            return Err(BuyerError::Restore("first record must be Channel".into()));
        };
        let mut b = Self::build(domain, key, offer, sig, None, cfg, now)?;
        for r in it {
            match r {
                BuyerRecord::Channel { .. } => {
                    return Err(BuyerError::Restore("duplicate Channel record".into()));
                }
                BuyerRecord::Position {
                    next_seq,
                    last_digest,
                } => {
                    if next_seq >= b.next {
                        b.next = next_seq;
                        b.last_digest = last_digest;
                    }
                }
                BuyerRecord::EpochKey { epoch, key } => b.opener.insert_key(epoch, EpochKey(key)),
                BuyerRecord::Stopped { seq, by_buyer } => {
                    let end = seq.saturating_add(1).max(b.start);
                    let mut end = if by_buyer { b.in_flight_end(end) } else { end };
                    if let Some((s, _)) = &b.seller_stop {
                        end = end.min(s.seq.saturating_add(1).max(b.start));
                    }
                    b.stop_end = Some(end);
                    b.seller_stopped = !by_buyer;
                    if by_buyer {
                        b.phase = Phase::Stopping;
                        // Signed again (a Stop is never used on-chain): re-sent on link_up and
                        // when the seller keeps sending past it.
                        let stop = Stop {
                            channelId: b.id.0,
                            seq,
                            timestamp: now,
                        };
                        let sig = b.key.sign(&b.domain.digest(&stop));
                        b.stop_frame = Some(Frame::Stop { stop, sig }.encode_shared()?);
                    }
                }
                BuyerRecord::SellerStop { stop, sig } => {
                    // Nothing past it is owed, whatever our own Stop left open.
                    let end = stop.seq.saturating_add(1).max(b.start);
                    b.stop_end = Some(b.stop_end.map_or(end, |e| e.min(end)));
                    if b.seller_stop.as_ref().is_none_or(|(s, _)| stop.seq < s.seq) {
                        b.seller_stop = Some((stop, sig));
                    }
                }
                BuyerRecord::Accused { missing } => b.accused = Some(missing),
                BuyerRecord::AccusationCleared => b.accused = None,
                BuyerRecord::AccusationRefused { missing } => {
                    b.accused = None;
                    b.refused = Some(missing);
                }
                BuyerRecord::CloseRequested { at_secs } => {
                    b.phase = Phase::Closing;
                    b.close_at_secs = Some(at_secs);
                    b.settle_due = true;
                    // Postings seen before the restart are not recorded: assume there were some
                    // (the buyer then only settles if the seller did not).
                    b.saw_posting = true;
                }
                BuyerRecord::Settled => {
                    b.phase = Phase::Settled;
                    b.settle_due = false;
                }
            }
        }
        // A stop completed but the channel is neither closing nor settled: close again (a
        // restart within the cooperative close's grace period starts it afresh, so the buyer
        // still closes, cooperatively or not).
        let done = b.phase == Phase::Stopping
            || (b.seller_stopped && b.stop_end.is_some_and(|e| b.next >= e));
        if b.cfg.cooperative_close && done && !matches!(b.phase, Phase::Closing | Phase::Settled) {
            b.close();
        }
        // Unknown whether the last ack went out: ack again on link_up.
        b.acked_next = b.start;
        if let (Some(d), Some(last)) = (b.last_digest, b.next.checked_sub(1)) {
            b.recent.push_back((last, d, None));
        }
        Ok(b)
    }
}
