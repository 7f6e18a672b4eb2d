//! An MQTT message as a paid stream carries it: topic, payload, retain flag, QoS and the MQTT 5
//! properties that belong to the message. This is the plaintext sealed into each stream message, so
//! all of it is signed by the seller and reproduced on the buyer's broker.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The MQTT 5 properties that belong to a message (MQTT 5, 3.3.2.3), as published on the seller's
/// broker. Those that belong to one hop only (topic alias, subscription identifiers) are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageProperties {
    /// Payload Format Indicator = 1: the payload is UTF-8 text.
    pub utf8_payload: bool,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
    /// Message Expiry Interval as published, in seconds; counted down from `received_at_ms`.
    pub message_expiry_secs: Option<u32>,
    pub user_properties: Vec<(String, String)>,
}

/// One MQTT message of a sold topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub topic: String,
    /// A byte string, the same bytes as the first stages' sequence (read and written at once).
    #[serde(with = "supra_channel::wire::byte_string")]
    pub payload: Vec<u8>,
    /// Published retained: the buyer's broker retains it too (a late subscriber gets it).
    pub retain: bool,
    /// QoS it was published with (0, 1 or 2); subscribers get at most this.
    pub qos: u8,
    /// MQTT 5 properties; `None` for a message published over MQTT 3.1.1.
    pub properties: Option<MessageProperties>,
    /// When the seller's broker received it (unix ms, seller's clock): the message expiry interval
    /// counts down from here, across the link and any outbox.
    pub received_at_ms: u64,
}

/// The first stage's format (topic and payload only), still read from older peers and stores.
#[derive(Deserialize)]
struct LegacyPublication {
    topic: String,
    payload: Vec<u8>,
}

const DECODE_LIMIT: usize = 16 * 1024 * 1024;

impl Publication {
    /// A plain message (QoS 0, not retained, no properties), received now.
    pub fn plain(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Publication {
        Publication { topic: topic.into(), payload: payload.into(), retain: false, qos: 0, properties: None, received_at_ms: now_ms() }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        buf
    }

    /// Encodes into `buf`, replacing its contents (a writer of many reuses one buffer).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        if bincode::serde::encode_into_std_write(self, buf, bincode::config::standard()).is_err() {
            buf.clear();
        }
    }

    /// Decodes a publication; trailing bytes, a QoS above 2 or an invalid topic name are errors.
    /// A first-stage publication (topic and payload) decodes as a plain QoS 0 message.
    pub fn decode(bytes: &[u8]) -> Result<Publication, String> {
        let config = bincode::config::standard().with_limit::<DECODE_LIMIT>();
        let publication = match bincode::serde::decode_from_slice::<Publication, _>(bytes, config) {
            Ok((p, used)) if used == bytes.len() => p,
            Ok(_) => return Err("trailing bytes".into()),
            Err(current) => match bincode::serde::decode_from_slice::<LegacyPublication, _>(bytes, config) {
                Ok((p, used)) if used == bytes.len() => {
                    Publication { topic: p.topic, payload: p.payload, retain: false, qos: 0, properties: None, received_at_ms: 0 }
                }
                _ => return Err(current.to_string()),
            },
        };
        if publication.qos > 2 {
            return Err(format!("QoS {} is not an MQTT QoS", publication.qos));
        }
        crate::topics::check_name(&publication.topic)?;
        Ok(publication)
    }

    /// The message expiry interval left at `now_ms`: `None` when the message never expires,
    /// `Some(0)` when it has expired (MQTT 5, 3.3.2.3.3: the server must not deliver it then).
    pub fn expiry_left_secs(&self, now_ms: u64) -> Option<u32> {
        let expiry = self.properties.as_ref()?.message_expiry_secs?;
        let elapsed_secs = now_ms.saturating_sub(self.received_at_ms) / 1000;
        Some(u64::from(expiry).saturating_sub(elapsed_secs) as u32)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Publication {
        Publication {
            topic: "plant/1/temp".into(),
            payload: b"21.5".to_vec(),
            retain: true,
            qos: 1,
            properties: Some(MessageProperties {
                utf8_payload: true,
                content_type: Some("text/plain".into()),
                response_topic: Some("plant/1/reply".into()),
                correlation_data: Some(vec![1, 2, 3]),
                message_expiry_secs: Some(60),
                user_properties: vec![("unit".into(), "C".into()), ("unit".into(), "K".into())],
            }),
            received_at_ms: 1_000_000,
        }
    }

    #[test]
    fn every_field_survives_the_wire() {
        let p = full();
        assert_eq!(Publication::decode(&p.encode()), Ok(p.clone()));
        // Into a reused buffer (longer than the encoding): the same bytes, nothing left over.
        let mut buf = vec![0xaa; 4096];
        p.encode_into(&mut buf);
        assert_eq!(buf, p.encode());
    }

    #[test]
    fn a_first_stage_publication_still_decodes() {
        #[derive(Serialize)]
        struct Legacy<'a> {
            topic: &'a str,
            payload: &'a [u8],
        }
        let bytes = bincode::serde::encode_to_vec(Legacy { topic: "a/b", payload: b"x" }, bincode::config::standard()).unwrap();
        let p = Publication::decode(&bytes).unwrap();
        assert_eq!((p.topic.as_str(), p.payload.as_slice(), p.retain, p.qos, p.properties), ("a/b", &b"x"[..], false, 0, None));
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut p = full();
        p.qos = 3;
        assert!(Publication::decode(&p.encode()).unwrap_err().contains("QoS 3"));
        let mut p = full();
        p.topic = "a/+".into();
        assert!(Publication::decode(&p.encode()).is_err());
        let mut bytes = full().encode();
        bytes.push(0);
        assert!(Publication::decode(&bytes).is_err());
        assert!(Publication::decode(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn expiry_counts_down_from_reception() {
        let p = full();
        assert_eq!(p.expiry_left_secs(1_000_000), Some(60));
        assert_eq!(p.expiry_left_secs(1_010_999), Some(50));
        assert_eq!(p.expiry_left_secs(1_060_000), Some(0));
        assert_eq!(p.expiry_left_secs(2_000_000), Some(0));
        assert_eq!(Publication::plain("a", "b").expiry_left_secs(u64::MAX), None);
    }
}
