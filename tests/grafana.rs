//! The Grafana dashboard and provisioning under `deploy/grafana/`: the JSON is valid, refers to
//! the contract's measurements and fields, and every query in it runs against a real InfluxDB
//! that a real hydrowatch has filled, returning data.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const DB: &str = "hydro";

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/hydrowatch.json"))
        .expect("the dashboard is valid JSON")
}

/// Every InfluxQL query in the dashboard: (where, query).
fn queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["rawQuery"], true, "raw InfluxQL: {target}");
            out.push((
                format!("panel `{}` {}", panel["title"], target["refId"]),
                target["query"].as_str().expect("query").to_string(),
            ));
        }
    }
    for annotation in dash["annotations"]["list"].as_array().expect("annotations") {
        if let Some(q) = annotation["query"].as_str() {
            out.push((
                format!("annotation `{}`", annotation["name"]),
                q.to_string(),
            ));
        }
    }
    for variable in dash["templating"]["list"].as_array().expect("variables") {
        if variable["type"] == "query" {
            out.push((
                format!("variable `{}`", variable["name"]),
                variable["query"].as_str().expect("query").to_string(),
            ));
        }
    }
    out
}

/// The variables' default values, as Grafana would substitute them.
fn defaults(dash: &Value) -> HashMap<String, String> {
    dash["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| {
            let value = v["current"]["value"].as_str()?;
            Some((v["name"].as_str()?.to_string(), value.to_string()))
        })
        .collect()
}

#[test]
fn dashboard_refers_to_the_contract_measurements_and_fields() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "hydrowatch-levels");
    assert!(dash["id"].is_null(), "importable: no database id");
    let all: Vec<String> = queries(&dash).into_iter().map(|(_, q)| q).collect();
    let has = |measurement: &str, field: &str| {
        all.iter().any(|q| {
            q.contains(&format!("FROM \"{measurement}\"")) && q.contains(&format!("\"{field}\""))
        })
    };
    assert!(has("water_level", "level_m"), "{all:#?}");
    assert!(has("rainfall", "rain_mm"), "{all:#?}");
    assert!(has("alert_event", "state"), "{all:#?}");
    assert!(all.iter().any(|q| q.contains("\"station\"")), "station tag");

    // Rain is drawn as bars; alert events are annotations.
    let rain = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| {
            p["targets"][0]["query"]
                .as_str()
                .is_some_and(|q| q.contains("\"rainfall\""))
        })
        .expect("a rainfall panel");
    assert_eq!(
        rain["fieldConfig"]["defaults"]["custom"]["drawStyle"],
        "bars"
    );
    let annotation = dash["annotations"]["list"]
        .as_array()
        .expect("annotations")
        .iter()
        .find(|a| {
            a["query"]
                .as_str()
                .is_some_and(|q| q.contains("\"alert_event\""))
        })
        .expect("alert events as annotations");
    assert_eq!(annotation["enable"], true);

    // A template variable over the station tag, and stage lines for the level panel.
    let variables = defaults(&dash);
    for name in ["guard_m", "warning_m", "guaranteed_m", "record_m"] {
        let value = variables
            .get(name)
            .unwrap_or_else(|| panic!("variable {name}"));
        assert!(value.parse::<f64>().is_ok(), "{name} = {value}");
    }
    let station = dash["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "station")
        .expect("a station variable");
    assert!(station["query"]
        .as_str()
        .is_some_and(|q| q.contains("WITH KEY = \"station\"")));

    // Every panel and query goes through the datasource variable, whose default is the
    // provisioned datasource's uid.
    let provisioning = read("deploy/grafana/provisioning/datasources/hydrowatch.yaml");
    assert!(provisioning.contains("type: influxdb"));
    assert!(provisioning.contains("dbName: hydro"));
    assert_eq!(variables["datasource"], "hydrowatch-influxdb");
    assert!(provisioning.contains("uid: hydrowatch-influxdb"));
    for panel in dash["panels"].as_array().expect("panels") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "${datasource}");
        }
    }
    let provider = read("deploy/grafana/provisioning/dashboards/hydrowatch.yaml");
    assert!(provider.contains("type: file") && provider.contains("path:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_what_hydrowatch_wrote() {
    let mqtt = Mosquitto::start(false);
    let influx = Influx::start();
    influx.create_database(DB);
    let config = HwConfig::new(&mqtt)
        .client_id("hw-grafana")
        .influx_v1(&influx, DB)
        .influxdb(r#"flush_interval = "50ms""#)
        .body(
            r#"[[stations]]
id = "62304000"
name = "横排头"
stages = { guard = 57.5, warning = 59.0, guaranteed = 61.0, record = 62.1 }
"#,
        )
        .build();
    let hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    let now = now_s();
    let readings: Vec<Value> = (0..12)
        .map(|i| {
            json!({"time": now - 3600 + i * 300, "level_m": 57.0 + i as f64 * 0.2,
                   "rain_mm": 1.5, "rain_period_s": 300})
        })
        .collect();
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/62304000/data".into(),
            json!(readings).to_string().into_bytes(),
        )],
    )
    .await;
    tokio::task::spawn_blocking(move || {
        wait_until_msg(
            Duration::from_secs(30),
            "readings and alert events in InfluxDB",
            || {
                influx.count(DB, "SELECT count(level_m) FROM water_level") == 12
                    && influx.count(DB, "SELECT count(rain_mm) FROM rainfall") == 12
                    && influx.count(DB, "SELECT count(state) FROM alert_event") >= 2
            },
        );

        let dash = dashboard();
        let mut variables = defaults(&dash);
        variables.insert("station".into(), "62304000".into());
        variables.insert("__interval".into(), "5m".into());
        variables.insert("timeFilter".into(), "time > now() - 2d".into());
        for (place, query) in queries(&dash) {
            let mut q = query.clone();
            // Longest names first, so `$station` never eats a prefix of a longer name.
            let mut names: Vec<&String> = variables.keys().collect();
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            for name in names {
                q = q
                    .replace(&format!("${{{name}}}"), &variables[name])
                    .replace(&format!("${name}"), &variables[name]);
            }
            let unsubstituted = q.match_indices('$').any(|(i, _)| {
                q[i + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| c == '{' || c == '_' || c.is_ascii_alphabetic())
            });
            assert!(!unsubstituted, "{place}: unsubstituted variable in {q}");
            let result = influx.query(DB, &q);
            let series = result["results"][0]["series"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(
                !series.is_empty(),
                "{place}: `{q}` returned nothing: {result}"
            );
            let values = series[0]["values"].as_array().cloned().unwrap_or_default();
            assert!(!values.is_empty(), "{place}: `{q}` has no rows: {result}");
            if q.contains("alert_event") && q.contains("\"state\"") && !q.starts_with("SHOW") {
                let columns = series[0]["columns"].to_string();
                assert!(columns.contains("state"), "{place}: {columns}");
                let text = series[0]["values"].to_string();
                assert!(text.contains("firing"), "{place}: {text}");
            }
            if q.contains("* 0 +") {
                let warning = variables["warning_m"].parse::<f64>().expect("number");
                let stage_line = values
                    .iter()
                    .filter_map(|row| row[1].as_f64())
                    .collect::<Vec<_>>();
                if q.contains("warning") {
                    assert!(
                        stage_line.iter().all(|v| (v - warning).abs() < 1e-9),
                        "{place}: the warning line is flat at {warning}: {stage_line:?}"
                    );
                }
            }
        }
        drop(hw);
    })
    .await
    .expect("join");
}
