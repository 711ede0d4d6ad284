//! The server's own machine, as the server describes it over the control
//! connection (the server-environment call, `docs/protocol.md` 10.2): with
//! `--connect` to another host, the results record both machines.

use wirebench_reports::model::ServerEnvironment;
use wirebench_transports::host::HostInfo;
use wirebench_transports::{ClientConfig, Transport};

use crate::cell::ServerCpuSource;

/// Asks the server behind `source` for its machine; `Err` says why not
/// (a server older than the call answers it with status 12).
pub fn server_environment(source: &ServerCpuSource, config: &ClientConfig) -> Result<ServerEnvironment, String> {
    let config = ClientConfig { connections: 1, ..config.clone() };
    let info = match source {
        // The servers are this process: its machine is theirs.
        ServerCpuSource::InProcess => HostInfo::capture(),
        ServerCpuSource::Unavailable(why) => return Err((*why).to_owned()),
        ServerCpuSource::Control(endpoint) | ServerCpuSource::ControlInNetns(endpoint, _) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            runtime.block_on(async {
                let client = match source {
                    ServerCpuSource::ControlInNetns(_, netns) => {
                        crate::link::control_client(endpoint, netns, &config).await?
                    }
                    _ => <wirebench_transports::tcp::Tcp as Transport>::connect(endpoint, &config)
                        .await
                        .map_err(|e| e.to_string())?,
                };
                client.server_environment().await.map_err(|e| format!("the server-environment call failed: {e}"))
            })?
        }
    };
    Ok(model(info))
}

/// The results file's form of a server's self-description.
pub fn model(info: HostInfo) -> ServerEnvironment {
    ServerEnvironment {
        version: info.version,
        cpu_model: info.cpu_model,
        cores: info.cores as usize,
        kernel: info.kernel,
        os: info.os,
        hostname: info.hostname,
    }
}
