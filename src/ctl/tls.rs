//! `ctl --cacert FILE`: the TLS configuration of `ctl` when the operator names a
//! certificate to trust. A CA's certificate works as it does everywhere (a root beside
//! the system's). So does the usual self-signed server certificate of `openssl req
//! -x509`, which openssl marks `CA:TRUE`: webpki refuses a CA certificate as the
//! server's own (`CaUsedAsEndEntity`), so a server presenting *exactly* a certificate
//! of the file is accepted once everything but that rule has passed — its validity
//! period (webpki checks it before the CA rule) and the server's name — as curl and
//! openssl do. Anything else is the platform verifier's answer, unchanged.

use std::sync::Arc;

use anyhow::{anyhow, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// A rustls client configuration trusting the system's roots and every certificate of
/// `pem`, for `reqwest::ClientBuilder::tls_backend_preconfigured`.
pub(super) fn client_config(pem: &[u8], file: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    let certs: Vec<CertificateDer<'static>> = rustls::pki_types::pem::PemObject::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("--cacert {} is not a PEM certificate: {e}", file.display()))?;
    if certs.is_empty() {
        anyhow::bail!("--cacert {} holds no PEM certificate", file.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(certs.clone(), provider.clone())
        .with_context(|| format!("--cacert {}", file.display()))?;
    let verifier = TrustedCertificate { platform, pinned: certs, provider: provider.clone() };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Debug)]
struct TrustedCertificate {
    platform: rustls_platform_verifier::Verifier,
    /// The certificates of --cacert, as given.
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl TrustedCertificate {
    fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
        match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                matches!(other.0.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
            }
            _ => false,
        }
    }
}

impl ServerCertVerifier for TrustedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.platform.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(e) if Self::is_ca_used_as_end_entity(&e) && self.pinned.iter().any(|c| c == end_entity) => {
                // The operator trusts this very certificate; it is in its validity
                // period (checked before the CA rule). It must still name the server.
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| e.clone())?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
