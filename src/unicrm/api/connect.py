"""The hosted connect page: where an application's customer connects their CRM from a link.

Server-rendered (jinja2 templates in `api/templates/`, CSS inline, no script needed): the
link lists the integrations it offers; an API-key integration shows a form generated from its
declared context fields and checks the credentials with one read-only provider call before
anything is stored; an OAuth integration runs the authorization-code flow with the operator's
OAuth app (`state` signed, bound to the link and single use; PKCE where the provider supports
it). On success the account is created (or reconnected: same id, new credentials, status
`active`) through the same functions as `POST /integrated-account`, the link is used up, and
the browser goes back to the link's `redirect_uri` with `integrated_account_id` (or, in a
popup, the opener gets a `postMessage`). Every failure ends on a page that says what happened
and what to do, with a way back to `redirect_uri?error=...`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from unicrm.api import admin
from unicrm.api.link_tokens import public_base_url
from unicrm.api.openapi import Doc, Reply, documented
from unicrm.api.state import AppState
from unicrm.engine.context import check_context
from unicrm.engine.errors import ApiError
from unicrm.outbound.auth import ExchangeFailed, authorization_url, exchange_code, pkce_pair
from unicrm.providers.declaration import Provider
from unicrm.store.connect import IntegrationSettings, LinkToken

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
CALLBACK_PATH = "/connect/oauth/callback"
# Pages must not be cached or framed (they carry a link token and take credentials).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "form-action 'self' http: https:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Problem(Exception):
    """A failure shown as a page: what happened, what to do, and the `error` code for the app."""

    status: int
    code: str
    title: str
    message: str
    advice: str
    link: LinkToken | None = None
    link_token: str | None = None
    retry: bool = False


def _state(request: Request) -> AppState:
    return request.app.state.unicrm


def _render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("cancel_url", None)
    return HTMLResponse(TEMPLATES.get_template(name).render(**values), status_code=status, headers=PAGE_HEADERS)


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params)


def _origin(url: str | None) -> str:
    if not url:
        return "*"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def problem_page(problem: Problem) -> HTMLResponse:
    link = problem.link
    return_url = None
    if link is not None and link.redirect_uri:
        return_url = _with_query(link.redirect_uri, {"error": problem.code, "error_description": problem.message})
    retry_url = f"/connect?{urlencode({'link_token': problem.link_token})}" if problem.retry and problem.link_token else None
    message = {"source": "unicrm", "event": "error", "error": problem.code, "error_description": problem.message}
    return _render(
        "problem.html",
        problem.status,
        title=problem.title,
        message=problem.message,
        advice=problem.advice,
        retry_url=retry_url,
        return_url=return_url,
        origin=_origin(link.redirect_uri if link else None),
        post=message if link is not None else None,
    )


# --------------------------------------------------------------------------- the link
async def _open_link(request: Request, token: Any) -> LinkToken:
    """The link behind a token, or a Problem (unknown, expired, used)."""
    if not isinstance(token, str) or not token:
        raise Problem(
            400,
            "invalid_link",
            "This link is incomplete",
            "The address is missing its link token, so there is nothing to connect.",
            "Open the full link you were given again, or ask the application for a new one.",
        )
    link = await _state(request).connect.find_link_token(token)
    if link is None:
        raise Problem(
            404,
            "invalid_link",
            "This link is not valid",
            "This connect link is unknown: it may have been mistyped or cut short.",
            "Ask the application that sent it for a new link.",
        )
    if link.used_at is not None or link.expired:
        raise spent_link(link)
    return link


def spent_link(link: LinkToken, *, signing_in: bool = False) -> Problem:
    """The page of a link that was used already or has expired."""
    if link.used_at is not None:
        return Problem(
            410,
            "link_used",
            "This link was already used",
            "A CRM was already connected with this link, and a link works only once.",
            "If you need to connect again, ask the application for a new link.",
            link=link,
        )
    what = (
        "The link expired while you were signing in."
        if signing_in
        else "Connect links work for a limited time, and this one is past it."
    )
    return Problem(
        410,
        "link_expired",
        "This link has expired",
        f"{what} Nothing was connected.",
        "Go back to the application and ask for a new link.",
        link=link,
    )


@dataclass
class Offer:
    provider: Provider
    settings: IntegrationSettings | None

    @property
    def oauth(self) -> bool:
        return self.provider.oauth_connect and self.settings is not None and self.settings.has_oauth_app

    def fields(self, link: LinkToken) -> list[Any]:
        given = set(link.context) | set((self.settings.context or {}) if self.settings else {})
        return [c for c in self.provider.form_fields if c.name not in given]

    @property
    def available(self) -> bool:
        return self.oauth or bool(self.provider.form_fields)


async def _offers(request: Request, link: LinkToken) -> list[Offer]:
    state = _state(request)
    providers = state.engine.providers
    names = link.integrations or sorted(providers)
    offers = []
    for name in names:
        provider = providers.get(name)
        if provider is None:
            continue
        offer = Offer(provider, await state.connect.get_settings(link.environment_id, name))
        if offer.available:
            offers.append(offer)
    return offers


async def _offer(request: Request, link: LinkToken, name: str, token: str) -> tuple[Offer, bool]:
    """The offer of this integration, and whether the link offers others too (a way back)."""
    offers = await _offers(request, link)
    for offer in offers:
        if offer.provider.name == name:
            return offer, len(offers) > 1
    raise Problem(
        404,
        "integration_unavailable",
        "This CRM is not offered here",
        f"The link does not offer {name!r}, or the application has not set it up for connecting.",
        "Choose one of the CRMs the link offers, or ask the application to set this one up.",
        link=link,
        link_token=token,
        retry=True,
    )


async def _open_offer(request: Request, token: Any) -> tuple[LinkToken, str, Offer, bool]:
    """The link behind a token and its offer of the integration in the path (see _open_link, _offer)."""
    link = await _open_link(request, token)
    assert isinstance(token, str)
    offer, several = await _offer(request, link, request.path_params["integration"], token)
    return link, token, offer, several


def _cancel_url(link: LinkToken) -> str | None:
    if not link.redirect_uri:
        return None
    return _with_query(link.redirect_uri, {"error": "cancelled", "error_description": "The user left the connect page."})


def _integration_page(
    request: Request,
    link: LinkToken,
    token: str,
    offer: Offer,
    *,
    several: bool,
    error: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    invalid: set[str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    name = offer.provider.name
    fields = [
        {
            "name": c.name,
            "label": c.label or c.name,
            "help": " ".join(x for x in (c.description if not c.where else "", c.where or "") if x),
            "secret": c.secret,
            "required": c.required and c.default is None,
            # A secret is never sent back to the browser, even after a failed check.
            "value": "" if c.secret else (values or {}).get(c.name, "" if c.default is None else str(c.default)),
            "invalid": c.name in (invalid or set()),
        }
        for c in offer.fields(link)
    ]
    query = urlencode({"link_token": token})
    return _render(
        "integration.html",
        status,
        title=f"Connect {offer.provider.label}",
        label=offer.provider.label,
        reconnect=link.integrated_account_id is not None,
        oauth=offer.oauth,
        # A form even when the link already gave every value: then it is just the button.
        form=bool(offer.provider.form_fields),
        fields=fields,
        link_token=token,
        form_action=f"/connect/{name}",
        authorize_action=f"/connect/{name}/authorize",
        back_url=f"/connect?{query}" if several else None,
        error=error,
        cancel_url=_cancel_url(link),
    )


# --------------------------------------------------------------------------- OpenAPI
HTML = "text/html"
_PAGE = {HTML: {"type": "string", "description": "an HTML page"}}
_LINK = {
    "name": "link_token",
    "in": "query",
    "required": True,
    "description": "The token of the link (from POST /link-token)",
    "schema": {"type": "string"},
}
_PROBLEMS: dict[int | str, Reply] = {
    400: Reply("A page saying what is wrong (incomplete link, invalid sign-in state, rejected form)", _PAGE),
    404: Reply("A page saying the link or integration is unknown", _PAGE),
    410: Reply("A page saying the link expired or was already used", _PAGE),
    502: Reply("A page saying the provider could not be reached", _PAGE),
}
_FORM = {
    "type": "object",
    "required": ["link_token"],
    "properties": {"link_token": {"type": "string"}},
    "additionalProperties": {"type": "string"},
    "description": "link_token and the integration's context fields as the page's form sends them",
}
_CALLBACK = tuple(
    {"name": n, "in": "query", "schema": {"type": "string"}} for n in ("state", "code", "error", "error_description")
)


def _page_doc(
    operation_id: str, summary: str, *, params: tuple[Any, ...] = (), form: bool = False, redirect: bool = False
) -> Doc:
    replies: dict[int | str, Reply] = {200: Reply("The page", _PAGE), **_PROBLEMS}
    if redirect:
        replies = {303: Reply("To the provider's sign-in page (the `Location` header)"), **_PROBLEMS}
    return Doc(
        operation_id,
        summary,
        "Connect",
        description="Browser pages (HTML, no JavaScript needed); every failure is a page that says what to do.",
        params=params,
        body=_FORM if form else None,
        body_media="application/x-www-form-urlencoded",
        replies=replies,
        auth=False,
    )


@documented(_page_doc("getConnectPage", "The hosted connect page: the integrations offered", params=(_LINK,)))
async def connect_page(request: Request) -> Response:
    token = request.query_params.get("link_token")
    try:
        link = await _open_link(request, token)
        assert token is not None
        offers = await _offers(request, link)
        if len(offers) == 1:
            return _integration_page(request, link, token, offers[0], several=False)
        query = urlencode({"link_token": token})
        choices = [
            {
                "label": o.provider.label,
                "url": f"/connect/{o.provider.name}?{query}",
                "how": "sign in"
                if o.oauth and not o.provider.form_fields
                else "API key"
                if not o.oauth
                else "sign in or API key",
            }
            for o in offers
        ]
        return _render("choose.html", title="Connect your CRM", choices=choices, cancel_url=_cancel_url(link))
    except Problem as problem:
        return problem_page(problem)


@documented(_page_doc("getConnectIntegrationPage", "The connect form of one integration", params=("integration", _LINK)))
async def integration_page(request: Request) -> Response:
    token = request.query_params.get("link_token")
    try:
        link, token, offer, several = await _open_offer(request, token)
        return _integration_page(request, link, token, offer, several=several)
    except Problem as problem:
        return problem_page(problem)


# --------------------------------------------------------------------------- API-key path
# A provider's refusal while checking typed credentials, by HTTP status: (code, title, message).
_PROBE_WORDS = {
    401: (
        "invalid_credentials",
        "{label} did not accept these credentials",
        "Check that you copied the whole key from {label}, without spaces, from the right account, "
        "and that it has not been revoked. Nothing was saved.",
    ),
    403: (
        "access_refused",
        "{label} refused access to projects",
        "The credentials are valid but may not read projects. Ask your {label} administrator "
        "for API access to projects, then try again. Nothing was saved.",
    ),
    404: (
        "invalid_settings",
        "{label} could not find this account",
        "Check the account settings on this form (such as the space, company or pod). Nothing was saved.",
    ),
    429: ("provider_busy", "{label} is busy", "{label} asked us to slow down. Wait a minute and try again. Nothing was saved."),
    500: (
        "provider_unavailable",
        "{label} could not be reached",
        "{label} did not answer properly just now, so the credentials could not be checked. "
        "Nothing was saved. Try again in a few minutes.",
    ),
}
_PROBE_OTHER = (
    "invalid_credentials",
    "{label} refused these details",
    "{label} answered with an error (HTTP {status}). Check the details and try again. Nothing was saved.",
)


def _probe_problem(provider: Provider, exc: ApiError) -> dict[str, str]:
    """A provider's refusal in plain words (the form is shown again with it)."""
    code, title, message = _PROBE_WORDS.get(500 if exc.status >= 500 else exc.status, _PROBE_OTHER)
    values = {"label": provider.label, "status": exc.status}
    return {"code": code, "title": title.format(**values), "message": message.format(**values)}


def _context_for(provider: Provider, *layers: dict[str, Any] | None) -> dict[str, Any]:
    """The account context: later layers win; keys this integration does not declare are dropped."""
    declared = {c.name for c in provider.context}
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key in declared and value is not None and value != "":
                merged[key] = value
    return merged


@documented(
    _page_doc(
        "submitConnectForm",
        "Check the credentials with one read-only call, then connect the account",
        params=("integration",),
        form=True,
    )
)
async def submit_form(request: Request) -> Response:
    form = await request.form()
    token = form.get("link_token")
    try:
        link, token, offer, several = await _open_offer(request, token)
        provider = offer.provider
        shown = offer.fields(link)
        typed = {c.name: str(form.get(c.name) or "").strip() for c in shown}
        missing = [c for c in shown if c.required and c.default is None and not typed[c.name]]
        if missing:
            names = ", ".join(c.label or c.name for c in missing)
            return _integration_page(
                request,
                link,
                token,
                offer,
                several=several,
                values=typed,
                invalid={c.name for c in missing},
                status=400,
                error={"title": "Some details are missing", "message": f"Fill in: {names}."},
            )
        defaults = {c.name: c.default for c in provider.context if c.default is not None}
        settings_context = offer.settings.context if offer.settings else None
        context = _context_for(provider, defaults, settings_context, typed, link.context)
        state = _state(request)
        try:
            admin.validate_context(provider, context)
            check_context(provider, state.engine.destinations[provider.name], context)
            await state.engine.probe(provider.name, context)
        except ApiError as exc:
            problem = (
                _probe_problem(provider, exc)
                if exc.remote or exc.status >= 500
                else {
                    "code": "invalid_details",
                    "title": "These details do not fit",
                    "message": exc.message,
                }
            )
            return _integration_page(
                request,
                link,
                token,
                offer,
                several=several,
                values=typed,
                invalid={c.name for c in shown if c.secret},
                status=400 if problem["code"] != "provider_unavailable" else 502,
                error=problem,
            )
        return await _finish(request, link, provider, context)
    except Problem as problem:
        return problem_page(problem)


# --------------------------------------------------------------------------- finishing
async def _finish(request: Request, link: LinkToken, provider: Provider, context: dict[str, Any]) -> Response:
    """Create or reconnect the account, use up the link, and send the browser back."""
    state = _state(request)
    try:
        admin.validate_context(provider, context)
    except ApiError as exc:
        raise _not_storable(provider, exc, link) from None
    if not await state.connect.consume_link_token(link.id):
        raise Problem(
            410,
            "link_used",
            "This link was already used",
            "Another window finished connecting with this link a moment ago; a link works only once.",
            "Go back to the application: the connection made in the other window is the one it has.",
            link=link,
        )
    reconnected = link.integrated_account_id is not None
    account = None
    if reconnected:
        assert link.integrated_account_id is not None
        account = await state.store.get_account(link.integrated_account_id, link.environment_id)
        if account is None:
            raise Problem(
                410,
                "account_deleted",
                "This connection no longer exists",
                "The connection this link was meant to renew was deleted in the meantime.",
                "Go back to the application and connect the CRM anew.",
                link=link,
            )
        if link.persist_previous_context:
            context = {**account.context, **context}
    try:
        if account is not None:
            account = await admin.replace_credentials(state, account, provider, context)
        else:
            account = await admin.new_account(state, link.environment_id, provider, link.tenant_id or "", context)
    except ApiError as exc:
        # Nothing was stored: the link stays usable.
        await state.connect.release_link_token(link.id)
        raise _not_storable(provider, exc, link) from None
    await state.connect.set_link_result(link.id, account.id)
    target = None
    if link.redirect_uri:
        target = _with_query(link.redirect_uri, {"integrated_account_id": account.id, "integration": provider.name})
    message = {"source": "unicrm", "event": "connected", "integrated_account_id": account.id, "integration": provider.name}
    return _render(
        "done.html",
        title=f"{provider.label} connected",
        label=provider.label,
        reconnected=reconnected,
        target=target,
        origin=_origin(link.redirect_uri),
        message=message,
    )


def _not_storable(provider: Provider, exc: ApiError, link: LinkToken) -> Problem:
    return Problem(
        400,
        "invalid_details",
        f"The {provider.label} connection could not be saved",
        f"unicrm refused these details: {exc.message} Nothing was saved.",
        "Go back to the application and tell it; it may need to change its settings for this CRM.",
        link=link,
    )


# --------------------------------------------------------------------------- OAuth path
def _state_key(state: AppState) -> bytes:
    return state.store.secret_box.derive_key("connect-oauth-state")


def _sign_state(state: AppState, nonce: str, link_id: str) -> str:
    mac = hmac.new(_state_key(state), f"{nonce}.{link_id}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{nonce}.{mac}"


def _callback_url(request: Request) -> str:
    return public_base_url(request) + CALLBACK_PATH


@documented(
    _page_doc(
        "startConnectOAuth",
        "Start the OAuth sign-in (redirects to the provider)",
        params=("integration",),
        form=True,
        redirect=True,
    )
)
async def start_oauth(request: Request) -> Response:
    form = await request.form()
    token = form.get("link_token")
    try:
        link, token, offer, _ = await _open_offer(request, token)
        if not offer.oauth or offer.settings is None:
            raise Problem(
                404,
                "integration_unavailable",
                f"Signing in with {offer.provider.label} is not set up",
                "The application has not configured an OAuth app for this CRM.",
                "Use another way to connect if this page offers one, or tell the application.",
                link=link,
                link_token=token,
                retry=True,
            )
        state = _state(request)
        auth = offer.provider.auth
        verifier, challenge = pkce_pair() if auth.pkce else (None, None)
        nonce = await state.connect.create_state(link.id, offer.provider.name, verifier, token)
        url = authorization_url(
            auth,
            authorize_url=offer.settings.authorize_url or str(auth.authorize_url),
            client_id=str(offer.settings.client_id),
            redirect_uri=_callback_url(request),
            state=_sign_state(state, nonce, link.id),
            code_challenge=challenge,
            scopes=link.scopes,
        )
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    except Problem as problem:
        return problem_page(problem)


def _bad_state(message: str, link: LinkToken | None = None) -> Problem:
    return Problem(
        400,
        "invalid_state",
        "This sign-in cannot be completed",
        message,
        "Start again from the link the application gave you.",
        link=link,
    )


@documented(_page_doc("connectOAuthCallback", "Where the provider sign-in returns (state, code or error)", params=_CALLBACK))
async def oauth_callback(request: Request) -> Response:
    state = _state(request)
    params = request.query_params
    raw_state = params.get("state") or ""
    try:
        nonce, _, mac = raw_state.partition(".")
        if not nonce or not mac:
            raise _bad_state("The answer from the sign-in page is missing its state, so it cannot be matched to a link.")
        found, outcome = await state.connect.use_state(nonce)
        if found is None:
            raise _bad_state("The answer from the sign-in page does not belong to any sign-in started here.")
        if not hmac.compare_digest(_sign_state(state, nonce, found.link_token_id).encode(), raw_state.encode()):
            raise _bad_state("The answer from the sign-in page carries a state that was not issued here.")
        link = await state.connect.get_link_token(found.link_token_id)
        if outcome == "used":
            raise Problem(
                400,
                "invalid_state",
                "This sign-in was already used",
                "The answer from the sign-in page arrived a second time (a reload, the back button, or a replay), "
                "and each sign-in counts once.",
                "If the CRM is not connected yet, start again from the link.",
                link=link,
                link_token=found.link_token,
                retry=link is not None and link.used_at is None and not link.expired,
            )
        if outcome == "expired":
            raise Problem(
                400,
                "invalid_state",
                "The sign-in took too long",
                "More than 15 minutes passed between leaving for the sign-in page and coming back.",
                "Start again from the link.",
                link=link,
                link_token=found.link_token,
                retry=link is not None and link.used_at is None and not link.expired,
            )
        if link is None:
            raise _bad_state("The link this sign-in belongs to no longer exists.")
        token_problem_link = link
        if link.used_at is not None or link.expired:
            raise spent_link(link, signing_in=True)
        providers = state.engine.providers
        provider = providers.get(found.integration)
        settings = await state.connect.get_settings(link.environment_id, found.integration)
        if provider is None or settings is None or not settings.has_oauth_app:
            raise _bad_state("The CRM of this sign-in is no longer set up here.", token_problem_link)
        label = provider.label
        error = params.get("error")
        if error:
            if error == "access_denied":
                raise Problem(
                    200,
                    "access_denied",
                    f"You did not allow access in {label}",
                    f"{label} reports that access was declined, so nothing was connected.",
                    f"To connect, start again and approve access when {label} asks.",
                    link=link,
                    link_token=found.link_token,
                    retry=True,
                )
            description = params.get("error_description") or error
            raise Problem(
                400,
                "oauth_failed",
                f"{label} did not complete the sign-in",
                f"{label} answered with an error: {description}. Nothing was connected.",
                "Start again from the link; if it keeps failing, tell the application.",
                link=link,
                link_token=found.link_token,
                retry=True,
            )
        code = params.get("code")
        if not code:
            raise _bad_state(f"{label} sent neither an authorization code nor an error.", link)
        token_url = settings.token_url or str(provider.auth.token_url)
        try:
            tokens = await exchange_code(
                state.pool,
                state.engine.destinations[provider.name],
                token_url=token_url,
                code=code,
                redirect_uri=_callback_url(request),
                client_id=str(settings.client_id),
                client_secret=str(settings.client_secret),
                code_verifier=found.verifier,
            )
        except ApiError as exc:
            # The token URL is outside the origins calls may reach (the operator's setting).
            raise Problem(
                400,
                "oauth_failed",
                f"Signing in with {label} is not set up correctly",
                f"unicrm refused to call the token endpoint: {exc.message}",
                "Tell the application; its OAuth settings for this CRM need fixing.",
                link=link,
            ) from None
        except ExchangeFailed as exc:
            if exc.kind == "unreachable":
                raise Problem(
                    502,
                    "provider_unavailable",
                    f"{label} could not be reached",
                    f"You approved access, but {label} did not answer when unicrm asked it for the access token. "
                    "Nothing was connected.",
                    "Try again in a few minutes.",
                    link=link,
                    link_token=found.link_token,
                    retry=True,
                ) from None
            raise Problem(
                400,
                "oauth_failed",
                f"{label} refused to finish the sign-in",
                f"{label} did not accept the authorization code (HTTP {exc.status}). Nothing was connected.",
                "Start again from the link; codes are valid for a few minutes and only once.",
                link=link,
                link_token=found.link_token,
                retry=True,
            ) from None
        oauth_context: dict[str, Any] = {
            provider.auth.token_key: tokens["access_token"],
            "refresh_token": tokens.get("refresh_token"),
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
        }
        if tokens.get("expires_in") is not None:
            oauth_context["expires_at"] = int(time.time() + float(tokens["expires_in"]))
        if settings.token_url:
            oauth_context["token_url"] = settings.token_url
        context = _context_for(provider, settings.context, link.context, oauth_context)
        try:
            # The new token must work before it is saved: one read, like a typed key.
            await state.engine.probe(provider.name, context)
        except ApiError as exc:
            words = _probe_problem(provider, exc)
            raise Problem(
                502 if words["code"] == "provider_unavailable" else 400,
                words["code"] if words["code"] == "provider_unavailable" else "oauth_failed",
                f"{label} gave a token that does not work" if exc.status == 401 else words["title"],
                f"{label} signed you in, but refused the first read with the new access (HTTP {exc.status}). "
                "Nothing was connected.",
                "Try again; if it keeps failing, tell the application.",
                link=link,
                link_token=found.link_token,
                retry=True,
            ) from None
        return await _finish(request, link, provider, context)
    except Problem as problem:
        return problem_page(problem)


ROUTES = [
    Route("/connect", connect_page, methods=["GET"]),
    Route(CALLBACK_PATH, oauth_callback, methods=["GET"]),
    Route("/connect/{integration}", integration_page, methods=["GET"]),
    Route("/connect/{integration}", submit_form, methods=["POST"]),
    Route("/connect/{integration}/authorize", start_oauth, methods=["POST"]),
]
