//! Test fixture: a small, valid `ivr-scripts/` folder in a temporary directory, to break one
//! rule at a time.
//!
//! Owns: the fixture's files (compiled only with `cfg(test)`). Must not touch: the shipped
//! `ivr-scripts/`.

use std::fs;
use std::path::PathBuf;

use super::{load, Diagnostic, LoadedIvr};
use crate::engine::ids::QueueName;

const PRINCIPALE: &str = r#"language = "it"
entry = "principale"
welcome = ["benvenuto"]
music = "attesa"

[menu.principale]
prompts = ["menu_principale", "en/for_english"]
timeout_seconds = 6
retries = 2
invalid_prompts = ["scelta_non_valida"]
on_timeout = { queue = "generale", prompts = ["trasferimento"] }

[menu.principale.options]
1 = { menu = "demografici" }
2 = { queue = "tributi", prompts = ["trasferimento"] }
9 = { language = "en", menu = "main" }

[menu.demografici]
prompts = ["menu_demografici"]
on_timeout = { queue = "generale" } # demografici

[menu.demografici.options]
2 = { queue = "demografici_cie", prompts = ["trasferimento"] }
"#;

const ENGLISH: &str = r#"language = "en"

[menu.main]
prompts = ["menu_principale", "it/per_italiano"]
on_timeout = { queue = "generale", prompts = ["trasferimento"] }

[menu.main.options]
1 = { menu = "registry" }
2 = { queue = "tributi", prompts = ["trasferimento"] }
9 = { language = "it", menu = "principale" }

[menu.registry]
prompts = ["menu_demografici"]
on_timeout = { queue = "generale" }

[menu.registry.options]
2 = { queue = "demografici_cie", prompts = ["trasferimento"] }
"#;

const BOTH: [&str; 6] =
    ["benvenuto", "menu_principale", "menu_demografici", "scelta_non_valida", "trasferimento", "arrivederci"];

/// The queues the fixture's config would define.
pub(crate) fn queues() -> Vec<QueueName> {
    ["generale", "tributi", "demografici_cie"].iter().map(|q| QueueName(q.to_string())).collect()
}

/// A valid scripts folder; edit it to break one rule.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let f = Fixture { dir: tempfile::tempdir().expect("temp dir") };
        f.write("principale.toml", PRINCIPALE);
        f.write("english.toml", ENGLISH);
        for (lang, pinned) in [("it", "per_italiano"), ("en", "for_english")] {
            let mut texts = String::from("# name = text\n");
            for name in BOTH.iter().chain([&pinned]) {
                f.wav(&format!("prompts/{lang}/{name}.wav"), 8000, 1);
                texts.push_str(&format!("{name} = \"{name}\"\n"));
            }
            f.write(&format!("prompts/{lang}/prompts.toml"), &texts);
        }
        f.wav("prompts/music/attesa.wav", 8000, 1);
        f
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("inside the dir")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).expect("read")
    }

    pub(crate) fn append(&self, rel: &str, text: &str) {
        self.write(rel, &(self.read(rel) + text));
    }

    /// Replaces the first occurrence of `from`, which must be there.
    pub(crate) fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    pub(crate) fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).expect("remove");
    }

    /// Writes a 10 ms WAV (16-bit) with this rate and channel count.
    pub(crate) fn wav(&self, rel: &str, rate: u32, channels: u16) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("inside the dir")).expect("mkdir");
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(p, spec).expect("create wav");
        for i in 0..(rate / 100) * u32::from(channels) {
            w.write_sample((i % 64) as i16 * 100).expect("sample");
        }
        w.finalize().expect("finalize");
    }

    pub(crate) fn load(&self) -> Result<LoadedIvr, Vec<Diagnostic>> {
        load(self.dir.path(), &queues())
    }

    /// The diagnostics as printed; panics if the folder loads.
    pub(crate) fn errors(&self) -> Vec<String> {
        match self.load() {
            Ok(_) => panic!("expected problems, the scripts loaded"),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    /// `path:line` of the first line of `rel` containing `needle`.
    pub(crate) fn loc(&self, rel: &str, needle: &str) -> String {
        let text = self.read(rel);
        let Some(i) = text.lines().position(|l| l.contains(needle)) else { panic!("{rel} has no {needle:?}") };
        format!("{}:{}", self.path(rel).display(), i + 1)
    }

    /// Asserts a diagnostic on the line of `rel` containing `needle` whose message contains `part`.
    pub(crate) fn expect(&self, rel: &str, needle: &str, part: &str) {
        let at = format!("{}: ", self.loc(rel, needle));
        let errors = self.errors();
        assert!(
            errors.iter().any(|e| e.starts_with(&at) && e.contains(part)),
            "no {at}...{part}... among:\n{}",
            errors.join("\n")
        );
    }
}
