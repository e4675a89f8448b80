//! Reading the layers: built-in defaults, each `-c` file in order, station catalogues, then the
//! `HYDROWATCH__SECTION__KEY` environment. Every failure becomes a [`Problem`] that names the
//! file and key, so `check-config` can list them all at once.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};

use super::problem::{Origins, Problem, Problems};
use super::raw::{RawCatalog, RawSettings, RawStation, DEFAULTS};
use super::validate::validate;
use super::Settings;

/// Loads and validates the configuration from `files`, layered in order over the defaults,
/// then the environment.
pub fn load(files: &[PathBuf]) -> Result<Settings, Problems> {
    let mut problems = Vec::new();
    let mut origins = Origins::default();
    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
    for path in files {
        let name = path.display().to_string();
        match read_toml(path) {
            Ok(value) => {
                origins.record(&name, &value);
                builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
            }
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    finish(builder, origins, files)
}

/// Loads from a TOML string (the demo's embedded configuration, tests), plus the environment.
pub fn load_from_str(text: &str) -> Result<Settings, Problems> {
    let mut origins = Origins::default();
    match toml::from_str::<toml::Value>(text) {
        Ok(v) => origins.record("<embedded>", &v),
        Err(e) => {
            return Err(Problems(vec![Problem {
                file: Some("<embedded>".into()),
                key: String::new(),
                message: format!("not valid TOML: {e}"),
            }]))
        }
    }
    let builder = Config::builder()
        .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(text, FileFormat::Toml));
    finish(builder, origins, &[])
}

fn finish(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    mut origins: Origins,
    files: &[PathBuf],
) -> Result<Settings, Problems> {
    let env = Environment::with_prefix("HYDROWATCH")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("mqtt.topics")
        .with_list_parse_key("catalog");
    let built = builder.add_source(env).build().map_err(one_problem)?;
    let mut raw: RawSettings = built.try_deserialize().map_err(one_problem)?;

    let mut problems = Vec::new();
    for entry in raw.catalog.clone() {
        let Some(path) = resolve_catalog(&entry, files) else {
            problems.push(Problem {
                file: origins.section("catalog"),
                key: "catalog".into(),
                message: format!("catalogue file `{entry}` not found"),
            });
            continue;
        };
        match read_catalog(&path) {
            Ok(stations) => {
                // Entries before the catalogue's keep their files; an environment override
                // of `stations` has none.
                origins
                    .station_files
                    .resize(raw.stations.len(), String::new());
                origins
                    .station_files
                    .extend(stations.iter().map(|_| path.display().to_string()));
                raw.stations.extend(stations);
            }
            Err(p) => problems.push(p),
        }
    }
    match validate(raw, &origins) {
        Ok(settings) if problems.is_empty() => Ok(settings),
        Ok(_) => Err(Problems(problems)),
        Err(mut more) => {
            problems.append(&mut more);
            Err(Problems(problems))
        }
    }
}

fn one_problem(e: config::ConfigError) -> Problems {
    Problems(vec![Problem {
        file: None,
        key: String::new(),
        message: e.to_string(),
    }])
}

fn read_toml(path: &Path) -> Result<toml::Value, Problem> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Problem {
        file: Some(name.clone()),
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    toml::from_str(&text).map_err(|e| Problem {
        file: Some(name),
        key: String::new(),
        message: format!("not valid TOML: {e}"),
    })
}

/// A catalogue path is taken as written (relative to the working directory), else relative
/// to the directory of each configuration file.
fn resolve_catalog(entry: &str, files: &[PathBuf]) -> Option<PathBuf> {
    let direct = PathBuf::from(entry);
    if direct.exists() {
        return Some(direct);
    }
    files
        .iter()
        .filter_map(|f| f.parent().map(|dir| dir.join(entry)))
        .find(|p| p.exists())
}

fn read_catalog(path: &Path) -> Result<Vec<RawStation>, Problem> {
    let name = path.display().to_string();
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return super::sl323::read_csv(path).map_err(|message| Problem {
            file: Some(name),
            key: String::new(),
            message,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| Problem {
        file: Some(name.clone()),
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    let catalog: RawCatalog = toml::from_str(&text).map_err(|e| Problem {
        file: Some(name),
        key: String::new(),
        message: format!("not a station catalogue: {e}"),
    })?;
    Ok(catalog.stations)
}
