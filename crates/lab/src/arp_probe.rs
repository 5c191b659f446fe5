//! `metalgate lab arp-probe`: an arping that keeps a clock. It broadcasts an ARP request for an
//! IP every interval (iputils' arping takes whole seconds only), records every reply's time and
//! MAC, and prints the longest gap without a reply — the failover gap. Bounded by `--count`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use pnet::datalink::{self, Channel};
use pnet::packet::Packet;
use pnet::packet::arp::{ArpOperations, ArpPacket};
use pnet::packet::ethernet::{EtherTypes, EthernetPacket};

/// What the probe saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    /// Requests sent.
    pub sent: u32,
    /// Replies received.
    pub replies: u32,
    /// Distinct MACs in reply order (consecutive duplicates folded).
    pub macs: Vec<String>,
    /// The longest time without a reply between the first and the last reply, in ms.
    pub max_gap_ms: u64,
    /// Milliseconds from the first reply of the last MAC to the end.
    pub first_of_last_mac_ms: u64,
    /// Requests answered by more than one MAC (two hosts claiming the IP at once).
    pub double_answered: u32,
    /// From the first request answered twice to the last one, in ms (0 if none).
    pub double_span_ms: u64,
}

/// Requests answered by two or more MACs, and the time from the first such request to the
/// last: a reply belongs to the request sent in the interval it arrived in.
fn doubles(replies: &[(Duration, String)], interval: Duration) -> (u32, u64) {
    let mut slots: std::collections::BTreeMap<u128, std::collections::BTreeSet<&str>> =
        Default::default();
    let step = interval.as_micros().max(1);
    for (t, mac) in replies {
        slots
            .entry(t.as_micros() / step)
            .or_default()
            .insert(mac.as_str());
    }
    let double: Vec<u128> = slots
        .iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(k, _)| *k)
        .collect();
    let span = match (double.first(), double.last()) {
        (Some(a), Some(b)) => ((b - a + 1) * step / 1000) as u64,
        _ => 0,
    };
    (double.len() as u32, span)
}

/// Probe `ip` from `iface` every `interval`, `count` times.
pub fn probe(
    iface_name: &str,
    ip: Ipv4Addr,
    interval: Duration,
    count: u32,
) -> anyhow::Result<ProbeReport> {
    let iface = datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface_name)
        .ok_or_else(|| anyhow::anyhow!("no interface {iface_name}"))?;
    let mac = iface
        .mac
        .ok_or_else(|| anyhow::anyhow!("{iface_name} has no MAC"))?;
    let src = iface
        .ips
        .iter()
        .find_map(|n| match n {
            pnet::ipnetwork::IpNetwork::V4(v) => Some(v.ip()),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("{iface_name} has no IPv4 address"))?;
    let cfg = datalink::Config {
        read_timeout: Some(Duration::from_millis(2)),
        ..Default::default()
    };
    let Channel::Ethernet(mut tx, mut rx) = datalink::channel(&iface, cfg)? else {
        anyhow::bail!("{iface_name} is not Ethernet");
    };
    let frame = metalgate_speaker::arp::request(ip, mac, src);
    let start = Instant::now();
    let mut replies: Vec<(Duration, String)> = Vec::new();
    let mut sent = 0;
    let mut next = start;
    let end = start + interval * count + Duration::from_millis(200);
    while Instant::now() < end {
        if sent < count && Instant::now() >= next {
            let _ = tx.send_to(&frame, None);
            sent += 1;
            next += interval;
        }
        if let Ok(f) = rx.next() {
            if let Some(eth) = EthernetPacket::new(f) {
                if eth.get_ethertype() == EtherTypes::Arp {
                    if let Some(arp) = ArpPacket::new(eth.payload()) {
                        if arp.get_operation() == ArpOperations::Reply
                            && arp.get_sender_proto_addr() == ip
                            && arp.get_target_hw_addr() == mac
                        {
                            replies.push((start.elapsed(), arp.get_sender_hw_addr().to_string()));
                        }
                    }
                }
            }
        }
    }
    let mut macs: Vec<String> = Vec::new();
    for (_, m) in &replies {
        if macs.last() != Some(m) {
            macs.push(m.clone());
        }
    }
    let max_gap = replies
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    // Where the final run of replies from one MAC begins (the new owner, after a failover).
    let run = replies
        .iter()
        .rev()
        .take_while(|r| Some(&r.1) == replies.last().map(|l| &l.1))
        .count();
    let first_of_last = replies.get(replies.len() - run).map(|r| r.0);
    let (double_answered, double_span_ms) = doubles(&replies, interval);
    Ok(ProbeReport {
        sent,
        replies: replies.len() as u32,
        macs,
        max_gap_ms: max_gap.as_millis() as u64,
        first_of_last_mac_ms: first_of_last.map(|d| d.as_millis() as u64).unwrap_or(0),
        double_answered,
        double_span_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_from_two_macs_in_one_interval_are_counted_with_their_span() {
        let ms = Duration::from_millis;
        let r = |t: u64, m: &str| (ms(t), m.to_string());
        let replies = vec![
            r(1, "a"),
            r(21, "a"),
            r(22, "b"),
            r(41, "a"),
            r(61, "a"),
            r(62, "b"),
            r(81, "b"),
        ];
        assert_eq!(doubles(&replies, ms(20)), (2, 60));
        assert_eq!(doubles(&replies[..2], ms(20)), (0, 0));
    }
}
