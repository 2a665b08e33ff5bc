//! The system under test as URLs: the hub URL, its origin (where the dev issuer lives), the
//! publish URL of a topic, the WebSocket URL of an endpoint or (bare broadcaster) of a
//! topic, and the loopback rule (a hub elsewhere needs `--allow-remote`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{Context as _, Result, bail};

use super::cli::Kind;

/// A parsed `scheme://host[:port]/path` URL (no query, no user info).
#[derive(Clone, Debug)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path, starting with `/` (or empty).
    pub path: String,
}

impl Url {
    /// Parses `http`, `https`, `ws` and `wss` URLs.
    pub fn parse(raw: &str) -> Result<Self> {
        let (scheme, rest) = raw
            .split_once("://")
            .with_context(|| format!("`{raw}` is not an absolute URL"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => false,
            "https" | "wss" => true,
            other => bail!("`{raw}`: unsupported scheme {other}"),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            bail!("`{raw}`: user info in URLs is not supported");
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let (host, after) = stripped
                .split_once(']')
                .with_context(|| format!("`{raw}`: unclosed IPv6 literal"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().with_context(|| format!("`{raw}`: bad port"))?,
                None => default_port,
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (
                    host.to_owned(),
                    port.parse().with_context(|| format!("`{raw}`: bad port"))?,
                ),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            bail!("`{raw}`: no host");
        }
        Ok(Self {
            tls,
            host,
            port,
            path: path.to_owned(),
        })
    }

    /// `host:port` as the Host header wants it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The first socket address the host resolves to.
    pub fn socket_addr(&self) -> Result<SocketAddr> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        (host, self.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.host))?
            .next()
            .with_context(|| format!("{} resolves to nothing", self.host))
    }

    /// Whether the host is a loopback address (or `localhost`).
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.socket_addr().is_ok_and(|addr| addr.ip().is_loopback()),
        }
    }
}

/// The hub (or broadcaster) under test.
#[derive(Clone, Debug)]
pub struct Target {
    pub kind: Kind,
    /// The hub URL without a trailing slash.
    pub hub_url: String,
    pub hub: Url,
    publish_template: String,
}

impl Target {
    /// Checks the URL and the loopback rule.
    pub fn new(
        kind: Kind,
        hub_url: &str,
        publish_path: Option<&str>,
        allow_remote: bool,
    ) -> Result<Self> {
        let hub_url = hub_url.trim_end_matches('/').to_owned();
        let hub = Url::parse(&hub_url)?;
        if !allow_remote && !hub.is_loopback() {
            bail!("{hub_url} is not on loopback; load is only sent elsewhere with --allow-remote");
        }
        let publish_template = publish_path
            .map(str::to_owned)
            .unwrap_or_else(|| match kind {
                Kind::Fhircast => "{hub}/{topic}".to_owned(),
                Kind::Bare => "{hub}/publish/{topic}".to_owned(),
            });
        Ok(Self {
            kind,
            hub_url,
            hub,
            publish_template,
        })
    }

    /// `scheme://host:port` of the hub URL.
    pub fn origin(&self) -> String {
        let scheme = if self.hub.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.hub.authority())
    }

    /// Where the events of `topic` are POSTed.
    pub fn publish_url(&self, topic: &str) -> String {
        self.publish_template
            .replace("{hub}", &self.hub_url)
            .replace("{topic}", topic)
    }

    /// The bare broadcaster's WebSocket URL for `topic`.
    pub fn bare_ws_url(&self, topic: &str) -> String {
        let scheme = if self.hub.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}/ws/{topic}",
            self.hub.authority(),
            self.hub.path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_the_loopback_rule() -> Result<()> {
        let url = Url::parse("http://127.0.0.1:8080/api/hub")?;
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("127.0.0.1", 8080, "/api/hub")
        );
        assert!(url.is_loopback());
        let url = Url::parse("wss://[::1]/ws/x")?;
        assert_eq!((url.host.as_str(), url.port, url.tls), ("::1", 443, true));
        assert!(url.is_loopback());
        assert!(Target::new(Kind::Fhircast, "http://192.0.2.1/api/hub", None, false).is_err());
        let target = Target::new(Kind::Bare, "http://127.0.0.1:9/", None, false)?;
        assert_eq!(target.publish_url("t"), "http://127.0.0.1:9/publish/t");
        assert_eq!(target.bare_ws_url("t"), "ws://127.0.0.1:9/ws/t");
        Ok(())
    }
}
