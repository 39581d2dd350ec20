//! Loads and validates `ivr-scripts/` into the engine's IVR model, with the prompt audio.
//!
//! Owns: reading the script files (`*.toml`), the prompt recordings and texts
//! (`prompts/<lang>/`), the music on hold (`prompts/music/`), and reporting every problem as
//! `file:line: message` (what `centralino check` prints).
//! Must not touch: runtime state, the engine's decisions (it only builds `IvrScripts`).
//!
//! Layout: `parse.rs` (one file's format) → `validate.rs` (cross-file rules, building the
//! model) → `graph.rs` (reachability, loops, language mirror); `prompts.rs` (audio, texts).

mod graph;
mod parse;
mod prompts;
mod validate;

#[cfg(test)]
mod fixture;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::ids::{Language, PromptId, QueueName};
use crate::engine::ivr::IvrScripts;

pub use prompts::{load_prompt_wav, WavError, SAMPLE_RATE, TEXTS_FILE};

/// The music on hold used when no script sets `music`: `prompts/music/attesa.wav`.
pub const DEFAULT_MUSIC: &str = "attesa";

/// One problem in the scripts or prompts, printed as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct Diagnostic {
    /// The file with the problem.
    pub file: PathBuf,
    /// 1-based; 1 for problems with a whole file (e.g. a WAV's format).
    pub line: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// Builds a diagnostic.
    pub fn new(file: &Path, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: file.to_path_buf(), line, message: message.into() }
    }
}

/// A recording: 8 kHz mono 16-bit PCM samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptAudio {
    /// The samples at [`SAMPLE_RATE`].
    pub samples: Vec<i16>,
}

impl PromptAudio {
    /// How long it plays.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }
}

/// Everything the IVR needs at run time, checked.
#[derive(Clone, Debug)]
pub struct LoadedIvr {
    /// The menus.
    pub scripts: IvrScripts,
    /// Every recording under `prompts/<lang>/`, including those the menus do not name
    /// (closed-office and queue fragments).
    pub prompts: BTreeMap<PromptId, PromptAudio>,
    /// Music on hold.
    pub music: PromptAudio,
}

impl LoadedIvr {
    /// The prompts among `names` that lack a recording in some language, for code that
    /// builds prompts by name (opening hours, queue position) to check at start-up.
    pub fn missing<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<PromptId> {
        let mut out = Vec::new();
        for name in names {
            for lang in Language::ALL {
                let id = PromptId::new(lang, name);
                if !self.prompts.contains_key(&id) {
                    out.push(id);
                }
            }
        }
        out
    }
}

/// Reads and checks every `*.toml` script in `dir`, every recording under `dir/prompts/<lang>/`
/// and the music on hold (`dir/prompts/music/<music>.wav`). Queue targets must be among
/// `known_queues`. Returns every problem found, sorted, or the loaded IVR.
pub fn load(dir: &Path, known_queues: &[QueueName]) -> Result<LoadedIvr, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let (files, all_parsed) = read_scripts(dir, &mut diags);
    let inv = prompts::Inventory::scan(&dir.join("prompts"), &mut diags);
    // Cross-file rules run only when every file parsed; otherwise they would only echo the
    // broken file (its menus would seem missing).
    let mut cross = Vec::new();
    let checked = validate::check(&files, &inv, known_queues, &mut cross);
    if all_parsed {
        if let Some(entry) = checked.entry {
            graph::check(&checked.menus, entry, &mut cross);
        }
        inv.check_pairs(&checked.named, &mut cross);
        diags.append(&mut cross);
    }
    let prompts = inv.load_all(&mut diags);
    let (music_name, music_at) = match checked.music {
        Some(m) => (m.value.as_str(), files.iter().find(|f| f.music.is_some()).map(|f| (&f.path, m.line))),
        None => (DEFAULT_MUSIC, None),
    };
    let music_path = dir.join("prompts").join("music").join(format!("{music_name}.wav"));
    let music = match load_prompt_wav(&music_path) {
        Ok(m) => Some(m),
        Err(e) => {
            let (file, line) = music_at.map_or((&music_path, 1), |(p, l)| (p, l));
            diags.push(Diagnostic::new(file, line, format!("music on hold {}: {e}", music_path.display())));
            None
        }
    };
    if diags.is_empty() {
        match (validate::build(&checked), music) {
            (Ok(scripts), Some(music)) => return Ok(LoadedIvr { scripts, prompts, music }),
            (Err(msg), _) => diags.push(Diagnostic::new(dir, 1, msg)),
            (Ok(_), None) => {} // the music's problem is already reported
        }
    }
    diags.sort();
    diags.dedup();
    Err(diags)
}

/// Parses every `*.toml` directly in `dir`, in name order; also says whether all parsed.
fn read_scripts(dir: &Path, diags: &mut Vec<Diagnostic>) -> (Vec<parse::ScriptFile>, bool) {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            diags.push(Diagnostic::new(dir, 1, format!("cannot read the scripts folder: {e}")));
            return (Vec::new(), false);
        }
    };
    paths.sort();
    if paths.is_empty() {
        diags.push(Diagnostic::new(dir, 1, "no script files (*.toml) in this folder"));
    }
    let mut files = Vec::new();
    let mut all_parsed = true;
    for path in paths {
        match fs::read_to_string(&path) {
            Ok(text) => {
                let (file, mut found) = parse::parse_file(&path, &text);
                diags.append(&mut found);
                all_parsed &= file.is_some();
                files.extend(file);
            }
            Err(e) => {
                diags.push(Diagnostic::new(&path, 1, format!("cannot read: {e}")));
                all_parsed = false;
            }
        }
    }
    (files, all_parsed)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::fixture::{queues, Fixture};
    use super::*;
    use crate::engine::ids::DtmfDigit;
    use crate::engine::ivr::{IvrAction, IvrRun, MenuId, Target};

    /// The queues named in the shipped scripts; the default config defines them.
    const SHIPPED_QUEUES: [&str; 15] = [
        "demografici_anagrafe",
        "demografici_cie",
        "demografici_stato_civile",
        "demografici_elettorale",
        "tributi",
        "educazione",
        "patrimonio",
        "servizi_persona",
        "informagiovani",
        "municipio_1",
        "municipio_2",
        "municipio_3",
        "municipio_4",
        "municipio_5",
        "generale",
    ];

    fn shipped() -> LoadedIvr {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/ivr-scripts"));
        let queues: Vec<QueueName> = SHIPPED_QUEUES.iter().map(|q| QueueName(q.to_string())).collect();
        match load(dir, &queues) {
            Ok(l) => l,
            Err(d) => {
                panic!("shipped scripts have problems:\n{}", d.iter().map(|d| d.to_string() + "\n").collect::<String>())
            }
        }
    }

    #[test]
    fn shipped_scripts_load_and_use_every_queue() {
        let loaded = shipped();
        let mut used = std::collections::BTreeSet::new();
        for m in loaded.scripts.menus() {
            for t in m.options.values().chain([&m.on_timeout]) {
                if let Target::Queue { queue, .. } = t {
                    used.insert(queue.0.clone());
                }
            }
        }
        let all: std::collections::BTreeSet<String> = SHIPPED_QUEUES.iter().map(|q| q.to_string()).collect();
        assert_eq!(used, all);
        let secs = loaded.music.duration().as_secs();
        assert!((20..=30).contains(&secs), "music on hold lasts {secs} s");
    }

    #[test]
    fn shipped_prompts_cover_schedule_and_queue_fragments() {
        let loaded = shipped();
        let mut names: Vec<String> = [
            "benvenuto",
            "scelta_non_valida",
            "trasferimento",
            "attesa",
            "arrivederci",
            "ufficio_chiuso",
            "ufficio_chiuso_festivo",
            "ufficio_chiuso_straordinario",
            "riapriamo",
            "oggi",
            "domani",
            "alle_ore",
            "e",
            "posizione_oltre",
            "attesa_stimata",
            "minuti",
            "minuto",
            "meno_di_un_minuto",
            "servizi_online",
            "chiusura_coda",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend((1..=7).map(|d| format!("wd_{d}")));
        names.extend((1..=12).map(|m| format!("month_{m}")));
        names.extend((0..=59).map(|n| format!("num_{n}")));
        names.extend((1..=10).map(|p| format!("posizione_{p}")));
        assert_eq!(loaded.missing(names.iter().map(|s| s.as_str())), vec![]);
    }

    #[test]
    fn shipped_english_path_reaches_a_queue_in_english() {
        let loaded = shipped();
        let s = &loaded.scripts;
        assert_eq!(s.entry(), &MenuId::new("principale"));
        #[allow(clippy::disallowed_methods)] // any origin: only differences matter
        let now = Instant::now();
        let (mut run, _) = IvrRun::start(s, now);
        let key = |c| DtmfDigit::from_char(c).unwrap();
        run.handle_digit(s, now, key('9'));
        assert_eq!(run.language(), Language::En);
        run.handle_digit(s, now, key('1'));
        let out = run.handle_digit(s, now, key('2'));
        assert!(out.contains(&IvrAction::EnterQueue(QueueName("demografici_cie".into()))), "{out:?}");
        assert!(out.iter().any(|a| matches!(a, IvrAction::Play { prompts, .. } if prompts[0].lang == Language::En)));
        assert_eq!(run.path().len(), 3);
        assert_eq!(run.path()[0], "principale:9");
    }

    #[test]
    fn fixture_loads_cleanly() {
        let f = Fixture::new();
        let loaded = match f.load() {
            Ok(l) => l,
            Err(d) => panic!("{d:?}"),
        };
        assert_eq!(loaded.scripts.menus().count(), 4);
        assert_eq!(loaded.prompts.len(), 14);
        assert_eq!(loaded.scripts.welcome(), [PromptId::new(Language::It, "benvenuto")]);
    }

    #[test]
    fn syntax_error_is_reported_with_its_line() {
        let f = Fixture::new();
        f.edit("english.toml", "1 = { menu = \"registry\" }", "1 = { menu = \"registry\" ");
        let d = f.errors();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with(&f.loc("english.toml", "1 = { menu = \"registry\"")), "{d:?}");
    }

    #[test]
    fn duplicate_digit_is_reported_with_its_line() {
        let f = Fixture::new();
        f.edit("principale.toml", "9 = { language", "2 = { queue = \"generale\" }\n9 = { language");
        let d = f.errors();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with(&f.loc("principale.toml", "2 = { queue = \"generale\" }")), "{d:?}");
        assert!(d[0].contains("duplicate key `2`"), "{d:?}");
    }

    #[test]
    fn bad_wav_formats_are_reported_per_file() {
        let f = Fixture::new();
        f.wav("prompts/it/trasferimento.wav", 16000, 1);
        f.wav("prompts/en/trasferimento.wav", 8000, 2);
        f.wav("prompts/music/attesa.wav", 44100, 2);
        let d = f.errors();
        assert_eq!(d.len(), 3, "{d:?}");
        let it = format!(
            "{}:1: must be 8000 Hz mono 16-bit PCM; this file is 16000 Hz",
            f.path("prompts/it/trasferimento.wav").display()
        );
        assert!(d.iter().any(|m| m.starts_with(&it)), "{d:?}");
        assert!(d.iter().any(|m| m.contains("2 channel(s)") && m.contains("en/trasferimento.wav:1:")), "{d:?}");
        assert!(
            d.iter().any(|m| m.starts_with(&f.loc("principale.toml", "music = ")) && m.contains("44100 Hz")),
            "{d:?}"
        );
    }

    #[test]
    fn empty_or_missing_folder_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = load(dir.path(), &queues()).unwrap_err();
        assert!(d.iter().any(|d| d.message.contains("no script files")), "{d:?}");
        let d = load(&dir.path().join("nope"), &queues()).unwrap_err();
        assert!(d[0].message.starts_with("cannot read the scripts folder"), "{d:?}");
    }

    #[test]
    fn diagnostic_prints_file_line_message() {
        let d = Diagnostic::new(Path::new("ivr-scripts/principale.toml"), 12, "unknown queue 'x'");
        assert_eq!(d.to_string(), "ivr-scripts/principale.toml:12: unknown queue 'x'");
        assert_eq!(PromptAudio { samples: vec![0; 8000] }.duration(), Duration::from_secs(1));
    }
}
