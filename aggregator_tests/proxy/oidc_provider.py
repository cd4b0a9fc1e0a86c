"""A small but real OpenID Connect provider for the tests, built from authlib's server components.

Authorization code grant with PKCE (required) and the OpenID Connect code extension (nonce required), RS256
ID tokens, discovery and JWKS, served by uvicorn on a free port. Users "sign in" at the provider by posting
their name to the authorize endpoint; their groups come from `USERS`.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

# authlib refuses http:// outside this switch; the provider only listens on 127.0.0.1 in tests.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

USERS: dict[str, list[str]] = {"olga": ["data-platform-admins"], "vic": ["analysts"], "nobody": ["marketing"]}
CLIENT_ID, CLIENT_SECRET = "aggregator-proxy", "test-client-secret-" + secrets.token_hex(8)
KEY = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})


@dataclass
class Client(ClientMixin):
    redirect_uris: list[str] = field(default_factory=list)

    def get_client_id(self) -> str:
        return CLIENT_ID

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "profile", "email", "groups"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, CLIENT_SECRET)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class StarletteRequest(OAuth2Request):
    def __init__(self, request: Request, form: dict[str, str]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)  # case-insensitive
        self._args = dict(request.query_params)
        self._form = form
        self.payload = BasicOAuth2Payload({**self._args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Provider(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, issuer: str) -> None:
        super().__init__(scopes_supported=["openid", "profile", "email", "groups"])
        self.issuer = issuer
        self.client = Client()
        self.codes: dict[str, Code] = {}
        self.nonces: set[str] = set()
        self.register_grant(CodeGrant, [CodeChallenge(required=True), OpenIDExtension(self)])
        self.register_token_generator("default", BearerTokenGenerator(lambda *a, **k: secrets.token_urlsafe(32)))

    def query_client(self, client_id: str) -> Client | None:
        return self.client if client_id == CLIENT_ID else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # already wrapped by the endpoint, which read the form asynchronously

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.codes[code] = Code(code, CLIENT_ID, data.get("redirect_uri"), data.get("scope", ""),
                                       request.user, data.get("nonce"), data.get("code_challenge"),
                                       data.get("code_challenge_method"))
        if data.get("nonce"):
            self.server.nonces.add(data["nonce"])

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        return self.server.codes.get(code)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        self.server.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: Code) -> str:
        return authorization_code.user


class OpenIDExtension(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return nonce in self.provider.nonces

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return KEY

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": "test-key"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": self.provider.issuer, "aud": [CLIENT_ID]}

    def generate_user_info(self, user: str, scope: str) -> UserInfo:
        return UserInfo(sub=f"sub-{user}", preferred_username=user, groups=USERS[user])


def build_app(provider: Provider) -> Starlette:
    async def discovery(_: Request) -> JSONResponse:
        base = provider.issuer
        return JSONResponse({
            "issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks", "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"], "id_token_signing_alg_values_supported": ["RS256"],
        })

    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse({"keys": [KEY.as_dict(private=False)]})

    async def authorize(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()} if request.method == "POST" else {}
        oauth_request = StarletteRequest(request, form)
        if request.method == "GET":
            provider.get_consent_grant(oauth_request)  # validates client, redirect URI, PKCE, nonce
            return HTMLResponse('<form method="post"><input name="username"><button>Sign in</button></form>')
        return provider.create_authorization_response(oauth_request, grant_user=form["username"])

    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        return provider.create_token_response(StarletteRequest(request, form))

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks),
        Route("/authorize", authorize, methods=["GET", "POST"]), Route("/token", token, methods=["POST"]),
    ])


def access_token(issuer: str, subject: str, *, groups: list[str] | None = None, audience: str = "aggregator",
                 expires_in: int = 300, key: RSAKey | None = None, **claims: Any) -> str:
    """An RFC 9068 JWT access token as the provider issues them to machine clients (client credentials)."""
    from joserfc import jwt

    now = int(time.time())
    payload = {"iss": issuer, "sub": subject, "aud": audience, "iat": now, "exp": now + expires_in,
               "client_id": subject, "groups": groups or [], **claims}
    signing = key or KEY
    return jwt.encode({"alg": "RS256", "kid": signing.kid, "typ": "at+jwt"}, payload, signing)
