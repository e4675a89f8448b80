//! Ingest: where gauge messages enter hydrowatch. [`decode`] is the payload contract (pure);
//! [`mqtt`] is the source that feeds the journal writer and acknowledges after commit;
//! [`sl651`] feeds it SL 651 frames (TCP and MQTT-bridged) and answers RTUs after commit.

pub mod decode;
pub mod mqtt;
pub mod sl651;
