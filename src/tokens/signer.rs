//! The algorithms whose keys latchkey generates and keeps in the database (EdDSA, ES256,
//! RS256): making a key, reading a stored one back as a signer or as a verifying key and
//! its JWK, and signing. HS256 (a secret from configuration) signs through jsonwebtoken.
//!
//! Stored rows hold the private key as PKCS#8 DER and the public key in the form its JWK
//! is made from: the raw 32 bytes (Ed25519), the uncompressed SEC1 point (P-256), the
//! PKCS#1 `RSAPublicKey` DER (RSA).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rsa::pkcs1::{DecodeRsaPublicKey as _, EncodeRsaPublicKey as _};
use rsa::rand_core::OsRng;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::Millis;
use crate::store::keys::KeyRow;

/// RSA modulus size of generated keys.
const RSA_BITS: usize = 2048;

/// An algorithm whose keys are generated and stored (published in the JWKS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    EdDsa,
    Es256,
    Rs256,
}

impl KeyAlg {
    pub const ALL: [KeyAlg; 3] = [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256];

    /// The JOSE name, as in a token's `alg` header and the stored rows.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EdDsa => "EdDSA",
            KeyAlg::Es256 => "ES256",
            KeyAlg::Rs256 => "RS256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            KeyAlg::EdDsa => Algorithm::EdDSA,
            KeyAlg::Es256 => Algorithm::ES256,
            KeyAlg::Rs256 => Algorithm::RS256,
        }
    }

    /// A new key as a row to store. RSA keys take a while (a few hundred milliseconds):
    /// make them outside any transaction.
    pub fn generate(self, now: Millis) -> anyhow::Result<KeyRow> {
        let encode = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot encode a new key: {e}");
        let (private_key, public_key) = match self {
            KeyAlg::EdDsa => {
                let mut seed = [0u8; 32];
                rand::fill(&mut seed);
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                let der = key.to_pkcs8_der().map_err(|e| encode(&e))?;
                (
                    der.as_bytes().to_vec(),
                    key.verifying_key().to_bytes().to_vec(),
                )
            }
            KeyAlg::Es256 => {
                let key = p256::ecdsa::SigningKey::random(&mut OsRng);
                let der =
                    p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&key).map_err(|e| encode(&e))?;
                let point = key.verifying_key().to_encoded_point(false);
                (der.as_bytes().to_vec(), point.as_bytes().to_vec())
            }
            KeyAlg::Rs256 => {
                let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| encode(&e))?;
                let der =
                    rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key).map_err(|e| encode(&e))?;
                let public = key.to_public_key().to_pkcs1_der().map_err(|e| encode(&e))?;
                (der.as_bytes().to_vec(), public.as_bytes().to_vec())
            }
        };
        Ok(KeyRow {
            kid: super::random_b64(12),
            algorithm: self.name().into(),
            private_key,
            public_key,
            created_at: now,
            activated_at: None,
            retired_at: None,
            revoked_at: None,
        })
    }
}

/// A key that signs access tokens, parsed once per key set: `jsonwebtoken::encode` would
/// parse the stored key (and derive its public half) again for every token.
pub enum Signer {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Es256(Box<p256::ecdsa::SigningKey>),
    Rs256(Box<rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>>),
    Hs256(EncodingKey),
}

impl Signer {
    /// The signer of a stored row of `alg`; `None` when the row does not parse.
    pub fn from_row(alg: KeyAlg, row: &KeyRow) -> Option<Self> {
        let der = row.private_key.as_slice();
        let signer = match alg {
            KeyAlg::EdDsa => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .ok()
                .map(|k| Signer::Ed25519(Box::new(k))),
            KeyAlg::Es256 => p256::pkcs8::DecodePrivateKey::from_pkcs8_der(der)
                .ok()
                .map(|k| Signer::Es256(Box::new(k))),
            KeyAlg::Rs256 => rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(der)
                .ok()
                // `new`, not `From`: that one leaves out the DigestInfo prefix RS256 needs.
                .map(|k| Signer::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(k)))),
        };
        if signer.is_none() {
            tracing::error!(kid = %row.kid, "a stored signing key is malformed");
        }
        signer
    }

    /// The compact JWS of `claims` under `header`: the same bytes `jsonwebtoken::encode`
    /// produces (all three signatures are deterministic; unit tests compare them).
    pub fn sign<T: Serialize>(
        &self,
        header: &Header,
        claims: &T,
    ) -> jsonwebtoken::errors::Result<String> {
        if let Signer::Hs256(key) = self {
            return jsonwebtoken::encode(header, claims, key);
        }
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
        let input = token.as_bytes();
        let signature = match self {
            Signer::Ed25519(key) => key.sign(input).to_bytes().to_vec(),
            Signer::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
            // Blinded, as jsonwebtoken signs: RSA's private operation is not constant time.
            Signer::Rs256(key) => key.sign_with_rng(&mut OsRng, input).to_vec(),
            Signer::Hs256(_) => unreachable!("HS256 returned above"),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// The verifying key and the public JWK (without `kid`, `use`, `alg`) of a stored row of
/// `alg`; `None` when its public key does not parse as one of that algorithm.
pub fn public_key(alg: KeyAlg, row: &KeyRow) -> Option<(DecodingKey, Value)> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let public = row.public_key.as_slice();
    match alg {
        KeyAlg::EdDsa => {
            ed25519_dalek::VerifyingKey::from_bytes(public.try_into().ok()?).ok()?;
            Some((
                DecodingKey::from_ed_der(public),
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(public)}),
            ))
        }
        KeyAlg::Es256 => {
            let point = p256::PublicKey::from_sec1_bytes(public).ok()?;
            let point = point.to_encoded_point(false);
            let (x, y) = (point.x()?, point.y()?);
            Some((
                DecodingKey::from_ec_der(point.as_bytes()),
                json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}),
            ))
        }
        KeyAlg::Rs256 => {
            let key = rsa::RsaPublicKey::from_pkcs1_der(public).ok()?;
            let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
            Some((
                DecodingKey::from_rsa_raw_components(&n, &e),
                json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)}),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::Validation;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;

    #[derive(Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        exp: i64,
    }

    /// What jsonwebtoken's own encoder makes of the same key, for comparison.
    fn their_key(alg: KeyAlg, row: &KeyRow) -> EncodingKey {
        match alg {
            KeyAlg::EdDsa => EncodingKey::from_ed_der(&row.private_key),
            KeyAlg::Es256 => EncodingKey::from_ec_der(&row.private_key),
            KeyAlg::Rs256 => {
                let key: rsa::RsaPrivateKey =
                    rsa::pkcs8::DecodePrivateKey::from_pkcs8_der(&row.private_key).unwrap();
                EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes())
            }
        }
    }

    #[test]
    fn our_tokens_are_the_bytes_jsonwebtoken_would_produce_and_verify_with_the_public_key() {
        for alg in KeyAlg::ALL {
            let row = alg.generate(Millis(0)).unwrap();
            let signer = Signer::from_row(alg, &row).unwrap();
            let mut header = Header::new(alg.jwt());
            header.kid = Some(row.kid.clone());
            let claims = Claims {
                sub: "7".into(),
                exp: i64::MAX / 2,
            };
            let ours = signer.sign(&header, &claims).unwrap();
            let theirs = jsonwebtoken::encode(&header, &claims, &their_key(alg, &row)).unwrap();
            assert_eq!(ours, theirs, "{alg:?}");

            let (decoding, jwk) = public_key(alg, &row).unwrap();
            let mut validation = Validation::new(alg.jwt());
            validation.set_required_spec_claims(&["exp"]);
            let read = jsonwebtoken::decode::<Claims>(&ours, &decoding, &validation).unwrap();
            assert_eq!(read.claims.sub, "7");
            // The JWK alone is enough for any verifier.
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
            let from_jwk = DecodingKey::from_jwk(&jwk).unwrap();
            jsonwebtoken::decode::<Claims>(&ours, &from_jwk, &validation).unwrap();
        }
    }

    #[test]
    fn names_round_trip_and_others_are_refused() {
        for alg in KeyAlg::ALL {
            assert_eq!(KeyAlg::parse(alg.name()), Some(alg));
        }
        assert_eq!(KeyAlg::parse("HS256"), None);
        assert_eq!(KeyAlg::parse("eddsa"), None);
    }

    #[test]
    fn a_row_of_another_algorithm_or_malformed_does_not_parse() {
        let ed = KeyAlg::EdDsa.generate(Millis(0)).unwrap();
        let ec = KeyAlg::Es256.generate(Millis(0)).unwrap();
        assert!(Signer::from_row(KeyAlg::Es256, &ed).is_none());
        assert!(Signer::from_row(KeyAlg::Rs256, &ec).is_none());
        assert!(public_key(KeyAlg::Rs256, &ed).is_none());
        assert!(public_key(KeyAlg::EdDsa, &ec).is_none());
        let broken = KeyRow {
            private_key: vec![0; 48],
            public_key: vec![0; 65],
            ..ec
        };
        assert!(Signer::from_row(KeyAlg::Es256, &broken).is_none());
        assert!(public_key(KeyAlg::Es256, &broken).is_none());
    }
}
