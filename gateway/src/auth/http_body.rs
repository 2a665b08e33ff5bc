//! Reading a response body under a size cap, for every document the hub fetches from an
//! issuer (metadata, JWKS, introspection answers): a broken or hostile server cannot make
//! the gateway buffer more than the cap, with or without a `Content-Length`.

/// Reads the whole body, failing as soon as it would pass `max` bytes. The error names no
/// URL and no body content.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    let too_large = || format!("body larger than {max} bytes");
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| format!("reading body failed: {}", err.without_url()))?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
