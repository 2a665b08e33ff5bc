//! Garbage and forged tokens (TOK): every route answers 401 with a reason, nothing changes
//! and the gateway keeps serving.

use anyhow::Result;

use super::{Stage, refused};
use crate::issuer::TestIssuer;
use crate::payloads::patient_open;

#[tokio::test]
async fn tok_garbage_tokens_are_401() -> Result<()> {
    let stage = Stage::start().await?;
    let issuer = &stage.rig.issuer;
    let topic = stage.topic().to_owned();
    let mut tokens = TestIssuer::garbage();
    tokens.extend([
        issuer.expired(&topic, crate::token::ALL_SCOPES)?,
        issuer.alg_none(&topic, crate::token::ALL_SCOPES)?,
        issuer.hmac(&topic, crate::token::ALL_SCOPES)?,
        issuer.foreign_key(&topic, crate::token::ALL_SCOPES)?,
    ]);
    for token in tokens {
        let bad = stage.client.with_token(Some(token.clone()));
        let what = format!("token `{token:.24}`");
        refused(
            &bad.publish(&patient_open(&topic, "p-tok")).await?,
            401,
            &what,
        )?;
        refused(&bad.subscribe_with("Patient-open", &[]).await?, 401, &what)?;
        refused(&bad.get_context().await?, 401, &what)?;
    }
    stage.finish().await
}
