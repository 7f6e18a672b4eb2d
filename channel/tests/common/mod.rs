//! The seller/buyer pair the engine tests drive by hand (no harness): a perfect zero-delay link,
//! every action kept for inspection.
#![allow(dead_code)]

use alloy_primitives::U256;
use supra_channel::records::{BuyerRecord, SellerRecord};
use supra_channel::seller::{SellerConfig, Terms};
use supra_channel::testkit::test_key;
use supra_channel::*;

pub const T0: u64 = 1_700_000_000_000;

pub fn domain() -> Domain {
    Domain::new(31337, alloy_primitives::Address::repeat_byte(0x42))
}

pub fn terms(window: u64) -> Terms {
    Terms {
        price: U256::from(10u64),
        token: Default::default(),
        window,
        t_ack_secs: 10,
        t_closure_secs: 60,
        offer_validity_secs: 600,
    }
}

pub struct Pair {
    pub seller: Stream,
    pub buyer: BuyerChannel,
    pub bkey: Keypair,
    pub store: Vec<SellerRecord>,
    pub bstore: Vec<BuyerRecord>,
    pub delivered: Vec<(u64, Vec<u8>)>,
    pub other: Vec<SellerAction>,
    pub bother: Vec<BuyerAction>,
    pub now: u64,
}

impl Pair {
    pub fn new(window: u64, scfg: SellerConfig, bcfg: BuyerConfig) -> Self {
        Self::with_deposit(window, scfg, bcfg, U256::from(10_000u64))
    }

    pub fn with_deposit(window: u64, scfg: SellerConfig, bcfg: BuyerConfig, deposit: U256) -> Self {
        let skey = test_key("s", 1);
        let bkey = test_key("b", 1);
        let sid = StreamId::new(skey.address(), 7).unwrap();
        let mut seller = Stream::new(domain(), skey, sid, terms(window), scfg).unwrap();
        let (offer, sig) = seller.make_offer(T0, *bkey.public(), "t").unwrap();
        let buyer =
            BuyerChannel::new(domain(), bkey.clone(), offer.clone(), sig, bcfg, T0).unwrap();
        let id = buyer.id();
        seller.open_channel(T0, id, deposit).unwrap();
        let mut p = Self {
            seller,
            buyer,
            bkey,
            store: vec![],
            bstore: vec![],
            delivered: vec![],
            other: vec![],
            bother: vec![],
            now: T0,
        };
        p.seller_out();
        p.buyer_out();
        p
    }

    /// Drains the seller's actions: returns frames for the buyer, keeps the rest.
    pub fn seller_out(&mut self) -> Vec<Frame> {
        let mut frames = vec![];
        for a in self.seller.drain_actions() {
            match a {
                SellerAction::Persist(r) => self.store.push(r),
                SellerAction::Send { frames: fs, .. } => {
                    frames.extend(fs.iter().map(|f| Frame::decode(f).unwrap()))
                }
                other => self.other.push(other),
            }
        }
        frames
    }

    pub fn buyer_out(&mut self) -> Vec<Frame> {
        let mut frames = vec![];
        for a in self.buyer.drain_actions() {
            match a {
                BuyerAction::Persist(r) => self.bstore.push(r),
                BuyerAction::Send(f) => frames.push(Frame::decode(&f).unwrap()),
                BuyerAction::Deliver { seq, payload } => self.delivered.push((seq, payload)),
                other => self.bother.push(other),
            }
        }
        frames
    }

    /// Publishes messages `0..n`, one per millisecond, each exchanged until quiet.
    pub fn publish_each(&mut self, n: u64) {
        for i in 0..n {
            self.now += 1;
            self.seller.publish(self.now, &payload(i)).unwrap();
            self.exchange();
        }
    }

    /// Exchanges frames until quiet (perfect link, zero delay).
    pub fn exchange(&mut self) {
        loop {
            let to_b = self.seller_out();
            for f in to_b {
                if !matches!(f, Frame::Offer { .. }) {
                    let _ = self.buyer.handle_frame(self.now, f);
                }
            }
            let to_s = self.buyer_out();
            if to_s.is_empty() && self.seller.pending_actions() == 0 {
                break;
            }
            for f in to_s {
                let _ = self.seller.handle_frame(self.now, self.bkey.address(), f);
            }
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.seller.handle_timeout(self.now);
        let _ = self.buyer.handle_timeout(self.now);
    }
}

pub fn payload(i: u64) -> Vec<u8> {
    format!("payload {i}").into_bytes()
}
