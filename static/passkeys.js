// Passkeys: the two WebAuthn ceremonies, the only thing on latchkey's pages that needs
// JavaScript. Each is two JSON calls to this origin around one browser prompt:
//   dashboard: POST /account/passkeys/register/{start,finish} around credentials.create
//   sign-in:   POST /login/passkey/{start,finish} around credentials.get
// The server keeps the challenge and checks everything; this script only moves bytes
// between the server's JSON (base64url) and the browser's ArrayBuffers. Without
// JavaScript, or without WebAuthn, the passkey controls stay hidden.
"use strict";

(() => {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  const toBase64url = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
  const fromBase64url = (text) =>
    Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

  // A credential as JSON, for the server: the byte fields base64url.
  const asJson = (credential, response) => ({
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    extensions: credential.getClientExtensionResults(),
    response,
  });

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch (_) {
      throw new Error("the server's answer was not understood; reload the page and try again");
    }
    if (response.status === 401 && answer.error === "invalid_token") {
      // The page's sign-in needs renewing: reloading renews it, and says to repeat this.
      window.location.reload();
      return new Promise(() => {});
    }
    if (answer.error === "invalid_credentials") {
      throw new Error("this passkey was not accepted (it may have been removed from its account)");
    }
    if (!response.ok) throw new Error(answer.message || `the server answered ${response.status}`);
    return answer;
  }

  // What the browser's prompt ended with, in words for the user.
  function failure(error) {
    if (error && error.name === "NotAllowedError") return "The passkey prompt was closed or timed out.";
    if (error && error.name === "InvalidStateError") return "This passkey is registered already.";
    if (error && error.name === "SecurityError") {
      return "This browser refuses passkeys for this address; use the address the page names.";
    }
    const text = String(error && error.message ? error.message : error).replace(/[.\s]+$/, "");
    return `That did not work: ${text}.`;
  }

  // Passkeys are bound to one origin, the service's public URL: reached at any other
  // address, the page names the right one instead of offering a prompt that must fail.
  function offered(block) {
    if (window.location.origin === block.dataset.origin) {
      block.hidden = false;
      return true;
    }
    const elsewhere = document.getElementById("passkeys-elsewhere");
    if (elsewhere) elsewhere.hidden = false;
    return false;
  }

  function show(element, message) {
    element.textContent = message;
    element.hidden = false;
  }

  const register = document.getElementById("passkey-register");
  if (register && offered(register)) {
    const error = document.getElementById("passkey-register-error");
    const button = document.getElementById("passkey-register-button");
    register.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (button.disabled) return;
      error.hidden = true;
      button.disabled = true;
      const csrf_token = register.elements.csrf_token.value;
      try {
        const options = await post("/account/passkeys/register/start", {
          csrf_token,
          name: register.elements.name.value,
        });
        const publicKey = options.publicKey;
        publicKey.challenge = fromBase64url(publicKey.challenge);
        publicKey.user.id = fromBase64url(publicKey.user.id);
        for (const c of publicKey.excludeCredentials || []) c.id = fromBase64url(c.id);
        const credential = await navigator.credentials.create({ publicKey });
        const done = await post("/account/passkeys/register/finish", {
          csrf_token,
          credential: asJson(credential, {
            clientDataJSON: toBase64url(credential.response.clientDataJSON),
            attestationObject: toBase64url(credential.response.attestationObject),
          }),
        });
        window.location.assign(done.redirect);
      } catch (e) {
        show(error, failure(e));
      } finally {
        button.disabled = false;
      }
    });
  }

  const signIn = document.getElementById("passkey-sign-in");
  if (signIn && offered(signIn)) {
    const error = document.getElementById("passkey-sign-in-error");
    const button = document.getElementById("passkey-sign-in-button");
    button.addEventListener("click", async () => {
      error.hidden = true;
      button.disabled = true;
      const csrf_token = signIn.dataset.csrf;
      try {
        const options = await post("/login/passkey/start", { csrf_token });
        const publicKey = options.publicKey;
        publicKey.challenge = fromBase64url(publicKey.challenge);
        for (const c of publicKey.allowCredentials || []) c.id = fromBase64url(c.id);
        const credential = await navigator.credentials.get({ publicKey });
        const response = credential.response;
        const done = await post("/login/passkey/finish", {
          csrf_token,
          next: signIn.dataset.next,
          credential: asJson(credential, {
            clientDataJSON: toBase64url(response.clientDataJSON),
            authenticatorData: toBase64url(response.authenticatorData),
            signature: toBase64url(response.signature),
            userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
          }),
        });
        window.location.assign(done.redirect);
      } catch (e) {
        show(error, failure(e));
      } finally {
        button.disabled = false;
      }
    });
  }
})();
