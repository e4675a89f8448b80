//! Ingest: where gauge messages enter hydrowatch. [`decode`] is the payload contract (pure);
//! [`mqtt`] is the source that feeds the journal writer and acknowledges after commit.

pub mod decode;
pub mod mqtt;
