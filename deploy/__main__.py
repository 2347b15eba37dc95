"""Command line of the local stack: ``python -m deploy up|down|status|env``."""

from __future__ import annotations

import logging
import sys
import time

import typer

from dataflows.config import Settings
from deploy.stack import LocalStack, StackError

app = typer.Typer(add_completion=False, help=__doc__)


def _stack() -> LocalStack:
    return LocalStack(Settings().state_dir / "stack")


@app.command()
def up() -> None:
    """Start the broker, PostgreSQL and Redis (reusing what already runs)."""
    started = time.monotonic()
    try:
        endpoints = _stack().up()
    except StackError as exc:
        typer.echo(f"stack failed: {exc}", err=True)
        raise typer.Exit(1) from None
    for name, value in endpoints.env().items():
        typer.echo(f"{name}={value}")
    typer.echo(f"stack up in {time.monotonic() - started:.1f} s", err=True)


@app.command()
def down() -> None:
    """Stop every service the stack started."""
    _stack().down()
    typer.echo("stack down", err=True)


@app.command()
def status() -> None:
    """Print each service's state; exit 1 unless all are up or external."""
    report = _stack().status()
    for name, state in report.items():
        typer.echo(f"{name:9} {state}")
    if any(state == "down" for state in report.values()):
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print ``export`` lines pointing a shell at the running stack."""
    endpoints = _stack().endpoints()
    if endpoints is None:
        typer.echo("stack is not up: run `just up`", err=True)
        raise typer.Exit(1)
    for name, value in endpoints.env().items():
        typer.echo(f"export {name}={value}")


def main() -> None:
    """Entry point with INFO logging to stderr."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app()


if __name__ == "__main__":
    main()
