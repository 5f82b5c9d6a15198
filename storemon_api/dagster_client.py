"""Talking to the Dagster webserver: launch report runs, read their status.

Runs are launched with ``dagster_graphql.DagsterGraphQLClient`` (its public API). Reads that the
client does not offer (a run's tags and times, its failure reason, lists of runs, daemon health)
are plain GraphQL queries over httpx against the same endpoint.

``DagsterGraphQLClient`` keeps one gql transport that refuses a second connection while a query
is in flight, so it is not safe to share between the threads FastAPI serves requests on; a
client is made per launch (cheap: no network until the query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportServerError,
)

from storemon_api.errors import Unavailable, UpstreamError
from storemon_pipeline.engine.instants import from_epoch_seconds

REPORT_ASSET = ("uptime_report",)
REPORT_PARTITIONS = "report_hours"  # storemon_pipeline.defs.partitions.report_partitions
PARTITION_TAG = "dagster/partition"
# The data a triggered report was launched on (storemon_pipeline.engine.ingest.data_version).
DATA_VERSION_TAG = "storemon/data_version"
# Who launched a run (storemon_pipeline.defs.tags: api, sensor, schedule, up, ui; no tag: ui),
# and its place in Dagster's run queue: a report someone waits for through the API goes first.
TRIGGER_TAG = "storemon/trigger"
PRIORITY_TAG = "dagster/priority"
UNTAGGED = "ui"
API_RUN_TAGS = {TRIGGER_TAG: "api", PRIORITY_TAG: "10"}
IN_PROGRESS = {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"}
# What Dagster raises in a step whose blocking asset check failed.
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"
FAILED = {"FAILURE", "CANCELED"}


class DagsterUnavailable(Unavailable):
    """The webserver cannot be reached or is not answering properly: the API answers 503."""


class DagsterError(UpstreamError):
    """Dagster answered, with an error (unknown job, invalid run request...): 502."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str
    job_name: str
    created: datetime | None
    ended: datetime | None
    tags: Mapping[str, str] = field(default_factory=dict)
    asset_keys: tuple[tuple[str, ...], ...] | None = None

    @property
    def partition(self) -> str | None:
        return self.tags.get(PARTITION_TAG)

    @property
    def trigger(self) -> str:
        return self.tags.get(TRIGGER_TAG, UNTAGGED)

    def is_report(self, report_job: str) -> bool:
        """A run of the report job, or any run (e.g. from the UI) materializing the report."""
        return self.job_name == report_job or REPORT_ASSET in (self.asset_keys or ())


@dataclass(frozen=True)
class DagsterHealth:
    """What a trigger needs of Dagster: the code location loaded and reachable, the report job
    in it, the daemon (which starts queued runs) alive."""

    version: str
    location_errors: dict[str, str]  # location -> why it cannot be loaded or reached
    report_job_loaded: bool
    daemons_down: list[str]


_RUN_FIELDS = """
  runId status jobName creationTime endTime
  tags { key value }
  assetSelection { path }
"""

RUN_QUERY = f"""
query StoremonRun($runId: ID!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{ {_RUN_FIELDS} }}
    ... on RunNotFoundError {{ message }}
    ... on PythonError {{ message }}
  }}
}}
"""

RUNS_QUERY = f"""
query StoremonRuns($filter: RunsFilter, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{
    __typename
    ... on Runs {{ results {{ {_RUN_FIELDS} }} }}
    ... on InvalidPipelineRunsFilterError {{ message }}
    ... on PythonError {{ message }}
  }}
}}
"""

_ERROR = "error { message className cause { message className cause { message className } } }"
FAILURE_QUERY = f"""
query StoremonRunFailure($runId: ID!) {{
  runOrError(runId: $runId) {{
    __typename
    ... on Run {{
      status
      eventConnection(limit: 2000) {{
        events {{
          __typename
          ... on ExecutionStepFailureEvent {{ stepKey message {_ERROR} }}
          ... on RunFailureEvent {{ message {_ERROR} }}
          ... on RunCanceledEvent {{ message }}
          ... on EngineEvent {{ message {_ERROR} }}
          ... on AssetCheckEvaluationEvent {{
            evaluation {{ checkName success severity description partition }}
          }}
        }}
      }}
    }}
  }}
}}
"""

REPOSITORIES_QUERY = """
query StoremonRepositories {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } pipelines { name } } }
    ... on PythonError { message }
  }
}
"""

ADD_PARTITION_MUTATION = """
mutation StoremonAddPartition(
  $repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!
) {
  addDynamicPartition(
    repositorySelector: $repositorySelector,
    partitionsDefName: $partitionsDefName,
    partitionKey: $partitionKey
  ) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

HEALTH_QUERY = """
query StoremonHealth {
  version
  instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } }
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } pipelines { name } } }
    ... on PythonError { message }
  }
}
"""


class DagsterClient:
    def __init__(self, url: str, *, timeout: float, report_job: str) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.report_job = report_job
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def run_url(self, run_id: str) -> str:
        """The run's page in the Dagster UI."""
        return f"{self.url}/runs/{run_id}"

    # --- launching ------------------------------------------------------------------------

    def launch_report(self, partition: str, tags: Mapping[str, str] | None = None) -> str:
        """Launch the report job for one partition; returns the run id.

        The report partitions are the hours that hold polls; an ingest made outside Dagster
        (`storemon ingest`) has not added its hours, so the partition is added first (a no-op
        when it exists)."""
        self._add_partition(partition)
        parts = urlsplit(self.url)
        client = DagsterGraphQLClient(
            parts.hostname or "127.0.0.1",
            port_number=parts.port,
            use_https=parts.scheme == "https",
            path_prefix=parts.path.rstrip("/"),
            timeout=max(1, round(self.timeout)),
        )
        try:
            return client.submit_job_execution(
                self.report_job, tags={**(tags or {}), PARTITION_TAG: partition}
            )
        except DagsterGraphQLClientError as exc:
            raise _classify(exc, self.url) from exc

    def _add_partition(self, partition: str) -> None:
        repos = self._query(REPOSITORIES_QUERY, {})["repositoriesOrError"]
        located = [
            {"repositoryLocationName": node["location"]["name"], "repositoryName": node["name"]}
            for node in repos.get("nodes", [])
            if any(job["name"] == self.report_job for job in node["pipelines"])
        ]
        if not located:
            raise DagsterUnavailable(
                f"Dagster has no job {self.report_job!r}: is the storemon code location loaded?"
            )
        result = self._query(
            ADD_PARTITION_MUTATION,
            {
                "repositorySelector": located[0],
                "partitionsDefName": REPORT_PARTITIONS,
                "partitionKey": partition,
            },
        )["addDynamicPartition"]
        if result["__typename"] not in ("AddDynamicPartitionSuccess",
                                         "DuplicateDynamicPartitionError"):
            raise DagsterError(
                f"Dagster could not add report partition {partition}: {result.get('message')}"
            )

    # --- reading --------------------------------------------------------------------------

    def run(self, run_id: str) -> RunInfo | None:
        """The run, or None if Dagster has no run with that id."""
        result = self._query(RUN_QUERY, {"runId": run_id})["runOrError"]
        if result["__typename"] == "RunNotFoundError":
            return None
        if result["__typename"] != "Run":
            raise DagsterError(f"Dagster could not read run {run_id}: {result.get('message')}")
        return _run_info(result)

    def runs(
        self,
        *,
        limit: int,
        run_ids: Sequence[str] | None = None,
        in_flight_with_tags: Mapping[str, str] | None = None,
    ) -> list[RunInfo]:
        """Newest first: the report job's runs (those not finished, with these tags), or the
        given runs whatever their job."""
        run_filter: dict[str, Any] = (
            {"runIds": list(run_ids)} if run_ids is not None else {"pipelineName": self.report_job}
        )
        if in_flight_with_tags is not None:
            run_filter["statuses"] = sorted(IN_PROGRESS - {"CANCELING"})
            run_filter["tags"] = [{"key": k, "value": v} for k, v in in_flight_with_tags.items()]
        result = self._query(RUNS_QUERY, {"filter": run_filter, "limit": limit})["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterError(f"Dagster could not list runs: {result.get('message')}")
        return [_run_info(node) for node in result["results"]]

    def failure_reason(self, run_id: str) -> str:
        """Why a run failed, in one or a few lines: the innermost error of its failed step."""
        result = self._query(FAILURE_QUERY, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            return f"run {run_id} failed"
        return failure_message(result["status"], result["eventConnection"]["events"])

    def health(self) -> DagsterHealth:
        """What a trigger needs of Dagster (DagsterUnavailable if it cannot be asked)."""
        data = self._query(HEALTH_QUERY, {})
        workspace = data["workspaceOrError"]
        errors = (
            {
                entry["name"]: entry["locationOrLoadError"]["message"]
                for entry in workspace["locationEntries"]
                if (entry.get("locationOrLoadError") or {}).get("__typename") == "PythonError"
            }
            if workspace["__typename"] == "Workspace"
            else {"workspace": str(workspace.get("message"))}
        )
        repos = data["repositoriesOrError"]
        jobs = {job["name"] for node in repos.get("nodes", []) for job in node["pipelines"]}
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        return DagsterHealth(
            version=data["version"],
            location_errors=errors,
            report_job_loaded=self.report_job in jobs,
            daemons_down=sorted(
                s["daemonType"] for s in statuses if s["required"] and not s["healthy"]
            ),
        )

    def _query(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(
                f"{self.url}/graphql", json={"query": query, "variables": dict(variables)}
            )
        except httpx.HTTPError as exc:
            raise DagsterUnavailable(_unreachable(self.url, exc)) from exc
        if response.status_code >= 500 or response.status_code in (404, 502, 503, 504):
            raise DagsterUnavailable(
                f"the Dagster webserver at {self.url} answered HTTP {response.status_code}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise DagsterUnavailable(f"the Dagster webserver at {self.url} sent no JSON") from exc
        if payload.get("errors"):
            messages = "; ".join(str(e.get("message")) for e in payload["errors"])
            raise DagsterError(f"Dagster rejected a query: {messages}")
        return payload["data"]


def failure_message(status: str, events: Sequence[Mapping[str, Any]]) -> str:
    """The most specific reason among a failed run's events: the checks that blocked it, with
    what they found, or else the innermost error of the failed step."""
    if status == "CANCELED":
        canceled = [e["message"] for e in events if e["__typename"] == "RunCanceledEvent"]
        return canceled[-1] if canceled else "the run was canceled"
    blocked = _failed_checks(events)
    if blocked:
        return "; ".join(
            f"check {name} failed: {description}" for name, description in blocked.items()
        )[:2000]
    for kind in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent"):
        for event in reversed(events):
            if event["__typename"] != kind or (kind == "EngineEvent" and not event.get("error")):
                continue
            error = _innermost(event.get("error"))
            text = error or event.get("message") or ""
            step = event.get("stepKey")
            return (f"step {step}: {text}" if step else text).strip()[:2000]
    return "the run failed (no error was recorded; see the run in the Dagster UI)"


def _failed_checks(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Check name -> what it found, for the ERROR checks that failed a step of the run (the
    run's own evaluation of a check over many partitions, rather than each partition's)."""
    if not any(
        event["__typename"] == "ExecutionStepFailureEvent"
        and CHECK_FAILED_ERROR in _class_names(event.get("error"))
        for event in events
    ):
        return {}
    found: dict[str, tuple[bool, str]] = {}  # name -> (for the whole run?, description)
    for event in events:
        evaluation = event.get("evaluation") if event["__typename"] == (
            "AssetCheckEvaluationEvent"
        ) else None
        if not evaluation or evaluation["success"] or evaluation["severity"] != "ERROR":
            continue
        whole = evaluation.get("partition") is None
        name = evaluation["checkName"]
        if whole or not found.get(name, (False, ""))[0]:
            found[name] = (whole, evaluation.get("description") or "no description")
    return {name: description for name, (_, description) in found.items()}


def _class_names(error: Mapping[str, Any] | None) -> list[str]:
    names = []
    while error:
        names.append(str(error.get("className")))
        error = error.get("cause")
    return names


# Errors of the operating system name no service ("Connection refused"): the error that wraps
# one says which (redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:6379).
OS_ERRORS = {
    "OSError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
    "ConnectionAbortedError", "BrokenPipeError", "TimeoutError", "socket.timeout", "gaierror",
}


def _innermost(error: Mapping[str, Any] | None) -> str | None:
    """The innermost error's message, or the one that wraps it if that is a bare error of the
    operating system (whose message names no service)."""
    chain = []
    while error:
        chain.append(error)
        error = error.get("cause")
    if not chain:
        return None
    if len(chain) > 1 and str(chain[-1].get("message") or "").split(":")[0] in OS_ERRORS:
        chain.pop()
    message = str(chain[-1].get("message") or "").strip()
    return message or chain[-1].get("className")


def _run_info(node: Mapping[str, Any]) -> RunInfo:
    selection = node.get("assetSelection")
    return RunInfo(
        run_id=node["runId"],
        status=node["status"],
        job_name=node["jobName"],
        created=from_epoch_seconds(node.get("creationTime")),
        ended=from_epoch_seconds(node.get("endTime")),
        tags={t["key"]: t["value"] for t in node.get("tags", [])},
        asset_keys=None if selection is None else tuple(tuple(k["path"]) for k in selection),
    )


def _unreachable(url: str, exc: BaseException) -> str:
    if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower():
        return f"the Dagster webserver at {url} is unreachable: it did not answer in time"
    return f"the Dagster webserver at {url} is unreachable; is it running?"


_TRANSPORT_ERRORS = (
    requests.exceptions.RequestException,
    TransportConnectionFailed,
    TransportProtocolError,  # an answer that is not GraphQL: not a Dagster webserver there
    TransportServerError,
)


def _classify(exc: DagsterGraphQLClientError, url: str) -> Exception:
    """The client wraps every failure in one exception type; tell "down" from "said no"."""
    cause = exc.__cause__
    link: BaseException | None = cause
    while link is not None:  # gql wraps requests' errors; the client wraps gql's
        if isinstance(link, _TRANSPORT_ERRORS):
            return DagsterUnavailable(_unreachable(url, link))
        link = link.__cause__
    kind = str(exc.args[0]) if exc.args else type(exc).__name__
    detail = str(exc.args[1]) if len(exc.args) > 1 else ""
    if kind in ("JobNotFoundError", "PipelineNotFoundError"):
        return DagsterUnavailable(  # typically the code location is still loading, or broken
            f"Dagster has no such job ({detail}): is the storemon code location loaded?"
        )
    if cause is not None:  # the client's message would quote the whole query; the cause says why
        return DagsterError(f"Dagster could not launch the report: {cause}")
    return DagsterError(f"Dagster refused to launch the report: {kind}: {detail}")
