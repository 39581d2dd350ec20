//! Prompt recordings: finding them, reading them (8 kHz mono 16-bit PCM WAV) and their texts.
//!
//! Owns: the layout `prompts/<lang>/<name>.wav` + `prompts/<lang>/prompts.toml` (name = text),
//! `prompts/music/<name>.wav`, and the only use of `hound` in the crate.
//! Must not touch: the scripts (which prompts a menu uses is checked in `validate.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{Diagnostic, PromptAudio};
use crate::engine::ids::{Language, PromptId};

/// The only format accepted: what the media layer encodes to G.711 without resampling.
pub const SAMPLE_RATE: u32 = 8000;

/// The file holding the texts of a language's prompts.
pub const TEXTS_FILE: &str = "prompts.toml";

/// Why a WAV file cannot be used as a prompt.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Missing, unreadable or not a WAV file.
    #[error("cannot read WAV: {0}")]
    Read(#[from] hound::Error),
    /// A WAV, but not 8 kHz mono 16-bit integer PCM.
    #[error("must be 8000 Hz mono 16-bit PCM; this file is {rate} Hz, {channels} channel(s), {bits}-bit {kind}")]
    Format {
        /// Samples per second found.
        rate: u32,
        /// Channels found.
        channels: u16,
        /// Bits per sample found.
        bits: u16,
        /// `integer` or `float`.
        kind: &'static str,
    },
    /// A valid header with no samples.
    #[error("has no audio")]
    Empty,
}

/// Reads a prompt and checks its format: 8000 Hz, mono, 16-bit integer PCM.
pub fn load_prompt_wav(path: &Path) -> Result<PromptAudio, WavError> {
    let reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let int = spec.sample_format == hound::SampleFormat::Int;
    if spec.sample_rate != SAMPLE_RATE || spec.channels != 1 || spec.bits_per_sample != 16 || !int {
        return Err(WavError::Format {
            rate: spec.sample_rate,
            channels: spec.channels,
            bits: spec.bits_per_sample,
            kind: if int { "integer" } else { "float" },
        });
    }
    let samples = reader.into_samples::<i16>().collect::<Result<Vec<i16>, _>>()?;
    if samples.is_empty() {
        return Err(WavError::Empty);
    }
    Ok(PromptAudio { samples })
}

/// What is on disk under `prompts/`.
#[derive(Debug, Default)]
pub(super) struct Inventory {
    /// Every `<lang>/<name>.wav`.
    pub wavs: BTreeMap<PromptId, PathBuf>,
    /// Every text in `<lang>/prompts.toml`, with its file and line.
    pub texts: BTreeMap<PromptId, (PathBuf, usize)>,
}

impl Inventory {
    /// Lists `dir/<lang>/*.wav` and reads `dir/<lang>/prompts.toml` for every language.
    pub fn scan(dir: &Path, diags: &mut Vec<Diagnostic>) -> Inventory {
        let mut inv = Inventory::default();
        for lang in Language::ALL {
            let folder = dir.join(lang.code());
            let entries = match fs::read_dir(&folder) {
                Ok(e) => e,
                Err(e) => {
                    diags.push(Diagnostic::new(&folder, 1, format!("cannot read the prompt folder: {e}")));
                    continue;
                }
            };
            for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
                if path.extension().is_some_and(|x| x == "wav") {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        inv.wavs.insert(PromptId::new(lang, stem), path.clone());
                    }
                }
            }
            inv.read_texts(lang, &folder.join(TEXTS_FILE), diags);
        }
        inv
    }

    fn read_texts(&mut self, lang: Language, path: &Path, diags: &mut Vec<Diagnostic>) {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::new(path, 1, format!("cannot read the prompt texts: {e}")));
                return;
            }
        };
        match toml::from_str::<BTreeMap<Spanned<String>, String>>(&text) {
            Ok(map) => {
                for key in map.keys() {
                    let line = text[..key.span().start].matches('\n').count() + 1;
                    self.texts.insert(PromptId::new(lang, key.get_ref().clone()), (path.to_path_buf(), line));
                }
            }
            Err(e) => {
                let message = e.message().replace('\n', ": ");
                diags.push(Diagnostic::new(path, super::parse::error_line(&text, &e), message));
            }
        }
    }

    /// True if the recording exists.
    pub fn has(&self, id: &PromptId) -> bool {
        self.wavs.contains_key(id)
    }

    /// Reads every WAV; a bad one becomes a diagnostic on its file.
    pub fn load_all(&self, diags: &mut Vec<Diagnostic>) -> BTreeMap<PromptId, PromptAudio> {
        let mut out = BTreeMap::new();
        for (id, path) in &self.wavs {
            match load_prompt_wav(path) {
                Ok(audio) => {
                    out.insert(id.clone(), audio);
                }
                Err(e) => diags.push(Diagnostic::new(path, 1, e.to_string())),
            }
        }
        out
    }

    /// Recordings and texts must match, and every prompt the scripts do not name (those are
    /// checked where they are named) must exist in every language.
    pub fn check_pairs(&self, named: &BTreeSet<String>, diags: &mut Vec<Diagnostic>) {
        for (id, path) in &self.wavs {
            if !self.texts.contains_key(id) {
                let msg = format!("recording '{}' has no text in {}/{TEXTS_FILE}", id.name, id.lang);
                diags.push(Diagnostic::new(path, 1, msg));
            }
        }
        for (id, (path, line)) in &self.texts {
            if !self.wavs.contains_key(id) {
                let msg = format!("prompt '{}' has a text but no recording {id}.wav: run make_prompts.sh", id.name);
                diags.push(Diagnostic::new(path, *line, msg));
            }
        }
        let names: BTreeSet<&str> = self.wavs.keys().map(|id| id.name.as_str()).collect();
        for name in names.into_iter().filter(|n| !named.contains(*n)) {
            for lang in Language::ALL {
                let id = PromptId::new(lang, name);
                if self.has(&id) {
                    continue;
                }
                let Some(present) = Language::ALL.into_iter().find(|l| self.has(&PromptId::new(*l, name))) else {
                    continue;
                };
                let there = PromptId::new(present, name);
                let (path, line) = match self.texts.get(&there) {
                    Some((p, l)) => (p.clone(), *l),
                    None => (self.wavs.get(&there).cloned().unwrap_or_default(), 1),
                };
                let msg = format!("prompt '{name}' has no {} version: missing {id}.wav", language_name(lang));
                diags.push(Diagnostic::new(&path, line, msg));
            }
        }
    }
}

/// A language's name in English, for messages.
pub(super) fn language_name(lang: Language) -> &'static str {
    match lang {
        Language::It => "Italian",
        Language::En => "English",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: usize) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..samples * channels as usize {
            w.write_sample((i % 100) as i16).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn good_wav_loads_its_samples() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok.wav");
        write_wav(&p, 8000, 1, 800);
        assert_eq!(load_prompt_wav(&p).unwrap().samples.len(), 800);
    }

    #[test]
    fn wrong_rate_channels_bits_or_empty_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.wav");
        write_wav(&p, 16000, 1, 10);
        let e = load_prompt_wav(&p).unwrap_err().to_string();
        assert!(e.contains("16000 Hz, 1 channel(s), 16-bit integer"), "{e}");
        write_wav(&p, 8000, 2, 10);
        assert!(load_prompt_wav(&p).unwrap_err().to_string().contains("2 channel(s)"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        w.write_sample(1i8).unwrap();
        w.finalize().unwrap();
        assert!(load_prompt_wav(&p).unwrap_err().to_string().contains("8-bit"));
        write_wav(&p, 8000, 1, 0);
        assert!(matches!(load_prompt_wav(&p), Err(WavError::Empty)));
        fs::write(&p, b"RIFF not really").unwrap();
        assert!(matches!(load_prompt_wav(&p), Err(WavError::Read(_))));
        assert!(matches!(load_prompt_wav(&dir.path().join("missing.wav")), Err(WavError::Read(_))));
    }

    #[test]
    fn recordings_texts_and_languages_must_pair_up() {
        let dir = tempfile::tempdir().unwrap();
        for lang in ["it", "en"] {
            fs::create_dir_all(dir.path().join(lang)).unwrap();
        }
        write_wav(&dir.path().join("it/a.wav"), 8000, 1, 8);
        write_wav(&dir.path().join("en/a.wav"), 8000, 1, 8);
        write_wav(&dir.path().join("it/solo.wav"), 8000, 1, 8);
        write_wav(&dir.path().join("en/notext.wav"), 8000, 1, 8);
        fs::write(dir.path().join("it/prompts.toml"), "a = \"A\"\nsolo = \"S\"\nnotext = \"N\"\n").unwrap();
        fs::write(dir.path().join("en/prompts.toml"), "# texts\na = \"A\"\nghost = \"G\"\n").unwrap();
        let mut diags = Vec::new();
        let inv = Inventory::scan(dir.path(), &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        inv.check_pairs(&BTreeSet::new(), &mut diags);
        let mut msgs: Vec<String> =
            diags.iter().map(|d| d.to_string().replace(&*dir.path().to_string_lossy(), "")).collect();
        msgs.sort();
        assert_eq!(
            msgs,
            [
                "/en/notext.wav:1: prompt 'notext' has no Italian version: missing it/notext.wav",
                "/en/notext.wav:1: recording 'notext' has no text in en/prompts.toml",
                "/en/prompts.toml:3: prompt 'ghost' has a text but no recording en/ghost.wav: run make_prompts.sh",
                "/it/prompts.toml:2: prompt 'solo' has no English version: missing en/solo.wav",
                "/it/prompts.toml:3: prompt 'notext' has a text but no recording it/notext.wav: run make_prompts.sh",
            ]
        );
    }
}
