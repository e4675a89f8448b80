//! The hydrowatch configuration a test writes: the `[mqtt]`, `[influxdb]`, `[journal]` and
//! `[http]` sections every test needs, then the test's own sections (rules, teams, stations).
//! `{dir}` and `{http_port}` are left for [`super::Hydrowatch::start`] to fill in.

use super::{Influx, Mosquitto};

/// Builder for a configuration file's text; [`HwConfig::build`] gives the TOML.
#[derive(Clone, Debug)]
pub struct HwConfig {
    mqtt: Vec<String>,
    influxdb: Vec<String>,
    journal: String,
    journal_lines: Vec<String>,
    http: Vec<String>,
    body: String,
}

fn quoted(key: &str, value: &str) -> String {
    format!("{key} = \"{value}\"")
}

impl HwConfig {
    /// Against this broker, as client `hw-{http_port}`, journal in the test's directory,
    /// HTTP on the test's port; no InfluxDB.
    pub fn new(mqtt: &Mosquitto) -> HwConfig {
        HwConfig {
            mqtt: vec![
                quoted("url", &mqtt.url()),
                quoted("client_id", "hw-{http_port}"),
            ],
            influxdb: Vec::new(),
            journal: "{dir}/journal.db".into(),
            journal_lines: Vec::new(),
            http: vec![quoted("listen", "127.0.0.1:{http_port}")],
            body: String::new(),
        }
    }

    /// The MQTT client id `{prefix}-{http_port}` (unique per daemon).
    pub fn client_id(mut self, prefix: &str) -> HwConfig {
        self.mqtt[1] = quoted("client_id", &format!("{prefix}-{{http_port}}"));
        self
    }

    /// Another broker URL (e.g. `mqtts://` for TLS).
    pub fn mqtt_url(mut self, url: &str) -> HwConfig {
        self.mqtt[0] = quoted("url", url);
        self
    }

    /// One more line in `[mqtt]`.
    pub fn mqtt(mut self, line: &str) -> HwConfig {
        self.mqtt.push(line.into());
        self
    }

    /// Writing to this InfluxDB 1.x database.
    pub fn influx_v1(self, influx: &Influx, database: &str) -> HwConfig {
        self.influxdb(&quoted("url", &influx.url()))
            .influxdb(&quoted("api", "v1"))
            .influxdb(&quoted("database", database))
    }

    /// One more line in `[influxdb]`.
    pub fn influxdb(mut self, line: &str) -> HwConfig {
        self.influxdb.push(line.into());
        self
    }

    /// The journal's path.
    pub fn journal(mut self, path: &str) -> HwConfig {
        self.journal = path.into();
        self
    }

    /// One more line in `[journal]`.
    pub fn journal_line(mut self, line: &str) -> HwConfig {
        self.journal_lines.push(line.into());
        self
    }

    /// One more line in `[http]`.
    pub fn http(mut self, line: &str) -> HwConfig {
        self.http.push(line.into());
        self
    }

    /// The test's own sections, after the common ones.
    pub fn body(mut self, toml: &str) -> HwConfig {
        self.body = toml.into();
        self
    }

    pub fn build(&self) -> String {
        let mut out = format!("\n[mqtt]\n{}\n", self.mqtt.join("\n"));
        if !self.influxdb.is_empty() {
            out += &format!("\n[influxdb]\n{}\n", self.influxdb.join("\n"));
        }
        out += &format!("\n[journal]\n{}\n", quoted("path", &self.journal));
        for line in &self.journal_lines {
            out += &format!("{line}\n");
        }
        out += &format!("\n[http]\n{}\n\n", self.http.join("\n"));
        out + &self.body
    }
}
