//! What is wrong with a configuration, and where each part of it came from: the vocabulary
//! that loading (`load.rs`) and validation (`validate.rs`) share, so that every problem names
//! its file and key.

use std::collections::HashMap;
use std::fmt;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file the key came from, when known.
    pub file: Option<String>,
    /// Dotted key, with the station or team it belongs to, e.g. `stations[62304000].stages`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.key.is_empty()) {
            (Some(file), false) => write!(f, "{file}: {}: {}", self.key, self.message),
            (Some(file), true) => write!(f, "{file}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.key, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// Every problem found; the configuration is unusable while this is non-empty.
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Which file each section, station and team was last defined in (later files win).
#[derive(Debug, Default)]
pub(super) struct Origins {
    /// The file of each entry of the final station list, in order: the `stations` array of
    /// the last file that sets one, then each catalogue's stations.
    pub station_files: Vec<String>,
    pub teams: HashMap<String, String>,
    pub sections: HashMap<String, String>,
}

impl Origins {
    pub(super) fn record(&mut self, file: &str, value: &toml::Value) {
        let Some(table) = value.as_table() else {
            return;
        };
        for (section, v) in table {
            self.sections.insert(section.clone(), file.to_string());
            if section == "stations" {
                let n = v.as_array().map_or(0, |a| a.len());
                self.station_files = vec![file.to_string(); n];
            }
            if section == "teams" {
                for item in v.as_array().into_iter().flatten() {
                    if let Some(id) = item.get("id").and_then(|i| i.as_str()) {
                        self.teams.insert(id.to_string(), file.to_string());
                    }
                }
            }
        }
    }

    /// The file the `index`th station of the final list was defined in.
    pub fn station(&self, index: usize) -> Option<String> {
        self.station_files
            .get(index)
            .cloned()
            .or_else(|| self.sections.get("stations").cloned())
    }

    /// The file a team was defined in.
    pub fn team(&self, id: &str) -> Option<String> {
        self.teams
            .get(id)
            .cloned()
            .or_else(|| self.sections.get("teams").cloned())
    }

    /// The file a section was last set in.
    pub fn section(&self, name: &str) -> Option<String> {
        self.sections.get(name).cloned()
    }
}

/// Reads a secret from `value`, or from the file named by `file` (trailing newline removed).
pub(super) fn secret(
    value: Option<String>,
    file: Option<String>,
    key: &str,
    origin: Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match (value, file) {
        (Some(v), _) => Some(v),
        (None, Some(f)) => match std::fs::read_to_string(&f) {
            Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => {
                problems.push(Problem {
                    file: origin,
                    key: format!("{key}_file"),
                    message: format!("cannot read secret file `{f}`: {e}"),
                });
                None
            }
        },
        (None, None) => None,
    }
}
