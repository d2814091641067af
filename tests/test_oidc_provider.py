"""The test OpenID Connect provider is real: discovery, the authorization code flow with PKCE through
its login and consent pages, the token endpoint and an ID token signed by a key in its JWKS.

Plain `requests`, no Django: this checks the tool the SSO end-to-end tests rely on.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import pytest
import requests

from tests.oidc_provider import start_oidc_provider

CLIENT_ID = "console-sso"
CLIENT_SECRET = "s3cret-for-tests"
# Nothing listens there: the flow stops at the redirect, as a browser would hand it to the app.
REDIRECT_URI = "http://127.0.0.1:9/accounts/oidc/sso/login/callback/"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def follow(session: requests.Session, response: requests.Response) -> requests.Response | str:
    """Follow redirects inside the provider; return the page reached, or the redirect_uri URL."""
    for _ in range(10):
        if not response.is_redirect:
            return response
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(REDIRECT_URI):
            return location
        response = session.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("too many redirects")


def submit(session: requests.Session, page: requests.Response, fields: dict[str, str]) -> requests.Response | str:
    """Post the page's form (hidden inputs included) with `fields` filled in."""
    action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    response = session.post(urljoin(page.url, action), data={**hidden, **fields}, allow_redirects=False, timeout=10)
    return follow(session, response)


@pytest.mark.parametrize(
    ("token_auth_method", "login", "email"),
    [
        ("client_secret_post", "alice", "alice@sso.example"),
        ("client_secret_basic", "carol@corp.example", "carol@corp.example"),
    ],
)
def test_authorization_code_flow_with_pkce(token_auth_method: str, login: str, email: str) -> None:
    with start_oidc_provider(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, token_auth_method=token_auth_method) as op:
        config = requests.get(op.discovery_url, timeout=10).json()
        assert config["issuer"] == op.issuer
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            assert config[endpoint].startswith(op.issuer + "/")
        assert "S256" in config["code_challenge_methods_supported"]
        # Only the client's own method, so allauth's discovery-based choice is the right one.
        assert config["token_endpoint_auth_methods_supported"] == [token_auth_method]

        session = requests.Session()
        authorize = {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "scope": "openid email profile",
            "redirect_uri": REDIRECT_URI,
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
        }

        # PKCE is required: without a challenge the provider sends the user back with an error.
        no_pkce = session.get(config["authorization_endpoint"], params=authorize, allow_redirects=False, timeout=10)
        refused = follow(session, no_pkce)
        error = parse_qs(urlsplit(refused).query)
        assert error["error"] == ["invalid_request"]
        assert "requires PKCE" in error["error_description"][0]

        verifier, challenge = pkce_pair()
        start = session.get(
            config["authorization_endpoint"],
            params={**authorize, "code_challenge": challenge, "code_challenge_method": "S256"},
            allow_redirects=False,
            timeout=10,
        )
        login_page = follow(session, start)
        assert 'name="login"' in login_page.text and 'name="password"' in login_page.text
        consent_page = submit(session, login_page, {"login": login, "password": "anything"})
        assert ">Continue</button>" in consent_page.text
        callback = submit(session, consent_page, {})

        query = parse_qs(urlsplit(callback).query)
        assert query["state"] == [authorize["state"]]
        assert query["iss"] == [op.issuer]

        token_request = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        if token_auth_method == "client_secret_post":
            token_request |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
            auth = None
        else:
            auth = (CLIENT_ID, CLIENT_SECRET)
        tokens = requests.post(config["token_endpoint"], data=token_request, auth=auth, timeout=10)
        assert tokens.status_code == 200, tokens.text
        tokens = tokens.json()

        key = jwt.PyJWKClient(config["jwks_uri"]).get_signing_key_from_jwt(tokens["id_token"])
        claims = jwt.decode(tokens["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID, issuer=op.issuer)
        expected = {
            "sub": login,
            "email": email,
            "email_verified": True,
            "name": email.split("@")[0],
            "preferred_username": email.split("@")[0],
        }
        assert claims["nonce"] == authorize["nonce"]
        assert {name: claims.get(name) for name in expected} == expected

        userinfo = requests.get(
            config["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
        ).json()
        assert userinfo == expected
