//! TLS for quic and http2: a self-signed certificate generated when the
//! server starts (rcgen), pinned by the client by its SHA-256.
//!
//! Verification is never switched off. The client accepts exactly the
//! certificate whose hash it was given, and still checks the handshake
//! signature against that certificate's key, so only the holder of the
//! private key can complete a handshake. The pin travels with the address:
//! `wirebench serve` prints `listening quic 127.0.0.1:4433#sha256:<hex>`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The name in the generated certificate, which clients ask for.
pub const SERVER_NAME: &str = "localhost";

/// The SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin(pub [u8; 32]);

impl CertPin {
    /// The pin of `cert`.
    pub fn of(cert: &[u8]) -> CertPin {
        CertPin(Sha256::digest(cert).into())
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for CertPin {
    type Err = String;
    fn from_str(s: &str) -> Result<CertPin, String> {
        let hex =
            s.strip_prefix("sha256:").ok_or_else(|| format!("a pin looks like sha256:<64 hex digits>, not {s:?}"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("a pin needs 64 hex digits after sha256:, got {hex:?}"));
        }
        let mut pin = [0u8; 32];
        for (i, byte) in pin.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(CertPin(pin))
    }
}

/// A server's certificate and key.
#[derive(Debug)]
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Identity {
    /// Generates a self-signed certificate for `localhost` and the loopback
    /// addresses.
    pub fn generate() -> Result<Identity, String> {
        let names = vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let certified =
            rcgen::generate_simple_self_signed(names).map_err(|e| format!("cannot generate a certificate: {e}"))?;
        Ok(Identity {
            cert: certified.cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        })
    }

    /// The pin clients must be given.
    pub fn pin(&self) -> CertPin {
        CertPin::of(&self.cert)
    }

    /// A TLS 1.3 server configuration offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert.clone()], PrivateKeyDer::Pkcs8(self.key.clone_key()))
            .map_err(|e| format!("bad generated certificate: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 client configuration that trusts exactly the certificate
/// pinned by `pin`, offering `alpn`.
pub fn client_config(pin: CertPin, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let verifier = Arc::new(PinnedVerifier { pin, algorithms: provider.signature_verification_algorithms });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The name the client asks for.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(SERVER_NAME).unwrap_or_else(|_| unreachable!("localhost is a valid DNS name"))
}

/// Accepts the pinned certificate only, and checks handshake signatures.
#[derive(Debug)]
struct PinnedVerifier {
    pin: CertPin,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if CertPin::of(end_entity) == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is offered.
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_print_and_parse() {
        let pin = CertPin([0xab; 32]);
        let text = pin.to_string();
        assert_eq!(text.len(), 7 + 64);
        assert_eq!(text.parse::<CertPin>(), Ok(pin));
        assert!("sha256:12".parse::<CertPin>().is_err());
        assert!("md5:ab".parse::<CertPin>().is_err());
    }

    #[test]
    fn generated_identities_differ() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.pin(), b.pin());
        assert!(a.server_config(&[b"x"]).is_ok());
        assert!(client_config(a.pin(), &[b"x"]).is_ok());
    }
}
