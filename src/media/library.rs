//! Prompt and music audio, encoded once per codec at start-up and shared by every call.
//!
//! Owns: the encoded clips. Must not touch: sockets, SIP, engine state.

use std::collections::HashMap;
use std::sync::Arc;

use super::g711::Codec;
use crate::engine::ids::PromptId;

/// One clip in both G.711 laws.
#[derive(Clone)]
struct Encoded {
    ulaw: Arc<[u8]>,
    alaw: Arc<[u8]>,
}

impl Encoded {
    fn new(pcm: &[i16]) -> Encoded {
        Encoded { ulaw: Codec::Pcmu.encode(pcm).into(), alaw: Codec::Pcma.encode(pcm).into() }
    }

    fn get(&self, codec: Codec) -> Arc<[u8]> {
        match codec {
            Codec::Pcmu => self.ulaw.clone(),
            Codec::Pcma => self.alaw.clone(),
        }
    }
}

/// Every prompt and the music on hold, ready to send.
pub struct AudioLibrary {
    prompts: HashMap<PromptId, Encoded>,
    music: Encoded,
}

impl AudioLibrary {
    /// Encodes 8 kHz PCM prompts and music.
    pub fn new<'a>(prompts: impl IntoIterator<Item = (&'a PromptId, &'a [i16])>, music: &[i16]) -> AudioLibrary {
        AudioLibrary {
            prompts: prompts.into_iter().map(|(id, pcm)| (id.clone(), Encoded::new(pcm))).collect(),
            music: Encoded::new(music),
        }
    }

    /// A prompt in `codec`; `None` when no recording exists (the caller skips it).
    pub fn prompt(&self, id: &PromptId, codec: Codec) -> Option<Arc<[u8]>> {
        self.prompts.get(id).map(|e| e.get(codec))
    }

    /// The music on hold in `codec`.
    pub fn music(&self, codec: Codec) -> Arc<[u8]> {
        self.music.get(codec)
    }

    /// Number of prompts loaded.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether no prompt is loaded.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}
