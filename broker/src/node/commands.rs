//! Operator commands: status, close, and the runtime market (`supra sell`, `buy`, `stop-*`).

use super::*;

impl Node {
    pub(super) fn on_command(&mut self, cmd: Command) {
        let now = now_ms();
        match cmd {
            Command::Channels(reply) => {
                let mut lines = Vec::new();
                for s in &self.streams {
                    for c in s.engine.channel_summaries() {
                        lines.push(ChannelStatusLine {
                            role: ChannelRole::Seller,
                            channel: c.channel,
                            peer: c.buyer,
                            topic: s.cfg.topic.clone(),
                            start_seq: c.start_seq,
                            messages: c.sent,
                            acked: c.acked,
                            cost: c.acked_cost,
                            claimed: c.claimed,
                            deposit: c.deposit,
                            price: s.cfg.price_wei,
                            phase: c.phase.to_owned(),
                            link_up: c.link_up,
                            outbox: 0,
                        });
                    }
                }
                for (id, b) in &self.bought {
                    let offer = b.engine.offer();
                    let acked = b.engine.last_ack().map_or(0, |(a, _)| a.seq + 1 - offer.startSeq);
                    let cost = b.engine.last_ack().map_or(U256::ZERO, |(a, _)| a.cost);
                    let topic = b.buy.map(|i| self.buys[i].cfg.topic.clone()).unwrap_or_default();
                    lines.push(ChannelStatusLine {
                        role: ChannelRole::Buyer,
                        channel: *id,
                        peer: offer.seller,
                        topic,
                        start_seq: offer.startSeq,
                        messages: b.engine.next_seq() - offer.startSeq,
                        acked,
                        cost,
                        claimed: U256::ZERO,
                        deposit: U256::ZERO,
                        price: offer.price,
                        phase: b.engine.phase_name().to_owned(),
                        link_up: self.link_for(offer.seller, Role::Buyer).is_some(),
                        outbox: self.outbox_held.get(&b.index).copied().unwrap_or(0),
                    });
                }
                let _ = reply.send(lines);
            }
            Command::Close(channel, reply) => {
                let result = if let Some(s) = self.streams.iter_mut().find(|s| s.engine.knows_channel(&channel)) {
                    s.engine.stop_channel(now, channel).map_err(|e| e.to_string())
                } else if let Some(b) = self.bought.get_mut(&channel) {
                    if let Some(i) = b.buy {
                        self.buys[i].state = BuyState::Done;
                    }
                    b.engine.stop(now).map_err(|e| e.to_string())
                } else {
                    Err(format!("no channel {channel} here"))
                };
                let _ = reply.send(result);
            }
            Command::ReplayOutbox => {
                if let Err(e) = self.replay_outbox() {
                    tracing::error!("{e}");
                }
            }
            Command::Observe(reply) => {
                let streams = self.streams.iter().map(|s| StreamSnapshot { topic: s.cfg.topic.clone(), published: s.published, stats: s.engine.stats() });
                let bought = self.bought.iter().map(|(id, b)| BoughtSnapshot { channel: *id, stats: b.engine.stats() });
                let _ = reply.send(Snapshot { streams: streams.collect(), bought: bought.collect(), node: self.stats });
            }
            Command::Sell(order, reply) => {
                let _ = reply.send(self.sell(order, now));
            }
            Command::Buy(order, reply) => {
                let _ = reply.send(self.buy(order));
            }
            Command::StopSelling(topic, reply) => {
                let _ = reply.send(self.stop_selling(&topic, now));
            }
            Command::StopBuying { topic, seller, reply } => {
                let _ = reply.send(self.stop_buying(&topic, seller, now));
            }
            // Handled by `run`, which owns the inputs to drain.
            Command::Shutdown => {}
        }
    }

    // ----- the runtime market (`supra sell`, `buy`, `stop-selling`, `stop-buying`) ------------

    /// Lists stream `i` in the catalogue if it is sold, or withdraws its ad if it is stopped (a
    /// job: the chain worker sends one transaction at a time from this broker's account).
    pub(super) fn advertise(&self, i: usize) {
        let (Some((catalogue, endpoint)), Some(s)) = (&self.catalogue, self.streams.get(i)) else { return };
        let ad = supra_judge::market::Ad {
            stream: s.engine.id(),
            topic_filter: s.cfg.topic.clone(),
            price: s.cfg.price_wei,
            token: s.cfg.token,
            window: s.cfg.window,
            t_ack_secs: s.cfg.t_ack_secs,
            t_closure_secs: s.cfg.t_closure_secs,
            endpoint: endpoint.clone(),
            description: s.cfg.description.clone(),
        };
        self.job(Origin::Stream(i), Call::Advertise { catalogue: *catalogue, ad: Box::new(ad), selling: s.cfg.selling });
    }

    /// Sells `order.topic` from now on: checked as a `[[sell]]` of the file would be, recorded
    /// durably, then offered to buyers. A stopped stream is sold again (its terms stay).
    pub(super) fn sell(&mut self, order: SellOrder, now: UnixMs) -> Result<String, String> {
        if let Some(i) = self.streams.iter().position(|s| s.cfg.topic == order.topic) {
            let id = self.streams[i].engine.id().0;
            if self.streams[i].cfg.selling {
                return Err(format!("`{}` is sold already (stream {id})", order.topic));
            }
            self.set_selling(i, true)?;
            return Ok(format!("selling `{}` again (stream {id}, its terms unchanged)", order.topic));
        }
        let cfg = order.config(true);
        let config = self.config.with_sell(cfg.clone()).map_err(|e| e.to_string())?;
        crate::check_judge_limits(&crate::judge_limits_built_for(), std::slice::from_ref(&cfg))?;
        // Tapped first (harmless until the stream exists), so that a broker that cannot tap at
        // runtime refuses before anything is written.
        self.mqtt.sell(&cfg.topic)?;
        Entry::Sell { order, selling: true }.save(&mut self.store).map_err(|e| e.to_string())?;
        let sold = Sold::open(&mut self.store, &self.me, self.domain, &cfg, &self.seller_cfg, now)?;
        let id = sold.engine.id().0;
        tracing::info!("selling `{}` at {} wei a message (stream {id}), by `supra sell`", cfg.topic, cfg.price_wei);
        self.streams.push(sold);
        self.config = config;
        self.advertise(self.streams.len() - 1);
        Ok(format!("selling `{}` at {} wei a message (stream {id})", cfg.topic, cfg.price_wei))
    }

    /// Buys `order.topic` from `order.seller` from now on: checked as a `[[buy]]` of the file would
    /// be, recorded durably, then requested as soon as the link to the seller is up.
    pub(super) fn buy(&mut self, order: BuyOrder) -> Result<String, String> {
        let cfg = order.config()?;
        if self.buys.iter().any(|b| b.cfg.seller == cfg.seller && b.cfg.topic == cfg.topic && b.state != BuyState::Done) {
            return Err(format!("`{}` is bought from {} already", cfg.topic, cfg.seller));
        }
        let config = self.config.with_buy(cfg.clone()).map_err(|e| e.to_string())?;
        Entry::Buy(order).save(&mut self.store).map_err(|e| e.to_string())?;
        let _ = self.dial.send((cfg.endpoint.clone(), cfg.seller));
        let unit = if cfg.token == Address::ZERO { "wei".to_owned() } else { format!("units of token {}", cfg.token) };
        let said = format!("buying `{}` from {} at {}, up to {} {unit} a message, deposit {} {unit}", cfg.topic, cfg.seller, cfg.endpoint, cfg.max_price_wei, cfg.deposit_wei);
        tracing::info!("{said}, by `supra buy`");
        self.buys.push(Buy { cfg, state: BuyState::Idle { retry_at: 0 } });
        self.config = config;
        // Asked at once if the link is up, else when it comes up.
        self.request(self.buys.len() - 1);
        Ok(said)
    }

    /// Takes no new buyers for `topic` and closes its open channels: each is stopped off-chain,
    /// its last ack claimed, and settled (cooperatively when the buyer agrees).
    pub(super) fn stop_selling(&mut self, topic: &str, now: UnixMs) -> Result<String, String> {
        let i = self.streams.iter().position(|s| s.cfg.topic == topic).ok_or_else(|| format!("`{topic}` is not sold here"))?;
        if !self.streams[i].cfg.selling {
            return Err(format!("`{topic}` is stopped already"));
        }
        self.set_selling(i, false)?;
        let s = &mut self.streams[i];
        let mut closing = 0;
        for c in s.engine.channel_summaries().into_iter().filter(|c| c.phase == "open") {
            match s.engine.stop_channel(now, c.channel) {
                Ok(()) => closing += 1,
                Err(e) => tracing::warn!("channel {}: {e}", c.channel),
            }
        }
        tracing::info!("`{topic}`: stopped selling by `supra stop-selling`, {closing} channel(s) closing");
        Ok(format!("stopped selling `{topic}`: no new buyers, {closing} channel(s) closing"))
    }

    /// Records durably whether stream `i` takes new buyers, then says so in the catalogue.
    pub(super) fn set_selling(&mut self, i: usize, selling: bool) -> Result<(), String> {
        let s = &mut self.streams[i];
        Entry::Sell { order: SellOrder::of(&s.cfg), selling }.save(&mut self.store).map_err(|e| e.to_string())?;
        s.cfg.selling = selling;
        self.advertise(i);
        Ok(())
    }

    /// Stops buying `topic` (from `seller`, needed if several sellers sell it here): its channel
    /// is stopped off-chain and closed, and it is bought no more, after restarts too.
    pub(super) fn stop_buying(&mut self, topic: &str, seller: Option<Address>, now: UnixMs) -> Result<String, String> {
        let matching: Vec<usize> = (0..self.buys.len())
            .filter(|&i| self.buys[i].cfg.topic == topic && seller.is_none_or(|s| s == self.buys[i].cfg.seller) && self.buys[i].state != BuyState::Done)
            .collect();
        let i = match matching[..] {
            [] => return Err(format!("`{topic}` is not bought here")),
            [i] => i,
            _ => return Err(format!("`{topic}` is bought from several sellers: name one with --seller")),
        };
        let (seller, state) = (self.buys[i].cfg.seller, self.buys[i].state);
        if let BuyState::Opening(id) = state {
            // Its deposit is on its way into the judge: the channel is closed once it is open.
            return Err(format!("channel {id} for `{topic}` is being opened; try again in a few seconds"));
        }
        self.store.set_market(&market::buy_key(seller, topic), None).map_err(|e| e.to_string())?;
        self.buys[i].state = BuyState::Done;
        self.config.buy.retain(|b| !(b.seller == seller && b.topic == topic));
        let said = match state {
            BuyState::Open(id) => {
                if let Some(b) = self.bought.get_mut(&id) {
                    b.engine.stop(now).map_err(|e| e.to_string())?;
                }
                format!("stopped buying `{topic}` from {seller}: channel {id} closing")
            }
            _ => format!("stopped buying `{topic}` from {seller} (no channel was open)"),
        };
        tracing::info!("{said}, by `supra stop-buying`");
        Ok(said)
    }
}
