//! The issuer configuration as an operator writes it: flags for one issuer, an issuers file
//! for several; every refusal happens in `Config::validate`, before anything binds.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser as _;
use serde_json::{Value, json};

use crate::config::Config;

/// A directory under the temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fhircast-issuers-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write");
        path.display().to_string()
    }

    fn issuers(&self, document: &Value) -> String {
        self.write("issuers.json", &document.to_string())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(args: &[&str]) -> Result<(), String> {
    let mut argv = vec!["fhircast-gateway", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    Config::try_parse_from(argv)
        .map_err(|err| err.to_string())?
        .validate()
        .map_err(|err| err.0)
}

const ONE_ISSUER: [&str; 4] = [
    "--issuer",
    "https://ehr.example.org/fhir",
    "--audience",
    "https://hub.example.org/api/hub",
];

fn with_one_issuer<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = ONE_ISSUER.to_vec();
    args.extend_from_slice(extra);
    args
}

#[test]
fn one_issuer_keeps_its_flags() {
    assert_eq!(check(&ONE_ISSUER), Ok(()));
    assert_eq!(
        check(&with_one_issuer(&["--algorithms", "ES256,ES384"])),
        Ok(())
    );
    assert_eq!(
        check(&with_one_issuer(&[
            "--jwks-url",
            "https://ehr.example.org/jwks"
        ])),
        Ok(())
    );
    let missing = check(&["--issuer", "https://ehr.example.org/fhir"]).expect_err("no aud");
    assert!(missing.contains("--issuers-file"), "{missing}");
    let unknown = check(&with_one_issuer(&["--algorithms", "RS256,XS999"])).expect_err("name");
    assert!(unknown.contains("XS999"), "{unknown}");
}

#[test]
fn tok_04_hmac_in_an_allowlist_stops_the_start_and_key_kinds_may_mix() {
    for list in ["RS256,HS256", "HS256", "ES256,HS512"] {
        let err = check(&with_one_issuer(&["--algorithms", list])).expect_err(list);
        assert!(
            err.starts_with("--algorithms: ") && err.contains("shared-secret"),
            "{err}"
        );
    }
    for list in ["RS256,ES256", "PS256,ES384", "ES256,EdDSA"] {
        assert!(
            check(&with_one_issuer(&["--algorithms", list])).is_ok(),
            "{list}"
        );
    }
    let scratch = Scratch::new();
    let file = scratch.issuers(&json!({"issuers": [
        {"issuer": "https://a.example", "algorithms": ["RS256"]},
        {"issuer": "https://b.example", "algorithms": ["RS256", "HS256"]},
    ]}));
    let err = check(&["--issuers-file", &file, "--audience", "hub"]).expect_err("hmac");
    assert!(
        err.contains("issuer https://b.example: ") && err.contains("shared-secret"),
        "{err}"
    );
    let err = check(&["--dev-issuer", "--algorithms", "ES256,HS256"]).expect_err("dev");
    assert!(err.contains("shared-secret"), "{err}");
}

#[test]
fn several_issuers_from_a_file() {
    let scratch = Scratch::new();
    scratch.write("ehr-secret", "s3cret\n");
    let file = scratch.issuers(&json!({"issuers": [
        {"issuer": "https://ehr.example.org/fhir", "algorithms": ["RS256", "PS256"],
         "introspection": {"client_id": "hub", "client_secret_file": "ehr-secret",
                           "cache_seconds": 10}},
        {"issuer": "https://pacs.example.org", "jwks_uri": "https://pacs.example.org/jwks",
         "audience": "https://hub.example.org/api/hub#pacs", "algorithms": ["ES256"],
         "topic_claim": "fhircast_topic", "leeway_seconds": 30},
    ]}));
    assert_eq!(
        check(&["--issuers-file", &file, "--audience", "hub"]),
        Ok(())
    );
    let err = check(&["--issuers-file", &file]).expect_err("first has no audience");
    assert!(err.contains("no audience"), "{err}");
}

#[test]
fn an_issuers_file_is_refused_with_the_reason() {
    let scratch = Scratch::new();
    scratch.write("secret", "s3cret-in-file");
    let introspection = json!({"client_id": "hub", "client_secret_file": "secret"});
    let cases = [
        (json!({"issuers": []}), "at least one issuer"),
        (
            json!({"issuers": [{"issuer": "https://a", "jwks_ur": "x"}]}),
            "unknown field",
        ),
        (
            json!({"issuers": [{"issuer": "https://a"}, {"issuer": "https://a"}]}),
            "twice",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "jwks_url": "http://a.example/jwks"}]}),
            "must be https://",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "leeway_seconds": 3600}]}),
            "leeway",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "jwks_refresh_min_seconds": 0}]}),
            "refresh interval must be positive",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "token_type_policy": "STRICT"}]}),
            "token_type_policy: unknown token type policy",
        ),
        (
            json!({"issuers": [
                {"issuer": "https://a", "introspection": introspection},
                {"issuer": "https://b", "introspection": introspection},
            ]}),
            "only one issuer may introspect",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "introspection":
                {"client_id": "hub", "client_secret_file": "secret", "cache_seconds": 61}}]}),
            "at most 60 seconds",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "introspection":
                {"client_id": "hub", "client_secret_file": "missing-secret"}}]}),
            "missing-secret",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "introspection":
                {"client_id": "hub", "client_secret": "inline"}}]}),
            "unknown field `client_secret`",
        ),
        (
            json!({"issuers": [{"issuer": "https://a", "introspection":
                {"client_id": "hub", "client_secret_env": "FHIRCAST_TEST_UNSET_SECRET_VAR"}}]}),
            "FHIRCAST_TEST_UNSET_SECRET_VAR is not set",
        ),
    ];
    for (document, reason) in cases {
        let file = scratch.issuers(&document);
        let err = check(&["--issuers-file", &file, "--audience", "hub"]).expect_err(reason);
        assert!(err.starts_with("--issuers-file "), "{err}");
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(!err.contains("s3cret-in-file"), "{err}");
    }
    let file = scratch.issuers(&json!({"issuers": [{"issuer": "https://a"}]}));
    for flag in [
        ["--issuer", "https://a"],
        ["--jwks-url", "https://a/jwks"],
        ["--algorithms", "RS256"],
        ["--jwks-refresh-min-seconds", "5"],
        ["--token-type-policy", "strict"],
        ["--introspection-client-id", "hub"],
    ] {
        let mut args = vec!["--issuers-file", file.as_str(), "--audience", "hub"];
        args.extend_from_slice(&flag);
        let err = check(&args).expect_err(flag[0]);
        assert!(
            err.contains("does not combine with --issuers-file"),
            "{err}"
        );
    }
    let missing = Path::new("/nonexistent/issuers.json").display().to_string();
    let err = check(&["--issuers-file", &missing]).expect_err("missing file");
    assert!(err.contains("cannot read it"), "{err}");
}

#[test]
fn tok_18_introspection_flags_go_together() {
    let scratch = Scratch::new();
    let secret = scratch.write("secret", "s3cret\n");
    let good = with_one_issuer(&[
        "--introspection-client-id",
        "hub",
        "--introspection-client-secret-file",
        &secret,
    ]);
    assert_eq!(check(&good), Ok(()));
    let mut with_cache = good.clone();
    with_cache.extend(["--introspection-cache-seconds", "61"]);
    assert!(check(&with_cache).expect_err("61 s").contains("at most 60"));
    let mut off_loopback = good.clone();
    off_loopback.extend(["--introspection-url", "http://ehr.example.org/introspect"]);
    assert!(check(&off_loopback).expect_err("http").contains("https://"));
    let err = check(&with_one_issuer(&["--introspection-client-id", "hub"])).expect_err("id");
    assert!(err.contains("go together"), "{err}");
    let err = check(&with_one_issuer(&["--introspection-url", "https://e/i"])).expect_err("url");
    assert!(err.contains("apply only with"), "{err}");
    let err = check(&[
        "--dev-issuer",
        "--introspection-client-id",
        "hub",
        "--introspection-client-secret-file",
        &secret,
    ])
    .expect_err("dev issuer");
    assert!(err.contains("does not combine with --dev-issuer"), "{err}");
}

/// The parsed configuration's issuers (flags or file), as the gateway would trust them.
fn issuers(args: &[&str]) -> Vec<crate::auth::VerifierConfig> {
    let mut argv = vec!["fhircast-gateway", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let config = Config::try_parse_from(argv).expect("flags parse");
    super::configured(&config).expect("issuers")
}

#[test]
fn tok_06_tok_13_refresh_interval_and_token_type_policy_per_issuer() {
    use std::time::Duration;

    use crate::auth::{DEFAULT_REFRESH_MIN_INTERVAL, TokenTypePolicy};

    assert_eq!(DEFAULT_REFRESH_MIN_INTERVAL, Duration::from_secs(60));
    let defaults = issuers(&ONE_ISSUER);
    assert_eq!(defaults[0].refresh_min_interval, Duration::from_secs(60));
    assert_eq!(defaults[0].token_type_policy, TokenTypePolicy::Lenient);
    let flagged = issuers(&with_one_issuer(&[
        "--jwks-refresh-min-seconds",
        "2",
        "--token-type-policy",
        "strict",
    ]));
    assert_eq!(flagged[0].refresh_min_interval, Duration::from_secs(2));
    assert_eq!(flagged[0].token_type_policy, TokenTypePolicy::Strict);
    let err = check(&with_one_issuer(&["--jwks-refresh-min-seconds", "0"])).expect_err("zero");
    assert!(err.contains("refresh interval must be positive"), "{err}");
    let err = check(&with_one_issuer(&["--token-type-policy", "picky"])).expect_err("unknown");
    assert!(err.contains("picky"), "{err}");

    let scratch = Scratch::new();
    let file = scratch.issuers(&json!({"issuers": [
        {"issuer": "https://a", "token_type_policy": "strict", "jwks_refresh_min_seconds": 5},
        {"issuer": "https://b"},
    ]}));
    let from_file = issuers(&["--issuers-file", &file, "--audience", "hub"]);
    assert_eq!(from_file[0].token_type_policy, TokenTypePolicy::Strict);
    assert_eq!(from_file[0].refresh_min_interval, Duration::from_secs(5));
    assert_eq!(from_file[1].token_type_policy, TokenTypePolicy::Lenient);
    assert_eq!(
        from_file[1].refresh_min_interval,
        DEFAULT_REFRESH_MIN_INTERVAL
    );
}
