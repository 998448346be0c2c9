//! Port checks before a start and after a stop: is it free on the loopback address,
//! and if not, who holds it (from `/proc`).

use std::net::{Ipv4Addr, TcpListener};

use cp_core::names::ServiceName;
use cp_drivers::DriverError;

use crate::procfs;

/// True when a server could listen on `127.0.0.1:port` now. (std sets
/// `SO_REUSEADDR`, so connections in TIME_WAIT do not count, as for the servers.)
pub(crate) fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// `pid 812 (postgres)`, when `/proc` tells who listens on `port`.
pub(crate) fn holder(port: u16) -> Option<String> {
    procfs::listener(port).map(|(pid, comm)| format!("pid {pid} ({comm})"))
}

/// Fails with [`DriverError::PortInUse`] for the first taken port.
pub(crate) fn ensure_free(
    service: &ServiceName,
    ports: &[(u16, String)],
) -> Result<(), DriverError> {
    for (port, setting) in ports {
        if !is_free(*port) {
            return Err(DriverError::PortInUse {
                service: service.clone(),
                port: *port,
                holder: holder(*port),
                setting: setting.clone(),
            });
        }
    }
    Ok(())
}
