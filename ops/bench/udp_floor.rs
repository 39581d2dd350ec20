//! The machine's floor for music on hold: what the kernel alone charges to send one RTP-sized
//! datagram per socket every 20 ms, with no RTP, no timers and no runtime — a loop of
//! `sendto` calls on N sockets. centralino's CPU per waiting caller is compared with this
//! (ops/bench/RESULTS.md): what is above it is ours to cut; the floor itself is not.
//!
//!     cargo run --release --example udp_floor -- 2000 10
//!
//! Prints packets per second, CPU cores (utime + stime from /proc/self/stat, in the kernel's
//! fixed 100 Hz USER_HZ) and microseconds per packet, for unconnected sockets (what a leg
//! uses, so that it can latch onto a caller behind NAT) and for connected ones (the route
//! looked up once).

// A measuring tool: reading the clock is its job (no decision depends on it).
#![allow(clippy::disallowed_methods)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Clock ticks per second in /proc/<pid>/stat: USER_HZ, 100 on every Linux architecture
/// centralino runs on.
const USER_HZ: f64 = 100.0;
const RTP_PACKET: [u8; 172] = [0x80; 172];

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / USER_HZ
}

fn run(sockets: &[UdpSocket], sink: std::net::SocketAddr, connected: bool, seconds: u64) {
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    let (mut sent, mut tick) = (0u64, start);
    while start.elapsed() < Duration::from_secs(seconds) {
        for socket in sockets {
            let result = if connected { socket.send(&RTP_PACKET) } else { socket.send_to(&RTP_PACKET, sink) };
            sent += u64::from(result.is_ok());
        }
        tick += Duration::from_millis(20);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, start.elapsed().as_secs_f64());
    println!(
        "{:>11}: {} sockets, {:.0} packets/s (expected {}), {:.2} cores, {:.2} µs per packet",
        if connected { "connected" } else { "unconnected" },
        sockets.len(),
        sent as f64 / wall,
        sockets.len() * 50,
        cpu / wall,
        cpu * 1e6 / sent.max(1) as f64
    );
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    // Bound, never read: like a phone that is not listening, the cheapest receiver there is.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let sink_addr = sink.local_addr()?;
    let sockets = (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_nonblocking(true)?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    run(&sockets, sink_addr, false, seconds);
    for s in &sockets {
        s.connect(sink_addr)?;
    }
    run(&sockets, sink_addr, true, seconds);
    Ok(())
}
