//! Access tokens: JWTs with `typ: at+jwt`, verified with the algorithm pinned by
//! configuration and a key chosen by `kid` among our own keys only.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Header, Validation};
use serde::{Deserialize, Serialize};

pub use super::amr::Amr;
use super::keys::{KeySet, Keys};
use super::verified;
pub use super::verified::Verified;
use crate::clock;
use crate::domain::{Role, SessionId, UserId};

pub const AUDIENCE: &str = "latchkey";
/// The `client_id` claim (RFC 9068): tokens are issued to latchkey's own clients.
pub const CLIENT_ID: &str = "latchkey";
pub const TYP: &str = "at+jwt";
/// Clock skew tolerated on `exp` (at most 5 s, as documented).
pub const LEEWAY_SECS: u64 = 5;
/// Longer tokens are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: String,
    sid: String,
    name: String,
    role: String,
    // Defaults: tokens issued before these claims existed still verify until they expire.
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    auth_time: i64,
    #[serde(default)]
    amr: Vec<String>,
}

/// The session an access token is issued for.
#[derive(Debug, Clone, Copy)]
pub struct SessionClaims {
    pub id: SessionId,
    /// When the session signed in, Unix seconds.
    pub auth_time: i64,
    pub amr: Amr,
    /// The session's absolute end, Unix seconds: the token never outlives it.
    pub not_after: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is invalid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
    #[error("no signing key is available")]
    NoSigningKey,
}

/// Issues and verifies access tokens for one issuer.
pub struct AccessTokens {
    pub keys: Keys,
    issuer: String,
    ttl_secs: i64,
}

/// A freshly issued access token.
pub struct Issued {
    pub token: String,
    pub expires_in: i64,
}

impl AccessTokens {
    pub fn new(keys: Keys, issuer: String, ttl_secs: i64) -> Self {
        AccessTokens {
            keys,
            issuer,
            ttl_secs,
        }
    }

    pub fn issue(
        &self,
        user_id: UserId,
        username: &str,
        role: Role,
        session: SessionClaims,
    ) -> Result<Issued, TokenError> {
        let keys = self.keys.current();
        let (kid, signer) = keys.signing.as_ref().ok_or(TokenError::NoSigningKey)?;
        let mut header = Header::new(keys.algorithm);
        header.typ = Some(TYP.into());
        header.kid = Some(kid.clone());
        let iat = clock::now().unix_seconds();
        // Never past the session's absolute end: its tokens die with it.
        let exp = (iat + self.ttl_secs).min(session.not_after);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            aud: AUDIENCE.into(),
            exp,
            iat,
            jti: super::random_b64(16),
            sid: session.id.to_string(),
            name: username.to_owned(),
            role: role.as_str().to_owned(),
            client_id: CLIENT_ID.into(),
            auth_time: session.auth_time,
            amr: session
                .amr
                .methods()
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        };
        let token = signer.sign(&header, &claims).map_err(|e| {
            tracing::error!(error = %e, "cannot sign an access token");
            TokenError::NoSigningKey
        })?;
        Ok(Issued {
            token,
            expires_in: (exp - iat).max(0),
        })
    }

    /// Checks a token: its signature once (then it is remembered by the key set's
    /// cache of verified tokens), its expiry on every call.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, clock::now().unix_seconds())
    }

    /// `now` in Unix seconds.
    fn verify_at(&self, token: &str, now: i64) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        let keys = self.keys.current();
        let digest = verified::digest(token);
        let verified = match keys.verified.get(&digest) {
            Some(hit) => hit,
            None => {
                let (verified, kid) = verify_signed(&keys, &self.issuer, token)?;
                keys.verified.insert(digest, &kid, verified.clone());
                verified
            }
        };
        if verified.exp.saturating_add(LEEWAY_SECS as i64) < now {
            return Err(TokenError::Expired);
        }
        Ok(verified)
    }
}

/// The full check: header, signature and claims. Returns the claims and the key's `kid`.
fn verify_signed(
    keys: &KeySet,
    issuer: &str,
    token: &str,
) -> Result<(Verified, String), TokenError> {
    let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
    // The algorithm is ours, never the header's; `decode` checks it again.
    if header.alg != keys.algorithm {
        return Err(TokenError::Invalid);
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    // RFC 7515 §4.1.11: we understand no extensions, so any `crit` is unmet.
    if !typ_ok || header.crit.is_some() {
        return Err(TokenError::Invalid);
    }
    let kid = header.kid.ok_or(TokenError::Invalid)?;
    let key = keys.verifying_key(&kid).ok_or(TokenError::Invalid)?;
    let mut validation = Validation::new(keys.algorithm);
    validation.leeway = LEEWAY_SECS;
    // We never issue `nbf`, but a token that carries one is held to it (ASVS 9.2.1).
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        _ => TokenError::Invalid,
    })?;
    let claims = data.claims;
    let verified = Verified {
        user_id: claims.sub.parse().map_err(|_| TokenError::Invalid)?,
        session_id: claims.sid.parse().map_err(|_| TokenError::Invalid)?,
        username: claims.name,
        role: claims.role.parse().map_err(|_| TokenError::Invalid)?,
        amr: Amr::from_claim(&claims.amr).ok_or(TokenError::Invalid)?,
        exp: claims.exp,
    };
    Ok((verified, kid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Millis;
    use crate::tokens::keys::KeyAlg;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn eddsa(ttl: i64) -> AccessTokens {
        let row = KeyAlg::EdDsa.generate(Millis(0)).unwrap();
        AccessTokens::new(
            Keys::new(KeySet::stored(KeyAlg::EdDsa, &[row])),
            "http://issuer".into(),
            ttl,
        )
    }

    pub(crate) fn session(id: i64) -> SessionClaims {
        SessionClaims {
            id: SessionId(id),
            auth_time: 0,
            amr: Amr::Password,
            not_after: i64::MAX,
        }
    }

    fn issue(tokens: &AccessTokens) -> String {
        tokens
            .issue(UserId(7), "alice", Role::User, session(9))
            .unwrap()
            .token
    }

    fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
        let mut it = token.split('.');
        let json = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
        let header = json(it.next().unwrap());
        let claims = json(it.next().unwrap());
        (header, claims, it.next().unwrap().to_owned())
    }

    fn forge(header: &serde_json::Value, claims: &serde_json::Value, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            sig
        )
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let tokens = eddsa(60);
        let token = issue(&tokens);
        let verified = tokens.verify(&token).unwrap();
        assert_eq!(
            (verified.user_id, verified.session_id),
            (UserId(7), SessionId(9))
        );
        assert_eq!(
            (verified.username.as_str(), verified.role),
            ("alice", Role::User)
        );
        let (header, claims, _) = parts(&token);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "EdDSA");
        assert!(header["kid"].is_string());
        for field in ["sub", "sid", "jti"] {
            assert!(claims[field].is_string(), "{field} is a string");
        }
        assert_eq!(claims["aud"], "latchkey");
        assert_eq!(claims["iss"], "http://issuer");
    }

    #[test]
    fn tampered_claims_and_foreign_signatures_are_invalid() {
        let tokens = eddsa(60);
        let token = issue(&tokens);
        let (header, mut claims, sig) = parts(&token);
        claims["role"] = "admin".into();
        assert_eq!(
            tokens.verify(&forge(&header, &claims, &sig)),
            Err(TokenError::Invalid)
        );
        let other = eddsa(60);
        let foreign = issue(&other);
        assert_eq!(tokens.verify(&foreign), Err(TokenError::Invalid));
    }

    #[test]
    fn alg_none_and_a_wrong_typ_are_invalid() {
        let tokens = eddsa(60);
        let (mut header, claims, sig) = parts(&issue(&tokens));
        for none in ["none", "None", "NONE", "nOnE"] {
            header["alg"] = none.into();
            assert_eq!(
                tokens.verify(&forge(&header, &claims, "")),
                Err(TokenError::Invalid)
            );
        }
        header["alg"] = "EdDSA".into();
        header["typ"] = "JWT".into();
        assert_eq!(
            tokens.verify(&forge(&header, &claims, &sig)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn an_expired_token_is_expired_after_the_leeway() {
        let tokens = eddsa(-(LEEWAY_SECS as i64) - 2);
        assert_eq!(tokens.verify(&issue(&tokens)), Err(TokenError::Expired));
    }

    #[test]
    fn a_repeated_token_is_answered_from_the_cache() {
        let tokens = eddsa(60);
        let token = issue(&tokens);
        let first = tokens.verify(&token).unwrap();
        let cache = &tokens.keys.current().verified;
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&verified::digest(&token)), Some(first.clone()));
        assert_eq!(tokens.verify(&token), Ok(first));
        assert_eq!(cache.len(), 1, "a hit adds nothing");
    }

    #[test]
    fn a_cached_token_still_expires() {
        let tokens = eddsa(60);
        let token = issue(&tokens);
        let verified = tokens.verify(&token).unwrap();
        let last_valid = verified.exp + LEEWAY_SECS as i64;
        assert!(tokens.verify_at(&token, last_valid).is_ok());
        assert_eq!(
            tokens.verify_at(&token, last_valid + 1),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_tampered_copy_of_a_cached_token_is_still_invalid() {
        let tokens = eddsa(60);
        let token = issue(&tokens);
        tokens.verify(&token).unwrap();
        let (header, mut claims, sig) = parts(&token);
        claims["role"] = "admin".into();
        assert_eq!(
            tokens.verify(&forge(&header, &claims, &sig)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn removing_a_key_flushes_its_cached_tokens_and_a_rotation_keeps_them() {
        let old_key = KeyAlg::EdDsa.generate(Millis(0)).unwrap();
        let tokens = AccessTokens::new(
            Keys::new(KeySet::stored(
                KeyAlg::EdDsa,
                std::slice::from_ref(&old_key),
            )),
            "http://issuer".into(),
            60,
        );
        let token = issue(&tokens);
        tokens.verify(&token).unwrap();

        // Rotation: a new active key, the old one retired but still published.
        let mut retired = old_key.clone();
        retired.retired_at = Some(Millis(1));
        let new_key = KeyAlg::EdDsa.generate(Millis(1)).unwrap();
        tokens
            .keys
            .replace(KeySet::stored(KeyAlg::EdDsa, &[new_key.clone(), retired]));
        assert_eq!(tokens.keys.current().verified.len(), 1);
        assert!(tokens.verify(&token).is_ok());

        // Removal: the old key is gone, and so is every token it verified.
        tokens
            .keys
            .replace(KeySet::stored(KeyAlg::EdDsa, &[new_key]));
        assert!(tokens.keys.current().verified.is_empty());
        assert_eq!(tokens.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn hs256_tokens_verify_only_with_the_same_secret() {
        let secret = [7u8; 32];
        let a = AccessTokens::new(Keys::new(KeySet::hs256(&secret)), "i".into(), 60);
        let b = AccessTokens::new(Keys::new(KeySet::hs256(&[8u8; 32])), "i".into(), 60);
        let token = issue(&a);
        assert!(a.verify(&token).is_ok());
        assert_eq!(b.verify(&token), Err(TokenError::Invalid));
        assert_eq!(eddsa(60).verify(&token), Err(TokenError::Invalid));
    }
}
