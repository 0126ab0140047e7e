//! Binding the listeners `[mqtt]`, `[mqtt.tls]` and `[mqtt.websocket]` ask for, before
//! anything else starts, so a taken port or a broken certificate fails start-up.

use std::net::SocketAddr;
use std::sync::Arc;

use alicia_config::{AliciaConfig, MqttTlsSection};
use alicia_tls::{TlsReloader, TlsSettings};

use crate::listener::{bind, Listener, TlsDoor, Transport};
use crate::metrics::BrokerMetrics;
use crate::BrokerError;

/// Where each listener is bound (the real port when 0 was asked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListenerAddrs {
    pub mqtt: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub websocket: Option<SocketAddr>,
}

pub(crate) struct Listeners {
    pub addrs: ListenerAddrs,
    pub tls: Option<Arc<TlsReloader>>,
    pub bound: Vec<Listener>,
}

impl Listeners {
    pub(crate) async fn bind(config: &AliciaConfig) -> Result<Listeners, BrokerError> {
        let mut bound = Vec::new();
        let mqtt = open("MQTT", config.mqtt.listen, Transport::Mqtt, "tcp", &mut bound).await?;
        let tls_door = config.mqtt.tls.as_ref().map(tls_door).transpose()?;
        let tls = match (&config.mqtt.tls, &tls_door) {
            (Some(section), Some(door)) => {
                Some(open("MQTT TLS", section.listen, Transport::Tls(door.clone()), "tls", &mut bound).await?)
            }
            _ => None,
        };
        let websocket = match &config.mqtt.websocket {
            Some(ws) => {
                let (door, label) = match (ws.tls, &tls_door) {
                    (true, Some(door)) => (Some(door.clone()), "websocket-tls"),
                    _ => (None, "websocket"),
                };
                Some(open("MQTT WebSocket", ws.listen, Transport::WebSocket(door), label, &mut bound).await?)
            }
            None => None,
        };
        let tls_reloader = tls_door.map(|door| door.reloader);
        Ok(Listeners { addrs: ListenerAddrs { mqtt, tls, websocket }, tls: tls_reloader, bound })
    }
}

async fn open(
    what: &'static str,
    addr: SocketAddr,
    transport: Transport,
    label: &'static str,
    bound: &mut Vec<Listener>,
) -> Result<SocketAddr, BrokerError> {
    let socket = bind(what, addr).await?;
    let local = socket.local_addr().map_err(|source| BrokerError::Bind { what, addr, source })?;
    bound.push(Listener { socket, transport, label, metrics: Arc::new(BrokerMetrics::new(label)) });
    Ok(local)
}

fn tls_door(section: &MqttTlsSection) -> Result<TlsDoor, BrokerError> {
    let settings = TlsSettings {
        cert: section.cert.clone(),
        key: section.key.clone(),
        ca: section.ca.clone(),
        require_certificate: section.require_certificate,
        use_identity_as_username: section.use_identity_as_username,
        crl: section.crl.clone(),
    };
    let reloader = Arc::new(TlsReloader::new(settings)?);
    Ok(TlsDoor { reloader, identity_as_username: section.use_identity_as_username })
}
