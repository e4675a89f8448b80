//! The InfluxDB 2 write path. No InfluxDB 2 server can be installed on the build machines
//! (Debian ships 1.6), so this is a contract test: an in-process HTTP server stands where
//! InfluxDB 2 would, and the test checks the exact request hydrowatch sends.

mod common;
#[path = "support/receiver.rs"]
mod receiver;

use std::time::Duration;

use common::*;
use receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_writes_line_protocol_to_api_v2_write_with_org_bucket_token_and_ms_precision() {
    let mqtt = Mosquitto::start(false);
    let influx2 = Receiver::start().await;
    influx2.set_status(204); // what /api/v2/write answers on success
    let config = HwConfig::new(&mqtt)
        .influxdb(&format!(r#"url = "{}""#, influx2.url("")))
        .influxdb(r#"api = "v2""#)
        .influxdb(r#"org = "county office""#)
        .influxdb(r#"bucket = "hydro""#)
        .influxdb(r#"token = "s3cr3t-token""#)
        .influxdb(r#"flush_interval = "50ms""#)
        .body(
            r#"[[stations]]
id = "62304000"
name = "横排头"
river = "淠河 east"
"#,
        )
        .build();
    let _hw = Hydrowatch::start_ready(&config, Duration::from_secs(30));
    publish_all(
        mqtt.port(),
        vec![(
            "hydro/62304000/data".into(),
            br#"{"time":"2021-07-20T08:05:00+08:00","level_m":59.32,"rain_mm":1.5,"rain_period_s":300}"#.to_vec(),
        )],
    )
    .await;
    wait_until_async(Duration::from_secs(20), "a write request", || {
        !influx2.all().is_empty()
    })
    .await;

    let request = &influx2.all()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/v2/write");
    let mut query: Vec<&str> = request.query.split('&').collect();
    query.sort();
    assert_eq!(query, ["bucket=hydro", "org=county+office", "precision=ms"]);
    assert_eq!(request.header("authorization"), Some("Token s3cr3t-token"));
    assert_eq!(
        String::from_utf8(request.body.clone()).unwrap(),
        "water_level,station=62304000,river=淠河\\ east level_m=59.32 1626739500000\n\
         rainfall,station=62304000 rain_mm=1.5,period_s=300i 1626739500000\n"
    );
    // Answered 204, so the batch is done: no second attempt of the same readings.
    assert!(request.accepted);
}
