//! The IVR: a typed model of the menus and a sans-IO interpreter walking one caller through them.
//!
//! Owns: [`IvrScripts`] (menus, choices, targets) and [`IvrRun`] (one caller's position,
//! retries, language and path). Inputs are keys, playback completions and timeouts, each with
//! `now`; outputs are [`IvrAction`]s (play, stop, set language, enter queue, hang up).
//! Must not touch: files, TOML, audio (`ivr_scripts/` loads those), the clock, queues.

mod model;
mod run;
#[cfg(test)]
mod sim;

pub use model::{IvrScripts, Menu, MenuId, ScriptError, Target, REPEAT_KEY};
pub use run::{IvrAction, IvrRun};
