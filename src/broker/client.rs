//! Connecting to a broker as a client: the options hydrowatch's MQTT connections share (the
//! gauge source and the notification channel), from the `[mqtt]` settings.

use std::time::Duration;

use rumqttc::{AsyncClient, EventLoop, MqttOptions, TlsConfiguration, Transport};

use crate::config::Settings;

/// Errors setting up the MQTT client.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("mqtt.ca_file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
}

/// Builds the client and its event loop from the settings.
pub fn client(settings: &Settings) -> Result<(AsyncClient, EventLoop), SourceError> {
    let m = &settings.mqtt;
    let mut options = MqttOptions::new(&m.client_id, &m.host, m.port);
    options
        .set_keep_alive(m.keep_alive.max(Duration::from_secs(5)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(settings.limits.max_packet_bytes(), 1024 * 1024)
        .set_inflight(100);
    if let Some(user) = &m.username {
        options.set_credentials(user, m.password.clone().unwrap_or_default());
    }
    if m.tls {
        let ca = match &m.ca_file {
            Some(path) => std::fs::read(path).map_err(|source| SourceError::CaFile {
                path: path.display().to_string(),
                source,
            })?,
            None => Vec::new(),
        };
        let transport = if ca.is_empty() {
            Transport::tls_with_default_config()
        } else {
            Transport::Tls(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth: None,
            })
        };
        options.set_transport(transport);
    }
    Ok(AsyncClient::new(options, 1024))
}
