//! ARP frames: deciding whether to answer a request (pure, with a typed reason for every frame
//! ignored), and building replies and gratuitous ARP.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use pnet::packet::Packet;
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet::util::MacAddr;

/// Why a frame got no answer. Every ignored frame is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unanswered {
    /// Not a whole Ethernet frame.
    Truncated,
    /// Not ARP.
    NotArp,
    /// ARP, but not Ethernet/IPv4.
    NotEthernetIpv4,
    /// A reply (or another operation), not a request.
    NotRequest,
    /// Sent to neither the broadcast address nor this interface.
    NotForThisInterface,
    /// For an IP this node does not announce.
    NotOwned,
    /// For an owned IP, but it is announced on another interface.
    WrongInterface,
    /// From a sender outside the IP's subnet on this interface.
    SenderOutsideSubnet,
    /// From this interface itself.
    OwnFrame,
}

impl Unanswered {
    /// Every reason, for metrics.
    pub const ALL: [Unanswered; 9] = [
        Unanswered::Truncated,
        Unanswered::NotArp,
        Unanswered::NotEthernetIpv4,
        Unanswered::NotRequest,
        Unanswered::NotForThisInterface,
        Unanswered::NotOwned,
        Unanswered::WrongInterface,
        Unanswered::SenderOutsideSubnet,
        Unanswered::OwnFrame,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Unanswered::Truncated => "truncated",
            Unanswered::NotArp => "not_arp",
            Unanswered::NotEthernetIpv4 => "not_ethernet_ipv4",
            Unanswered::NotRequest => "not_request",
            Unanswered::NotForThisInterface => "not_for_this_interface",
            Unanswered::NotOwned => "not_owned",
            Unanswered::WrongInterface => "wrong_interface",
            Unanswered::SenderOutsideSubnet => "sender_outside_subnet",
            Unanswered::OwnFrame => "own_frame",
        }
    }
}

/// The interface a frame arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`eth1`).
    pub name: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its IPv4 networks (address/prefix).
    pub nets: Vec<Ipv4Net>,
}

/// Where an owned IP is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The IP.
    pub ip: Ipv4Addr,
    /// The interface to answer on.
    pub interface: String,
    /// Answer only senders in the IP's subnet on that interface (the default).
    pub same_subnet_only: bool,
}

/// A request to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Who asked.
    pub sender_mac: MacAddr,
    /// Their address.
    pub sender_ip: Ipv4Addr,
    /// The IP asked for.
    pub target_ip: Ipv4Addr,
}

/// Decide about one frame received on `iface`, given what this node announces.
pub fn decide(
    frame: &[u8],
    iface: &Interface,
    owned: &[Announcement],
) -> Result<Request, Unanswered> {
    let eth = EthernetPacket::new(frame).ok_or(Unanswered::Truncated)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return Err(Unanswered::NotArp);
    }
    if eth.get_source() == iface.mac {
        return Err(Unanswered::OwnFrame);
    }
    let dst = eth.get_destination();
    if dst != MacAddr::broadcast() && dst != iface.mac {
        return Err(Unanswered::NotForThisInterface);
    }
    let arp = ArpPacket::new(eth.payload()).ok_or(Unanswered::Truncated)?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return Err(Unanswered::NotEthernetIpv4);
    }
    if arp.get_operation() != ArpOperations::Request {
        return Err(Unanswered::NotRequest);
    }
    let target = arp.get_target_proto_addr();
    let sender_ip = arp.get_sender_proto_addr();
    let mine: Vec<&Announcement> = owned.iter().filter(|a| a.ip == target).collect();
    if mine.is_empty() {
        return Err(Unanswered::NotOwned);
    }
    let Some(a) = mine.iter().find(|a| a.interface == iface.name) else {
        return Err(Unanswered::WrongInterface);
    };
    // The interface must hold the IP's subnet, and (by default) the sender must be in it.
    let Some(net) = iface.nets.iter().find(|n| n.contains(&target)) else {
        return Err(Unanswered::WrongInterface);
    };
    if a.same_subnet_only && !net.contains(&sender_ip) {
        return Err(Unanswered::SenderOutsideSubnet);
    }
    Ok(Request {
        sender_mac: arp.get_sender_hw_addr(),
        sender_ip,
        target_ip: target,
    })
}

fn frame(
    dst: MacAddr,
    src: MacAddr,
    op: pnet::packet::arp::ArpOperation,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut buf = vec![0u8; 42];
    {
        let mut eth = MutableEthernetPacket::new(&mut buf).expect("42 bytes hold an ARP frame");
        eth.set_destination(dst);
        eth.set_source(src);
        eth.set_ethertype(EtherTypes::Arp);
    }
    let mut arp = MutableArpPacket::new(&mut buf[14..]).expect("28 bytes hold ARP");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(op);
    arp.set_sender_hw_addr(sha);
    arp.set_sender_proto_addr(spa);
    arp.set_target_hw_addr(tha);
    arp.set_target_proto_addr(tpa);
    buf
}

/// The reply to a request, from `mac`.
pub fn reply(req: &Request, mac: MacAddr) -> Vec<u8> {
    frame(
        req.sender_mac,
        mac,
        ArpOperations::Reply,
        mac,
        req.target_ip,
        req.sender_mac,
        req.sender_ip,
    )
}

/// Gratuitous ARP for `ip` from `mac`, in the two forms neighbours act on: a broadcast reply
/// with sender = target = IP and target MAC = sender MAC (Linux replaces a fresh entry at once
/// only for this one), then a broadcast request.
pub fn gratuitous(ip: Ipv4Addr, mac: MacAddr) -> [Vec<u8>; 2] {
    [
        frame(
            MacAddr::broadcast(),
            mac,
            ArpOperations::Reply,
            mac,
            ip,
            mac,
            ip,
        ),
        frame(
            MacAddr::broadcast(),
            mac,
            ArpOperations::Request,
            mac,
            ip,
            MacAddr::zero(),
            ip,
        ),
    ]
}

/// An ARP request for `target` from `mac`/`sender` (a probe when `sender` is 0.0.0.0).
pub fn request(target: Ipv4Addr, mac: MacAddr, sender: Ipv4Addr) -> Vec<u8> {
    frame(
        MacAddr::broadcast(),
        mac,
        ArpOperations::Request,
        mac,
        sender,
        MacAddr::zero(),
        target,
    )
}

/// If `frame` is an ARP reply (or request) from someone claiming `ip`, their MAC.
pub fn claims(frame: &[u8], ip: Ipv4Addr) -> Option<MacAddr> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    (arp.get_sender_proto_addr() == ip).then(|| arp.get_sender_hw_addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAPTOP: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);
    const NODE: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x10);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 200);

    fn iface() -> Interface {
        Interface {
            name: "eth1".into(),
            mac: NODE,
            nets: vec!["192.168.56.10/24".parse().unwrap()],
        }
    }

    fn owned() -> Vec<Announcement> {
        vec![Announcement {
            ip: VIP,
            interface: "eth1".into(),
            same_subnet_only: true,
        }]
    }

    fn who_has(target: Ipv4Addr, sender: Ipv4Addr) -> Vec<u8> {
        request(target, LAPTOP, sender)
    }

    /// (what, frame, interface it arrives on, expected decision)
    type Case = (&'static str, Vec<u8>, Interface, Result<(), Unanswered>);

    #[test]
    fn frames_to_decisions() {
        let laptop_ip = Ipv4Addr::new(192, 168, 56, 1);
        let cases: Vec<Case> = vec![
            (
                "request for the VIP",
                who_has(VIP, laptop_ip),
                iface(),
                Ok(()),
            ),
            (
                "request for an unassigned pool IP",
                who_has(Ipv4Addr::new(192, 168, 56, 201), laptop_ip),
                iface(),
                Err(Unanswered::NotOwned),
            ),
            (
                "request on another interface",
                who_has(VIP, laptop_ip),
                Interface {
                    name: "eth0".into(),
                    ..iface()
                },
                Err(Unanswered::WrongInterface),
            ),
            (
                "interface without the VIP's subnet",
                who_has(VIP, laptop_ip),
                Interface {
                    nets: vec!["10.0.2.15/24".parse().unwrap()],
                    ..iface()
                },
                Err(Unanswered::WrongInterface),
            ),
            (
                "sender from another subnet",
                who_has(VIP, Ipv4Addr::new(10, 9, 9, 9)),
                iface(),
                Err(Unanswered::SenderOutsideSubnet),
            ),
            (
                "a reply, not a request",
                reply(
                    &Request {
                        sender_mac: LAPTOP,
                        sender_ip: laptop_ip,
                        target_ip: VIP,
                    },
                    MacAddr(2, 0, 0, 0, 0, 9),
                ),
                iface(),
                Err(Unanswered::NotForThisInterface),
            ),
            (
                "our own gratuitous ARP",
                gratuitous(VIP, NODE)[1].clone(),
                iface(),
                Err(Unanswered::OwnFrame),
            ),
            (
                "someone else's gratuitous reply",
                gratuitous(VIP, LAPTOP)[0].clone(),
                iface(),
                Err(Unanswered::NotRequest),
            ),
            (
                "truncated",
                who_has(VIP, laptop_ip)[..20].to_vec(),
                iface(),
                Err(Unanswered::Truncated),
            ),
            (
                "IPv4, not ARP",
                {
                    let mut f = who_has(VIP, laptop_ip);
                    f[12] = 0x08;
                    f[13] = 0x00;
                    f
                },
                iface(),
                Err(Unanswered::NotArp),
            ),
            (
                "unicast to another MAC",
                {
                    let mut f = who_has(VIP, laptop_ip);
                    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
                    f
                },
                iface(),
                Err(Unanswered::NotForThisInterface),
            ),
            (
                "unicast to us",
                {
                    let mut f = who_has(VIP, laptop_ip);
                    f[..6].copy_from_slice(&NODE.octets());
                    f
                },
                iface(),
                Ok(()),
            ),
            (
                "ARP for another protocol",
                {
                    let mut f = who_has(VIP, laptop_ip);
                    f[16] = 0x86;
                    f[17] = 0xdd;
                    f
                },
                iface(),
                Err(Unanswered::NotEthernetIpv4),
            ),
        ];
        for (what, frame, iface, want) in cases {
            let got = decide(&frame, &iface, &owned()).map(|_| ());
            assert_eq!(got, want, "{what}");
        }
        let open = vec![Announcement {
            same_subnet_only: false,
            ..owned()[0].clone()
        }];
        assert!(
            decide(&who_has(VIP, Ipv4Addr::new(10, 9, 9, 9)), &iface(), &open).is_ok(),
            "subnet check can be turned off"
        );
    }

    #[test]
    fn reply_answers_the_asker_with_the_interface_mac() {
        let req = decide(
            &who_has(VIP, Ipv4Addr::new(192, 168, 56, 1)),
            &iface(),
            &owned(),
        )
        .unwrap();
        let r = reply(&req, NODE);
        let eth = EthernetPacket::new(&r).unwrap();
        assert_eq!((eth.get_destination(), eth.get_source()), (LAPTOP, NODE));
        let arp = ArpPacket::new(eth.payload()).unwrap();
        assert_eq!(arp.get_operation(), ArpOperations::Reply);
        assert_eq!(
            (arp.get_sender_hw_addr(), arp.get_sender_proto_addr()),
            (NODE, VIP)
        );
        assert_eq!(
            (arp.get_target_hw_addr(), arp.get_target_proto_addr()),
            (LAPTOP, Ipv4Addr::new(192, 168, 56, 1))
        );
        assert_eq!(claims(&r, VIP), Some(NODE));
    }

    #[test]
    fn gratuitous_arp_reply_form_first() {
        let [first, second] = gratuitous(VIP, NODE);
        let a = ArpPacket::new(&first[14..]).unwrap();
        assert_eq!(a.get_operation(), ArpOperations::Reply);
        assert_eq!(
            (a.get_sender_proto_addr(), a.get_target_proto_addr()),
            (VIP, VIP)
        );
        assert_eq!(a.get_target_hw_addr(), NODE);
        assert_eq!(
            EthernetPacket::new(&first).unwrap().get_destination(),
            MacAddr::broadcast()
        );
        assert_eq!(
            ArpPacket::new(&second[14..]).unwrap().get_operation(),
            ArpOperations::Request
        );
    }

    #[test]
    fn any_bytes_get_a_decision_and_never_a_panic() {
        // A cheap stand-in for the fuzz target: every prefix and every single-byte mutation.
        let base = who_has(VIP, Ipv4Addr::new(192, 168, 56, 1));
        for n in 0..=base.len() {
            let _ = decide(&base[..n], &iface(), &owned());
        }
        for i in 0..base.len() {
            for b in [0u8, 1, 0x7f, 0xff] {
                let mut f = base.clone();
                f[i] = b;
                let _ = decide(&f, &iface(), &owned());
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn iface() -> Interface {
        Interface {
            name: "eth1".into(),
            mac: MacAddr(2, 0, 0, 0, 0, 0x10),
            nets: vec!["192.168.56.10/24".parse().unwrap()],
        }
    }

    proptest! {
        /// Whatever arrives on the wire gets a decision, never a panic; and whatever is
        /// answered is a request for an owned IP, answered with a well-formed reply.
        #[test]
        fn any_frame_gets_a_decision(frame in proptest::collection::vec(any::<u8>(), 0..128), target in any::<[u8; 4]>()) {
            let owned = vec![Announcement { ip: Ipv4Addr::from(target), interface: "eth1".into(), same_subnet_only: false }];
            if let Ok(req) = decide(&frame, &iface(), &owned) {
                prop_assert_eq!(req.target_ip, Ipv4Addr::from(target));
                let r = reply(&req, iface().mac);
                prop_assert_eq!(claims(&r, req.target_ip), Some(iface().mac));
            }
        }

        /// A well-formed request for an owned IP from the subnet is always answered.
        #[test]
        fn requests_for_owned_ips_are_answered(host in 1u8..255, sender in 1u8..255, mac in any::<[u8; 6]>()) {
            let ip = Ipv4Addr::new(192, 168, 56, host);
            let mac = MacAddr(mac[0] & 0xfe, mac[1], mac[2], mac[3], mac[4], mac[5]);
            prop_assume!(mac != iface().mac);
            let owned = vec![Announcement { ip, interface: "eth1".into(), same_subnet_only: true }];
            let frame = request(ip, mac, Ipv4Addr::new(192, 168, 56, sender));
            let req = decide(&frame, &iface(), &owned);
            prop_assert!(req.is_ok(), "{:?}", req);
        }
    }
}
