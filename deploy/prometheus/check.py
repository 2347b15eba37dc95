"""Evaluate every PromQL expression of the rules and dashboard on a live server.

A dashboard panel or an alert that names a metric the flow no longer exports
shows "No data" or never fires, and nothing else says so. This check asks a
running Prometheus (scraping a running pipeline) for each expression and
fails on any that returns no series:

- recording rules and dashboard queries are evaluated whole (Grafana's
  ``$__rate_interval`` and friends become fixed durations);
- alert expressions are usually empty by design (nothing is wrong), so each
  metric selector inside them is evaluated instead.

A few series exist only after their event (see :data:`EVENT_ONLY_SERIES`):
an expression that is empty only for that reason is reported as ``quiet``
and fails only with ``--strict``. Rates need two scrapes, so ``--wait-s``
retries empty answers until the deadline.

The same module parses metric names out of PromQL, which the unit tests use
to prove that the rules and the dashboard name only series that
``dataflows.metrics`` defines.

Example:
    python -m deploy.prometheus.check --url http://127.0.0.1:9090 --wait-s 60
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

import typer
import yaml
from rich.console import Console
from rich.table import Table

HERE: Final = Path(__file__).resolve().parent
RULE_FILES: Final = (HERE / "rules" / "recording.yml", HERE / "rules" / "alerts.yml")
DASHBOARD_DIR: Final = HERE.parent / "grafana" / "dashboards"

#: Grafana's built-in variables, replaced by durations Prometheus accepts.
GRAFANA_VARIABLES: Final = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "5m",
}

#: Series that appear only once their event has happened at least once.
EVENT_ONLY_SERIES: Final = frozenset({"fraudflow_dead_letters_total"})

_PROMQL_WORDS: Final = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"}
)
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_SELECTOR = re.compile(
    r'(?<![\w.:$])([A-Za-z_:][\w:]*)\s*(\{(?:"(?:\\.|[^"\\])*"|[^}"])*\})?'
)

Kind = Literal["record", "alert", "panel"]


@dataclass(frozen=True)
class Expression:
    """One PromQL expression and where it was found."""

    kind: Kind
    source: str
    promql: str


def metric_names(promql: str) -> set[str]:
    """Return the metric (and recorded series) names ``promql`` reads.

    Strings, label matchers, ranges, grouping clauses, offsets and Grafana
    variables are removed first; what remains that is not a function call
    or a PromQL keyword is a metric name.

    Example:
        >>> sorted(metric_names(
        ...     'sum by (le) (rate(a_bucket{le="0.05"}[5m])) > 0.2 and on(x) b:c'))
        ['a_bucket', 'b:c']
    """
    text = _STRING.sub('""', promql)
    for pattern in (_MATCHERS, _RANGE, _GROUPING, _OFFSET, _VARIABLE):
        text = pattern.sub(" ", text)
    names = set(_IDENTIFIER.findall(text))
    return {name for name in names if name.lower() not in _PROMQL_WORDS}


def selectors(promql: str) -> list[str]:
    """Return each metric selector of ``promql`` with its label matchers.

    Example:
        >>> selectors('max by (f) (psi{f="a}"}) > 0.2 and rate(x_total[5m]) > 0')
        ['psi{f="a}"}', 'x_total']
    """
    names = metric_names(promql)
    found = []
    for match in _SELECTOR.finditer(_RANGE.sub(" ", promql)):
        name, matchers = match.groups()
        selector = name + (matchers or "")
        if name in names and selector not in found:
            found.append(selector)
    return found


def rule_expressions(paths: Iterable[Path] = RULE_FILES) -> list[Expression]:
    """Return every recording and alerting expression of the rule files."""
    expressions = []
    for path in paths:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind: Kind = "record" if "record" in rule else "alert"
                source = f"{path.name}: {rule.get('record') or rule.get('alert')}"
                expressions.append(Expression(kind, source, rule["expr"].strip()))
    return expressions


def recorded_names(paths: Iterable[Path] = RULE_FILES) -> set[str]:
    """Return the series names the recording rules define."""
    return {
        rule["record"]
        for path in paths
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def dashboard_expressions(directory: Path = DASHBOARD_DIR) -> list[Expression]:
    """Return the query of every panel target of every dashboard JSON file."""
    expressions = []
    for path in sorted(directory.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                source = f"{path.name}: {panel['title']} [{target['refId']}]"
                expressions.append(Expression("panel", source, target["expr"]))
    return expressions


def _panels(panels: list[dict]) -> Iterator[dict]:
    """Walk panels, including those nested in rows."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def probes(expression: Expression) -> list[str]:
    """Return the queries that must each return series for ``expression``."""
    if expression.kind == "alert":
        return selectors(expression.promql)
    promql = expression.promql
    for variable, duration in GRAFANA_VARIABLES.items():
        promql = promql.replace(variable, duration)
    return [promql]


def count_series(url: str, promql: str, timeout_s: float = 10.0) -> int:
    """Return how many series ``promql`` returns now on the server at ``url``.

    Raises:
        RuntimeError: The server refused the query (its error is quoted).
    """
    query = urllib.parse.urlencode({"query": promql})
    request = f"{url.rstrip('/')}/api/v1/query?{query}"
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        answer = json.loads(response.read())
    if answer.get("status") != "success":
        raise RuntimeError(f"query {promql!r}: {answer.get('error')!r}")
    result = answer["data"]["result"]
    return len(result) if answer["data"]["resultType"] in ("vector", "matrix") else 1


@dataclass
class Outcome:
    """The state of one probe: ``ok``, ``quiet`` (event-only) or ``empty``."""

    expression: Expression
    probe: str
    series: int

    @property
    def state(self) -> str:
        """``ok``, ``quiet`` or ``empty``."""
        if self.series:
            return "ok"
        if metric_names(self.probe) & EVENT_ONLY_SERIES:
            return "quiet"
        return "empty"


def evaluate(url: str, expressions: Iterable[Expression]) -> list[Outcome]:
    """Run every probe of every expression once."""
    return [
        Outcome(expression, probe, count_series(url, probe))
        for expression in expressions
        for probe in probes(expression)
    ]


def check(url: str, wait_s: float = 0.0, strict: bool = False) -> list[Outcome]:
    """Evaluate everything, retrying empty answers until ``wait_s`` passes."""
    expressions = rule_expressions() + dashboard_expressions()
    deadline = time.monotonic() + wait_s
    failing = {"empty", "quiet"} if strict else {"empty"}
    while True:
        outcomes = evaluate(url, expressions)
        if not any(o.state in failing for o in outcomes):
            return outcomes
        if time.monotonic() >= deadline:
            return outcomes
        time.sleep(5.0)


def report(outcomes: list[Outcome], console: Console) -> None:
    """Print one row per probe that is not plainly ``ok``, then a summary."""
    table = Table("state", "where", "query", title="expressions without series")
    for outcome in outcomes:
        if outcome.state != "ok":
            table.add_row(outcome.state, outcome.expression.source, outcome.probe)
    if table.row_count:
        console.print(table)
    states = [outcome.state for outcome in outcomes]
    summary = ", ".join(f"{states.count(s)} {s}" for s in ("ok", "quiet", "empty"))
    console.print(f"{len(outcomes)} queries: {summary}")


def main(
    url: Annotated[str, typer.Option(help="Prometheus base URL.")] = (
        "http://127.0.0.1:9090"
    ),
    wait_s: Annotated[
        float, typer.Option(help="Retry empty answers for this long.")
    ] = 0.0,
    strict: Annotated[
        bool, typer.Option(help="Fail on event-only series that are absent too.")
    ] = False,
) -> None:
    """Fail unless every rule and dashboard expression returns series."""
    console = Console()
    with console.status(f"evaluating rule and dashboard expressions on {url}"):
        outcomes = check(url, wait_s, strict)
    report(outcomes, console)
    failing = {"empty", "quiet"} if strict else {"empty"}
    if any(outcome.state in failing for outcome in outcomes):
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
