//! Passkeys (WebAuthn Level 2) on `webauthn-rs`: discoverable credentials with user
//! verification required, so a sign-in needs no username and a passkey is a second
//! factor on its own (`amr: ["hwk","user"]`).
//!
//! The relying party is `LATCHKEY_PUBLIC_URL`: its host is the RP id, the URL the only
//! origin accepted. Browsers refuse IP addresses as RP ids, so on a public URL with one
//! passkeys are unavailable and the pages say why. Ceremony state is JSON that the
//! store keeps server-side (see `store::passkeys`); the WebAuthn user handle is the
//! user id (not personal data, and stable across renames).

use std::time::Duration;

use crate::domain::UserId;
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

/// How long a ceremony may take, from the options to the browser's answer.
pub const CEREMONY: Duration = Duration::from_secs(300);

/// Why a ceremony was refused, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("passkeys are not available here: {0}")]
    Unavailable(&'static str),
    #[error("the browser's answer is malformed")]
    Malformed,
    #[error("the passkey was not accepted")]
    Rejected,
}

pub struct Passkeys(Result<Webauthn, &'static str>);

impl Passkeys {
    pub fn for_public_url(public_url: &str) -> Self {
        Passkeys(relying_party(public_url))
    }

    /// Why passkeys cannot work with this public URL, if they cannot.
    pub fn unavailable(&self) -> Option<&'static str> {
        self.0.as_ref().err().copied()
    }

    fn webauthn(&self) -> Result<&Webauthn, Refused> {
        self.0.as_ref().map_err(|why| Refused::Unavailable(why))
    }

    /// The options for `navigator.credentials.create` and the state to keep. Passkeys the
    /// user has already (`existing` credential ids) are excluded.
    pub fn start_registration(
        &self,
        user_id: UserId,
        username: &str,
        existing: Vec<Vec<u8>>,
    ) -> Result<(Value, String), Refused> {
        let excluded = (!existing.is_empty()).then(|| existing.into_iter().collect());
        let (options, state) = self
            .webauthn()?
            .start_passkey_registration(user_handle(user_id), username, username, excluded)
            .map_err(|e| internal("start a registration", &e))?;
        let mut options = to_value(&options)?;
        // Discoverable: the sign-in asks for no username, so the authenticator must keep
        // the credential (webauthn-rs' passkey options leave that to the authenticator).
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        selection["residentKey"] = "required".into();
        selection["requireResidentKey"] = true.into();
        Ok((options, to_string(&state)?))
    }

    /// Checks the browser's answer to a registration: the credential id and the record
    /// to store.
    pub fn finish_registration(
        &self,
        answer: Value,
        state: &str,
    ) -> Result<(Vec<u8>, String), Refused> {
        let answer: RegisterPublicKeyCredential =
            serde_json::from_value(answer).map_err(|_| Refused::Malformed)?;
        let state: PasskeyRegistration =
            serde_json::from_str(state).map_err(|e| internal("read a registration", &e))?;
        let passkey = self
            .webauthn()?
            .finish_passkey_registration(&answer, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                Refused::Rejected
            })?;
        Ok((passkey.cred_id().to_vec(), to_string(&passkey)?))
    }

    /// The options for `navigator.credentials.get` (any passkey of this site) and the
    /// state to keep.
    pub fn start_sign_in(&self) -> Result<(Value, String), Refused> {
        let (mut options, state) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| internal("start a sign-in", &e))?;
        // A button asks, not the autofill of a username field.
        options.mediation = None;
        Ok((to_value(&options)?, to_string(&state)?))
    }

    /// Who the browser's answer to a sign-in claims to be: the user id and the
    /// credential id (to look the passkey up before [`Passkeys::finish_sign_in`]).
    pub fn identify(&self, answer: &Value) -> Result<(UserId, Vec<u8>), Refused> {
        let answer: PublicKeyCredential =
            serde_json::from_value(answer.clone()).map_err(|_| Refused::Malformed)?;
        let (handle, credential) = self
            .webauthn()?
            .identify_discoverable_authentication(&answer)
            .map_err(|_| Refused::Rejected)?;
        Ok((
            user_id_of(handle).ok_or(Refused::Rejected)?,
            credential.to_vec(),
        ))
    }

    /// Checks the answer against the stored passkey (signature, challenge, origin, user
    /// verification, and the signature counter where the authenticator keeps one).
    /// Returns the passkey's record again when it changed (its counter).
    pub fn finish_sign_in(
        &self,
        answer: Value,
        state: &str,
        stored: &str,
    ) -> Result<Option<String>, Refused> {
        let answer: PublicKeyCredential =
            serde_json::from_value(answer).map_err(|_| Refused::Malformed)?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(state).map_err(|e| internal("read a sign-in", &e))?;
        let mut passkey: Passkey =
            serde_json::from_str(stored).map_err(|e| internal("read a stored passkey", &e))?;
        let result = self
            .webauthn()?
            .finish_discoverable_authentication_v2(&answer, state, &passkey)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey sign-in refused");
                Refused::Rejected
            })?;
        match passkey.update_credential(&result) {
            Some(true) => Ok(Some(to_string(&passkey)?)),
            _ => Ok(None),
        }
    }
}

fn relying_party(public_url: &str) -> Result<Webauthn, &'static str> {
    let origin = Url::parse(public_url).map_err(|_| "LATCHKEY_PUBLIC_URL is not a URL")?;
    let Some(url::Host::Domain(host)) = origin.host() else {
        return Err("this service's address (LATCHKEY_PUBLIC_URL) is an IP address, and browsers accept passkeys only for a host name (such as localhost)");
    };
    let host = host.to_owned();
    WebauthnBuilder::new(&host, &origin)
        .and_then(|b| b.rp_name("latchkey").timeout(CEREMONY).build())
        .map_err(|_| {
            "this service's address (LATCHKEY_PUBLIC_URL) cannot be a passkey relying party"
        })
}

/// The WebAuthn user handle of a user: their id, in a UUID's 16 bytes.
fn user_handle(user_id: UserId) -> Uuid {
    Uuid::from_u64_pair(0, user_id.0 as u64)
}

fn user_id_of(handle: Uuid) -> Option<UserId> {
    match handle.as_u64_pair() {
        (0, id) => i64::try_from(id).ok().filter(|id| *id > 0).map(UserId),
        _ => None,
    }
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, Refused> {
    serde_json::to_value(v).map_err(|e| internal("serialise ceremony options", &e))
}

fn to_string(v: &impl serde::Serialize) -> Result<String, Refused> {
    serde_json::to_string(v).map_err(|e| internal("serialise ceremony state", &e))
}

fn internal(what: &str, e: &dyn std::fmt::Display) -> Refused {
    tracing::error!(error = %e, "cannot {what}");
    Refused::Rejected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_name_is_a_relying_party_and_an_ip_address_is_not() {
        assert!(Passkeys::for_public_url("http://localhost:8080")
            .unavailable()
            .is_none());
        assert!(Passkeys::for_public_url("https://auth.example.com")
            .unavailable()
            .is_none());
        for ip in [
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "https://10.0.0.7",
        ] {
            let why = Passkeys::for_public_url(ip).unavailable().expect(ip);
            assert!(why.contains("IP address"), "{ip}: {why}");
        }
    }

    #[test]
    fn the_user_handle_round_trips_and_nothing_else_reads_as_a_user() {
        assert_eq!(user_id_of(user_handle(UserId(42))), Some(UserId(42)));
        assert_eq!(user_id_of(Uuid::from_u64_pair(1, 42)), None);
        assert_eq!(user_id_of(Uuid::from_u64_pair(0, 0)), None);
        assert_eq!(user_id_of(Uuid::from_u64_pair(0, u64::MAX)), None);
    }

    #[test]
    fn registration_options_ask_for_a_discoverable_credential_and_user_verification() {
        let passkeys = Passkeys::for_public_url("http://localhost:8080");
        let (options, state) = passkeys
            .start_registration(UserId(7), "alice", vec![])
            .unwrap();
        let selection = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        assert_eq!(selection["userVerification"], "required");
        assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
        assert!(!state.is_empty());
        let junk = serde_json::json!({"id": "x"});
        assert_eq!(
            passkeys.finish_registration(junk, &state),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn sign_in_options_are_for_any_passkey_and_junk_answers_are_refused() {
        let passkeys = Passkeys::for_public_url("http://localhost:8080");
        let (options, _) = passkeys.start_sign_in().unwrap();
        assert_eq!(options["publicKey"]["userVerification"], "required");
        assert!(options.get("mediation").is_none_or(Value::is_null));
        assert_eq!(
            passkeys.identify(&serde_json::json!([])),
            Err(Refused::Malformed)
        );
        let unavailable = Passkeys::for_public_url("http://127.0.0.1:1");
        assert!(matches!(
            unavailable.start_sign_in(),
            Err(Refused::Unavailable(_))
        ));
    }
}
