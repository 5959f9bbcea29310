//! Local tooling, never deployed: the template reader, the local stack's
//! set-up, the admin CLI's bootstrap and the local gateway.

pub mod access_log;
pub mod bootstrap;
pub mod calls;
pub mod crates;
pub mod emulator;
pub mod gateway;
pub mod local;
pub mod receiver;
pub mod resources;
pub mod template;
pub mod workers;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
