//! Webhook secrets and signatures.
//!
//! Standard Webhooks (<https://www.standardwebhooks.com/>): headers `webhook-id` (the same
//! for every retry of one delivery), `webhook-timestamp` (Unix seconds of the attempt) and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, where the
//! key is the base64-decoded part of a `whsec_<base64>` secret. During a secret rotation
//! the header carries one space-separated `v1,` signature per valid secret, newest first.
//!
//! Legacy (kept for one release, then removed): `X-Segd-Signature: t=<unix ms>,v1=<hex
//! HMAC-SHA256(secret as text, "<t>.<body>")>`, signed with the newest secret only.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes (after base64 decoding) a secret may have.
pub const MIN_SECRET_BYTES: usize = 24;
/// Most key bytes a secret may have.
pub const MAX_SECRET_BYTES: usize = 64;
/// Key bytes of a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// A new random `whsec_` secret.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut key = [0u8; GENERATED_SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// Checks a secret given at registration or rotation: `whsec_` and base64 of
/// [`MIN_SECRET_BYTES`] to [`MAX_SECRET_BYTES`] bytes.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let shape = format!(
        "a secret is `{SECRET_PREFIX}` followed by base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes; omit it to have one generated"
    );
    let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
        return Err(shape);
    };
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(key) if (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) => Ok(()),
        _ => Err(shape),
    }
}

/// The HMAC key of a secret: the decoded bytes of a `whsec_` secret; the text itself for
/// a secret registered before `whsec_` secrets (still persisted).
fn key_of(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `webhook-signature` for an attempt: one `v1,<base64>` per secret, space-separated.
pub fn standard_signature<'a>(
    secrets: impl IntoIterator<Item = &'a str>,
    id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> String {
    let timestamp = timestamp_s.to_string();
    secrets
        .into_iter()
        .map(|secret| {
            let digest = hmac(
                &key_of(secret),
                &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
            );
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The legacy `X-Segd-Signature`: `t=<ms>,v1=<hex hmac>` (deprecated; see module doc).
pub fn signature(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let digest = hmac(
        secret.as_bytes(),
        &[timestamp_ms.to_string().as_bytes(), b".", body],
    );
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp_ms},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_signature_is_hmac_sha256_of_time_dot_body() {
        // Reference: Python `hmac.new(b"secret", b"1.{}", hashlib.sha256).hexdigest()`.
        assert_eq!(
            signature("secret", 1, b"{}"),
            "t=1,v1=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"
        );
        assert_ne!(signature("secret", 1, b"{}"), signature("other", 1, b"{}"));
    }

    #[test]
    fn standard_signature_matches_the_reference_implementation() {
        // The Standard Webhooks specification's test vector (their libraries' tests).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature([secret], id, 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Rotation: one signature per secret, newest first.
        let two = standard_signature(
            [secret, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
            id,
            1_614_265_330,
            body,
        );
        let parts: Vec<&str> = two.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_checked() {
        assert!(check_secret(&generate_secret()).is_ok());
        assert_ne!(generate_secret(), generate_secret());
        assert!(check_secret("s3cret").is_err(), "no prefix");
        assert!(check_secret("whsec_c2hvcnQ=").is_err(), "too short");
        assert!(check_secret("whsec_not base64!").is_err());
        let long = base64::engine::general_purpose::STANDARD.encode([7u8; 65]);
        assert!(check_secret(&format!("whsec_{long}")).is_err(), "too long");
    }
}
