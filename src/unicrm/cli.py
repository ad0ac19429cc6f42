"""The `unicrm` command line (PRODUCT §5): serve, token create, emulate, demo, coverage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql://user:password@host:5432/db or sqlite:///path (default: env UNICRM_DATABASE_URL, else SQLite in the data directory)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="data directory (default: env UNICRM_DATA_DIR or ~/.local/share/unicrm)"
    )


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from unicrm.api.logs import FORMATS, LEVELS

    parser = argparse.ArgumentParser(prog="unicrm", description="Self-hosted unified API for CRM projects.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the API server", description="Run the API server.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="server processes sharing the port (default: 1); metrics are then summed over them through "
        "PROMETHEUS_MULTIPROC_DIR (a temporary directory unless you set one)",
    )
    serve.add_argument("--log-level", default="info", choices=LEVELS, help="least severe log records to write (default: info)")
    serve.add_argument(
        "--log-format",
        default="text",
        choices=FORMATS,
        help="text for a terminal, json for one JSON object per line (default: text)",
    )
    serve.add_argument(
        "--stream-max-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="longest a stream waits for a provider's rate limit, per page, before it ends with a resumable "
        "error line (default: env UNICRM_STREAM_MAX_WAIT_S or 60)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let provider calls reach this scheme://host[:port] besides the providers' own (repeatable; "
        "*. may be the first host label; env UNICRM_ALLOW_ORIGINS, comma-separated)",
    )
    _add_db(serve)

    token = sub.add_parser("token", help="API tokens", description="Manage API tokens.")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="create an API token and print it", description="Create an API token.")
    create.add_argument("--environment", default="default", help="environment the token belongs to (default: default)")
    _add_db(create)

    emulate = sub.add_parser("emulate", help="run provider emulators on loopback", description="Run provider emulators.")
    emulate.add_argument("providers", nargs="*", help="which emulators (default: all)")
    emulate.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    emulate.add_argument("--port", type=_port, default=0, help="first port (0: any free port)")
    emulate.add_argument("--seed", type=int, default=1, help="seed of the sample data")
    emulate.add_argument("--dataset-size", type=_positive, default=None, help="serve this many synthetic projects")
    emulate.add_argument("--json", action="store_true", help="print one JSON line once ready")

    demo = sub.add_parser(
        "demo",
        help="server + all emulators + token + accounts, with a quickstart",
        description="Run the server, every emulator, a token and one account per provider.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the emulators' sample data")
    demo.add_argument("--json", action="store_true", help="print one JSON line once ready")
    demo.add_argument("--data-dir", type=Path, default=None, help="keep the demo database here (default: a temporary directory)")

    oauth = sub.add_parser(
        "oauth-app",
        help="the OAuth app the connect page signs in with, per integration",
        description="The OAuth app the connect page signs in with.",
    )
    oauth_sub = oauth.add_subparsers(dest="oauth_command", required=True, metavar="ACTION")
    oauth_set = oauth_sub.add_parser("set", help="set an integration's OAuth client (the secret is stored encrypted)")
    oauth_set.add_argument("integration", help="the integration (see GET /integration)")
    oauth_set.add_argument("--client-id", required=True, help="the OAuth client id of your app at the provider")
    oauth_set.add_argument("--client-secret", required=True, help="the OAuth client secret (stored encrypted)")
    oauth_set.add_argument(
        "--authorize-url", default=None, help="override the declared authorize endpoint (a proxy, an emulator)"
    )
    oauth_set.add_argument("--token-url", default=None, help="override the declared token endpoint")
    oauth_set.add_argument("--environment", default="default", help="environment (default: default)")
    _add_db(oauth_set)
    oauth_list = oauth_sub.add_parser("list", help="integrations with an OAuth app (secrets are never printed)")
    oauth_list.add_argument("--environment", default="default", help="environment (default: default)")
    _add_db(oauth_list)

    defaults = sub.add_parser("connect-defaults", help="context every account connected through the connect page gets")
    defaults_sub = defaults.add_subparsers(dest="defaults_command", required=True, metavar="ACTION")
    defaults_set = defaults_sub.add_parser("set", help="set an integration's context defaults, e.g. base_url=https://...")
    defaults_set.add_argument("integration", help="the integration (see GET /integration)")
    defaults_set.add_argument("values", nargs="+", metavar="KEY=VALUE", help="context keys and their default values")
    defaults_set.add_argument("--environment", default="default", help="environment (default: default)")
    _add_db(defaults_set)

    link = sub.add_parser("link-token", help="connect links")
    link_sub = link.add_subparsers(dest="link_command", required=True, metavar="ACTION")
    link_create = link_sub.add_parser("create", help="print a new connect link (like POST /link-token)")
    link_create.add_argument("--tenant-id", default=None, help="tenant of the new account")
    link_create.add_argument("--integrated-account-id", default=None, help="reconnect this account instead")
    link_create.add_argument("--integration", action="append", default=None, help="offer only these (repeatable)")
    link_create.add_argument("--redirect-uri", default=None, help="where the browser goes when done")
    link_create.add_argument("--public-url", default="http://127.0.0.1:8000", help="where browsers reach the server")
    link_create.add_argument("--environment", default="default", help="environment (default: default)")
    _add_db(link_create)

    hook = sub.add_parser("webhook", help="account-event webhooks")
    hook_sub = hook.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")
    hook_create = hook_sub.add_parser("create", help="register an endpoint; prints its id and signing secret")
    hook_create.add_argument("target_url", help="the http(s) URL events are posted to")
    hook_create.add_argument("--event", action="append", default=None, help="subscribe to this event only (repeatable)")
    hook_create.add_argument("--environment", default="default", help="environment (default: default)")
    _add_db(hook_create)
    hook_list = hook_sub.add_parser("list", help="endpoints and their recent deliveries")
    hook_list.add_argument("--environment", default="default", help="environment (default: default)")
    _add_db(hook_list)

    coverage = sub.add_parser(
        "coverage", help="write (or --check) docs/coverage.md from the declarations", description="Write the coverage table."
    )
    coverage.add_argument("--output", type=Path, default=Path("docs/coverage.md"), help="where (default: docs/coverage.md)")
    coverage.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    return parser


def main(argv: list[str] | None = None) -> int:
    from unicrm.store.settings import DatabaseConfigError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "token":
            return asyncio.run(_token_create(args))
        if args.command == "emulate":
            return _run_until_interrupted(_emulate(args))
        if args.command == "demo":
            return _run_until_interrupted(_demo(args))
        if args.command == "coverage":
            return _coverage(args)
        if args.command in ("oauth-app", "connect-defaults", "link-token", "webhook"):
            return asyncio.run(_connect_admin(args))
    except DatabaseConfigError as exc:
        # One line that says what to fix; a traceback would bury it.
        print(f"unicrm: error: {exc}", file=sys.stderr)
        return 2
    return 2


def _run_until_interrupted(coro: Any) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from unicrm.api.app import ServerConfig, create_app
    from unicrm.api.limits import JsonErrorProtocol
    from unicrm.api.logs import configure_logging
    from unicrm.outbound.policy import OriginError, OriginPolicy, operator_origins
    from unicrm.store.database import Store
    from unicrm.store.settings import STREAM_MAX_WAIT_ENV, stream_max_wait_s

    configure_logging(args.log_level, args.log_format)
    try:
        OriginPolicy(operator_origins(tuple(args.allow_origin)))  # a malformed origin stops the server before it listens
    except OriginError as exc:
        print(f"unicrm: error: --allow-origin / UNICRM_ALLOW_ORIGINS: an origin {exc}", file=sys.stderr)
        return 2
    try:
        max_wait = stream_max_wait_s(args.stream_max_wait)
    except ValueError as exc:
        print(f"unicrm: error: {exc}", file=sys.stderr)
        return 2

    async def check() -> None:
        # Fail before listening, with one line, when the database cannot be used (and migrate it once).
        store = await Store.open(args.database_url, args.data_dir)
        await store.close()

    asyncio.run(check())
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": None,  # our handler (configure_logging) formats uvicorn's records too
        "access_log": False,  # one request line of our own instead (unicrm.request)
        # No proxy-header rewriting by default: unicrm is usually reached directly, and it costs CPU.
        "proxy_headers": False,
        "http": JsonErrorProtocol,
    }
    if args.workers == 1:
        app = create_app(
            ServerConfig(
                database_url=args.database_url,
                data_dir=args.data_dir,
                allow_origins=tuple(args.allow_origin),
                stream_max_wait_s=max_wait,
            )
        )
        uvicorn.run(app, **common)
        return 0
    # Worker processes import the app themselves: hand them the settings through the environment.
    if args.database_url:
        os.environ["UNICRM_DATABASE_URL"] = args.database_url
    if args.data_dir:
        os.environ["UNICRM_DATA_DIR"] = str(args.data_dir)
    if args.allow_origin:
        os.environ["UNICRM_ALLOW_ORIGINS"] = ",".join([*args.allow_origin, os.environ.get("UNICRM_ALLOW_ORIGINS", "")]).strip(",")
    os.environ[STREAM_MAX_WAIT_ENV] = str(max_wait)
    os.environ["UNICRM_LOG_LEVEL"] = args.log_level
    os.environ["UNICRM_LOG_FORMAT"] = args.log_format
    temp = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        temp = tempfile.TemporaryDirectory(prefix="unicrm-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = temp.name
    try:
        uvicorn.run("unicrm.api.app:app_from_environment", factory=True, workers=args.workers, **common)
    finally:
        if temp is not None:
            temp.cleanup()
    return 0


async def _token_create(args: argparse.Namespace) -> int:
    from unicrm.store.database import Store

    store = await Store.open(args.database_url, args.data_dir)
    try:
        token = await store.create_api_token(args.environment)
    finally:
        await store.close()
    print(token)
    return 0


async def _connect_admin(args: argparse.Namespace) -> int:
    """The operator's connect commands, straight on the database."""
    from unicrm.providers import all_providers
    from unicrm.store.connect import ConnectStore
    from unicrm.store.database import Store
    from unicrm.store.webhooks import EVENT_TYPES, WebhookStore

    providers = all_providers()
    given = getattr(args, "integration", None)
    name = given if isinstance(given, str) else ""
    if isinstance(given, str) and name not in providers:
        print(f"unknown integration {name!r}; available: {', '.join(providers)}", file=sys.stderr)
        return 2
    store = await Store.open(args.database_url, args.data_dir)
    try:
        environment = await store.ensure_environment(args.environment)
        connect = ConnectStore(store)
        if args.command == "oauth-app" and args.oauth_command == "set":
            if not providers[name].oauth_connect:
                print(f"{name} has no OAuth authorization-code flow declared", file=sys.stderr)
                return 2
            await connect.set_settings(
                environment,
                name,
                client_id=args.client_id,
                client_secret=args.client_secret,
                authorize_url=args.authorize_url,
                token_url=args.token_url,
            )
            print(f"OAuth app for {name} set in environment {args.environment} (secret stored encrypted)")
        elif args.command == "oauth-app":
            for settings in await connect.list_settings(environment):
                if settings.client_id:
                    print(
                        f"{settings.integration}\tclient_id={settings.client_id}\tsecret={'set' if settings.client_secret else 'missing'}"
                    )
        elif args.command == "connect-defaults":
            values = dict(v.split("=", 1) for v in args.values if "=" in v)
            declared = {c.name for c in providers[name].context}
            stray = sorted(set(values) - declared)
            if stray or len(values) != len(args.values):
                print(f"expected KEY=VALUE with keys {name} declares ({', '.join(sorted(declared))})", file=sys.stderr)
                return 2
            await connect.set_settings(environment, name, context=values)
            print(f"connect defaults for {name} set: {', '.join(sorted(values))}")
        elif args.command == "link-token":
            if bool(args.tenant_id) == bool(args.integrated_account_id):
                print("give --tenant-id for a new account or --integrated-account-id to reconnect one", file=sys.stderr)
                return 2
            integrations = args.integration
            if args.integrated_account_id:
                account = await store.get_account(args.integrated_account_id, environment)
                if account is None:
                    print("no such integrated account in this environment", file=sys.stderr)
                    return 2
                integrations = [account.integration]
            token, _link = await connect.create_link_token(
                environment,
                tenant_id=args.tenant_id,
                integrated_account_id=args.integrated_account_id,
                integrations=integrations,
                redirect_uri=args.redirect_uri,
                context={},
            )
            print(f"{args.public_url.rstrip('/')}/connect?{urlencode({'link_token': token})}")
        elif args.command == "webhook" and args.webhook_command == "create":
            unknown = [e for e in args.event or [] if e not in EVENT_TYPES]
            if unknown:
                print(f"unknown event(s): {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}", file=sys.stderr)
                return 2
            webhook = await WebhookStore(store).create(environment, args.target_url, args.event)
            print(orjson.dumps(webhook.document(with_secret=True)).decode())
        elif args.command == "webhook":
            hooks = WebhookStore(store)
            for webhook in await hooks.all(environment):
                print(f"{webhook.id}\t{webhook.target_url}\t{'active' if webhook.is_active else 'inactive'}")
                for d in await hooks.deliveries(webhook.id, 10):
                    print(f"  {d['created_at']}\t{d['event']}\t{d['status']}\tattempts={d['attempts']}\t{d['last_error'] or ''}")
        return 0
    finally:
        await store.close()


async def configure_emulator_connect(store: Any, environment_id: str, running: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Point the connect page at running emulators: their OAuth apps, and base_url defaults.

    Returns, per API-key integration, the values a user would paste (the emulator's keys).
    """
    from urllib.parse import urlsplit

    from unicrm.providers import all_providers
    from unicrm.store.connect import ConnectStore

    connect = ConnectStore(store)
    providers = all_providers()
    to_paste: dict[str, dict[str, Any]] = {}
    for name, r in running.items():
        provider = providers.get(name)
        if provider is None:
            continue
        client = r.emulator.oauth_client()
        context = {"base_url": r.context["base_url"]}
        if provider.oauth_connect and client is not None:
            authorize = r.origin + urlsplit(str(provider.auth.authorize_url)).path
            token_url = r.context.get("token_url") or r.origin + urlsplit(str(provider.auth.token_url)).path
            await connect.set_settings(
                environment_id,
                name,
                client_id=client[0],
                client_secret=client[1],
                authorize_url=authorize,
                token_url=token_url,
                context=context,
            )
        else:
            await connect.set_settings(environment_id, name, context=context)
        if provider.form_fields:
            pasted = r.emulator.personal_credentials(r.base_url)
            to_paste[name] = {c.name: pasted[c.name] for c in provider.form_fields if c.name in pasted}
    return to_paste


async def _wait_forever() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _emulate(args: argparse.Namespace) -> None:
    from unicrm.emulators import EMULATORS
    from unicrm.emulators.base import start_emulators

    names = args.providers or sorted(EMULATORS)
    unknown = [n for n in names if n not in EMULATORS]
    if unknown:
        print(f"unknown emulator(s): {', '.join(unknown)}; available: {', '.join(sorted(EMULATORS))}", file=sys.stderr)
        raise SystemExit(2)
    running = await start_emulators(names, host=args.host, port=args.port, seed=args.seed, dataset_size=args.dataset_size)
    try:
        if args.json:
            print(
                orjson.dumps({n: {"base_url": r.base_url, "context": r.context} for n, r in running.items()}).decode(), flush=True
            )
        else:
            for name, r in running.items():
                print(f"{name}: {r.base_url}")
                print(f"  context: {orjson.dumps(r.context).decode()}")
            print("Ctrl-C to stop.", flush=True)
        await _wait_forever()
    finally:
        for r in running.values():
            await r.stop()


async def _demo(args: argparse.Namespace) -> None:
    import uvicorn

    from unicrm.api.app import ServerConfig, create_app
    from unicrm.api.limits import JsonErrorProtocol
    from unicrm.api.logs import configure_logging
    from unicrm.emulators import EMULATORS
    from unicrm.emulators.base import start_emulators
    from unicrm.store.database import Store

    configure_logging("warning", "text")  # the demo prints its quickstart; only problems are logged
    temp: tempfile.TemporaryDirectory[str] | None = None
    data_dir = args.data_dir
    if data_dir is None:
        temp = tempfile.TemporaryDirectory(prefix="unicrm-demo-")
        data_dir = Path(temp.name)
    database_url = f"sqlite+aiosqlite:///{data_dir}/demo.db"
    os.environ.setdefault("UNICRM_DATA_DIR", str(data_dir))
    running = await start_emulators(sorted(EMULATORS), host="127.0.0.1", port=0, seed=args.seed)
    store = await Store.open(database_url, data_dir)
    token = await store.create_api_token("default")
    environment = await store.ensure_environment("default")
    accounts = {}
    for name, r in running.items():
        account = await store.create_account(environment, name, f"demo-{name}", r.context)
        accounts[name] = account.id
    # The connect page works out of the box: OAuth apps and base URLs point at the emulators.
    from unicrm.store.connect import ConnectStore

    to_paste = await configure_emulator_connect(store, environment, running)
    link_token, _ = await ConnectStore(store).create_link_token(
        environment, tenant_id="demo-customer", integrated_account_id=None, integrations=None, redirect_uri=None, context={}
    )
    await store.close()
    config = uvicorn.Config(
        # The demo's accounts point at its emulators on loopback: allow exactly those origins.
        create_app(
            ServerConfig(
                database_url=database_url,
                data_dir=data_dir,
                allow_origins=tuple(r.origin for r in running.values()),
                # A demo's webhook receiver is usually on this machine.
                webhook_private_targets=True,
            )
        ),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        http=JsonErrorProtocol,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise SystemExit(f"the server did not start on {args.host}:{args.port}")
        await asyncio.sleep(0.05)
    base_url = f"http://{args.host}:{args.port}"
    examples = {name: await example_body(base_url, token, name, account_id) for name, account_id in accounts.items()}
    connect_url = f"{base_url}/connect?{urlencode({'link_token': link_token})}"
    if args.json:
        print(
            orjson.dumps(
                {"base_url": base_url, "api_token": token, "integrated_accounts": accounts, "connect_url": connect_url}
            ).decode(),
            flush=True,
        )
    else:
        print(_quickstart(base_url, token, accounts, examples), flush=True)
        print(_connect_quickstart(connect_url, to_paste), flush=True)
    try:
        await task
    finally:
        for r in running.values():
            await r.stop()
        if temp is not None:
            temp.cleanup()


async def example_body(base_url: str, token: str, integration: str, account_id: str) -> dict[str, Any] | None:
    """A create body that works for this account, found through unicrm alone: each required
    reference (owner, account, contact, ...) is the first record of its unified resource, any
    other required field is copied from a sample project."""
    import aiohttp

    from unicrm.model import RESOURCES

    references = {f.name: f.references for f in RESOURCES["projects"].fields if f.references}
    headers = {"Authorization": f"Bearer {token}"}
    query = {"integrated_account_id": account_id, "limit": "50", "truto_ignore_remote_data": "true"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def first_of(resource: str) -> list[dict[str, Any]]:
            async with session.get(f"{base_url}/unified/crm/{resource}", params={**query, "limit": "1"}) as resp:
                return list((await resp.json())["result"]) if resp.status == 200 else []

        async with session.get(f"{base_url}/unified/crm/projects/{integration}/meta/create") as resp:
            meta = await resp.json()
        async with session.get(f"{base_url}/unified/crm/projects", params=query) as resp:
            if resp.status != 200:
                return None
            sample = (await resp.json())["result"]
        schema = meta.get("request_body_schema") or {}
        body: dict[str, Any] = {"name": "Kick-off from the unicrm demo"}
        wanted = [[f] for f in schema.get("required", []) if f != "name"] + list(schema.get("x-required-one-of", []))
        for group in wanted:
            for field in group:
                resource = references.get(field)
                if resource is not None:
                    found = await first_of(resource)
                    if found:
                        ref = {"id": found[0]["id"]}
                        body[field] = [ref] if schema["properties"][field].get("type") == "array" else ref
                        break
                    continue
                value = next((r[field] for r in sample if r.get(field) not in (None, [], {})), None)
                if value is not None:
                    body[field] = value
                    break
    return body


def _quickstart(base_url: str, token: str, accounts: dict[str, str], examples: dict[str, dict[str, Any] | None]) -> str:
    lines = [
        f"unicrm demo is running at {base_url} (docs: {base_url}/docs). Ctrl-C to stop.",
        "",
        f"export UNICRM={base_url}",
        f"export TOKEN={token}",
    ]
    for name, account_id in accounts.items():
        lines.append(f"export {name.upper()}={account_id}")
    first = next(iter(accounts))
    acc = f"${first.upper()}"
    auth = '-H "Authorization: Bearer $TOKEN"'
    lines += [
        "",
        "# list projects (every integration works the same; swap the account id)",
    ]
    for name in accounts:
        lines.append(f'curl -s {auth} "$UNICRM/unified/crm/projects?integrated_account_id=${name.upper()}&limit=5"')
    lines += [
        "",
        f"# what {first} supports and requires on create",
        f'curl -s {auth} "$UNICRM/unified/crm/projects/{first}/meta/create"',
        "",
        "# get one project, then its provider record untouched",
        f"ID=$(curl -s {auth} \"$UNICRM/unified/crm/projects?integrated_account_id={acc}&limit=1\" | python3 -c \"import sys,json;print(json.load(sys.stdin)['result'][0]['id'])\")",
        f'curl -s {auth} "$UNICRM/unified/crm/projects/$ID?integrated_account_id={acc}"',
        f'curl -s {auth} "$UNICRM/unified/crm/projects/$ID?integrated_account_id={acc}&truto_response_format=raw"',
        "",
        "# update and delete it",
        f'curl -s -X PATCH {auth} -H "Content-Type: application/json" -d \'{{"name": "Renamed by unicrm"}}\' '
        f'"$UNICRM/unified/crm/projects/$ID?integrated_account_id={acc}"',
        f'curl -s -X DELETE {auth} "$UNICRM/unified/crm/projects/$ID?integrated_account_id={acc}"',
        "",
        "# stream every project as NDJSON",
        f'curl -s {auth} "$UNICRM/unified/crm/projects?integrated_account_id={acc}&truto_response_format=stream" | head -3',
        "",
        "# the records a project points at, in every CRM: users (owners) and accounts (customers)",
    ]
    for name in accounts:
        for resource in ("users", "accounts"):
            lines.append(f'curl -s {auth} "$UNICRM/unified/crm/{resource}?integrated_account_id=${name.upper()}&limit=3"')
    lines += [
        "",
        "# create a project in each CRM with those ids (required fields differ: see .../{integration}/meta/create)",
    ]
    for name, body in examples.items():
        if body is not None:
            lines.append(
                f"curl -s -X POST {auth} -H \"Content-Type: application/json\" -d '{orjson.dumps(body).decode()}' "
                f'"$UNICRM/unified/crm/projects?integrated_account_id=${name.upper()}"'
            )
    return "\n".join(lines)


def _connect_quickstart(connect_url: str, to_paste: dict[str, dict[str, Any]]) -> str:
    auth = '-H "Authorization: Bearer $TOKEN"'
    lines = [
        "",
        "# connect a CRM the way your customers would: open this link in a browser (single use, 7 days)",
        connect_url,
        "# Capsule and Teamleader sign in through their emulator's consent page (Approve / Deny);",
        "# for the API-key CRMs, paste the emulator's credentials:",
    ]
    for name, values in to_paste.items():
        lines.append(f"#   {name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines += [
        '# a new link, coming back to your app afterwards (or reconnect one: {"integrated_account_id": "..."})',
        f'curl -s -X POST {auth} -H "Content-Type: application/json" '
        '-d \'{"tenant_id": "acme", "redirect_uri": "https://example.com/connected"}\' "$UNICRM/link-token"',
        "# get told about new, renewed, failing and deleted accounts",
        f'curl -s -X POST {auth} -H "Content-Type: application/json" '
        '-d \'{"target_url": "https://example.com/hooks/unicrm"}\' "$UNICRM/webhook"',
    ]
    return "\n".join(lines)


def _coverage(args: argparse.Namespace) -> int:
    from unicrm.engine.mapping import compile_mapping
    from unicrm.engine.meta import coverage_markdown
    from unicrm.providers import all_providers

    providers = all_providers()
    resources: dict[str, dict[str, Any]] = {}
    for n, p in providers.items():
        for name in p.resources:
            view = p.for_resource(name)
            assert view is not None
            resources.setdefault(name, {})[n] = compile_mapping(view)
    text = coverage_markdown({n: compile_mapping(p) for n, p in providers.items()}, resources)
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `unicrm coverage`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
