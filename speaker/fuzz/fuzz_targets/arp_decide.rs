//! Fuzz the ARP frame parser and decision: any bytes must get a decision (or a drop reason),
//! never a panic, and an answered frame must be a request for an owned IP.
//! Run: `cd speaker/fuzz && cargo fuzz run arp_decide -- -max_total_time=60`
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use metalgate_speaker::arp::{Announcement, Interface, claims, decide, reply};
use pnet::util::MacAddr;

fuzz_target!(|data: &[u8]| {
    let iface = Interface { name: "eth1".into(), mac: MacAddr(2, 0, 0, 0, 0, 0x10), nets: vec!["192.168.56.10/24".parse().unwrap()] };
    // The first 4 bytes choose the owned IP, so answered frames are reachable.
    let (ip, frame) = if data.len() >= 4 { (Ipv4Addr::new(data[0], data[1], data[2], data[3]), &data[4..]) } else { (Ipv4Addr::new(192, 168, 56, 200), data) };
    for same_subnet_only in [true, false] {
        let owned = vec![Announcement { ip, interface: "eth1".into(), same_subnet_only }];
        if let Ok(req) = decide(frame, &iface, &owned) {
            assert_eq!(req.target_ip, ip);
            assert_eq!(claims(&reply(&req, iface.mac), ip), Some(iface.mac));
        }
    }
});
