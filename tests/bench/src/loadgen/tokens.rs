//! Topics and the tokens that bind them. From the hub's dev issuer: one token per topic
//! for the publisher (the first mints the topic) and one per group of
//! `--subscriptions-per-token` subscribers, each group its own subject, so the hub's
//! per-app subscription cap holds. From a static token or a client-credentials grant: that
//! one token for everything, on `--topic` topics or random ones (43 base64url characters).

use std::io::Read as _;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::cli::{Common, Kind, TokenSource};
use super::http::Http;
use super::target::Target;

/// Token requests in flight at once.
const MINT_IN_FLIGHT: usize = 16;

/// One topic and its tokens.
#[derive(Clone, Debug)]
pub struct TopicTokens {
    pub name: String,
    pub publisher: Option<String>,
    /// One token per group of subscribers.
    pub subscribers: Vec<Option<String>>,
}

impl TopicTokens {
    /// The token of the `n`-th subscriber of this topic.
    pub fn subscriber(&self, n: usize, per_token: usize) -> Option<String> {
        self.subscribers
            .get(n / per_token.max(1))
            .or(self.subscribers.last())
            .cloned()
            .flatten()
    }
}

/// Where tokens come from, resolved.
#[derive(Debug, Clone)]
pub enum Tokens {
    Dev {
        url: String,
        scope: String,
    },
    Fixed {
        token: Option<String>,
        topics: Vec<String>,
    },
}

impl Tokens {
    /// Resolves the token options (fetching a client-credentials token now).
    pub async fn resolve(common: &Common, target: &Target, http: &Http) -> Result<Self> {
        let source = common.token_source.unwrap_or(match target.kind {
            Kind::Fhircast => TokenSource::Dev,
            Kind::Bare => TokenSource::None,
        });
        let topics = common.topic_names.clone();
        Ok(match source {
            TokenSource::Dev => Self::Dev {
                url: format!("{}/dev-issuer/token", target.origin()),
                scope: common.scope.clone(),
            },
            TokenSource::None => Self::Fixed {
                token: None,
                topics,
            },
            TokenSource::Static => {
                let token = match (&common.token, &common.token_file) {
                    (Some(token), _) => token.clone(),
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .with_context(|| format!("reading {}", file.display()))?
                        .trim()
                        .to_owned(),
                    (None, None) => bail!("--token-source static needs --token or --token-file"),
                };
                Self::Fixed {
                    token: Some(token),
                    topics,
                }
            }
            TokenSource::ClientCredentials => {
                let (Some(url), Some(id), Some(secret)) =
                    (&common.token_url, &common.client_id, &common.client_secret)
                else {
                    bail!(
                        "--token-source client-credentials needs --token-url, --client-id and --client-secret"
                    );
                };
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", common.scope.as_str()),
                ];
                let json = post_form(http.nth(0), url, &form).await?;
                let token = field(&json, "access_token")?;
                let mut topics = topics;
                if topics.is_empty()
                    && let Ok(topic) = field(&json, "hub.topic")
                {
                    topics.push(topic);
                }
                Self::Fixed {
                    token: Some(token),
                    topics,
                }
            }
        })
    }

    /// Topics with their tokens: `count` topics, `subscribers` subscribers on each.
    pub async fn topics(
        &self,
        http: &Http,
        count: usize,
        subscribers: usize,
        per_token: usize,
    ) -> Result<Vec<TopicTokens>> {
        match self {
            Self::Fixed { token, topics } => (0..count)
                .map(|index| {
                    let name = match topics.get(index) {
                        Some(name) => name.clone(),
                        None => random_topic()?,
                    };
                    Ok(TopicTokens {
                        name,
                        publisher: token.clone(),
                        subscribers: vec![token.clone()],
                    })
                })
                .collect(),
            Self::Dev { url, scope } => {
                let groups = subscribers.div_ceil(per_token.max(1));
                let client = http.nth(0).clone();
                let permits = Arc::new(Semaphore::new(MINT_IN_FLIGHT));
                // The publisher tokens first: each mints its topic.
                let mut set = JoinSet::new();
                for index in 0..count {
                    let (client, url, scope, permits) =
                        (client.clone(), url.clone(), scope.clone(), permits.clone());
                    set.spawn(async move {
                        let _permit = permits.acquire_owned().await?;
                        let subject = format!("lg-pub-{index}");
                        let form = [("scope", scope.as_str()), ("subject", subject.as_str())];
                        let json = post_form(&client, &url, &form).await?;
                        anyhow::Ok((
                            index,
                            field(&json, "hub.topic")?,
                            field(&json, "access_token")?,
                        ))
                    });
                }
                let mut topics: Vec<Option<TopicTokens>> = vec![None; count];
                while let Some(joined) = set.join_next().await {
                    let (index, name, token) = joined.context("token task")??;
                    topics[index] = Some(TopicTokens {
                        name,
                        publisher: Some(token),
                        subscribers: vec![None; groups],
                    });
                }
                let mut topics: Vec<TopicTokens> = topics.into_iter().flatten().collect();
                let mut set = JoinSet::new();
                for (index, topic) in topics.iter().enumerate() {
                    for group in 0..groups {
                        let (client, url, scope, permits, name) = (
                            client.clone(),
                            url.clone(),
                            scope.clone(),
                            permits.clone(),
                            topic.name.clone(),
                        );
                        set.spawn(async move {
                            let _permit = permits.acquire_owned().await?;
                            let subject = format!("lg-sub-{index}-{group}");
                            let form = [
                                ("scope", scope.as_str()),
                                ("subject", subject.as_str()),
                                ("topic", name.as_str()),
                            ];
                            let json = post_form(&client, &url, &form).await?;
                            anyhow::Ok((index, group, field(&json, "access_token")?))
                        });
                    }
                }
                while let Some(joined) = set.join_next().await {
                    let (index, group, token) = joined.context("token task")??;
                    topics[index].subscribers[group] = Some(token);
                }
                Ok(topics)
            }
        }
    }
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let response = client
        .post(url)
        .form(form)
        .send()
        .await
        .with_context(|| format!("token request to {url}"))?;
    let status = response.status();
    let body = response.text().await.context("token answer")?;
    if !status.is_success() {
        bail!("token endpoint {url} answered {status}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("token answer from {url} is not JSON"))
}

fn field(json: &serde_json::Value, name: &str) -> Result<String> {
    json.get(name)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("the token answer has no {name}"))
}

/// 32 random bytes from the kernel.
pub fn random_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

/// A topic of 256 random bits, 43 base64url characters.
pub fn random_topic() -> Result<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes()?;
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut topic = String::with_capacity(43);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            topic.push(char::from(ALPHABET[((bits >> held) & 63) as usize]));
        }
    }
    if held > 0 {
        topic.push(char::from(ALPHABET[((bits << (6 - held)) & 63) as usize]));
    }
    Ok(topic)
}
