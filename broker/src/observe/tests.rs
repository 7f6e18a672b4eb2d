use super::*;

fn line(role: ChannelRole, messages: u64, cost: u64, claimed: u64, deposit: u64) -> ChannelStatusLine {
    ChannelStatusLine {
        role,
        channel: ChannelId(U256::from(0xabc)),
        peer: Address::ZERO,
        topic: "sensors/#".into(),
        start_seq: 0,
        messages,
        acked: messages,
        cost: U256::from(cost),
        claimed: U256::from(claimed),
        deposit: U256::from(deposit),
        price: U256::from(1),
        phase: "open".into(),
        link_up: true,
        outbox: 0,
    }
}

fn stream(published: u64, signed: u64) -> Snapshot {
    let stats = SellerStats { signed, ..SellerStats::default() };
    Snapshot { streams: vec![StreamSnapshot { topic: "sensors/#".into(), published, stats }], ..Snapshot::default() }
}

#[test]
fn owed_and_deposit_left_never_go_below_zero() {
    let m = Money::of(&line(ChannelRole::Seller, 10, 10, 7, 100));
    assert_eq!((m.owed, m.deposit_left), (U256::from(3), U256::from(90)));
    // The judge's claim can be ahead of the buyer's own latest ack.
    let m = Money::of(&line(ChannelRole::Buyer, 10, 10, 12, 5));
    assert_eq!((m.owed, m.deposit_left), (U256::ZERO, U256::ZERO));
}

#[test]
fn a_sample_sums_each_role_apart() {
    let s = Sample::of(7, &[line(ChannelRole::Seller, 10, 10, 8, 100), line(ChannelRole::Buyer, 4, 4, 4, 50), line(ChannelRole::Seller, 1, 1, 0, 9)]);
    assert_eq!((s.t_ms, s.sold_messages, s.bought_messages), (7, 11, 4));
    assert_eq!((s.earned_wei, s.paid_wei, s.acked_wei), (U256::from(8), U256::from(4), U256::from(15)));
}

#[test]
fn metrics_follow_the_channel_lines_and_counters_never_go_down() {
    let metrics = Metrics::new();
    metrics.update(&stream(5, 4), &[line(ChannelRole::Seller, 10, 10, 7, 100)]);
    let text = metrics.encode();
    assert!(text.contains("supra_stream_published_total{stream=\"sensors/#\"} 5"), "{text}");
    assert!(text.contains("kind=\"owed\",peer=\"0x0000000000000000000000000000000000000000\",role=\"seller\",topic=\"sensors/#\"} 3"), "{text}");
    assert!(text.contains("supra_channel_messages{"), "{text}");
    // An engine count that went back (a restarted engine) leaves the counter where it was.
    metrics.update(&stream(3, 4), &[]);
    let text = metrics.encode();
    assert!(text.contains("supra_stream_published_total{stream=\"sensors/#\"} 5"), "{text}");
    // A channel that left the broker's state (settled) leaves the gauges.
    assert!(!text.contains("supra_channel_messages{"), "{text}");
}

#[test]
fn links_count_reconnects_and_reads_are_not_transactions() {
    let observer = Observer::new(Address::ZERO, 10);
    let peer = Address::repeat_byte(1);
    observer.link(Role::Buyer, peer, true);
    observer.link(Role::Buyer, peer, false);
    observer.link(Role::Buyer, peer, true);
    let text = observer.metrics.encode();
    assert!(text.contains("supra_link_reconnects_total{peer=\"0x0101010101010101010101010101010101010101\",role=\"buyer\"} 1"), "{text}");
    assert!(text.contains("supra_link_up{peer=\"0x0101010101010101010101010101010101010101\",role=\"buyer\"} 1"), "{text}");
    assert_eq!(observer.links()[0].ups, 2);

    let started = std::time::Instant::now();
    observer.transaction("read channel", None, Ok(None), started);
    assert!(observer.transactions().is_empty());
    let receipt = supra_judge::Receipt { tx_hash: B256::repeat_byte(2), block: 9, block_hash: B256::ZERO, gas_used: 50_000 };
    observer.transaction("claim", Some(ChannelId(U256::from(1))), Ok(Some(&receipt)), started);
    observer.transaction("settle", None, Err("ClosureNotElapsed".into()), started);
    let recent = observer.transactions();
    assert_eq!(recent.len(), 2);
    assert_eq!((recent[0].call, recent[0].error.as_deref()), ("settle", Some("ClosureNotElapsed")));
    assert_eq!((recent[1].tx_hash, recent[1].gas_used), (Some(receipt.tx_hash), Some(50_000)));
    assert_eq!((observer.chain().transactions, observer.chain().gas_used), (1, 50_000));
    assert!(observer.metrics.encode().contains("supra_chain_transactions_total{call=\"settle\",outcome=\"refused\"} 1"));
}

#[test]
fn the_history_keeps_its_newest_samples() {
    let observer = Observer::new(Address::ZERO, 3);
    for t in 0..5 {
        observer.push_sample(Sample::of(t, &[]));
    }
    let kept: Vec<u64> = observer.history().iter().map(|s| s.t_ms).collect();
    assert_eq!(kept, [2, 3, 4]);
}
