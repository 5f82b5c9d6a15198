"""``python -m storemon_api [--host H] [--port P] [--dagster-url URL]``: serve the API."""

from __future__ import annotations

import argparse

from storemon_api.main import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m storemon_api", description=__doc__)
    parser.add_argument("--host", help="interface (default STOREMON_API_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default STOREMON_API_PORT or 8000)")
    parser.add_argument(
        "--dagster-url",
        help="Dagster webserver (default STOREMON_DAGSTER_URL or http://127.0.0.1:3000)",
    )
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.dagster_url)


if __name__ == "__main__":
    main()
