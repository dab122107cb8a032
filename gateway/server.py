"""Run the gateway under uvicorn (uvloop + httptools), alone or beside `jobctl serve`."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from jobcontrol.gateway.app import create_app
from jobcontrol.gateway.config import GatewaySettings, split_address
from jobcontrol.settings import ENV_PREFIX, load_settings


def run(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn drains open connections first)."""
    host, port = split_address(settings.http_address)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=settings.log_level.lower(),
        server_header=False,
        # no X-Forwarded-* rewriting on the hot path: the gateway listens on loopback
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    server.run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's flags (each also a JOBCONTROL_* variable)."""
    defaults = GatewaySettings()
    parser.add_argument(
        "--grpc-target",
        dest="grpc_target",
        help=f"HOST:PORT of the jobcontrol gRPC server [env {ENV_PREFIX}GRPC_TARGET;"
        f" default {defaults.grpc_target}]",
    )
    parser.add_argument(
        "--http-address",
        dest="http_address",
        help=f"HOST:PORT to serve HTTP on [env {ENV_PREFIX}HTTP_ADDRESS; "
        f"default {defaults.http_address}]",
    )
    parser.add_argument(
        "--max-body",
        dest="max_body",
        type=int,
        help=f"largest request body in bytes, larger is 413 [env "
        f"{ENV_PREFIX}MAX_BODY; default {defaults.max_body}]",
    )
    parser.add_argument(
        "--batch-accounts",
        dest="batch_accounts",
        help=f"Azure Batch shared-key accounts, name=base64key[,name=key] [env "
        f"{ENV_PREFIX}BATCH_ACCOUNTS; default none: the Batch dialect is off]",
    )
    parser.add_argument(
        "--veeam-users",
        dest="veeam_users",
        help=f"Veeam Enterprise Manager users, user:password[,user:password] [env "
        f"{ENV_PREFIX}VEEAM_USERS; default none: the Veeam dialect is off]",
    )
    parser.add_argument(
        "--veeam-roles",
        dest="veeam_roles",
        help=f"their roles, user=viewer|operator|administrator[,...] [env "
        f"{ENV_PREFIX}VEEAM_ROLES; default administrator]",
    )
    parser.add_argument(
        "--veeam-session-idle",
        dest="veeam_session_idle",
        type=float,
        help=f"seconds a Veeam logon session lives idle [env {ENV_PREFIX}VEEAM_SESSION_IDLE; "
        f"default {defaults.veeam_session_idle}]",
    )
    parser.add_argument(
        "--veeam-collection",
        dest="veeam_collection",
        help=f"collection (profile backup) behind /api [env {ENV_PREFIX}VEEAM_COLLECTION; "
        f"default {defaults.veeam_collection}]",
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        help=f"uvicorn log level [env {ENV_PREFIX}LOG_LEVEL; default {defaults.log_level}]",
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m jobcontrol.gateway`: the gateway alone, in front of any jobcontrol gRPC server."""
    parser = argparse.ArgumentParser(prog="jobctl gateway", description=run.__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(load_settings(GatewaySettings, **vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
