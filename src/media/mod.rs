//! Media: RTP endpoints per call leg, G.711, prompt and music playback paced at 20 ms by a few
//! shared send workers, RFC 4733 DTMF. A leg takes media only from its call's SIP peer
//! (`source`), and ports are handed out at random (`ports`).
//!
//! Owns: RTP sockets, the port pool and the send workers. Must not touch: SIP types, engine
//! state.

pub mod dtmf;
pub mod g711;
pub mod leg;
pub mod library;
pub mod pacer;
pub mod ports;
pub mod send_pool;
pub mod session;
pub mod source;
