//! The MQTT source over TLS with a username and a password read from a file, against a real
//! Mosquitto that refuses anonymous and plain-text clients.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority and a server certificate for 127.0.0.1, made with openssl.
fn certificates(dir: &Path) {
    let p = |f: &str| dir.join(f);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=hydrowatch test CA",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(p("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("san.ext"))
        .arg("-out")
        .arg(p("server.crt")));
}

#[test]
fn readings_arrive_over_tls_with_a_username_and_a_password_file() {
    let secrets = tempfile::tempdir().unwrap();
    certificates(secrets.path());
    let passwd = secrets.path().join("passwd");
    run(Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["gauge-hub", "s3cret pass"]));
    let mqtt = Mosquitto::start_with(false, |_| {
        format!(
            "cafile {dir}/ca.crt\ncertfile {dir}/server.crt\nkeyfile {dir}/server.key\n\
             allow_anonymous false\npassword_file {passwd}\n",
            dir = secrets.path().display(),
            passwd = passwd.display()
        )
    });
    let password_file = secrets.path().join("mqtt-password");
    std::fs::write(&password_file, "s3cret pass\n").unwrap();

    let config = HwConfig::new(&mqtt)
        .mqtt_url(&format!("mqtts://127.0.0.1:{}", mqtt.port()))
        .mqtt(&format!(
            "ca_file = \"{}\"",
            secrets.path().join("ca.crt").display()
        ))
        .mqtt("username = \"gauge-hub\"")
        .mqtt(&format!("password_file = \"{}\"", password_file.display()))
        .body("[[stations]]\nid = \"62304000\"\nname = \"横排头\"\n")
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));

    run(Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.port().to_string(), "-q", "1"])
        .arg("--cafile")
        .arg(secrets.path().join("ca.crt"))
        .args([
            "-u",
            "gauge-hub",
            "-P",
            "s3cret pass",
            "-t",
            "hydro/62304000/data",
        ])
        .args([
            "-m",
            r#"{"time":"2021-07-20T08:05:00+08:00","level_m":58.75}"#,
        ]));
    wait_until_msg(
        Duration::from_secs(20),
        "the reading in the journal",
        || {
            let (_, body) = hw.http_get("/api/v1/stations/62304000");
            body.contains("\"latest_level_m\":58.75")
        },
    );
}
