//! Simulated BMCs: one per simulated host, each speaking Redfish over HTTP on its own port of
//! 127.0.0.1 (like a real BMC with its own network interface, so a test can take one BMC off the
//! network while the others keep answering). Its power actions really control the host: ForceOff pulls
//! the plug ([`SimHost::power_off`]), On boots it ([`SimHost::power_on`]).
//!
//! Faults for tests, per BMC: [`BmcFault::Unreachable`] stops listening (connections are refused and
//! open ones cut), [`BmcFault::Hang`] accepts connections but never answers, and
//! [`SimBmc::set_password`] makes the credentials a client holds wrong.

mod accounts;
mod redfish;

pub use accounts::{MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, random_password, validate_password};

use crate::SimHost;
use accounts::Accounts;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tower_http::normalize_path::NormalizePath;

/// How a pool's BMCs are set up.
#[derive(Clone, Debug)]
pub struct BmcSettings {
    pub username: String,
    /// The same password on every BMC; `None` gives each BMC its own random one.
    pub password: Option<String>,
    /// How long a GracefulShutdown waits for the VMs to stop before the power goes off anyway.
    pub graceful_shutdown_timeout: Duration,
    /// A Redfish session unused for this long ends.
    pub session_timeout: Duration,
    /// Open sessions allowed at once; one more login is refused with 503 (SessionLimitExceeded).
    pub max_sessions: usize,
}

impl Default for BmcSettings {
    fn default() -> Self {
        BmcSettings {
            username: "admin".to_owned(),
            password: None,
            graceful_shutdown_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(30 * 60),
            max_sessions: 8,
        }
    }
}

/// A fault a test can put on a BMC's network side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BmcFault {
    /// Answers normally.
    None,
    /// Not listening: connections are refused, and open ones are cut.
    Unreachable,
    /// Accepts connections but never answers on them (open connections are cut when the fault starts).
    Hang,
}

impl BmcFault {
    pub fn name(self) -> &'static str {
        match self {
            BmcFault::None => "healthy",
            BmcFault::Unreachable => "unreachable",
            BmcFault::Hang => "hanging",
        }
    }
}

/// How to reach one host's BMC: the line `parapet-sim` prints per host on standard output (as JSON),
/// so that whoever started it can configure out-of-band management.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BmcInfo {
    /// Always `"bmc"`: tells these lines apart from any other kind a later version prints.
    #[serde(rename = "type")]
    pub kind: String,
    /// The simulated host's name (as its agent registers it).
    pub host: String,
    /// Always `"redfish"`.
    pub driver: String,
    /// Always `"http"`.
    pub protocol: String,
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// The ComputerSystem's id: the host's name (`/redfish/v1/Systems/{system_id}`).
    pub system_id: String,
}

struct Listening {
    /// Dropping or firing it ends the accept loop, which then cuts every open connection.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The HTTP service of one BMC.
type BmcService = NormalizePath<axum::Router>;

/// One host's BMC. Dropping it stops its listener.
pub struct SimBmc {
    host: Arc<SimHost>,
    address: SocketAddr,
    context: redfish::BmcContext,
    listening: tokio::sync::Mutex<Listening>,
    /// The current fault, readable without waiting for a fault change in progress.
    fault: Mutex<BmcFault>,
}

impl SimBmc {
    /// Start a BMC for `host` on a free port of 127.0.0.1. The host's power is left as it is.
    pub fn start(host: Arc<SimHost>, settings: &BmcSettings) -> io::Result<Arc<SimBmc>> {
        let password = settings.password.clone().unwrap_or_else(random_password);
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let address = listener.local_addr()?;
        let context = redfish::BmcContext {
            host: host.clone(),
            system_id: host.spec.name.clone(),
            system_uuid: uuid::Uuid::new_v4().to_string(),
            service_uuid: uuid::Uuid::new_v4().to_string(),
            accounts: Arc::new(Mutex::new(Accounts::new(
                &settings.username,
                &password,
                settings.session_timeout,
                settings.max_sessions,
            ))),
            graceful_shutdown_timeout: settings.graceful_shutdown_timeout,
        };
        let (stop, task) = serve(listener, BmcFault::None, service(&context));
        Ok(Arc::new(SimBmc {
            host,
            address,
            context,
            listening: tokio::sync::Mutex::new(Listening { stop: Some(stop), task: Some(task) }),
            fault: Mutex::new(BmcFault::None),
        }))
    }

    pub fn host(&self) -> &Arc<SimHost> {
        &self.host
    }

    /// Where the BMC listens (its port stays the same through faults).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `/redfish/v1/Systems/{host name}`.
    pub fn system_path(&self) -> String {
        format!("/redfish/v1/Systems/{}", self.context.system_id)
    }

    pub fn username(&self) -> String {
        self.context.accounts.lock().unwrap().username().to_owned()
    }

    /// The password the BMC accepts now (it changes through Redfish or [`SimBmc::set_password`]).
    pub fn password(&self) -> String {
        self.context.accounts.lock().unwrap().password().to_owned()
    }

    /// Fault injection: give the account another password (no policy applies) and end every open
    /// session, so that a client holding the old credentials fails at once with 401.
    pub fn set_password(&self, password: &str) {
        let mut accounts = self.context.accounts.lock().unwrap();
        accounts.set_password(password);
        accounts.end_all_sessions();
    }

    pub fn fault(&self) -> BmcFault {
        *self.fault.lock().unwrap()
    }

    /// How to reach this BMC, with its current credentials.
    pub fn info(&self) -> BmcInfo {
        BmcInfo {
            kind: "bmc".to_owned(),
            host: self.host.spec.name.clone(),
            driver: "redfish".to_owned(),
            protocol: "http".to_owned(),
            address: self.address.ip().to_string(),
            port: self.address.port(),
            username: self.username(),
            password: self.password(),
            system_id: self.context.system_id.clone(),
        }
    }

    /// Put `fault` on the BMC (or clear it with [`BmcFault::None`]). When this returns the fault is in
    /// effect: open connections are cut and, for `Unreachable`, the port refuses connections. Fails
    /// only when the port cannot be listened on again (the BMC then stays unreachable).
    pub async fn set_fault(&self, fault: BmcFault) -> io::Result<()> {
        let mut listening = self.listening.lock().await;
        if let Some(stop) = listening.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = listening.task.take() {
            // The accept loop ends by cutting its connections; waiting for it makes the fault exact.
            let _ = task.await;
        }
        *self.fault.lock().unwrap() = BmcFault::Unreachable;
        if fault != BmcFault::Unreachable {
            let listener = listen(self.address)?;
            let (stop, task) = serve(listener, fault, service(&self.context));
            listening.stop = Some(stop);
            listening.task = Some(task);
        }
        *self.fault.lock().unwrap() = fault;
        tracing::info!(host = %self.host.spec.name, fault = fault.name(), "simulated BMC fault changed");
        Ok(())
    }

    /// Stop listening for good (the same as making the BMC unreachable).
    pub async fn stop(&self) {
        // Taking a BMC off the network cannot fail.
        let _ = self.set_fault(BmcFault::Unreachable).await;
    }
}

fn service(context: &redfish::BmcContext) -> BmcService {
    NormalizePath::trim_trailing_slash(redfish::router(context.clone()))
}

/// A listening socket on `address`, with SO_REUSEADDR so that the same port can be listened on again
/// right after a fault (connections the BMC closed may still linger in TIME_WAIT).
fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(128)
}

fn serve(listener: TcpListener, fault: BmcFault, service: BmcService) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel();
    (stop, tokio::spawn(accept_loop(listener, fault, service, stopped)))
}

/// Accept connections until told to stop (or until the stop sender is dropped), then cut every open
/// connection. The connections are tasks of this loop's own set, so none outlives a fault change.
async fn accept_loop(listener: TcpListener, fault: BmcFault, service: BmcService, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if fault == BmcFault::Hang => {
                    connections.spawn(hold_without_answering(stream));
                }
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, service.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!("simulated BMC cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, service: BmcService) {
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    if let Err(error) = connection.await {
        tracing::debug!("simulated BMC connection ended: {error}");
    }
}

/// A hung BMC: read whatever the client sends and never answer, until the client gives up.
async fn hold_without_answering(mut stream: TcpStream) {
    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
}
