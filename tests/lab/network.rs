//! The VIP on the wire: who answers ARP, failover, partitions, address conflicts, link loss.

use std::process::Command;
use std::time::Duration;

use crate::*;

#[test]
fn arping_from_the_laptop_gets_exactly_the_owners_mac() {
    let (_lab, _teardown) = lab_up(3);

    // Who announces, as users see it: the Service's annotation.
    let owner = owner_of_vip();
    assert!(
        ["ops-demo", "node2", "node3"].contains(&owner.as_str()),
        "announcing-node: {owner:?}"
    );
    let owner_mac = eth1_mac(&format!("mg-{owner}"));

    let arping = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "5",
        "-w",
        "6",
        "-I",
        "vboxnet0",
        "192.168.56.200",
    ]);
    let out = text(&arping);
    assert_eq!(
        macs_in(&out),
        vec![owner_mac.clone()],
        "exactly one MAC answers, the owner's eth1:\n{out}"
    );

    // The VIP is deliverable on its owner (the node's Service rules send its port 80 to the
    // proxy pod there, as kube-proxy does; like MetalLB with kube-proxy's iptables mode, it
    // does not answer ping), and the laptop's neighbour table agrees with arping once it
    // resolves the VIP itself.
    let http = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "http://192.168.56.200/",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&http.stdout),
        "404",
        "the VIP: {}",
        text(&http)
    );
    let neigh = metalgate(&["lab", "exec", "--", "ip", "neigh", "show", "192.168.56.200"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout)
            .to_lowercase()
            .contains(&owner_mac),
        "{}",
        text(&neigh)
    );

    // Nobody answers for a pool IP that is not assigned…
    let unassigned = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "2",
        "-w",
        "3",
        "-I",
        "vboxnet0",
        "192.168.56.201",
    ]);
    assert!(
        macs_in(&String::from_utf8_lossy(&unassigned.stdout)).is_empty(),
        "{}",
        text(&unassigned)
    );
    // …nor for the VIP asked from another subnet.
    let add = Command::new("ip")
        .args([
            "-n",
            "mg-laptop",
            "addr",
            "add",
            "10.9.9.1/24",
            "dev",
            "vboxnet0",
        ])
        .status()
        .unwrap();
    assert!(add.success());
    let foreign = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "2",
        "-w",
        "3",
        "-s",
        "10.9.9.1",
        "-I",
        "vboxnet0",
        "192.168.56.200",
    ]);
    let foreign_out = String::from_utf8_lossy(&foreign.stdout).to_string();
    assert!(
        foreign_out.contains("Sent 2 probes") && foreign_out.contains("Received 0"),
        "{}",
        text(&foreign)
    );

    // The owner counted what it answered and what it ignored, by reason.
    let owner_ip = match owner.as_str() {
        "ops-demo" => "192.168.56.10",
        "node2" => "192.168.56.11",
        _ => "192.168.56.12",
    };
    let metrics = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{owner_ip}:7472/metrics"),
    ]);
    let m = String::from_utf8_lossy(&metrics.stdout).to_string();
    let value = |line_start: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in:\n{m}"))
    };
    assert!(value("metalgate_speaker_arp_replies_total") >= 5, "{m}");
    assert!(
        value("metalgate_speaker_arp_dropped_total{reason=\"sender_outside_subnet\"}") >= 1,
        "{m}"
    );
    assert!(
        value("metalgate_speaker_arp_dropped_total{reason=\"not_owned\"}") >= 1,
        "{m}"
    );

    let events = metalgate(&[
        "lab",
        "exec",
        "--",
        "kubectl",
        "get",
        "events",
        "-n",
        "metalgate-system",
    ]);
    assert!(
        String::from_utf8_lossy(&events.stdout).contains("nodeAssigned"),
        "{}",
        text(&events)
    );
}

#[test]
fn failover_on_sigkill_and_lossless_handoff_on_sigterm() {
    let (_lab, _teardown) = lab_up(3);
    let owner = owner_of_vip();
    let owner_mac = eth1_mac(&format!("mg-{owner}"));
    // The laptop has a neighbour entry for the VIP, pointing at the owner.
    laptop_resolves_the_vip();

    // SIGKILL the owner's metalgate (whichever node — the one with the API store included)
    // while the laptop asks for the VIP every 20 ms.
    let running = probe(250);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = lab_pid(&format!("metalgate@{owner}"));
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let report = running.join().unwrap();
    let macs: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    assert_eq!(
        macs.len(),
        2,
        "one owner, then exactly one successor: {report}"
    );
    assert_eq!(macs[0], owner_mac, "{report}");
    let successor = ["ops-demo", "node2", "node3"]
        .into_iter()
        .find(|n| *n != owner && eth1_mac(&format!("mg-{n}")) == macs[1])
        .unwrap_or_else(|| panic!("the new MAC is no node's eth1: {report}"));
    let gap = report["max_gap_ms"].as_u64().unwrap();
    eprintln!("failover gap after SIGKILL of {owner}: {gap} ms (to {successor})");
    assert!(gap < 1000, "failover took {gap} ms: {report}");
    // The laptop's neighbour entry followed the gratuitous ARP.
    let neigh = metalgate(&["lab", "exec", "--", "ip", "neigh", "show", "192.168.56.200"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout)
            .to_lowercase()
            .contains(&macs[1]),
        "{}",
        text(&neigh)
    );

    // Planned hand-off: SIGTERM the new owner; no probe goes unanswered.
    let running = probe(150);
    std::thread::sleep(Duration::from_millis(1000));
    let pid = lab_pid(&format!("metalgate@{successor}"));
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let report = running.join().unwrap();
    let gap = report["max_gap_ms"].as_u64().unwrap();
    eprintln!("hand-off gap after SIGTERM of {successor}: {gap} ms");
    assert!(
        report["replies"].as_u64().unwrap() >= report["sent"].as_u64().unwrap(),
        "a probe went unanswered: {report}"
    );
    assert!(gap < 60, "{report}");
    let last: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    let third = ["ops-demo", "node2", "node3"]
        .into_iter()
        .find(|n| *n != owner && *n != successor)
        .unwrap();
    assert_eq!(
        last.last().unwrap(),
        &eth1_mac(&format!("mg-{third}")),
        "{report}"
    );
}

#[test]
fn a_gossip_only_partition_leaves_two_speakers_answering_for_at_most_the_bound() {
    let (_lab, _teardown) = lab_up(3);
    let owner = owner_of_vip();
    let owner_mac = eth1_mac(&format!("mg-{owner}"));
    // The laptop asks every 20 ms for 7 s; after 1 s the owner's node is cut off from the
    // others' gossip (UDP 7946 dropped both ways in its namespace) while the API stays
    // reachable: the others lose it from the gossip and take the VIP over, until its presence
    // Lease, still renewed, says it is alive.
    let running = probe(350);
    std::thread::sleep(Duration::from_millis(1000));
    let ns = format!("mg-{owner}");
    for (chain, port) in [
        ("INPUT", "--dport"),
        ("INPUT", "--sport"),
        ("OUTPUT", "--dport"),
        ("OUTPUT", "--sport"),
    ] {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns, "iptables", "-A", chain, "-p", "udp"])
            .args([port, "7946", "-j", "DROP"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "iptables in {ns}");
    }
    let report = running.join().unwrap();
    let span = report["double_span_ms"].as_u64().unwrap();
    let doubles = report["double_answered"].as_u64().unwrap();
    eprintln!(
        "gossip partition of {owner}: {doubles} requests answered twice, over {span} ms (bound 2000 ms)"
    );
    // Written down in speaker/src/presence.rs as PARTITION_BOUND.
    assert!(
        span <= 2000,
        "two speakers answered for {span} ms ({doubles} requests answered twice)"
    );
    let macs: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    assert_eq!(
        macs.last(),
        Some(&owner_mac),
        "the owner (alive, only its gossip cut) answers in the end: {report}"
    );
    // The last 2.5 s (well after the bound) were answered by the owner alone.
    assert!(
        report["first_of_last_mac_ms"].as_u64().unwrap() < 4500,
        "{report}"
    );
}

/// A host the test adds to the lab's network, removed when the test ends.
struct Intruder;
impl Intruder {
    fn add(address: &str) -> ExtraNamespace {
        let guard = ExtraNamespace::create("mg-intruder");
        ip(&[
            "-n",
            "mg-intruder",
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "p-intruder",
            "netns",
            "mg-hostonly",
        ]);
        ip(&[
            "-n",
            "mg-hostonly",
            "link",
            "set",
            "p-intruder",
            "master",
            "br0",
        ]);
        ip(&["-n", "mg-hostonly", "link", "set", "p-intruder", "up"]);
        ip(&[
            "-n",
            "mg-intruder",
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", "mg-intruder", "link", "set", "eth0", "up"]);
        guard
    }
}

#[test]
fn an_ip_already_held_by_another_host_is_not_announced() {
    let (_lab, _teardown) = lab_up(2);
    let _intruder = Intruder::add("192.168.56.205");
    let intruder_mac = {
        let out = Command::new("ip")
            .args(["-n", "mg-intruder", "-o", "link", "show", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split("link/ether ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_lowercase()
    };
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: clash, namespace: default}\nspec:\n  type: LoadBalancer\n  loadBalancerIP: 192.168.56.205\n  ports: [{port: 80}]\n";
    let path = lab_dir().join("clash.yaml");
    std::fs::write(&path, svc).unwrap();
    let applied = metalgate(&[
        "lab",
        "exec",
        "--",
        "kubectl",
        "apply",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(applied.status.success(), "{}", text(&applied));
    let mut events = String::new();
    for _ in 0..100 {
        let o = metalgate(&[
            "lab",
            "exec",
            "--",
            "kubectl",
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=clash",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ]);
        events = String::from_utf8_lossy(&o.stdout).to_string();
        if events.contains("IPConflict") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        events.contains("IPConflict") && events.contains(&intruder_mac),
        "{events}"
    );
    // Only the host that has the IP answers for it.
    let arping = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "3",
        "-w",
        "4",
        "-I",
        "vboxnet0",
        "192.168.56.205",
    ]);
    assert_eq!(
        macs_in(&text(&arping)),
        vec![intruder_mac],
        "{}",
        text(&arping)
    );
}

#[test]
fn link_loss_on_the_owners_nic_moves_the_ip_and_it_settles_on_one_mac() {
    let (_lab, _teardown) = lab_up(3);
    let owner = owner_of_vip();
    let owner_ns = format!("mg-{owner}");
    let running = probe(200);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        Command::new("ip")
            .args(["-n", &owner_ns, "link", "set", "eth1", "down"])
            .status()
            .unwrap()
            .success()
    );
    let report = running.join().unwrap();
    let macs: Vec<String> = serde_json::from_value(report["macs"].clone()).unwrap();
    assert_eq!(macs.len(), 2, "{report}");
    assert_ne!(
        macs[1],
        eth1_mac(&owner_ns),
        "another node took over: {report}"
    );
    assert!(report["max_gap_ms"].as_u64().unwrap() < 1000, "{report}");

    // The link comes back: after the speakers hear each other again, one MAC answers.
    assert!(
        Command::new("ip")
            .args(["-n", &owner_ns, "link", "set", "eth1", "up"])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_secs(4));
    let arping = metalgate(&[
        "lab",
        "exec",
        "--",
        "arping",
        "-c",
        "3",
        "-w",
        "4",
        "-I",
        "vboxnet0",
        "192.168.56.200",
    ]);
    let answering = macs_in(&text(&arping));
    assert_eq!(answering.len(), 1, "{}", text(&arping));
    laptop_resolves_the_vip();
    let neigh = metalgate(&["lab", "exec", "--", "ip", "neigh", "show", "192.168.56.200"]);
    assert!(
        String::from_utf8_lossy(&neigh.stdout)
            .to_lowercase()
            .contains(&answering[0]),
        "the laptop follows: {}",
        text(&neigh)
    );
}

#[test]
fn the_vip_is_not_answered_on_another_interface() {
    let (_lab, _teardown) = lab_up(1);
    assert_eq!(owner_of_vip(), "ops-demo");
    // ops-demo gets a second NIC, eth2 (10.77.0.1/24), towards a host in mg-other.
    let _other = ExtraNamespace::create("mg-other");
    ip(&[
        "-n",
        "mg-ops-demo",
        "link",
        "add",
        "eth2",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        "mg-other",
    ]);
    ip(&[
        "-n",
        "mg-ops-demo",
        "addr",
        "add",
        "10.77.0.1/24",
        "dev",
        "eth2",
    ]);
    ip(&["-n", "mg-ops-demo", "link", "set", "eth2", "up"]);
    ip(&[
        "-n",
        "mg-other",
        "addr",
        "add",
        "10.77.0.2/24",
        "dev",
        "eth0",
    ]);
    ip(&["-n", "mg-other", "link", "set", "eth0", "up"]);
    // The speaker picks new interfaces up within a pass or two.
    std::thread::sleep(Duration::from_secs(4));
    let arping = |ip: &str| {
        let out = Command::new("ip")
            .args([
                "netns", "exec", "mg-other", "arping", "-c", "3", "-w", "4", "-I", "eth0", ip,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        macs_in(&arping("10.77.0.1")).len(),
        1,
        "the link works: the kernel answers for eth2's own address"
    );
    let vip = arping("192.168.56.200");
    assert!(
        macs_in(&vip).is_empty(),
        "nobody answers for the VIP on eth2:\n{vip}"
    );
    let metrics = metalgate(&[
        "lab",
        "exec",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://192.168.56.10:7472/metrics",
    ]);
    let m = String::from_utf8_lossy(&metrics.stdout).to_string();
    let wrong = m
        .lines()
        .find(|l| l.starts_with("metalgate_speaker_arp_dropped_total{reason=\"wrong_interface\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        wrong >= 3,
        "the speaker saw the requests on eth2 and dropped them as wrong_interface:\n{m}"
    );
}
