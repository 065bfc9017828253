"""A verifier as another team's Python service would write it: PyJWT's PyJWKClient,
given only latchkey's discovery document (or JWKS) URL.

Usage: pyjwt_verify.py URL ALG ISSUER. Reads one access token per line on stdin and
answers one line per token: "ok SUB" or "fail REASON". At the end of input it prints
"fetches N": how often it downloaded the JWKS.
"""

import json
import sys
import urllib.request

import jwt
from jwt import PyJWKClient


class CountingClient(PyJWKClient):
    fetches = 0

    def fetch_data(self):
        CountingClient.fetches += 1
        return super().fetch_data()


def main():
    url, alg, issuer = sys.argv[1:4]
    if url.endswith("/openid-configuration") or url.endswith("/oauth-authorization-server"):
        with urllib.request.urlopen(url, timeout=5) as response:
            url = json.load(response)["jwks_uri"]
    # The defaults: the key set is cached for 300 s, refetched once on an unknown kid.
    client = CountingClient(url)
    for line in sys.stdin:
        token = line.strip()
        if not token:
            continue
        try:
            key = client.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key, algorithms=[alg], audience="latchkey", issuer=issuer
            )
            print("ok", claims["sub"], flush=True)
        except Exception as error:  # every failure is an answer, not a crash
            reason = f"{type(error).__name__}: {error}".replace("\n", " ")
            print("fail", reason, flush=True)
    print("fetches", CountingClient.fetches, flush=True)


main()
