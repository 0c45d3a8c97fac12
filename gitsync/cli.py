"""The ``gitsync`` command line.

Subcommands are thin: they parse arguments, call into the layers below, print, and map outcomes to
exit codes. ``cluster up`` / ``cluster down`` manage the project's local test control plane for
people and the demo; tests start their own through pytest fixtures.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gitsync import __version__, kinds, logs
from gitsync.appcli import add_app_parser, add_appset_parser
from gitsync.application import Application, SpecError
from gitsync.application_status import ApplicationStatus
from gitsync.completion import SHELLS
from gitsync.completion import script as completion_script
from gitsync.tokencli import add_token_parser

if TYPE_CHECKING:
    from gitsync.controller.controller import Controller
    from gitsync.engine import Engine
    from gitsync.kube import KubeClient
    from gitsync.policy import Policy
    from gitsync.render.options import FetchedDependency
    from gitsync.source import GitCredentials
    from gitsync.source.credentials import RepositoryCredential
    from gitsync.sync.hooks import HookResult
    from gitsync.web.auth import AuthSettings
    from gitsync.web.live import LiveHub
    from gitsync.web.oidc import OidcSettings
    from gitsync.web.rbac import Authorizer
    from gitsync.web.server import DeadlineServer
    from gitsync.web.sessions import Revocations

    _Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_CLUSTER_DIR = Path(".cluster")


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"gitsync {__version__}")
    return 0


def _cmd_cluster_up(args: argparse.Namespace) -> int:
    from gitsync.localenv.controlplane import ControlPlane, ControlPlaneError

    workdir = Path(args.dir).resolve()
    if (workdir / "state.json").exists():
        print(
            f"a control plane is already recorded in {workdir}; run `gitsync cluster down` first",
            file=sys.stderr,
        )
        return 2
    cp = ControlPlane(workdir, simulator_nodes=args.nodes, detached=True)
    try:
        cp.start()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"control plane ready in {cp.startup_seconds:.1f}s at {cp.host}",
        f"(logs in {workdir / 'logs'})",
    )
    print(f"KUBECONFIG={cp.kubeconfig_path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from gitsync import demo

    root = _repo_root_of(Path.cwd())
    return demo.main(
        root, port=args.port, state_dir=Path(args.state_dir).resolve() if args.state_dir else None
    )


def _cmd_cluster_down(args: argparse.Namespace) -> int:
    from gitsync.localenv.controlplane import ControlPlane

    stopped = ControlPlane.stop_detached(Path(args.dir).resolve())
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


# -- engine commands -------------------------------------------------------------------------

EXIT_OK, EXIT_DIFF, EXIT_ERROR = 0, 1, 2


def _load_application(
    path: str,
    *,
    allow_partial: bool = False,
    local_servers: Callable[[], tuple[str, ...]] | None = None,
) -> Application:
    """The Application in ``path``: gitsync's, or Argo CD's translated as ``gitsync import
    argocd`` would (the report on stderr; refused when a field is not carried, unless
    ``allow_partial``). ``local_servers``: the API server URLs that are the cluster the command
    talks to, asked only for an Argo CD Application."""
    from gitsync.application import parse_application
    from gitsync.argocd import ImportOptions, SourceDocument, is_argo_application, translate
    from gitsync.render import RenderLimits, load_yaml_documents

    data = Path(path).read_bytes()
    docs = load_yaml_documents(data, source=path, limits=RenderLimits(max_bytes=1024 * 1024))
    if len(docs) != 1:
        raise SpecError("(file)", f"{path} must hold exactly one Application, found {len(docs)}")
    if not is_argo_application(docs[0]):
        return parse_application(docs[0])
    here = {server: "" for server in (local_servers() if local_servers else ())}
    result = translate([SourceDocument(path, docs[0])], ImportOptions(clusters=here))
    print(result.report.as_text(), end="", file=sys.stderr)
    (report,) = result.report.documents
    if not report.written:
        raise SpecError(
            "(file)", f"{path}: the Argo CD Application cannot be run: {report.problem}"
        )
    missing = [f.path for f in report.not_carried]
    if missing and not allow_partial:
        from gitsync.argocd.report import format_path

        raise SpecError(
            "(file)",
            f"{path}: Argo CD fields gitsync does not carry: "
            + ", ".join(format_path(m) for m in missing)
            + " (see the report above; --allow-partial runs the app without them)",
        )
    return parse_application(result.applications[0])


ALLOW_HTTP_ENV = "GITSYNC_GIT_INSECURE_ALLOW_HTTP"
NAMESPACES_ENV = "GITSYNC_GIT_NAMESPACES"


def _env_flag(name: str) -> bool:
    """A true/false environment variable; anything else is refused, naming it."""
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "true", "false"):
        raise SpecError(name, 'expected "true" or "false"')
    return value == "true"


def _env_credential_entry(args: argparse.Namespace) -> RepositoryCredential | None:
    """``serve``'s GITSYNC_GIT_* credentials as one repository-credential entry, sent only to
    repositories under ``--git-credentials-url`` (or $GITSYNC_GIT_URL) of Applications in the
    namespaces ``--git-credentials-namespaces`` (or $GITSYNC_GIT_NAMESPACES) names. Credentials
    without both are refused, not sent everywhere; a scope without credentials is refused too."""
    from gitsync.source.credentials import CredentialsError, parse_entry, parse_namespaces

    def read(path: str | None) -> str:
        return Path(path).read_text() if path else ""

    data = {
        "username": os.environ.get("GITSYNC_GIT_USERNAME", ""),
        "password": os.environ.get("GITSYNC_GIT_PASSWORD", ""),
        "sshPrivateKey": read(os.environ.get("GITSYNC_GIT_SSH_KEY_FILE")),
        "knownHosts": read(os.environ.get("GITSYNC_GIT_KNOWN_HOSTS_FILE")),
        "caData": read(os.environ.get("GITSYNC_GIT_CA_FILE")),
    }
    data = {key: value for key, value in data.items() if value}
    url = args.git_credentials_url or os.environ.get("GITSYNC_GIT_URL", "")
    namespaces = args.git_credentials_namespaces
    if namespaces is None:
        namespaces = os.environ.get(NAMESPACES_ENV)
    allow_http = args.git_credentials_insecure_allow_http or _env_flag(ALLOW_HTTP_ENV)
    if not data:
        if url or namespaces is not None or allow_http:
            raise SpecError(
                "--git-credentials-url",
                "a URL prefix or namespaces were given but no GITSYNC_GIT_USERNAME, "
                "GITSYNC_GIT_PASSWORD, GITSYNC_GIT_SSH_KEY_FILE or GITSYNC_GIT_CA_FILE to send",
            )
        return None
    if not url:
        raise SpecError(
            "--git-credentials-url",
            "GITSYNC_GIT_* credentials need the repository URL prefix they may be sent to: "
            "set --git-credentials-url or $GITSYNC_GIT_URL (e.g. https://github.com/my-org), "
            "or use repository-credential Secrets (README: Security)",
        )
    namespaces_flag = f"--git-credentials-namespaces (or ${NAMESPACES_ENV})"
    if namespaces is None:
        raise SpecError(
            "--git-credentials-namespaces",
            "GITSYNC_GIT_* credentials need the Application namespaces they are offered to: "
            f"set {namespaces_flag} to globs, comma-separated (e.g. team-a,team-b-*), or "
            '"*" to offer them to every namespace',
        )
    try:
        parse_namespaces(namespaces_flag, namespaces)
    except CredentialsError as exc:
        raise SpecError("--git-credentials-namespaces", str(exc)) from None
    data["url"] = url
    data["namespaces"] = namespaces
    data["insecureAllowHttp"] = "true" if allow_http else "false"
    try:
        return parse_entry(
            "the GITSYNC_GIT_* credentials",
            data,
            allow_http_hint=f"--git-credentials-insecure-allow-http or {ALLOW_HTTP_ENV}=true",
            namespaces_hint=namespaces_flag,
        )
    except CredentialsError as exc:
        raise SpecError("--git-credentials-url", str(exc)) from None


def _credentials(args: argparse.Namespace) -> GitCredentials | None:
    from gitsync.source import GitCredentials

    def read(path: str | None) -> str | None:
        return Path(path).read_text() if path else None

    username = args.git_username or os.environ.get("GITSYNC_GIT_USERNAME")
    password = read(args.git_password_file) or os.environ.get("GITSYNC_GIT_PASSWORD")
    ssh_key = read(args.ssh_key or os.environ.get("GITSYNC_GIT_SSH_KEY_FILE"))
    known_hosts = read(args.known_hosts or os.environ.get("GITSYNC_GIT_KNOWN_HOSTS_FILE"))
    if not any((username, password, ssh_key, known_hosts)):
        return None
    return GitCredentials(
        username=username, password=password, ssh_private_key=ssh_key, known_hosts=known_hosts
    )


def _engine(args: argparse.Namespace) -> Engine:
    from gitsync.engine import Engine
    from gitsync.kube import KubeClient
    from gitsync.rollout.endpoints import AnalysisAllowList
    from gitsync.rollout.executor import RolloutExecutor, RolloutSyncHook
    from gitsync.rollout.providers import MetricProviders
    from gitsync.source import SourceCache
    from gitsync.source.credentials import no_password_over_http
    from gitsync.sync import Syncer

    policy = _policy(args)
    if getattr(args, "health_checks", None):  # health and sync -f have the flag
        from gitsync.controller.health_checks import load_file
        from gitsync.health.custom import install

        install(load_file(Path(args.health_checks)))
    kube = KubeClient.from_kubeconfig(args.kubeconfig, context=args.context)
    cache_root = Path(args.cache_dir or _default_cache_dir())
    creds = _credentials(args)
    allow_http = args.git_insecure_allow_http or _env_flag(ALLOW_HTTP_ENV)

    def credentials(app: Application) -> GitCredentials | None:
        # The operator's own credentials, but still no password over plain http unasked.
        no_password_over_http(
            creds,
            app.source.repo_url,
            allowed=allow_http,
            hint=f"--git-insecure-allow-http or {ALLOW_HTTP_ENV}=true",
        )
        return creds

    sources = SourceCache(
        cache_root,
        allow_local_repos=args.allow_local_repos,
        connect_timeout=args.git_connect_timeout,
        max_output_bytes=args.git_max_output_bytes,
    )
    # only ``sync`` has the flag: diff and health never start a rollout, so never read a metric
    allow = AnalysisAllowList.parse(getattr(args, "analysis_allow", []))
    rollouts = RolloutExecutor(kube, providers=MetricProviders(allow=allow))
    syncer = Syncer(kube, takeover=RolloutSyncHook(kube, executor=rollouts), policy=policy)
    return Engine(sources, syncer, rollouts, credentials=credentials)


def _policy(args: argparse.Namespace) -> Policy:
    """``--policy FILE``, ``--policy-allow-all``, or the built-in default (own namespace only)."""
    from gitsync.policy import Policy, PolicyError

    if args.policy and args.policy_allow_all:
        raise PolicyError("--policy-allow-all", "give either --policy FILE or --policy-allow-all")
    if args.policy_allow_all:
        return Policy.allow_all()
    return Policy.from_yaml(Path(args.policy).read_bytes()) if args.policy else Policy()


def _default_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gitsync" / "sources"


def _run_engine_command(
    args: argparse.Namespace, body: Callable[[Engine, Application], int]
) -> int:
    from gitsync.errors import GitsyncError

    def local_servers() -> tuple[str, ...]:
        from gitsync.kube import KubeClient

        return (KubeClient.from_kubeconfig(args.kubeconfig, context=args.context).host,)

    try:
        app = _load_application(
            args.file, allow_partial=args.allow_partial, local_servers=local_servers
        )
        return body(_engine(args), app)
    except (GitsyncError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _cmd_diff(args: argparse.Namespace) -> int:
    def body(engine: Engine, app: Application) -> int:
        from gitsync.model import SyncStatus

        state = engine.compare(app)
        print(
            f"{app.qualified_name} at {state.revision.sha[:12]} ({state.revision.ref or 'commit'})"
        )
        for key, error in state.comparison.errors:
            print(f"error: {key}: {error}", file=sys.stderr)
        changed = 0
        for d in state.comparison.diffs:
            if d.status == SyncStatus.SYNCED:
                continue
            changed += 1
            print(f"===== {d.key} ({d.status})")
            if d.unified:
                print(d.unified, end="" if d.unified.endswith("\n") else "\n")
        print(f"{changed} of {len(state.comparison.diffs)} objects differ")
        if state.comparison.errors:
            return EXIT_ERROR
        return EXIT_OK if state.comparison.in_sync else EXIT_DIFF

    return _run_engine_command(args, body)


def _cmd_sync(args: argparse.Namespace) -> int:
    def body(engine: Engine, app: Application) -> int:
        state, result = engine.sync(app, dry_run=args.dry_run, prune=args.prune or None)
        mode = " (dry run)" if result.dry_run else ""
        print(f"sync {app.qualified_name} to {state.revision.sha[:12]}{mode}")
        rows = [("KIND", "NAMESPACE", "NAME", "RESULT", "MESSAGE")]
        rows += [
            (r.key.kind, r.key.namespace, r.key.name, str(r.code), r.message)
            for r in sorted(result.results, key=lambda r: (r.wave, r.key))
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print(
                "  ".join(col.ljust(w) for col, w in zip(row, widths, strict=False)) + "  " + row[4]
            )
        if result.hooks:
            _print_hooks(result.hooks)
        if result.aborted:
            print(f"error: {result.message}", file=sys.stderr)
        print(f"phase: {result.phase}")
        return EXIT_OK if result.succeeded else EXIT_DIFF

    return _run_engine_command(args, body)


def _print_hooks(hooks: Sequence[HookResult]) -> None:
    """The operation's hooks, in the order they ran (``gitsync sync``'s second table)."""
    rows = [("HOOK", "KIND", "NAMESPACE", "NAME", "RESULT", "DURATION", "MESSAGE")]
    rows += [
        (
            str(h.phase),
            h.key.kind,
            h.key.namespace,
            h.key.name,
            str(h.outcome),
            f"{h.duration:.1f}s",
            h.message,
        )
        for h in hooks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    print()
    for row in rows:
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=False)) + "  " + row[6])


def _cmd_sync_either(args: argparse.Namespace) -> int:
    if args.file and args.app:
        print("error: give either -f FILE or APP, not both", file=sys.stderr)
        return EXIT_ERROR
    if args.app and args.health_checks:
        print(
            "error: --health-checks applies to sync -f FILE; through the controller, its own "
            "--health-checks and ConfigMaps apply",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if args.app and args.analysis_allow:
        print(
            "error: --analysis-allow applies to sync -f FILE; through the controller, its own "
            "--analysis-allow applies",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if args.app:
        return _cmd_request(args)
    if not args.file:
        print(
            "error: give -f FILE (sync directly) or APP (through the controller)", file=sys.stderr
        )
        return EXIT_ERROR
    return _cmd_sync(args)


def _cmd_health(args: argparse.Namespace) -> int:
    def body(engine: Engine, app: Application) -> int:
        from gitsync.model import HealthStatus

        state = engine.compare(app)
        for key, health in state.resource_health():
            print(f"{health.status:<12} {key}  {health.message}")
        overall = state.health
        print(f"health: {overall.status}" + (f" ({overall.message})" if overall.message else ""))
        return EXIT_OK if overall.status == HealthStatus.HEALTHY else EXIT_DIFF

    return _run_engine_command(args, body)


def _render_chart(args: argparse.Namespace) -> tuple[Path, str, str | None]:
    """``render --repo URL --chart NAME --version RANGE``: the chart unpacked (from the local
    chart cache), its directory as the render's root, and the version's ``chart@version``;
    or an error message naming the flag."""
    from gitsync.application import SpecError, split_oci_chart_url, validate_chart_target
    from gitsync.engine.chart_sources import ChartStore
    from gitsync.errors import GitsyncError
    from gitsync.source.charts import ChartCredential

    for flag, value in (("PATH", args.path), ("--repo-root", args.repo_root)):
        if value:
            return Path(), "", f"{flag} cannot be given with --repo (the chart is the source)"
    if args.helm_values:
        return Path(), "", "--helm-values is not supported with --repo; use --set"
    repo_url, chart = args.repo.rstrip("/"), args.chart
    if not chart:  # Helm's spelling (helm template oci://host/path/NAME): the URL ends with it
        repo_url, chart = split_oci_chart_url(repo_url)
    if not chart or not args.version:
        return Path(), "", "--repo needs --chart NAME and --version VERSION|RANGE"
    try:
        target = validate_chart_target(args.version, "--version")
        credential = ChartCredential(
            username=args.repo_username or "",
            password=_read_text(args.repo_password_file) or "",
            ca_data=_read_text(args.repo_ca_file) or "",
            allow_plain_http=args.repo_insecure_allow_http,
        )
        store = ChartStore(_default_cache_dir().parent / "charts")
        version = store.resolve(repo_url, chart, target, credential)
        checkout = store.checkout(repo_url, version, credential)
    except (SpecError, GitsyncError, OSError) as exc:
        return Path(), "", str(exc)
    return checkout.root / checkout.path, version.revision, None


def _fetch_chart_dependencies(
    root: Path, chart_dir: Path
) -> tuple[tuple[FetchedDependency, ...], str | None]:
    """``render``: the chart's remote dependencies, fetched like the controller fetches them
    but without credentials (public repositories; TLS against the system roots), into the
    local chart cache; or an error message naming the dependency."""
    from gitsync.engine.chart_dependencies import fetch_dependencies
    from gitsync.engine.chart_sources import ChartStore
    from gitsync.errors import GitsyncError
    from gitsync.render import RenderLimits
    from gitsync.source.charts import ChartCredential

    store = ChartStore(_default_cache_dir().parent / "charts")
    try:
        fetched = fetch_dependencies(
            store, root, chart_dir, RenderLimits(), lambda url: ChartCredential()
        )
    except (GitsyncError, OSError) as exc:
        return (), str(exc)
    return fetched, None


def _read_text(path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else None


def _render_application(args: argparse.Namespace) -> int:
    """``render -f FILE``: what the Application (gitsync's or Argo CD's) renders at its
    source's revision, fetched as ``diff`` would; the cluster is read only for a Helm chart's
    capabilities."""
    local = {
        "PATH": args.path,
        "--repo": args.repo,
        "--chart": args.chart,
        "--version": args.version,
        "--repo-root": args.repo_root,
        "--helm-values": args.helm_values,
        "--set": args.set,
        "--release-name": args.release_name,
        "--namespace": args.namespace,
    }
    given = [flag for flag, value in local.items() if value]
    if given:
        print(
            f"error: -f FILE takes everything from the Application: drop {given[0]}",
            file=sys.stderr,
        )
        return EXIT_ERROR

    def body(engine: Engine, app: Application) -> int:
        if app.sources:
            manifests, _ = engine.render_sources(app, engine.fetch_sources(app, None))
        else:
            manifests, _ = engine.render(app, engine.fetch(app))
        _print_rendered([m.obj for m in manifests], args.output)
        return EXIT_OK

    return _run_engine_command(args, body)


def _print_rendered(objs: list[dict[str, Any]], output: str) -> None:
    """``render``'s stdout: a YAML stream, or one JSON ``List``."""
    import json

    import yaml

    if output == "json":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, indent=2))
    else:
        print(yaml.safe_dump_all(objs, sort_keys=False), end="")


def _cmd_render(args: argparse.Namespace) -> int:
    from gitsync.render import HelmOptions, RenderError, RenderRequest, detect, render

    if args.file:
        return _render_application(args)
    if args.repo:
        chart_dir, revision, problem = _render_chart(args)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_ERROR
        print(f"# {revision}", file=sys.stderr)
        args.path, args.repo_root = str(chart_dir), str(chart_dir)
    elif args.chart or args.version:
        print("error: --chart and --version need --repo URL", file=sys.stderr)
        return EXIT_ERROR
    elif not args.path:
        print("error: give a PATH to render, or --repo URL --chart NAME", file=sys.stderr)
        return EXIT_ERROR
    path = Path(args.path).resolve()
    root = Path(args.repo_root).resolve() if args.repo_root else _repo_root_of(path)
    rel = str(path.relative_to(root)) if path != root else "."
    helm = None
    if detect(root, rel) == "helm":
        helm = HelmOptions(
            release_name=args.release_name or path.name.lower(),
            value_files=tuple(str(Path(v).resolve().relative_to(path)) for v in args.helm_values),
            set_values=tuple(args.set),
        )
    if helm is not None:
        fetched, problem = _fetch_chart_dependencies(root, path)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_ERROR
        helm = dataclasses.replace(helm, dependencies=fetched)
    try:
        manifests = render(
            RenderRequest(repo_root=root, path=rel, namespace=args.namespace, helm=helm)
        )
    except (RenderError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _print_rendered([m.obj for m in manifests], args.output)
    return EXIT_OK


# -- the controller -----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _source_args(p: argparse.ArgumentParser) -> None:
    """How Git is reached: flags shared by serve and the commands that fetch themselves."""
    from gitsync.source import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_MAX_OUTPUT_BYTES

    p.add_argument(
        "--allow-local-repos",
        action="store_true",
        help="accept file:// repository URLs (they read any repository on this host; "
        "refused by default)",
    )
    p.add_argument(
        "--git-connect-timeout",
        type=_positive_float,
        default=DEFAULT_CONNECT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="give up on a Git server that sends nothing for this long (connect, first byte, "
        f"stalls; default {DEFAULT_CONNECT_TIMEOUT_SECONDS:g}); the whole operation still has "
        "its own 60 s limit",
    )
    p.add_argument(
        "--git-max-output-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_OUTPUT_BYTES,
        metavar="BYTES",
        help="stop a git command that prints more than this, e.g. a huge ref advertisement "
        f"(default {DEFAULT_MAX_OUTPUT_BYTES})",
    )


def _true_or_false(text: str) -> bool:
    if text not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text == "true"


def _service_account_name(text: str) -> str:
    from gitsync.application import DNS_SUBDOMAIN

    if not DNS_SUBDOMAIN.match(text):
        raise argparse.ArgumentTypeError(
            f"expected a ServiceAccount name (a lowercase DNS subdomain), got {text!r}"
        )
    return text


def _kube_for(args: argparse.Namespace, user_agent: str = "gitsync") -> KubeClient:
    from gitsync.kube import KubeClient

    if args.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KubeClient.in_cluster(user_agent=user_agent)
    return KubeClient.from_kubeconfig(args.kubeconfig, context=args.context, user_agent=user_agent)


def _webhook_secrets() -> Callable[[str], list[str]]:
    """Webhook secrets from the environment: GITSYNC_WEBHOOK_SECRET (all providers) and
    GITSYNC_WEBHOOK_SECRET_<PROVIDER>; several comma-separated values allow rotation."""

    def lookup(provider: str) -> list[str]:
        name = "GITSYNC_WEBHOOK_SECRET_" + provider.upper().replace("-", "_")
        raw = os.environ.get(name) or os.environ.get("GITSYNC_WEBHOOK_SECRET") or ""
        return [v for v in raw.split(",") if v]

    return lookup


def _warn_about_webhooks(secrets_for: Callable[[str], list[str]], allow_unsigned: bool) -> None:
    """Say at start which providers' deliveries are refused or accepted unsigned (never a
    secret: only provider names)."""
    import structlog

    from gitsync.webhook import Provider

    log = structlog.get_logger("gitsync.cli")
    unsigned = [p.value for p in Provider if not secrets_for(p.value)]
    if not unsigned:
        return
    if allow_unsigned:
        log.warning(
            "--allow-unsigned-webhooks: anyone who reaches /api/webhook can make these providers' "
            "pushes refresh Applications",
            providers=unsigned,
        )
    else:
        log.info(
            "webhook deliveries from providers without a secret are refused (401)",
            providers=unsigned,
        )


def _cmd_serve(args: argparse.Namespace) -> int:
    import socket

    from gitsync.appset.generate import GenerationLimits
    from gitsync.controller.controller import Controller, ControllerConfig
    from gitsync.errors import GitsyncError
    from gitsync.web import AuthConfigError, create_app
    from gitsync.web.oidc import OidcConfigError
    from gitsync.web.podlogs import LogLimits, LogsRole
    from gitsync.web.rbac import Authorizer, PolicyError, load_policy
    from gitsync.web.server import create_server
    from gitsync.web.sessions import SessionKeyError
    from gitsync.web.tokens import TokenStore

    try:
        auth = _web_auth(args)
        oidc = _oidc_settings(args)
        log_limits = LogLimits(
            role=LogsRole(args.logs_role),
            max_bytes=args.logs_max_bytes,
            max_seconds=args.logs_max_seconds,
            max_streams=args.logs_max_streams,
        )
        authorizer = Authorizer(load_policy(args.rbac_policy) if args.rbac_policy else None)
        credential_entry = _env_credential_entry(args)
    # OSError: GITSYNC_GIT_*_FILE; ValueError: a --logs-* value out of range
    except (
        AuthConfigError,
        OidcConfigError,
        SessionKeyError,
        PolicyError,
        SpecError,
        OSError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not args.impersonate and args.default_service_account:
        print(
            "error: --default-service-account has no effect with --impersonate=false "
            "(Applications then run as the controller); drop one of them",
            file=sys.stderr,
        )
        return EXIT_ERROR
    identity = args.identity or f"{socket.gethostname()}-{os.getpid()}"
    kube = _kube_for(args, user_agent=f"gitsync-controller/{identity}")
    _install_crds(kube, args.install_crd)
    host, _, port = args.listen.rpartition(":")
    metrics_address: tuple[str, int] | None = args.metrics_listen
    config = ControllerConfig(
        cache_dir=Path(args.cache_dir or _default_cache_dir().parent / "controller"),
        namespaces=[n for n in (args.namespaces or "").split(",") if n] or None,
        config_file=Path(args.config) if args.config else None,
        workers=args.workers,
        controller_namespace=args.controller_namespace,
        leader_elect=args.leader_elect,
        identity=identity,
        lease_duration=args.lease_duration,
        shards=args.shards,
        allow_exec_credentials=args.allow_exec_credentials,
        credential_entry=credential_entry,
        policy_file=Path(args.policy) if args.policy else None,
        allow_local_repos=args.allow_local_repos,
        git_connect_timeout=args.git_connect_timeout,
        git_max_output_bytes=args.git_max_output_bytes,
        analysis_allow=tuple(args.analysis_allow),
        impersonate=args.impersonate,
        allow_shared_resource_takeover=args.allow_shared_resource_takeover,
        no_cross_namespace_refs=args.no_cross_namespace_refs,
        default_service_account=args.default_service_account or "",
        git_max_per_host=args.git_max_per_host or 0,
        policy_allow_all=args.policy_allow_all,
        push_window=args.push_window,
        health_checks_file=Path(args.health_checks) if args.health_checks else None,
        appset_limits=GenerationLimits(
            max_applications=args.appset_max_applications,
            max_total_bytes=args.appset_max_bytes,
            max_string_bytes=args.appset_max_string_bytes,
        ),
        notification_allow=tuple(args.notification_allow),
        external_url=args.external_url or "",
        events_per_app=args.events_per_app,
    )
    try:
        controller = Controller(kube, config)
    except (GitsyncError, OSError) as exc:  # e.g. a bad --policy file
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    secrets_for = _webhook_secrets()
    _warn_about_webhooks(secrets_for, args.allow_unsigned_webhooks)
    live = _live_hub(args, controller, authorizer)
    app = create_app(
        controller,
        metrics_exposition=controller.metrics.exposition,
        webhook_secrets=secrets_for,
        on_webhook_result=controller.metrics.webhook,
        max_webhook_bytes=args.webhook_max_bytes,
        allow_unsigned_webhooks=args.allow_unsigned_webhooks,
        serve_metrics=metrics_address is None,
        auth=auth,
        logs=log_limits,
        live=live,
        authorizer=authorizer,
        tokens=TokenStore(kube, args.controller_namespace),
        record_event=lambda key, reason, message, warning: controller.store.record_event(
            key, reason, message, warning=warning
        ),
        oidc=oidc,
        revocations=_session_revocations(args, kube, auth.session_max_seconds),
    )
    server = create_server(
        app,
        host=host or "127.0.0.1",
        port=int(port),
        max_body_bytes=args.webhook_max_bytes + 1,
        timeout=args.http_timeout,
        stream_threads=0 if live is None else live.max_subscribers,
        max_service=args.ui_stream_max_seconds + args.http_timeout,
    )
    metrics_server = None
    if metrics_address is not None:
        metrics_server = _start_metrics_server(
            metrics_address, controller.metrics.exposition, auth, timeout=args.http_timeout
        )
    return _serve_until_stopped(
        controller, server, metrics_server, address=f"{host or '127.0.0.1'}:{port}"
    )


def _live_hub(
    args: argparse.Namespace, controller: Controller, authorizer: Authorizer
) -> LiveHub | None:
    """The fan-out of the controller's Application events to the UI's streams; None (the pages
    poll) with ``--ui-max-streams 0`` or ``--config``, whose Applications are not watched. Each
    stream gets only the apps its principal may read (the RBAC policy's ``get``)."""
    from gitsync.web.live import LiveHub
    from gitsync.web.rbac import Action

    if args.ui_max_streams == 0 or args.config:
        return None
    hub = LiveHub(
        max_subscribers=args.ui_max_streams,
        max_lifetime=args.ui_stream_max_seconds,
        visible=lambda principal, key: authorizer.allows(principal, Action.GET, key[0]),
    )
    controller.application_listeners.append(hub.publish)
    controller.metrics.registry.register(hub)
    return hub


def _serve_until_stopped(
    controller: Controller,
    server: DeadlineServer,
    metrics_server: DeadlineServer | None,
    *,
    address: str,
) -> int:
    """Run the controller and serve until SIGTERM or SIGINT; then stop both, leaving no git
    child or key file behind."""
    import signal
    import threading

    from gitsync.source import end_all_sessions

    stopping = threading.Event()

    def stop(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            server.close()
            if metrics_server is not None:
                metrics_server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    controller.start()
    print(f"gitsync serving on http://{address}", file=sys.stderr, flush=True)
    try:
        server.run()
    except OSError:
        if not stopping.is_set():
            raise
    finally:
        # Workers may be inside a fetch: kill their git children and remove the sessions' key
        # files first, so neither outlives us, and stopping does not wait for a slow server.
        end_all_sessions()
        controller.stop()
    return EXIT_OK


def _install_crds(kube: KubeClient, crd_files: list[str]) -> None:
    """``--install-crd``: create or update each CustomResourceDefinition before the controller
    watches its kind."""
    from gitsync.controller.controller import ensure_crd
    from gitsync.render import load_yaml_documents

    for crd_file in crd_files:
        for doc in load_yaml_documents(Path(crd_file).read_bytes(), source=crd_file):
            ensure_crd(kube, doc)


def _start_metrics_server(
    address: tuple[str, int],
    exposition: Callable[[], bytes],
    auth: AuthSettings,
    *,
    timeout: int,
) -> DeadlineServer:
    """``--metrics-listen``: /metrics on an address of its own (for a scraper that should not
    reach the UI), served from a daemon thread."""
    import threading

    from gitsync.web import create_metrics_app
    from gitsync.web.server import create_server

    server = create_server(
        create_metrics_app(exposition, auth),
        host=address[0],
        port=address[1],
        max_body_bytes=1024,
        timeout=timeout,
        threads=2,
    )
    threading.Thread(target=server.run, name="gitsync-metrics", daemon=True).start()
    return server


def _host_port(value: str) -> tuple[str, int]:
    """A ``HOST:PORT`` flag value (``[::1]:9090`` for IPv6)."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _web_auth(args: argparse.Namespace) -> AuthSettings:
    """The UI's and API's credentials from the serve flags (files, so nothing secret shows in
    ``ps``); ``GITSYNC_ADMIN_PASSWORD_BCRYPT`` may hold the hash instead of the flag."""
    from gitsync.web.auth import (
        AuthSettings,
        bcrypt_value,
        parse_proxy_network,
        read_secret_file,
        read_token_file,
    )
    from gitsync.web.sessions import read_session_keys

    bcrypt_hash = args.admin_password_bcrypt or os.environ.get("GITSYNC_ADMIN_PASSWORD_BCRYPT")
    return AuthSettings.build(
        admin_password=(
            read_secret_file(args.admin_password_file, "admin password")
            if args.admin_password_file
            else None
        ),
        admin_password_bcrypt=bcrypt_value(bcrypt_hash) if bcrypt_hash else None,
        api_tokens=read_token_file(args.api_token_file, "API token") if args.api_token_file else (),
        read_only_tokens=(
            read_token_file(args.read_only_token_file, "read-only token")
            if args.read_only_token_file
            else ()
        ),
        anonymous_read=args.anonymous_read,
        secure_cookie=args.behind_tls,
        trusted_proxies=[parse_proxy_network(cidr) for cidr in args.trusted_proxy],
        metrics_tokens=(
            read_token_file(args.metrics_token_file, "metrics token")
            if args.metrics_token_file
            else ()
        ),
        admin_password_disabled=args.disable_admin_password,
        session_keys=read_session_keys(args.session_key_file) if args.session_key_file else (),
    )


def _oidc_settings(args: argparse.Namespace) -> OidcSettings | None:
    """Single sign-on from the ``--oidc-*`` flags; None without ``--oidc-issuer`` (and then no
    other ``--oidc-*`` flag may be given: none is accepted and ignored)."""
    import structlog

    from gitsync.web.auth import read_secret_file
    from gitsync.web.oidc import OidcConfigError, OidcSettings

    given = {
        "--oidc-client-id": args.oidc_client_id,
        "--oidc-client-secret-file": args.oidc_client_secret_file,
        "--oidc-scopes": args.oidc_scopes,
        "--oidc-groups-claim": args.oidc_groups_claim,
        "--oidc-admin-group": args.oidc_admin_group,
    }
    if not args.oidc_issuer:
        extra = [flag for flag, value in given.items() if value]
        if extra:
            raise OidcConfigError(f"{', '.join(extra)} given without --oidc-issuer")
        return None
    for flag in ("--oidc-client-id", "--oidc-client-secret-file"):
        if not given[flag]:
            raise OidcConfigError(f"--oidc-issuer needs {flag}")
    if not args.session_key_file:
        structlog.get_logger("gitsync.cli").warning(
            "--oidc-issuer without --session-key-file: sessions are lost on restart and not "
            "shared between replicas"
        )
    return OidcSettings.build(
        issuer=args.oidc_issuer,
        client_id=args.oidc_client_id,
        client_secret=read_secret_file(args.oidc_client_secret_file, "OIDC client secret"),
        external_url=args.external_url or "",
        scopes=args.oidc_scopes or "",
        groups_claim=args.oidc_groups_claim or "groups",
        admin_groups=tuple(args.oidc_admin_group),
    )


def _session_revocations(
    args: argparse.Namespace, kube: KubeClient, session_max_seconds: float
) -> Revocations | None:
    """With a shared ``--session-key-file`` the replicas share the revocation list too (a
    ConfigMap in the controller namespace); without one, sessions are this process's alone."""
    if not args.session_key_file:
        return None
    from gitsync.web.revocations import ConfigMapRevocations

    revocations = ConfigMapRevocations(
        kube,
        args.controller_namespace,
        refresh=args.session_revocation_refresh,
        max_age=session_max_seconds,
    )
    revocations.start()
    return revocations


def _annotate(args: argparse.Namespace, annotations: dict[str, str | None]) -> int:
    from gitsync.kube import ApiError

    namespace, _, name = args.app.rpartition("/")
    namespace = namespace or args.app_namespace
    kube = _kube_for(args, user_agent="gitsync-cli")
    try:
        kube.patch(
            kinds.API_VERSION,
            kinds.APPLICATION,
            name,
            {"metadata": {"annotations": annotations}},
            namespace=namespace,
        )
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"requested for {namespace}/{name}")
    return EXIT_OK


def _cmd_request(args: argparse.Namespace) -> int:
    import secrets as _secrets

    from gitsync.controller.interface import (
        AUTOMATION_PAUSED,
        REFRESH_REQUEST,
        ROLLBACK_REQUEST,
        SYNC_REQUEST,
    )

    nonce = _secrets.token_hex(6)
    if args.command == "sync":
        return _annotate(args, {SYNC_REQUEST: nonce + (";prune" if args.prune else "")})
    if args.command == "refresh":
        return _annotate(args, {REFRESH_REQUEST: nonce})
    if args.command == "rollback":
        return _annotate(args, {ROLLBACK_REQUEST: str(args.to)})
    return _annotate(args, {AUTOMATION_PAUSED: None, ROLLBACK_REQUEST: None})


# -- rollout requests ----------------------------------------------------------------------


def _rollout_location(args: argparse.Namespace, kube: KubeClient) -> tuple[str, str]:
    """(namespace, name) of the Rollout ``args.target`` names: ``ROLLOUT`` with ``--namespace``
    as it is; else ``[NS/]APP/ROLLOUT``, a Rollout the Application lists in its status (it lives
    in the app's destination namespace). Raises ``ValueError`` with what to fix."""
    parts = args.target.split("/")
    if args.namespace:
        if len(parts) != 1 or not parts[0]:
            raise ValueError("with --namespace, give just the Rollout's name")
        return args.namespace, parts[0]
    if len(parts) == 2:
        parts = [args.app_namespace, *parts]
    if len(parts) != 3 or not all(parts):
        raise ValueError("give NAMESPACE/APP/ROLLOUT, APP/ROLLOUT, or ROLLOUT --namespace NS")
    app_ns, app_name, name = parts
    app = kube.get(kinds.API_VERSION, kinds.APPLICATION, app_name, app_ns)
    if app is None:
        raise ValueError(f"no Application {app_ns}/{app_name}")
    destination = (app.get("spec") or {}).get("destination") or {}
    cluster = destination.get("name") or ""
    if cluster and cluster != "in-cluster":
        raise ValueError(
            f"{app_ns}/{app_name} deploys to cluster {cluster!r}: point --kubeconfig/--context "
            "at that cluster and name the Rollout with --namespace"
        )
    for r in ApplicationStatus.from_dict(app.get("status")).resources or ():
        if kinds.is_rollout(r.group, r.kind) and r.name == name:
            return str(r.namespace or destination.get("namespace") or app_ns), name
    raise ValueError(f"the Application {app_ns}/{app_name} lists no Rollout {name!r}")


def _appset_promote_parser(commands: Any) -> None:
    promote = commands.add_parser(
        "promote",
        help="approve a paused step of an ApplicationSet's rolling sync (Kubernetes API)",
        description="Writes gitsync.dev/promote: <step>@<revision> on the ApplicationSet, for the "
        "revision its status.rollingSync shows: the approval holds for that commit only.",
    )
    promote.add_argument("appset", metavar="NAMESPACE/NAME", help="the ApplicationSet")
    promote.add_argument(
        "--step",
        type=_positive_int,
        default=None,
        help="the step to approve (default: the paused one)",
    )
    promote.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: in-cluster)")
    promote.add_argument(
        "--context", default=None, help="the kubeconfig context (default: its current context)"
    )
    promote.set_defaults(func=_cmd_appset_promote)


def _cmd_appset_promote(args: argparse.Namespace) -> int:
    from gitsync.appset.rolling import PROMOTE_ANNOTATION, promotion_for
    from gitsync.kube import ApiError

    namespace, _, name = str(args.appset).partition("/")
    if not namespace or not name or "/" in name:
        print(f"error: {args.appset!r}: expected NAMESPACE/NAME", file=sys.stderr)
        return EXIT_ERROR
    kube = _kube_for(args, user_agent="gitsync-cli")
    try:
        obj = kube.get(kinds.API_VERSION, kinds.APPLICATION_SET, name, namespace)
        if obj is None:
            print(f"error: ApplicationSet {namespace}/{name} not found", file=sys.stderr)
            return EXIT_ERROR
        value = promotion_for((obj.get("status") or {}).get("rollingSync"), args.step)
        kube.patch(
            kinds.API_VERSION,
            kinds.APPLICATION_SET,
            name,
            {"metadata": {"annotations": {PROMOTE_ANNOTATION: value}}},
            namespace=namespace,
        )
    except (ValueError, ApiError) as exc:
        print(f"error: ApplicationSet {namespace}/{name}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"promote requested for ApplicationSet {namespace}/{name} ({PROMOTE_ANNOTATION}: {value})"
    )
    return EXIT_OK


def _cmd_rollout(args: argparse.Namespace) -> int:
    """``gitsync rollout promote|abort|retry``: the request annotation on the Rollout, with a
    fresh nonce (what ``kubectl annotate --overwrite`` would write; the executor handles each
    nonce once)."""
    import secrets as _secrets

    from gitsync.kube import ApiError
    from gitsync.rollout.status import (
        ABORT_ANNOTATION,
        FULL_PROMOTE_SUFFIX,
        PROMOTE_ANNOTATION,
        RETRY_ANNOTATION,
    )

    if args.full and args.rollout_command != "promote":
        print("error: --full applies to promote only", file=sys.stderr)
        return EXIT_ERROR
    annotation = {
        "promote": PROMOTE_ANNOTATION,
        "abort": ABORT_ANNOTATION,
        "retry": RETRY_ANNOTATION,
    }[args.rollout_command]
    value = _secrets.token_hex(6) + (FULL_PROMOTE_SUFFIX if args.full else "")
    kube = _kube_for(args, user_agent="gitsync-cli")
    try:
        namespace, name = _rollout_location(args, kube)
        kube.patch(
            kinds.API_VERSION,
            kinds.ROLLOUT,
            name,
            {"metadata": {"annotations": {annotation: value}}},
            namespace=namespace,
        )
    except (ValueError, ApiError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    what = args.rollout_command + (" --full" if args.full else "")
    print(f"{what} requested for Rollout {namespace}/{name} ({annotation}: {value})")
    return EXIT_OK


def _rollout_parser(sub: Any) -> None:
    rollout = sub.add_parser(
        "rollout", help="promote, abort or retry a canary / blue-green rollout (see docs/api.md)"
    )
    actions = rollout.add_subparsers(dest="rollout_command", metavar="ACTION", required=True)
    for name, text in [
        ("promote", "end the current pause or analysis (--full: skip all remaining steps)"),
        ("abort", "send all traffic back to stable; the rollout goes Degraded"),
        ("retry", "start an aborted revision again"),
    ]:
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument(
            "target", help="NAMESPACE/APP/ROLLOUT, APP/ROLLOUT, or ROLLOUT with --namespace"
        )
        cmd.add_argument("--app-namespace", default="gitsync", help="for APP/ROLLOUT")
        cmd.add_argument(
            "--namespace", default=None, help="the Rollout's own namespace (no Application read)"
        )
        if name == "promote":
            cmd.add_argument("--full", action="store_true", help="skip all remaining steps")
        else:
            cmd.set_defaults(full=False)
        cmd.add_argument(
            "--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config"
        )
        cmd.add_argument(
            "--context", default=None, help="the kubeconfig context (default: its current context)"
        )
        cmd.set_defaults(func=_cmd_rollout)


def _repo_root_of(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return path


ALLOW_ALL_HELP = (
    "no destination policy at all: an Application may deploy anything anywhere, so whoever may "
    "create one is cluster-admin (single-team clusters only; logged as a warning)"
)


def _engine_args(p: argparse.ArgumentParser, *, file_required: bool = True) -> None:
    p.add_argument(
        "-f",
        "--file",
        required=file_required,
        help="the Application manifest (YAML): gitsync's, or Argo CD's (translated, the report "
        "on stderr)",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="run an Argo CD Application even when some of its fields are not carried",
    )
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument(
        "--context", default=None, help="the kubeconfig context (default: its current context)"
    )
    p.add_argument("--cache-dir", default=None, help="Git mirrors and checkouts")
    p.add_argument("--git-username", default=None, help="or $GITSYNC_GIT_USERNAME")
    p.add_argument("--git-password-file", default=None, help="or $GITSYNC_GIT_PASSWORD")
    p.add_argument("--ssh-key", default=None, help="private key file, or $GITSYNC_GIT_SSH_KEY_FILE")
    p.add_argument("--known-hosts", default=None, help="or $GITSYNC_GIT_KNOWN_HOSTS_FILE")
    p.add_argument(
        "--git-insecure-allow-http",
        action="store_true",
        help=f"send the Git password over plain http:// too (or ${ALLOW_HTTP_ENV}=true)",
    )
    p.add_argument(
        "--policy", default=None, metavar="FILE", help="destination policy (README: Security)"
    )
    p.add_argument("--policy-allow-all", action="store_true", help=ALLOW_ALL_HELP)
    _source_args(p)


def _analysis_allow_entry(value: str) -> str:
    from gitsync.rollout.endpoints import AnalysisAllowList

    try:
        AnalysisAllowList.parse([value])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _health_checks_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--health-checks",
        default=None,
        metavar="FILE",
        help="CEL health checks per kind, a YAML list of {apiVersion, kind, current, "
        "inProgress, failed} (Flux's healthCheckExprs); they override built-in and bundled "
        "checks for their kinds (README: Health)",
    )


def _analysis_allow_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--analysis-allow",
        action="append",
        default=[],
        type=_analysis_allow_entry,
        metavar="URL-GLOB",
        help="a URL glob rollout analysis (web, prometheus) may read, e.g. "
        "'http://prometheus.monitoring:9090/*'; repeatable; none: analysis reads nothing. "
        "Loopback, link-local and metadata addresses need an entry naming the host",
    )


def _notification_allow_entry(value: str) -> str:
    from gitsync.notify.delivery import ALLOW_FLAG, SCHEMES
    from gitsync.rollout.endpoints import AnalysisAllowList

    try:
        AnalysisAllowList.parse([value], flag=ALLOW_FLAG, schemes=SCHEMES)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _external_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"--external-url {value!r}: an http(s):// URL with a host")
    if parts.username is not None or parts.password is not None or parts.query:
        raise argparse.ArgumentTypeError("--external-url: no user info or query")
    return value.rstrip("/")


def _notification_args(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("notifications (NotificationProvider, NotificationRule)")
    group.add_argument(
        "--notification-allow",
        action="append",
        default=[],
        type=_notification_allow_entry,
        metavar="URL-GLOB",
        help="a URL glob notification providers may post to (smtp://HOST:PORT/* for a mail "
        "server); repeatable; default 'https://*'. "
        "Loopback, link-local and metadata addresses need an entry naming the host",
    )
    group.add_argument(
        "--external-url",
        type=_external_url,
        default=None,
        metavar="URL",
        help="the UI's address as people reach it (links in notifications and commit statuses)",
    )
    serve.add_argument(
        "--events-per-app",
        type=_events_per_app,
        default=200,
        metavar="N",
        help="Kubernetes Events kept per Application for the UI, API and `app events`: the "
        "newest N of the app, its objects and their Pods/ReplicaSets (default 200, at most "
        "10000); messages are cut to 1024 characters",
    )


def _events_per_app(value: str) -> int:
    from gitsync.controller.interface import MAX_EVENTS_PER_APP

    if not value.isdigit() or not 1 <= int(value) <= MAX_EVENTS_PER_APP:
        raise argparse.ArgumentTypeError(
            f"--events-per-app {value!r}: a whole number from 1 to {MAX_EVENTS_PER_APP}"
        )
    return int(value)


def _cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(build_parser(), args.shell))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitsync",
        description="GitOps continuous delivery for Kubernetes: make the cluster match Git.",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("GITSYNC_LOG_LEVEL", "info"),
        help="debug, info, warning or error (default: $GITSYNC_LOG_LEVEL, else info)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default=os.environ.get("GITSYNC_LOG_FORMAT", "auto"),
        help="log lines on stderr: console (readable), json (one object a line), or auto "
        "(default: console on a terminal, json otherwise; $GITSYNC_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _local_parsers(sub)
    _request_parsers(sub)
    _rollout_parser(sub)
    add_app_parser(sub)
    add_token_parser(sub)
    _appset_promote_parser(add_appset_parser(sub))
    completion = sub.add_parser("completion", help="print a shell completion script")
    completion.add_argument(
        "shell", choices=SHELLS, help='bash or zsh: eval "$(gitsync completion bash)"'
    )
    completion.set_defaults(func=_cmd_completion)
    _serve_parser(sub)
    health = sub.add_parser("health", help="health of the app's objects (exit 0 when Healthy)")
    _engine_args(health)
    _health_checks_arg(health)
    health.set_defaults(func=_cmd_health)
    _local_environment_parsers(sub)
    _import_parser(sub)
    return parser


def _local_parsers(sub: _Subcommands) -> None:
    """The commands that work from a checkout: version, render, diff, sync."""
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)

    render = sub.add_parser(
        "render",
        help="render a directory (plain, Kustomize or Helm), or a chart from a Helm repository "
        "or OCI registry (--repo URL --chart NAME --version RANGE), to stdout",
    )
    render.add_argument(
        "path", nargs="?", default=None, help="the directory to render (not with --repo)"
    )
    render.add_argument(
        "--repo", default=None, help="a Helm repository (https://) or OCI registry (oci://)"
    )
    render.add_argument(
        "--chart", default=None, help="the chart's name in --repo (oci://HOST/PATH/NAME: NAME)"
    )
    render.add_argument(
        "--version", default=None, help="a chart version or semver range ('>=1.0.0 <2.0.0')"
    )
    render.add_argument("--repo-username", default=None, help="basic auth user for --repo")
    render.add_argument(
        "--repo-password-file", default=None, metavar="FILE", help="basic auth password for --repo"
    )
    render.add_argument("--repo-ca-file", default=None, metavar="FILE", help="PEM CA bundle")
    render.add_argument(
        "--repo-insecure-allow-http", action="store_true", help="allow an http:// --repo"
    )
    render.add_argument("--repo-root", default=None, help="confinement root (default: git root)")
    render.add_argument(
        "--helm-values",
        action="append",
        default=[],
        metavar="FILE",
        help="a values file (repeatable)",
    )
    render.add_argument(
        "--set", action="append", default=[], metavar="K=V", help="a Helm value (repeatable)"
    )
    render.add_argument(
        "--release-name", default=None, help="Helm release name (default: the directory's name)"
    )
    render.add_argument("--namespace", default="", help="the namespace rendered objects go to")
    render.add_argument(
        "-o", "--output", choices=["yaml", "json"], default="yaml", help="yaml (default) or json"
    )
    _engine_args(render, file_required=False)  # -f FILE: an Application's source, fetched
    render.set_defaults(func=_cmd_render)

    diff = sub.add_parser(
        "diff", help="show how the cluster differs from Git (exit 0 same, 1 differs, 2 error)"
    )
    _engine_args(diff)
    diff.set_defaults(func=_cmd_diff)

    sync = sub.add_parser(
        "sync",
        help="make the cluster match Git: with -f FILE directly, with APP through the controller",
    )
    _engine_args(sync, file_required=False)
    _analysis_allow_arg(sync)  # a sync may start a rollout whose first step is an analysis
    _health_checks_arg(sync)  # waves and hooks wait on health
    sync.add_argument("app", nargs="?", help="NAMESPACE/NAME of an Application in the cluster")
    sync.add_argument(
        "--app-namespace", default="gitsync", help="the Application's namespace (default gitsync)"
    )
    sync.add_argument("--dry-run", action="store_true", help="send everything with dryRun=All")
    sync.add_argument("--prune", action="store_true", help="delete objects Git no longer has")
    sync.set_defaults(func=_cmd_sync_either)


def _request_parsers(sub: _Subcommands) -> None:
    """The commands that ask the controller to act on an Application in the cluster."""
    for name, text in [
        ("refresh", "ask the controller to compare APP with Git now"),
        ("resume", "re-enable automated sync after a rollback"),
        ("rollback", "re-deploy history entry N and pause automated sync"),
    ]:
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("app", help="NAMESPACE/NAME")
        cmd.add_argument(
            "--app-namespace",
            default="gitsync",
            help="the Application's namespace (default gitsync)",
        )
        cmd.add_argument(
            "--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config"
        )
        cmd.add_argument(
            "--context", default=None, help="the kubeconfig context (default: its current context)"
        )
        if name == "rollback":
            cmd.add_argument("--to", type=int, required=True, metavar="N", help="history id")
        cmd.set_defaults(func=_cmd_request)


def _serve_parser(sub: _Subcommands) -> None:
    """``gitsync serve``: the controller, its sources and policy; access flags apart."""
    serve = sub.add_parser("serve", help="run the controller, webhook receiver and metrics")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT")
    serve.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    serve.add_argument(
        "--context", default=None, help="the kubeconfig context (default: its current context)"
    )
    serve.add_argument("--namespaces", default="", help="comma-separated (default: all)")
    serve.add_argument("--config", default=None, help="Applications from a file (no CRD)")
    serve.add_argument(
        "--workers", type=int, default=4, help="Applications reconciled at once (default 4)"
    )
    serve.add_argument(
        "--cache-dir", default=None, help="Git mirrors, checkouts and rendered charts"
    )
    serve.add_argument(
        "--controller-namespace",
        default="gitsync",
        help="where the controller keeps its Leases (default gitsync)",
    )
    serve.add_argument(
        "--leader-elect",
        action="store_true",
        help="run several replicas: only the holder of the Lease reconciles",
    )
    serve.add_argument(
        "--identity", default=None, help="this replica's name in Leases (default: host-pid)"
    )
    serve.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        help="seconds a Lease holds without renewal before another replica takes over",
    )
    serve.add_argument(
        "--shards",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="spread Applications over the replicas in N shards, each held through its own "
        "Lease (README: Sharding); 0 (default): one controller, or --leader-elect",
    )
    serve.add_argument(
        "--allow-exec-credentials",
        action="store_true",
        help="let kubeconfigs of registered clusters run exec credential plugins",
    )
    serve.add_argument(
        "--git-credentials-url",
        default=None,
        metavar="URL",
        help="the repository URL prefix the GITSYNC_GIT_* credentials are sent to (or "
        "$GITSYNC_GIT_URL); required when they are set (README: Security)",
    )
    serve.add_argument(
        "--git-credentials-namespaces",
        default=None,
        metavar="GLOBS",
        help="the Application namespaces the GITSYNC_GIT_* credentials are offered to: globs, "
        f'comma-separated, "*" for all (or ${NAMESPACES_ENV}); required when they are set',
    )
    serve.add_argument(
        "--git-credentials-insecure-allow-http",
        action="store_true",
        help=f"let the GITSYNC_GIT_* password go over plain http:// (or ${ALLOW_HTTP_ENV}=true)",
    )
    serve.add_argument(
        "--install-crd",
        action="append",
        default=[],
        metavar="FILE",
        help="create or update this CRD at start (repeatable)",
    )
    serve.add_argument(
        "--webhook-max-bytes",
        type=int,
        default=1024 * 1024,
        help="largest webhook body accepted (default 1 MiB; larger: 413)",
    )
    serve.add_argument(
        "--allow-unsigned-webhooks",
        action="store_true",
        help="accept push webhooks from providers that have no GITSYNC_WEBHOOK_SECRET[_PROVIDER] "
        "(by default they are refused with 401)",
    )
    serve.add_argument(
        "--push-window",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="at most one push-triggered head check per repository (and one hand-over write per "
        "app) in this many seconds; pushes in between join the run at the window's end "
        "(default 1)",
    )
    serve.add_argument(
        "--git-max-per-host",
        type=_positive_int,
        default=None,
        metavar="N",
        help="reconciles talking to one Git host at once; the others wait in the queue "
        "(default: half of --workers, at least 1)",
    )
    serve.add_argument(
        "--http-timeout",
        type=int,
        default=30,
        metavar="SECONDS",
        help="a request must arrive whole within this time of its first byte (slow clients are "
        "disconnected), and idle connections are closed after it",
    )
    serve.add_argument(
        "--policy",
        default=None,
        metavar="FILE",
        help="destination policy: allowed namespaces, cluster-scoped kinds and sourceRepos per "
        "Application namespace (README: Security); without it the built-in default: each "
        "namespace's Applications deploy only into that namespace",
    )
    _source_args(serve)
    _analysis_allow_arg(serve)
    _health_checks_arg(serve)  # and ConfigMaps labelled gitsync.dev/health-checks=true
    _notification_args(serve)
    serve.add_argument(
        "--impersonate",
        type=_true_or_false,
        default=True,
        metavar="true|false",
        help="run every Application's reads, dry runs, applies and prunes as a ServiceAccount "
        "in its namespace (spec.serviceAccountName or --default-service-account), so RBAC "
        "bounds what it may deploy (default true; false: as the controller, for a "
        "single-team install - logged as a warning)",
    )
    serve.add_argument(
        "--allow-shared-resource-takeover",
        action="store_true",
        help="apply an object whose tracking annotation names another Application (taking it "
        "over, as Argo CD does); default: such an object is SyncFailed and left alone, and "
        "the app shows a SharedResourceWarning condition either way",
    )
    serve.add_argument(
        "--no-cross-namespace-refs",
        action="store_true",
        help="refuse a spec.dependsOn entry naming an Application in another namespace (a "
        "spec error, as Flux's flag); default: allowed, and only whether it is Ready is read",
    )
    serve.add_argument(
        "--default-service-account",
        type=_service_account_name,
        default=None,
        metavar="NAME",
        help="the ServiceAccount (in the Application's namespace) for Applications that set "
        "no spec.serviceAccountName; without it such Applications are Stalled",
    )
    serve.add_argument("--policy-allow-all", action="store_true", help=ALLOW_ALL_HELP)
    _appset_limit_args(serve)
    _serve_access_args(serve)
    serve.set_defaults(func=_cmd_serve)


def _appset_limit_args(serve: argparse.ArgumentParser) -> None:
    """Bounds on one generation of one ApplicationSet (over them: an error on that set)."""
    limits = serve.add_argument_group("ApplicationSet limits (per set and generation)")
    limits.add_argument(
        "--appset-max-applications",
        type=_positive_int,
        default=5000,
        metavar="N",
        help="Applications (and parameter sets at any step, a matrix's product included)",
    )
    limits.add_argument(
        "--appset-max-bytes",
        type=_positive_int,
        default=32 << 20,
        metavar="BYTES",
        help="the generated Applications together, as JSON",
    )
    limits.add_argument(
        "--appset-max-string-bytes",
        type=_positive_int,
        default=64 << 10,
        metavar="BYTES",
        help="one rendered template string",
    )


# The live update streams' defaults, as ``gitsync.web.live`` has them (a test keeps them equal):
# written out here because importing the web layer to build the parser would slow every command.
UI_MAX_STREAMS = 100
UI_STREAM_MAX_SECONDS = 300.0


def _serve_access_args(serve: argparse.ArgumentParser) -> None:
    """Who may reach the web UI, the API and /metrics, and how."""
    ui = serve.add_argument_group("web UI and API access (see docs/api.md)")
    ui.add_argument("--admin-password-file", metavar="FILE", help="admin password (first line)")
    ui.add_argument(
        "--admin-password-bcrypt",
        metavar="HASH|FILE",
        help="admin password as a bcrypt hash, or a file holding it",
    )
    ui.add_argument("--api-token-file", metavar="FILE", help="admin bearer tokens, one a line")
    ui.add_argument(
        "--read-only-token-file", metavar="FILE", help="read-only bearer tokens, one a line"
    )
    ui.add_argument(
        "--anonymous-read", action="store_true", help="let anyone read the status pages and API"
    )
    ui.add_argument(
        "--disable-admin-password",
        action="store_true",
        help="refuse logins with the admin password (Argo CD's admin.enabled=false); the "
        "password flags may stay for enabling it again",
    )
    ui.add_argument(
        "--rbac-policy",
        metavar="FILE",
        help="YAML policy binding user:/group:/token: subjects to viewer/operator/admin roles "
        "per project (namespace) glob or globally (see docs/api.md)",
    )
    ui.add_argument(
        "--behind-tls",
        action="store_true",
        help="clients reach the UI over HTTPS (a TLS proxy): Secure cookies and HSTS",
    )
    ui.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a reverse proxy in front of gitsync (repeatable): for requests from it, the login "
        "rate limit counts the right-most X-Forwarded-For address that is not a listed proxy",
    )
    logs = serve.add_argument_group("Pod logs (API, UI and `gitsync app logs`)")
    logs.add_argument(
        "--logs-role",
        choices=("admin", "viewer", "none"),
        default="admin",
        help="who may read the container logs of an Application's Pods: admin (default), "
        "viewer (read-only tokens and viewer sessions too; never --anonymous-read) or none",
    )
    logs.add_argument(
        "--logs-max-bytes",
        type=int,
        default=10 * 1024 * 1024,
        metavar="BYTES",
        help="most bytes of log one request returns (default 10 MiB); the rest is cut, with a "
        "last line saying so",
    )
    logs.add_argument(
        "--logs-max-seconds",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="longest a log request (a follow stream) stays open (default 300)",
    )
    logs.add_argument(
        "--logs-max-streams",
        type=int,
        default=4,
        metavar="N",
        help="log requests open at once on this server (default 4; each holds a worker thread; "
        "more: 429)",
    )
    ui.add_argument(
        "--ui-max-streams",
        type=_non_negative_int,
        default=UI_MAX_STREAMS,
        metavar="N",
        help="live update streams (server-sent events) open at once, each holding a server "
        f"thread; more are answered 503 and those pages poll (default {UI_MAX_STREAMS}; "
        "0: no streams, the pages poll every 2 s; with --config there are none: its "
        "Applications are not watched)",
    )
    ui.add_argument(
        "--ui-stream-max-seconds",
        type=_positive_float,
        default=UI_STREAM_MAX_SECONDS,
        metavar="SECONDS",
        help="a live update stream ends after this long and the page opens a new one; also how "
        f"long a logged-out session's stream can last (default {UI_STREAM_MAX_SECONDS:g})",
    )
    ui.add_argument(
        "--session-key-file",
        metavar="FILE",
        help="secrets (32+ characters, one a line, newest first) that encrypt the session "
        "cookies; replicas with the same file share sessions and a restart keeps them. "
        "Without it the key is random per process",
    )
    ui.add_argument(
        "--session-revocation-refresh",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="how often each replica reads the shared session revocation list, a ConfigMap "
        "in --controller-namespace (with --session-key-file; default 5)",
    )
    sso = serve.add_argument_group("single sign-on (OpenID Connect; needs --external-url)")
    sso.add_argument("--oidc-issuer", metavar="URL", help="the provider's issuer URL")
    sso.add_argument("--oidc-client-id", metavar="ID", help="gitsync's client id at the provider")
    sso.add_argument(
        "--oidc-client-secret-file", metavar="FILE", help="the client secret (first line)"
    )
    sso.add_argument(
        "--oidc-scopes",
        metavar="SCOPES",
        help="scopes to ask for, space or comma separated (default: openid profile email groups)",
    )
    sso.add_argument(
        "--oidc-groups-claim",
        metavar="CLAIM",
        help="the ID token claim that lists the user's groups (default: groups)",
    )
    sso.add_argument(
        "--oidc-admin-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="members of this group get a global admin grant (an admin without --rbac-policy); "
        "everyone else signed in gets only what the --rbac-policy grants them. Repeatable",
    )
    metrics = serve.add_argument_group("metrics")
    metrics.add_argument(
        "--metrics-token-file",
        metavar="FILE",
        help="/metrics needs Authorization: Bearer with one of these tokens (one a line)",
    )
    metrics.add_argument(
        "--metrics-listen",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve /metrics on this address only (not on --listen)",
    )


def _local_environment_parsers(sub: _Subcommands) -> None:
    """``demo`` and ``cluster``: the local control plane, for trying gitsync out."""
    demo = sub.add_parser(
        "demo", help="local control plane + example repo + gitsync serve with the UI (Ctrl-C stops)"
    )
    demo.add_argument("--port", type=int, default=None, help="UI port (default 8080 if free)")
    demo.add_argument("--state-dir", default=None, help="where the demo keeps its files")
    demo.set_defaults(func=_cmd_demo)

    cluster = sub.add_parser(
        "cluster", help="the local test control plane (etcd + kube-apiserver + controllers)"
    )
    cluster_sub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    up = cluster_sub.add_parser(
        "up", help="start it in the background; prints KUBECONFIG=<path> last"
    )
    up.add_argument(
        "--dir", default=str(DEFAULT_CLUSTER_DIR), help="state and logs (default .cluster)"
    )
    up.add_argument("--nodes", type=int, default=3, help="simulated nodes (default 3)")
    up.set_defaults(func=_cmd_cluster_up)
    down = cluster_sub.add_parser("down", help="stop exactly what `cluster up` started")
    down.add_argument(
        "--dir", default=str(DEFAULT_CLUSTER_DIR), help="what `cluster up --dir` used"
    )
    down.set_defaults(func=_cmd_cluster_down)


# -- gitsync import argocd -----------------------------------------------------------------

EXIT_INCOMPLETE = 1
"""``import argocd``: something was not carried (nothing written without --allow-partial), or
with --allow-partial a whole document could not be written."""
IMPORT_MAX_FILE_BYTES = 1024 * 1024
IMPORT_MAX_TOTAL_BYTES = 64 * 1024 * 1024
IMPORT_MAX_FILES = 10_000
IMPORT_SUFFIXES = (".yaml", ".yml", ".json")


class ImportInputError(SpecError):
    """An input of ``import argocd`` cannot be read; names the file or the flag."""


def _import_files(paths: Sequence[str]) -> list[tuple[str, Path | None]]:
    """(name, file) for each input: ``-`` is stdin (file None); a directory gives its
    ``*.yaml``/``*.yml``/``*.json`` files, recursively, sorted, hidden directories and
    symbolic links to directories skipped."""
    files: list[tuple[str, Path | None]] = []
    for given in paths:
        if given == "-":
            files.append(("-", None))
            continue
        path = Path(given)
        if path.is_dir():
            top = path.resolve()
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for found in (Path(root, n) for n in sorted(names) if n.endswith(IMPORT_SUFFIXES)):
                    # a cloned repository is not the user's own: a link in it may point at any
                    # file of this host (a kubeconfig) or at a device that never ends
                    real = found.resolve()
                    if not real.is_relative_to(top) or not real.is_file():
                        raise ImportInputError(
                            str(found), f"links out of {given} or is not a regular file: not read"
                        )
                    files.append((str(found), found))
        elif path.is_file():
            files.append((given, path))
        else:
            raise ImportInputError(given, "no such file or directory")
        if len(files) > IMPORT_MAX_FILES:
            raise ImportInputError(given, f"more than {IMPORT_MAX_FILES} files")
    return files


def _read_import_documents(paths: Sequence[str]) -> list[Any]:
    """Every document of the inputs as ``SourceDocument``s, each file through the safe YAML
    loader with its limits (size, aliases, depth, document count)."""
    from gitsync.argocd import SourceDocument
    from gitsync.render import RenderError, RenderLimits, load_yaml_documents

    limits = RenderLimits(max_bytes=IMPORT_MAX_FILE_BYTES)
    documents: list[SourceDocument] = []
    total = 0
    for name, path in _import_files(paths):
        if path is None:
            data = sys.stdin.buffer.read(IMPORT_MAX_FILE_BYTES + 1)
        else:
            with path.open("rb") as stream:
                data = stream.read(IMPORT_MAX_FILE_BYTES + 1)
        if len(data) > IMPORT_MAX_FILE_BYTES:
            raise ImportInputError(name, f"larger than {IMPORT_MAX_FILE_BYTES} bytes")
        total += len(data)
        if total > IMPORT_MAX_TOTAL_BYTES:
            raise ImportInputError(name, f"the inputs exceed {IMPORT_MAX_TOTAL_BYTES} bytes")
        try:
            docs = load_yaml_documents(data, source=name, limits=limits)
        except RenderError as exc:
            raise ImportInputError(name, str(exc)) from None
        several = len(docs) > 1
        documents += [
            SourceDocument(f"{name}#{i}" if several else name, doc)
            for i, doc in enumerate(docs, start=1)
        ]
    return documents


def _cluster_flag(value: str) -> tuple[str, str]:
    """``--cluster NAME=URL``: a registered cluster's name and its API server URL."""
    from gitsync.application import DNS_SUBDOMAIN

    name, sep, url = value.partition("=")
    if not sep or not DNS_SUBDOMAIN.match(name) or not url.startswith(("https://", "http://")):
        raise argparse.ArgumentTypeError(
            f"expected NAME=URL (a cluster name, an https:// API server URL), got {value!r}"
        )
    return name, url.rstrip("/")


def _import_clusters(args: argparse.Namespace) -> dict[str, str]:
    """Server URL -> registered cluster name, from ``--kubeconfig``'s cluster Secrets and then
    ``--cluster`` flags (which win)."""
    clusters: dict[str, str] = {}
    if args.kubeconfig:
        from gitsync.controller.clusters import registered_servers

        kube = _kube_for(args, user_agent="gitsync-import")
        clusters.update(registered_servers(kube, args.controller_namespace))
    flagged: dict[str, str] = {}
    for name, url in args.cluster:
        if flagged.setdefault(url, name) != name:
            raise ImportInputError("--cluster", f"{url} is given as {flagged[url]} and {name}")
    clusters.update(flagged)
    return clusters


def _write_import(args: argparse.Namespace, apps: list[dict[str, Any]], policy: Any) -> str:
    """Write the gitsync documents where the flags say; returns where, for the last line."""
    import yaml

    docs = [*apps, *([policy] if policy else [])]
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for app in apps:
            meta = app["metadata"]
            kind = str(app["kind"]).lower()
            name = f"{kind}-{meta.get('namespace', 'gitsync')}-{meta['name']}.yaml"
            (out / name).write_text(yaml.safe_dump(app, sort_keys=False))
        if policy:
            (out / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
        return str(out)
    text = yaml.safe_dump_all(docs, sort_keys=False) if docs else ""
    if args.output_file:
        Path(args.output_file).write_text(text)
        return str(args.output_file)
    sys.stdout.write(text)
    return "stdout"


def _cmd_import_argocd(args: argparse.Namespace) -> int:
    import json

    from gitsync.argocd import ImportOptions, translate
    from gitsync.errors import GitsyncError

    try:
        documents = _read_import_documents(args.paths)
        options = ImportOptions(clusters=_import_clusters(args), namespace=args.namespace)
    except (GitsyncError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    result = translate(documents, options)
    report = result.report
    refused = not report.complete and not args.allow_partial
    try:
        documents_out = [*result.applications, *result.application_sets]
        where = None if refused else _write_import(args, documents_out, result.policy)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.report_format == "json":  # stderr holds the JSON document alone
        print(json.dumps({**report.as_dict(), "writtenTo": where}, indent=2), file=sys.stderr)
    else:
        print(report.as_text(), end="", file=sys.stderr)
        if where is None:
            print(
                "error: not everything could be carried (above); nothing was written. "
                "--allow-partial writes what could be",
                file=sys.stderr,
            )
        else:
            projects = f" and the policy of {len(result.projects)} projects"
            print(
                f"wrote {len(result.applications)} Applications"
                + (
                    f", {len(result.application_sets)} ApplicationSets"
                    if result.application_sets
                    else ""
                )
                + (projects if result.projects else "")
                + f" to {where}",
                file=sys.stderr,
            )
    if refused:
        return EXIT_INCOMPLETE
    return EXIT_OK if report.all_written else EXIT_INCOMPLETE


def _namespace_flag(value: str) -> str:
    from gitsync.application import DNS_SUBDOMAIN

    if len(value) > 63 or "." in value or not DNS_SUBDOMAIN.match(value):
        raise argparse.ArgumentTypeError(f"expected a namespace name, got {value!r}")
    return value


def _import_parser(sub: _Subcommands) -> None:
    """``gitsync import argocd``: Argo CD's manifests as gitsync's, with the report."""
    imp = sub.add_parser("import", help="translate another tool's manifests into gitsync's")
    tools = imp.add_subparsers(dest="import_tool", metavar="TOOL", required=True)
    argo = tools.add_parser(
        "argocd",
        help="Argo CD Applications, AppProjects and ApplicationSets -> gitsync Applications, "
        "policy projects and ApplicationSets; "
        "the report of every field on stderr (exit 0 all carried, 1 not, 2 error)",
    )
    argo.add_argument(
        "paths",
        nargs="+",
        metavar="FILE|DIR|-",
        help="files, directories (*.yaml, *.yml, *.json, recursively) or - for stdin",
    )
    where = argo.add_mutually_exclusive_group()
    where.add_argument(
        "-o", dest="out_dir", metavar="DIR", help="one file per Application and policy.yaml"
    )
    where.add_argument(
        "--output", dest="output_file", metavar="FILE", help="all documents in one file"
    )
    argo.add_argument(
        "--allow-partial",
        action="store_true",
        help="write what could be carried even when some fields could not (still exit 1 when a "
        "whole document could not be written)",
    )
    argo.add_argument(
        "--cluster",
        action="append",
        default=[],
        type=_cluster_flag,
        metavar="NAME=URL",
        help="the registered cluster NAME is Argo CD's destination.server URL (repeatable)",
    )
    argo.add_argument(
        "--namespace",
        type=_namespace_flag,
        default=None,
        metavar="NS",
        help="write the Applications to namespace NS, their project (default: keep theirs)",
    )
    argo.add_argument(
        "--report-format",
        choices=["text", "json"],
        default="text",
        help="the report on stderr: text (default) or JSON",
    )
    argo.add_argument(
        "--kubeconfig",
        default=None,
        help="read the registered clusters' URLs from the cluster Secrets of this cluster",
    )
    argo.add_argument(
        "--context", default=None, help="the kubeconfig context (default: its current context)"
    )
    argo.add_argument(
        "--controller-namespace",
        default="gitsync",
        help="where the cluster Secrets are (with --kubeconfig)",
    )
    argo.set_defaults(func=_cmd_import_argocd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_format not in ("auto", "console", "json"):  # from $GITSYNC_LOG_FORMAT
        parser.error(f"--log-format / GITSYNC_LOG_FORMAT: unknown format {args.log_format!r}")
    logs.configure(args.log_level, json={"auto": None, "json": True}.get(args.log_format, False))
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
