//! The node's side of the chain: results of its jobs and the judge's events.

use super::*;

impl Node {
    pub(super) fn on_result(&mut self, result: JobResult) {
        let now = now_ms();
        match (result.origin, result.call, result.outcome) {
            (Origin::Buy(i), _, outcome) => {
                let BuyState::Opening(id) = self.buys[i].state else { return };
                let opened = match outcome {
                    Ok(Outcome::Opened(got)) => got == id,
                    // Recovery of an open in flight at the last stop: did it go through?
                    Ok(Outcome::Channel(info)) => info.status != ChannelStatus::None && info.buyer == self.me.address(),
                    Ok(Outcome::Mined(_) | Outcome::Posted(..) | Outcome::Advertised(_)) => false,
                    Err(e) => {
                        tracing::warn!("opening a channel for `{}` failed: {e}", self.buys[i].cfg.topic);
                        false
                    }
                };
                match (opened, self.recovering.remove(&id)) {
                    (true, Some((offer, sig, _))) => self.start_bought(i, id, offer, sig, now),
                    _ => {
                        if let Err(e) = self.store.opened(id) {
                            tracing::error!("{e}");
                        }
                        self.buys[i].state = BuyState::Idle { retry_at: now + RETRY_MS };
                    }
                }
            }
            (Origin::OpenedClaim(i, link), Call::ReadChannel { channel }, outcome) => {
                let Some(s) = self.streams.get_mut(i) else { return };
                let buyer = self.links.get(&link).map(|l| l.peer.address);
                match outcome {
                    Ok(Outcome::Channel(info))
                        if info.status == ChannelStatus::Open && info.stream == s.engine.id() && Some(info.buyer) == buyer =>
                    {
                        match s.engine.open_channel(now, channel, info.deposit) {
                            Ok(()) => tracing::info!("sold `{}` to {} on channel {channel}", s.cfg.topic, info.buyer),
                            Err(e) => tracing::warn!("channel {channel}: {e}"),
                        }
                    }
                    other => {
                        tracing::warn!("buyer says it opened {channel}, but the judge says {other:?}");
                        if let (Some(l), Ok(frame)) = (self.links.get(&link), (Frame::Error { code: 409, reason: format!("channel {channel} is not open for this stream") }).encode_shared()) {
                            l.tx.send(frame);
                        }
                    }
                }
            }
            (Origin::Stream(i), call, outcome) => self.on_seller_result(i, call, outcome, now),
            (Origin::Bought(id), call, outcome) => self.on_buyer_result(id, call, outcome, now),
            (origin, call, outcome) => tracing::debug!("unrouted chain result {origin:?} {call:?}: {outcome:?}"),
        }
    }

    pub(super) fn start_bought(&mut self, i: usize, id: ChannelId, offer: Offer, sig: Signature, now: UnixMs) {
        let topic = self.buys[i].cfg.topic.clone();
        let index = match self.store.add_buyer_channel(id, &topic) {
            Ok(index) => index,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let cfg = BuyerConfig { top_up: self.buys[i].cfg.top_up.clone(), token: self.buys[i].cfg.token, ..self.buyer_cfg.clone() };
        let deposit = self.buys[i].cfg.deposit_wei;
        match BuyerChannel::new(self.domain, (*self.me).clone(), offer, sig, cfg, now) {
            Ok(mut engine) => {
                // What it locked at `open`; `ToppedUp` events raise it.
                engine.on_deposit(now, deposit);
                tracing::info!("bought `{topic}` from {} on channel {id}", self.buys[i].cfg.seller);
                self.bought.insert(id, Bought { index, buy: Some(i), engine, inbox: Vec::new() });
                self.buys[i].state = BuyState::Open(id);
                self.openings_done.push(id);
            }
            Err(e) => tracing::error!("channel {id}: {e}"),
        }
    }

    pub(super) fn on_seller_result(&mut self, i: usize, call: Call, outcome: Result<Outcome, supra_judge::JudgeError>, now: UnixMs) {
        let Some(s) = self.streams.get_mut(i) else { return };
        match (call, outcome) {
            (Call::Advertise { catalogue, .. }, Ok(Outcome::Advertised(said))) => tracing::info!("`{}` in the catalogue at {catalogue}: {said}", s.cfg.topic),
            (Call::Advertise { catalogue, .. }, Err(e)) => tracing::warn!("`{}`: the catalogue at {catalogue} refused: {e}", s.cfg.topic),
            (Call::Post(m), Ok(Outcome::Posted(_, at))) => s.engine.on_posted_at(now, m.message.seq, at),
            (Call::Post(m), Ok(_)) => s.engine.on_posted(now, m.message.seq),
            (Call::CloseCooperatively { ack, .. }, Err(e)) => {
                tracing::info!("channel {}: closeCooperatively failed ({e}); the normal close goes on", ChannelId(ack.channelId));
                s.engine.on_close_cooperatively_failed(now, ChannelId(ack.channelId));
            }
            (Call::Post(m), Err(_)) => s.engine.on_post_failed(now, m.message.seq),
            (Call::Claim { ack, .. }, Err(_)) => s.engine.on_claim_failed(now, ChannelId(ack.channelId)),
            (Call::ReadChannel { channel }, Ok(Outcome::Channel(info))) => {
                // Resynchronise after a restart.
                match info.status {
                    ChannelStatus::Settled => s.engine.on_settled(now, channel),
                    ChannelStatus::Closing => s.engine.on_close_requested(now, channel, info.close_requested_at),
                    _ => {}
                }
                if let Some((missing, _)) = info.dispute {
                    s.engine.on_accused(now, channel, missing);
                }
                if info.claimed > U256::ZERO {
                    s.engine.on_claimed(now, channel, info.claimed);
                }
                s.engine.on_topped_up(now, channel, info.deposit);
            }
            _ => {}
        }
    }

    pub(super) fn on_buyer_result(&mut self, id: ChannelId, call: Call, outcome: Result<Outcome, supra_judge::JudgeError>, now: UnixMs) {
        let Some(b) = self.bought.get_mut(&id) else { return };
        match (call, outcome) {
            // A revert is the judge's final word (`NotOwed`, `ClosureElapsed`, ...): never
            // retried; a transport failure is.
            (Call::Accuse { .. }, Err(supra_judge::JudgeError::Refused(why))) => {
                tracing::info!("channel {id}: the judge refused our accusation: {why}");
                b.engine.on_accusation_refused(now);
            }
            (Call::Accuse { .. }, Err(_)) => b.engine.on_accusation_closed(now),
            (Call::TopUp { .. }, Err(e)) => {
                tracing::warn!("channel {id}: top-up failed: {e}");
                b.engine.on_top_up_failed(now);
            }
            (Call::CloseCooperatively { .. }, Err(e)) => {
                tracing::info!("channel {id}: closeCooperatively failed ({e}); the normal close goes on");
                b.engine.on_close_cooperatively_failed(now);
            }
            (Call::SubmitStop { .. }, Err(e)) => {
                tracing::warn!("channel {id}: submitStop failed: {e}");
                b.engine.on_submit_stop_failed(now);
            }
            (Call::ReadChannel { .. }, Ok(Outcome::Channel(info))) => {
                match info.status {
                    ChannelStatus::Settled => b.engine.on_settled(now),
                    ChannelStatus::Closing => b.engine.on_close_requested(now, info.close_requested_at),
                    _ => {}
                }
                if let Some((_, deadline)) = info.dispute {
                    b.engine.on_accusation_opened(now, deadline);
                }
                if let Some(covered) = info.acked.checked_sub(1) {
                    b.engine.on_claimed(now, info.start_seq.saturating_add(covered));
                }
                // A posted claim recorded while we were down may be past the seller's Stop.
                if let Some(upto) = info.posted_claim.checked_sub(1) {
                    b.engine.on_posted_claim(now, info.start_seq.saturating_add(upto));
                }
                b.engine.on_deposit(now, info.deposit);
            }
            _ => {}
        }
    }

    pub(super) fn on_events(&mut self, batch: EventBatch) {
        let now = now_ms();
        let me = self.me.address();
        for logged in batch.events {
            match logged.event {
                JudgeEvent::Posted { message, payload, proof, .. } => {
                    if message.stream().seller() == me
                        && let Some(s) = self.streams.iter_mut().find(|s| s.engine.id() == message.stream())
                    {
                        s.engine.on_posted(now, message.seq);
                    }
                    for b in self.bought.values_mut().filter(|b| b.engine.stream() == message.stream()) {
                        if let Err(e) = b.engine.on_posted(now, message.clone(), proof.clone(), payload.to_vec()) {
                            tracing::warn!("posted message {} rejected: {e}", message.seq);
                        }
                    }
                }
                JudgeEvent::ToppedUp { channel, deposit, .. } => {
                    // The seller resumes up to what the new deposit pays for.
                    if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                        s.engine.on_topped_up(now, channel, deposit);
                    }
                    if let Some(b) = self.bought.get_mut(&channel) {
                        b.engine.on_deposit(now, deposit);
                    }
                }
                JudgeEvent::Claimed { channel, seq, claimed, .. } => {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                        s.engine.on_claimed(now, channel, claimed);
                    }
                    if let Some(b) = self.bought.get_mut(&channel) {
                        b.engine.on_claimed(now, seq);
                    }
                }
                JudgeEvent::CloseRequested { channel, settle_after, .. } => {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                        let at = settle_after.saturating_sub(u64::from(s.engine.terms().t_closure_secs));
                        s.engine.on_close_requested(now, channel, at);
                    }
                    if let Some(b) = self.bought.get_mut(&channel) {
                        let at = settle_after.saturating_sub(u64::from(b.engine.offer().tClosure));
                        b.engine.on_close_requested(now, at);
                    }
                }
                JudgeEvent::Accused { channel, missing_seq, deadline, .. } => {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                        s.engine.on_accused(now, channel, missing_seq);
                    }
                    if let Some(b) = self.bought.get_mut(&channel) {
                        b.engine.on_accusation_opened(now, deadline);
                    }
                }
                JudgeEvent::Defended { channel, .. } | JudgeEvent::AccusationUpheld { channel, .. } => {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                        s.engine.on_accusation_closed(now, channel);
                    }
                    if let Some(b) = self.bought.get_mut(&channel) {
                        b.engine.on_accusation_closed(now);
                    }
                }
                JudgeEvent::PostedClaimRecorded { channel, upto_seq } => {
                    // Past the seller's own Stop, the buyer's engine submits that Stop (penalty).
                    if let Some(b) = self.bought.get_mut(&channel) {
                        b.engine.on_posted_claim(now, upto_seq);
                    }
                }
                JudgeEvent::StopRecorded { channel, seq, stop_count } => {
                    tracing::info!("channel {channel}: the seller's Stop at {seq} is recorded ({stop_count} messages owed at most)");
                }
                JudgeEvent::StopViolationProven { channel, seq, posted_claim, .. } => {
                    tracing::warn!("channel {channel}: the seller claimed {posted_claim} posted messages past its Stop at {seq}: proven, the buyer takes the rest");
                }
                JudgeEvent::ClosedCooperatively { channel, seq } => {
                    tracing::info!("channel {channel} closed cooperatively at {seq}");
                }
                JudgeEvent::Settled { channel, to_seller, to_buyer } => {
                    if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                        tracing::info!("channel {channel} settled: {to_seller} wei to us (seller), {to_buyer} wei to the buyer");
                        s.engine.on_settled(now, channel);
                    }
                    if let Some(b) = self.bought.get_mut(&channel) {
                        tracing::info!("channel {channel} settled: {to_buyer} wei back to us (buyer)");
                        b.engine.on_settled(now);
                        if let Some(i) = b.buy {
                            self.buys[i].state = BuyState::Done;
                        }
                    }
                }
                _ => {}
            }
        }
        self.store_cursor = Some(batch.to);
    }
}
