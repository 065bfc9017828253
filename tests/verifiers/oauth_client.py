"""An off-the-shelf OAuth 2 client against latchkey: requests-oauthlib's OAuth2Session
with oauthlib's LegacyApplicationClient (the RFC 6749 password grant), then a refresh,
as a CLI or a script written by another team would do it.

Usage: oauth_client.py ISSUER USERNAME, the password on stdin. Finds the token endpoint
in the discovery document, prints one JSON object: who /api/me says is signed in after
the password grant and after the refresh, and whether the old refresh token was rotated.
With a wrong password it prints {"error": ...} as oauthlib reports it.
"""

import json
import os
import sys

import requests
from oauthlib.oauth2 import LegacyApplicationClient
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from requests_oauthlib import OAuth2Session

# oauthlib refuses plain http unless told; the test server is on loopback.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def main():
    issuer, username = sys.argv[1:3]
    password = sys.stdin.readline().rstrip("\n")
    metadata = requests.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=5).json()
    token_url = metadata["token_endpoint"]
    session = OAuth2Session(client=LegacyApplicationClient(client_id="latchkey"))
    try:
        first = session.fetch_token(
            token_url=token_url, username=username, password=password, include_client_id=True
        )
    except OAuth2Error as error:
        print(json.dumps({"error": error.error, "status": error.status_code}))
        return
    me_first = session.get(f"{issuer}/api/me", timeout=5).json()
    second = session.refresh_token(token_url, refresh_token=first["refresh_token"], client_id="latchkey")
    me_second = session.get(f"{issuer}/api/me", timeout=5).json()
    print(
        json.dumps(
            {
                "token_type": first["token_type"],
                "first": me_first,
                "second": me_second,
                "rotated": first["refresh_token"] != second["refresh_token"],
                "expires_in": second["expires_in"],
            }
        )
    )


main()
