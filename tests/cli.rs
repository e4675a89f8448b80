//! The command line: `check-config` validates what `run` would load and names every problem
//! with its file, station or team, and key; usage errors exit 2.

use std::path::Path;
use std::process::Command;

fn hydrowatch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run hydrowatch");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_sample_configuration_is_valid() {
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", "config/hydrowatch.toml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("stations: 4"), "{stdout}");
    assert!(stdout.contains("teams:    3"), "{stdout}");
}

#[test]
fn a_broken_configuration_names_file_station_team_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        r#"
[mqtt]
url = "ftp://broker"

[influxdb]
url = "not a url"
database = "hydro"

[[teams]]
id = "east"
  [[teams.channels]]
  kind = "pager"
  [[teams.channels]]
  kind = "webhook"
  url = "gopher://hook"

[[stations]]
id = "62304000"
team = "west"
stages = { guard = 59.0, warning = 57.5 }
interval = "5 parsecs"

[[stations]]
id = "62304000"
"#,
    )
    .unwrap();
    let file = broken.to_str().unwrap();
    let (code, stdout, stderr) =
        hydrowatch(&["check-config", "-c", "config/hydrowatch.toml", "-c", file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let expect = [
        format!("{file}: stations[62304000].stages: stage levels must ascend: guard = 59 then warning = 57.5"),
        format!("{file}: stations[62304000].team: unknown team `west`"),
        format!("{file}: stations[62304000].interval: `5 parsecs` is not a duration"),
        format!("{file}: stations[62304000].id: duplicate station id"),
        format!("{file}: teams[east].channels[0].kind: `pager` is not one of"),
        format!("{file}: teams[east].channels[1].url: `gopher://hook` is not an http(s) URL"),
        format!("{file}: mqtt.url: scheme `ftp` is not mqtt:// or mqtts://"),
        format!("{file}: influxdb.url: `not a url` is not a URL"),
    ];
    for line in &expect {
        assert!(
            stderr.contains(line.as_str()),
            "missing `{line}` in:\n{stderr}"
        );
    }
}

#[test]
fn a_type_error_names_the_key_and_a_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let typed = dir.path().join("typed.toml");
    std::fs::write(&typed, "[rules]\nclear_margin_m = \"five centimetres\"\n").unwrap();
    let (code, _, stderr) = hydrowatch(&["check-config", "-c", typed.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("rules.clear_margin_m") && stderr.contains("typed.toml"),
        "{stderr}"
    );

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[rules\n").unwrap();
    let (code, _, stderr) = hydrowatch(&["check-config", "-c", syntax.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{}: not valid TOML", syntax.display()))
            && stderr.contains("line 1"),
        "{stderr}"
    );

    let missing = Path::new("/nonexistent/hydrowatch.toml");
    let (code, _, stderr) = hydrowatch(&["check-config", "-c", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent/hydrowatch.toml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn environment_overrides_and_secret_files_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "from-a-file\n").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[influxdb]\nurl = \"http://127.0.0.1:8086\"\napi = \"v2\"\norg = \"county\"\nbucket = \"hydro\"\ntoken_file = \"{}\"\n", token.display()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hydrowatch"))
        .args(["check-config", "-c", cfg.to_str().unwrap()])
        .env("HYDROWATCH__HTTP__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("http:     127.0.0.1:9999"), "{stdout}");
    assert!(stdout.contains("\"v2\""), "{stdout}");

    std::fs::remove_file(&token).unwrap();
    let (code, _, stderr) = hydrowatch(&["check-config", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("influxdb.token_file: cannot read secret file"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, _) = hydrowatch(&["run", "--no-such-flag"]);
    assert_eq!(code, 2);
    let (code, _, _) = hydrowatch(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn an_sl323_csv_catalogue_is_imported_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("ST_STBPRP_B.csv");
    std::fs::write(
        &csv,
        "STCD,STNM,RVNM,BSNM,SFSW,WRZ,GRZ,OBHTZ,LAZ\n\
         62304000,横排头,淠河,淮河,57.5,59.0,61.0,62.1,51.0\n\
         62304500,六安,淠河,淮河,,30.5,32.0,,\n",
    )
    .unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, format!("catalog = [\"{}\"]\n", csv.display())).unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("stations: 2"), "{stdout}");
    assert!(stdout.contains("stage 2, drought 1"), "{stdout}");

    // Levels out of order in the CSV are reported against the CSV file and the station.
    std::fs::write(&csv, "STCD,WRZ,GRZ\n62304000,61.0,59.0\n").unwrap();
    let (code, _, stderr) = hydrowatch(&["check-config", "-c", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{}: stations[62304000].stages: stage levels must ascend",
            csv.display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_embedded_broker_open_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broker.toml");
    let file = cfg.to_str().unwrap();
    std::fs::write(
        &cfg,
        "[broker]\nembedded = true\nlisten = \"0.0.0.0:1883\"\ntls_listen = \"0.0.0.0:8883\"\n\
         tls_cert_file = \"/nonexistent/broker.crt\"\ntls_key_file = \"/nonexistent/broker.key\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    for line in [
        format!("{file}: broker.listen: `0.0.0.0:1883` reaches beyond this machine and the broker has no users"),
        format!("{file}: broker.tls_listen: `0.0.0.0:8883` reaches beyond this machine"),
        format!("{file}: broker.tls_cert_file: cannot use /nonexistent/broker.crt"),
    ] {
        assert!(stderr.contains(&line), "missing `{line}` in:\n{stderr}");
    }

    // On loopback an open broker is fine (the demo); beyond it, users make it fine.
    std::fs::write(
        &cfg,
        "[broker]\nembedded = true\nlisten = \"127.0.0.1:1883\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    std::fs::write(
        &cfg,
        "[broker]\nembedded = true\nlisten = \"0.0.0.0:1883\"\nusername = \"gauges\"\npassword = \"\"\n\
         users = [{ username = \"gauges\", password = \"x\" }]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "{file}: broker.password: user `gauges` has an empty password"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}: broker.users[0].username: user `gauges` is listed twice"
        )),
        "{stderr}"
    );
    std::fs::write(
        &cfg,
        "[broker]\nembedded = true\nlisten = \"0.0.0.0:1883\"\nusername = \"gauges\"\npassword = \"s3cret\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn empty_and_shared_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tokens.toml");
    let file = cfg.to_str().unwrap();
    std::fs::write(
        &cfg,
        r#"
[http]
read_token = "office-read"

[[teams]]
id = "east"
token = ""

[[teams]]
id = "west"
token = "same"

[[teams]]
id = "north"
token = "same"

[[teams]]
id = "south"
token = "office-read"
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    for line in [
        format!("{file}: teams[east].token: is empty"),
        format!("{file}: teams[north].token: is also team `west`'s token"),
        format!("{file}: teams[south].token: is also http.read_token"),
    ] {
        assert!(stderr.contains(&line), "missing `{line}` in:\n{stderr}");
    }
}

#[test]
fn sl651_addresses_must_be_ten_hex_digits_and_unique_and_each_problem_names_its_station() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("rtus.toml");
    std::fs::write(
        &cfg,
        r#"
[sl651]
listen = "0.0.0.0:5005"
reply_end = "bye"
idle_timeout = "soon"

[[stations]]
id = "a"
sl651_address = "0062304000"

[[stations]]
id = "b"
sl651_address = "0062304000"

[[stations]]
id = "c"
sl651_address = "62304000"

[[stations]]
id = "d"
sl651_address = "00623040ZZ"
sl651_level = "ZQ"

[[stations]]
id = "e"
sl651_level = "ZU"
"#,
    )
    .unwrap();
    let file = cfg.to_str().unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let expect = [
        format!("{file}: stations[b].sl651_address: 0062304000 is already station `a`'s address"),
        format!("{file}: stations[c].sl651_address: `62304000` is not a station address: expected 10 hexadecimal digits"),
        format!("{file}: stations[d].sl651_address: `00623040ZZ` is not a station address"),
        format!("{file}: stations[d].sl651_level: sl651_level `ZQ`: expected Z, ZU or ZB"),
        format!("{file}: stations[e].sl651_level: needs sl651_address"),
        format!("{file}: sl651.reply_end: `bye` is not \"eot\" or \"esc\""),
        format!("{file}: sl651.idle_timeout: `soon` is not a duration"),
    ];
    for line in &expect {
        assert!(
            stderr.contains(line.as_str()),
            "missing `{line}` in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("stations[a]"),
        "the first holder of an address is not at fault:\n{stderr}"
    );

    // Fixed, the summary counts the stations that speak SL 651.
    std::fs::write(
        &cfg,
        "[sl651]\nlisten = \"0.0.0.0:5005\"\n\n[[stations]]\nid = \"a\"\nsl651_address = \"0062304000\"\nsl651_level = \"zb\"\n\n[[stations]]\nid = \"b\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = hydrowatch(&["check-config", "-c", file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("sl651:    listening on 0.0.0.0:5005 (1 stations with an address)"),
        "{stdout}"
    );
}
