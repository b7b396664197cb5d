//! Where a webhook may deliver, and the HTTP(S) client that delivers there.
//!
//! A webhook URL is `http://` or `https://` with a host and no credentials. Unless the
//! operator allows it (`--webhook-allow-private`), a destination whose address is
//! loopback, private, link-local (cloud metadata: 169.254.169.254, fd00:ec2::254),
//! shared, multicast or otherwise reserved is refused — at registration (a read of
//! `last_error` must not turn the server into a scanner of its own network) and again at
//! every connection, because DNS can change after registration: the client's resolver
//! ([`GuardedResolver`]) refuses a name if any of its addresses is refused, and the
//! connector connects only to addresses it returned, so there is no gap between the check
//! and the connection. IP-literal hosts, which never reach a resolver, are checked by
//! [`check_literal`] before each attempt.
//!
//! TLS is rustls (ring) trusting Mozilla's roots (webpki-roots) plus any extra roots the
//! operator configures (`--webhook-ca-file`).

use axum::body::Bytes;
use axum::http::Uri;
use http_body_util::Full;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Longest a destination's DNS lookup may take.
pub const RESOLVE_TIMEOUT_MS: u64 = 5_000;
/// Longest a TCP connect may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Why an IPv4 address is not a public destination, if it is not.
fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "an unspecified address (0.0.0.0/8)",
        (127, _, _) => "a loopback address (127.0.0.0/8)",
        (10, _, _) => "a private address (10.0.0.0/8)",
        (172, 16..=31, _) => "a private address (172.16.0.0/12)",
        (192, 168, _) => "a private address (192.168.0.0/16)",
        (169, 254, 169) if ip.octets()[3] == 254 => "the cloud metadata address",
        (169, 254, _) => "a link-local address (169.254.0.0/16)",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address (100.64.0.0/10)",
        (192, 0, 0) => "an IETF protocol address (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

/// Why an IPv6 address is not a public destination, if it is not.
fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address (::)");
    }
    if ip.is_loopback() {
        return Some("a loopback address (::1)");
    }
    // IPv4-mapped, IPv4-compatible, NAT64 and 6to4 addresses reach an IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] {
        return refused_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return refused_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return refused_v4(embedded_v4(segments[1], segments[2]));
    }
    Some(match segments[0] {
        0xfc00..=0xfdff if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            "the cloud metadata address"
        }
        0xfc00..=0xfdff => "a unique local (private) address (fc00::/7)",
        0xfe80..=0xfebf => "a link-local address (fe80::/10)",
        0xfec0..=0xfeff => "a site-local address (fec0::/10)",
        0xff00..=0xffff => "a multicast address",
        0x2001 if segments[1] == 0x0db8 => "a documentation address (2001:db8::/32)",
        _ => return None,
    })
}

fn embedded_v4(high: u16, low: u16) -> Ipv4Addr {
    let [a, b] = high.to_be_bytes();
    let [c, d] = low.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Checks that an address is a public destination; the error says what it is.
pub fn check_ip(ip: IpAddr) -> Result<(), String> {
    let refused = match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    };
    match refused {
        None => Ok(()),
        Some(reason) => Err(format!(
            "{ip} is {reason}; webhooks deliver only to public addresses unless the server runs with --webhook-allow-private"
        )),
    }
}

/// The host of a URI without IPv6 brackets.
fn host_of(uri: &Uri) -> &str {
    let host = uri.host().unwrap_or_default();
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// Parses and checks the shape of a webhook URL (no network).
pub fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| "url is not a valid URL".to_string())?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|host| !host.is_empty()) => {}
        _ => return Err("url must be absolute, like https://host/path".into()),
    }
    if uri
        .authority()
        .is_some_and(|authority| authority.as_str().contains('@'))
    {
        return Err("url must not contain credentials; authenticate with the signature".into());
    }
    Ok(uri)
}

/// Checks a URL whose host is an IP literal (no network); names pass (they are checked
/// when resolved).
pub fn check_literal(uri: &Uri, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    match host_of(uri).parse::<IpAddr>() {
        Ok(ip) => check_ip(ip),
        Err(_) => Ok(()),
    }
}

/// Resolves a name and checks every address it has.
async fn resolve_checked(name: &str, allow_private: bool) -> std::io::Result<Vec<SocketAddr>> {
    let lookup = tokio::net::lookup_host((name, 0));
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout(Duration::from_millis(RESOLVE_TIMEOUT_MS), lookup).await {
            Ok(result) => result?.collect(),
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("resolving {name} took longer than {RESOLVE_TIMEOUT_MS} ms"),
                ))
            }
        };
    if addresses.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{name} has no address"),
        ));
    }
    if !allow_private {
        for address in &addresses {
            check_ip(address.ip()).map_err(|reason| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{name} resolves to {reason}"),
                )
            })?;
        }
    }
    Ok(addresses)
}

/// Checks a destination at registration: IP literals directly, names by resolving them.
pub async fn check_destination(uri: &Uri, allow_private: bool) -> Result<(), String> {
    check_literal(uri, allow_private)?;
    let host = host_of(uri);
    if allow_private || host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    resolve_checked(host, false)
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// The client's resolver: refuses names with a refused address (see the module doc).
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            resolve_checked(name.as_str(), allow_private)
                .await
                .map(Vec::into_iter)
        })
    }
}

/// The delivery client: HTTP and HTTPS through the guarded resolver.
pub type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>,
    Full<Bytes>,
>;

/// Parses PEM CA certificates (for `--webhook-ca-file`); errors when there are none or
/// one is unusable as a root.
pub fn parse_pem_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|error| format!("not a PEM certificate file: {error}"))?;
    if roots.is_empty() {
        return Err("no certificate found (expected -----BEGIN CERTIFICATE-----)".into());
    }
    let mut store = rustls::RootCertStore::empty();
    for root in &roots {
        store
            .add(root.clone())
            .map_err(|error| format!("unusable CA certificate: {error}"))?;
    }
    Ok(roots)
}

/// Builds the delivery client.
pub fn client(allow_private: bool, extra_roots: &[CertificateDer<'static>]) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for root in extra_roots {
        if let Err(error) = roots.add(root.clone()) {
            tracing::error!(%error, "an extra webhook CA certificate is unusable; skipped");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The ring provider implements TLS 1.2 and 1.3, so the default versions always apply.
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(check_ip(ip).is_err(), "{refused} must be refused");
        }
        let metadata = check_ip("169.254.169.254".parse().unwrap()).unwrap_err();
        assert!(metadata.contains("metadata"), "{metadata}");
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(check_ip(ip).is_ok(), "{public} is public");
        }
    }

    #[test]
    fn urls_are_shaped_and_literals_checked_without_network() {
        assert!(parse_url("https://hooks.example.com/x").is_ok());
        assert!(parse_url("http://hooks.example.com:8080/x").is_ok());
        assert!(parse_url("ftp://hooks.example.com/x").is_err());
        assert!(parse_url("/relative").is_err());
        assert!(parse_url("https://user:pw@hooks.example.com/").is_err());
        for literal in [
            "http://127.0.0.1:22/",
            "http://169.254.169.254/latest/meta-data/",
            "https://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            let uri = parse_url(literal).unwrap();
            assert!(check_literal(&uri, false).is_err(), "{literal}");
            assert!(check_literal(&uri, true).is_ok(), "{literal} when allowed");
        }
        assert!(check_literal(&parse_url("https://8.8.8.8/").unwrap(), false).is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused() {
        // `localhost` resolves locally (no DNS traffic) to a loopback address.
        let uri = parse_url("http://localhost:9/hook").unwrap();
        let error = check_destination(&uri, false).await.unwrap_err();
        assert!(error.contains("loopback"), "{error}");
        assert!(check_destination(&uri, true).await.is_ok());
        let mut resolver = GuardedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        let refused = tower::Service::call(&mut resolver, name).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn pem_roots_are_parsed() {
        assert!(parse_pem_roots(b"not a certificate").is_err());
        let certificate = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let roots = parse_pem_roots(certificate.cert.pem().as_bytes()).unwrap();
        assert_eq!(roots.len(), 1);
    }
}
