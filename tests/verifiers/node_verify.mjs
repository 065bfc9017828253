// Verifiers as another team's Node service would write them, given only latchkey's
// discovery document (or JWKS) URL:
//   jose          createRemoteJWKSet + jwtVerify (its defaults: a 30 s cooldown before
//                 refetching the key set on an unknown kid)
//   jsonwebtoken  jsonwebtoken.verify with jwks-rsa's getSigningKey (the express-jwt /
//                 passport-jwt stack)
//
// Usage: node node_verify.mjs jose|jsonwebtoken URL ALG ISSUER. Reads one access token
// per line on stdin and answers one line per token: "ok SUB" or "fail REASON". At the
// end of input it prints "fetches N": how often it downloaded the JWKS.

import readline from "node:readline";
import * as jose from "jose";
import jsonwebtoken from "jsonwebtoken";
import jwksRsa from "jwks-rsa";

const [mode, url, alg, issuer] = process.argv.slice(2);

let fetches = 0;

async function jwksUri(url) {
  if (url.endsWith("/openid-configuration") || url.endsWith("/oauth-authorization-server")) {
    const response = await fetch(url);
    return (await response.json()).jwks_uri;
  }
  return url;
}

async function joseVerifier(uri) {
  const countingFetch = (...args) => {
    fetches += 1;
    return fetch(...args);
  };
  const keys = jose.createRemoteJWKSet(new URL(uri), { [jose.customFetch]: countingFetch });
  return async (token) => {
    const { payload } = await jose.jwtVerify(token, keys, {
      issuer,
      audience: "latchkey",
      algorithms: [alg],
      typ: "at+jwt",
    });
    return payload.sub;
  };
}

function jsonwebtokenVerifier(uri) {
  const client = jwksRsa({ jwksUri: uri, cache: true, rateLimit: true });
  // jwks-rsa downloads the key set through getKeys: count those downloads.
  const getKeys = client.getKeys.bind(client);
  client.getKeys = () => {
    fetches += 1;
    return getKeys();
  };
  const getKey = (header, callback) => {
    client
      .getSigningKey(header.kid)
      .then((key) => callback(null, key.getPublicKey()))
      .catch((error) => callback(error));
  };
  return (token) =>
    new Promise((resolve, reject) => {
      jsonwebtoken.verify(
        token,
        getKey,
        { algorithms: [alg], audience: "latchkey", issuer },
        (error, claims) => (error ? reject(error) : resolve(claims.sub)),
      );
    });
}

const uri = await jwksUri(url);
let verify;
if (mode === "jose") {
  verify = await joseVerifier(uri);
} else if (mode === "jsonwebtoken") {
  verify = jsonwebtokenVerifier(uri);
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const token = line.trim();
  if (!token) continue;
  try {
    console.log(`ok ${await verify(token)}`);
  } catch (error) {
    console.log(`fail ${error.name}: ${error.message}`.replace(/\n/g, " "));
  }
}
console.log(`fetches ${fetches}`);
