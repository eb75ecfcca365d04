//! The raw quinn baseline: the same certificates, crypto (rustls with ring, TLS 1.3, mutual
//! authentication against the cluster CA), QUIC settings and runtime as fjell-quic, with
//! nothing of fjell's on top. Messages are length-prefixed (4 bytes, little endian, like
//! fjell's frames).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjell_quic::TransportConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Bytes of a request or response body: the request's id and its value, 8 bytes each.
const REQUEST_BODY: usize = 16;

/// The QUIC settings fjell-quic derives from `cfg` (see `Transport::with_socket`), except
/// that the peer may open bidirectional streams (fjell allows none; the baseline's
/// requests use one).
pub fn quic_settings(cfg: &TransportConfig) -> Arc<quinn::TransportConfig> {
    let mut tc = quinn::TransportConfig::default();
    tc.max_idle_timeout(Some(cfg.idle_timeout.try_into().unwrap()));
    tc.keep_alive_interval(Some(cfg.keep_alive));
    tc.stream_receive_window(VarInt::from_u32(cfg.stream_receive_window));
    tc.send_window(u64::from(cfg.stream_receive_window) * 4);
    tc.receive_window(VarInt::from_u32(cfg.receive_window));
    tc.max_concurrent_bidi_streams(VarInt::from_u32(16));
    tc.max_concurrent_uni_streams(VarInt::from_u32(256));
    tc.datagram_receive_buffer_size(cfg.datagrams.then_some(1 << 20));
    Arc::new(tc)
}

fn runtime() -> Arc<dyn quinn::Runtime> {
    Arc::new(quinn::SmolRuntime)
}

/// The accepting side: counts one-way messages on unidirectional streams into `count`
/// and answers requests on bidirectional streams with their own body.
pub fn serve(
    socket: UdpSocket,
    ca: &[u8],
    cert: &[u8],
    key: &[u8],
    tc: Arc<quinn::TransportConfig>,
    count: Arc<AtomicU64>,
) -> Endpoint {
    // What fjell-quic's server configuration is (tls.rs): TLS 1.3 only, a client
    // certificate from the CA required, fjell's ALPN.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain: Vec<_> = CertificateDer::pem_slice_iter(cert)
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key).unwrap();
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    crypto.alpn_protocols = vec![fjell_quic::tls::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).unwrap();
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(tc);
    let endpoint = Endpoint::new(Default::default(), Some(server), socket, runtime()).unwrap();
    let e = endpoint.clone();
    smol::spawn(async move {
        while let Some(incoming) = e.accept().await {
            let count = count.clone();
            smol::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                let c = conn.clone();
                let n = count.clone();
                smol::spawn(async move {
                    while let Ok(s) = c.accept_uni().await {
                        smol::spawn(count_messages(s, n.clone())).detach();
                    }
                })
                .detach();
                while let Ok((send, recv)) = conn.accept_bi().await {
                    smol::spawn(answer(send, recv)).detach();
                }
            })
            .detach();
        }
    })
    .detach();
    endpoint
}

/// Counts the length-prefixed messages of `s`.
async fn count_messages(mut s: RecvStream, count: Arc<AtomicU64>) {
    let mut framer = Framer::default();
    while let Ok(Some(chunk)) = s.read_chunk(256 * 1024, true).await {
        framer.feed(&chunk.bytes, |m| {
            std::hint::black_box(m);
            count.fetch_add(1, Relaxed);
        });
    }
}

/// Answers each request on the stream with a response of the same body, one write each.
async fn answer(mut send: SendStream, mut recv: RecvStream) {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        let mut responses = Vec::new();
        framer.feed(&chunk.bytes, |m| responses.push(m.to_vec()));
        for body in responses {
            out.clear();
            frame(&mut out, &body);
            if send.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

/// Splits a byte stream into length-prefixed messages.
#[derive(Default)]
struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    fn feed(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8])) {
        let whole = |b: &[u8], each: &mut dyn FnMut(&[u8])| -> usize {
            let mut at = 0;
            while b.len() - at >= 4 {
                let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
                if b.len() - at - 4 < len {
                    break;
                }
                each(&b[at + 4..at + 4 + len]);
                at += 4 + len;
            }
            at
        };
        if self.buf.is_empty() {
            // The common case: parse in place, keep only a partial message.
            let used = whole(bytes, &mut each);
            self.buf.extend_from_slice(&bytes[used..]);
        } else {
            self.buf.extend_from_slice(bytes);
            let used = whole(&self.buf, &mut each);
            self.buf.drain(..used);
        }
    }
}

/// Appends `body` with its length prefix.
pub fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
}

/// The dialing side's connection, with one long-lived bidirectional stream for requests.
pub struct Client {
    /// The connection (for opening the one-way streams of the throughput phases).
    pub conn: Connection,
    requests: smol::lock::Mutex<SendStream>,
    pending: Mutex<HashMap<u64, async_channel::Sender<u64>>>,
    next: AtomicU64,
}

impl Client {
    /// Dials `to` from `socket`, presenting `creds` (fjell's own client configuration).
    pub async fn connect(
        socket: UdpSocket,
        creds: &fjell_quic::Credentials,
        tc: Arc<quinn::TransportConfig>,
        to: SocketAddr,
    ) -> Arc<Client> {
        let endpoint = Endpoint::new(Default::default(), None, socket, runtime()).unwrap();
        let mut cfg = creds.quinn_client_config().unwrap();
        cfg.transport_config(tc);
        let conn = endpoint
            .connect_with(cfg, to, &to.ip().to_string())
            .unwrap()
            .await
            .unwrap();
        let (send, recv) = conn.open_bi().await.unwrap();
        let client = Arc::new(Client {
            conn,
            requests: smol::lock::Mutex::new(send),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
        });
        smol::spawn(read_responses(recv, Arc::downgrade(&client))).detach();
        client
    }

    /// Sends `value` as a request and waits for the response (at most 5 s, as fjell's
    /// requests in this benchmark): the value echoed.
    pub async fn request(&self, value: u64) -> Result<u64, String> {
        let id = self.next.fetch_add(1, Relaxed);
        let (tx, rx) = async_channel::bounded(1);
        self.pending.lock().unwrap().insert(id, tx);
        let mut body = [0u8; REQUEST_BODY];
        body[..8].copy_from_slice(&id.to_le_bytes());
        body[8..].copy_from_slice(&value.to_le_bytes());
        let mut out = Vec::with_capacity(4 + REQUEST_BODY);
        frame(&mut out, &body);
        let written = self.requests.lock().await.write_all(&out).await;
        let result = match written {
            Err(e) => Err(e.to_string()),
            Ok(()) => {
                let timeout = async {
                    smol::Timer::after(Duration::from_secs(5)).await;
                    Err("timed out".to_string())
                };
                futures_lite::future::or(
                    async { rx.recv().await.map_err(|e| e.to_string()) },
                    timeout,
                )
                .await
            }
        };
        self.pending.lock().unwrap().remove(&id);
        result
    }
}

async fn read_responses(mut recv: RecvStream, client: std::sync::Weak<Client>) {
    let mut framer = Framer::default();
    while let Ok(Some(chunk)) = recv.read_chunk(64 * 1024, true).await {
        let Some(client) = client.upgrade() else {
            return;
        };
        framer.feed(&chunk.bytes, |m| {
            if m.len() == REQUEST_BODY {
                let id = u64::from_le_bytes(m[..8].try_into().unwrap());
                let value = u64::from_le_bytes(m[8..].try_into().unwrap());
                if let Some(w) = client.pending.lock().unwrap().remove(&id) {
                    let _ = w.try_send(value);
                }
            }
        });
    }
}
