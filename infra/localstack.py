#!/usr/bin/env python3
"""Start and stop the real parts on 127.0.0.1, without Docker: PostgreSQL (Debian's package),
an S3 endpoint (moto_server) and a Spark standalone master + worker (from the pyspark package).

    python infra/localstack.py start postgres|s3|spark [--dir DIR]   # prints a JSON line
    python infra/localstack.py stop  postgres|s3|spark  --dir DIR
    python infra/localstack.py status --dir DIR

Each service records its pids, port and URL in DIR/<name>.json; `stop` ends exactly those
processes. Tests use the same functions (tests/conftest.py). `start_airflow(dir, metadata_url)`
(from Python: it needs a PostgreSQL metadata DB) starts a whole Airflow deployment: api-server,
scheduler and dag-processor with LocalExecutor.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout
from jobs.platform.spark import connect_server_command  # noqa: E402

LOOPBACK = "127.0.0.1"


@dataclass
class Service:
    name: str
    url: str
    state_dir: str
    pids: list[int] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        Path(self.state_dir).mkdir(parents=True, exist_ok=True)
        (Path(self.state_dir) / f"{self.name}.json").write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, state_dir: str | Path, name: str) -> Service:
        return cls(**json.loads((Path(state_dir) / f"{name}.json").read_text()))

    def stop(self, timeout: float = 20.0) -> None:
        if self.name == "postgres" and self.extra.get("data"):
            _pg(["pg_ctl", "-D", self.extra["data"], "-m", "fast", "-w", "stop"], check=False)
        for pid in reversed(self.pids):
            _terminate(pid, timeout)
        if self.extra.get("tmp_root"):
            shutil.rmtree(self.extra["tmp_root"], ignore_errors=True)
        (Path(self.state_dir) / f"{self.name}.json").unlink(missing_ok=True)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _terminate(pid: int, timeout: float) -> None:
    if not pid_alive(pid) and not group_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (pid_alive(pid) or group_alive(pid)):
        _reap(pid)
        time.sleep(0.1)
    if pid_alive(pid) or group_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait(what: str, check: object, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s. {tail}")


# -- PostgreSQL -----------------------------------------------------------------------------------
def pg_bin(tool: str) -> str:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if found:
        return found[-1]
    path = shutil.which(tool)
    if path:
        return path
    raise FileNotFoundError(
        f"PostgreSQL's {tool} is not installed: run `make test` (it installs Debian's postgresql package) "
        "or `apt-get install postgresql`"
    )


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _pg(cmd: list[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    full = _as_postgres() + [pg_bin(cmd[0]), *cmd[1:]]
    return subprocess.run(full, check=check, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


def start_postgres(state_dir: str | Path, user: str = "crm", database: str = "crm") -> Service:
    """initdb into a fresh folder, start on a loopback port; local socket trusted, TCP by password.

    Returns a service whose url is postgresql://crm:PASSWORD@127.0.0.1:PORT/crm (a role that may
    create roles and databases, not a superuser)."""
    # PostgreSQL refuses to run as root: the folder must be reachable and owned by `postgres`.
    root = Path(tempfile.mkdtemp(prefix="crm-pg-"))
    root.chmod(0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    _pg(["initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"])
    port = free_port()
    log = root / "postgres.log"
    opts = f"-p {port} -k {sock} -c listen_addresses={LOOPBACK} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _pg(["pg_ctl", "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"])
    pid = int((data / "postmaster.pid").read_text().split()[0])
    password = secrets.token_urlsafe(16)

    def psql(sql: str, db: str = "postgres") -> None:
        _pg(["psql", "-h", str(sock), "-p", str(port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql])

    psql(f"CREATE ROLE {user} LOGIN CREATEROLE CREATEDB PASSWORD '{password}'")
    psql(f"CREATE DATABASE {database} OWNER {user}")
    svc = Service(
        name="postgres",
        url=f"postgresql://{user}:{password}@{LOOPBACK}:{port}/{database}",
        state_dir=str(state_dir),
        pids=[pid],
        extra={"data": str(data), "socket": str(sock), "port": str(port), "tmp_root": str(root), "log": str(log)},
    )
    svc.save()
    return svc


# -- S3 (moto_server) -----------------------------------------------------------------------------
def start_s3(state_dir: str | Path) -> Service:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    log = Path(state_dir) / "moto.log"
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(exe), "-H", LOOPBACK, "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://{LOOPBACK}:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(url + "/", timeout=1)  # noqa: S310 - loopback only
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    _wait("moto_server", answers, 60, log)
    svc = Service(name="s3", url=url, state_dir=str(state_dir), pids=[proc.pid], extra={"log": str(log)})
    svc.save()
    return svc


# -- Spark standalone -----------------------------------------------------------------------------
def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def start_spark(state_dir: str | Path, cores: int = 2, memory: str = "2g") -> Service:
    """A master and one worker on loopback, from the pyspark package's spark-class."""
    home = spark_home()
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": LOOPBACK,
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_DIR": str(state / "work"),
        "SPARK_LOG_DIR": str(state),
    }
    port, ui, worker_ui = free_port(), free_port(), free_port()
    master_log, worker_log = state / "spark-master.log", state / "spark-worker.log"
    spark_class = str(home / "bin" / "spark-class")
    with master_log.open("w") as out:
        master = subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", LOOPBACK, "--port", str(port), "--webui-port", str(ui)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _wait("Spark master", lambda: port_open(port) and port_open(ui), 90, master_log)
    url = f"spark://{LOOPBACK}:{port}"
    with worker_log.open("w") as out:
        worker = subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK, "--cores", str(cores),
             "--memory", memory, "--webui-port", str(worker_ui), url],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def registered() -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{ui}/json/", timeout=1) as r:  # noqa: S310
                return int(json.load(r).get("aliveworkers", 0)) >= 1
        except Exception:  # noqa: BLE001 - not up yet
            return False

    _wait("Spark worker registration", registered, 90, worker_log)
    svc = Service(
        name="spark", url=url, state_dir=str(state), pids=[master.pid, worker.pid],
        extra={"webui": f"http://{LOOPBACK}:{ui}", "master_log": str(master_log), "worker_log": str(worker_log)},
    )
    svc.save()
    return svc


def start_spark_connect(state_dir: str | Path, master: str = "local[2]") -> Service:
    """A Spark Connect server on loopback (`sc://127.0.0.1:PORT`), set up as `crm-metrics
    spark-server` sets one up (jobs.platform.spark.connect_server_command); its driver runs
    `master` (local by default, or a standalone master URL)."""
    home = spark_home()
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": LOOPBACK, "PYSPARK_PYTHON": sys.executable}
    port = free_port()
    log_file = state / "spark-connect.log"
    with log_file.open("w") as out:
        server = subprocess.Popen(connect_server_command(LOOPBACK, port, master), env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    _wait("Spark Connect server", lambda: port_open(port), 120, log_file)
    svc = Service(name="spark-connect", url=f"sc://{LOOPBACK}:{port}", state_dir=str(state), pids=[server.pid],
                  extra={"log": str(log_file)})
    svc.save()
    return svc


# -- Airflow: api-server, scheduler and dag-processor on a PostgreSQL metadata DB ------------------
def airflow_env(home: Path, metadata_url: str, api_port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Airflow process of one deployment shares: the metadata DB on
    PostgreSQL (psycopg 3 for both drivers: the pinned set has no asyncpg), LocalExecutor, this
    project's dags folder, the execution API on loopback, one JWT secret and Fernet key."""
    from cryptography.fernet import Fernet

    key_file, secret_file = home / "fernet.key", home / "jwt.secret"
    home.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
        secret_file.write_text(secrets.token_urlsafe(32))
    db = metadata_url.split("://", 1)[1]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{db}",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg_async://{db}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": key_file.read_text().strip(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text().strip(),
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{api_port}/execution/",
        # a local deployment without logins: every request acts as an admin
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    }
    env.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)  # an inherited Airflow 2 name must not point elsewhere
    return {**env, **(extra or {})}


def start_airflow(state_dir: str | Path, metadata_url: str, extra_env: dict[str, str] | None = None) -> Service:
    """`airflow db migrate`, then `airflow api-server`, `airflow scheduler` and `airflow
    dag-processor`, each in its own process group, logging to DIR/airflow-<part>.log. `.url` is
    the REST API's base (`http://127.0.0.1:PORT`); `.extra['env']` names the file holding the
    shared environment (JSON) for `airflow` commands against the same deployment."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = airflow_env(state / "airflow-home", metadata_url, port, extra_env)
    migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True,
                             check=False)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed: {migrate.stderr[-2000:]}")
    pids = []
    for part in ("api-server", "scheduler", "dag-processor"):
        with (state / f"airflow-{part}.log").open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "airflow", part], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        pids.append(proc.pid)
    url = f"http://{LOOPBACK}:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    env_file = state / "airflow-env.json"
    env_file.write_text(json.dumps({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "CRM_METRICS"))}))
    svc = Service(name="airflow", url=url, state_dir=str(state), pids=pids,
                  extra={"env": str(env_file), "log": str(state / "airflow-api-server.log")})
    try:
        _wait("Airflow api-server", healthy, 180, state / "airflow-api-server.log")
    except RuntimeError:
        svc.stop()
        raise
    svc.save()
    return svc


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `server_url`; returns its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


class AirflowApi:
    """One DAG's side of a deployment's REST API (`/api/v2`), plain HTTP and JSON."""

    TERMINAL = ("success", "failed")

    def __init__(self, base: str, dag_id: str) -> None:
        self.base, self.dag_id = f"{base}/api/v2", dag_id

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read() or b"null")

    def wait_for_dag(self, timeout: float = 240) -> None:
        """Until the dag-processor has parsed the DAG once."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", f"/dags/{self.dag_id}")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(self, run_id: str, logical_date: str) -> None:
        self.call("POST", f"/dags/{self.dag_id}/dagRuns",
                  {"dag_run_id": run_id, "logical_date": f"{logical_date}T00:00:00Z", "conf": {}})

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def task_states(self, run_id: str) -> dict[str, tuple[str, int]]:
        return {t["task_id"]: (t["state"], t["try_number"]) for t in self.task_instances(run_id)}

    def wait_for_run(self, run_id: str, svc: Service, timeout: float = 1500) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", f"/dags/{self.dag_id}/dagRuns/{run_id}")["state"]
            if state in self.TERMINAL:
                return str(state)
            time.sleep(3)
        log = Path(svc.state_dir) / "airflow-scheduler.log"
        raise AssertionError(f"{run_id} still not done after {timeout:.0f} s: {self.task_states(run_id)}\n"
                             f"{log.read_text()[-3000:]}")


def airflow_cli(svc: Service, *args: str) -> None:
    """Run `airflow <args>` against the deployment of `svc` (its shared environment)."""
    env = json.loads(Path(svc.extra["env"]).read_text())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **env}
    done = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args[:2])} failed: {done.stderr[-2000:]}")


STARTERS = {"postgres": start_postgres, "s3": start_s3, "spark": start_spark, "spark-connect": start_spark_connect}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("service", nargs="?", choices=sorted(STARTERS))
    parser.add_argument("--dir", default="data/localstack", help="state folder (pids, ports, logs)")
    args = parser.parse_args(argv)
    if args.action == "status":
        for name in sorted(STARTERS):
            f = Path(args.dir) / f"{name}.json"
            if f.exists():
                svc = Service.load(args.dir, name)
                alive = all(pid_alive(p) for p in svc.pids)
                print(json.dumps({"service": name, "alive": alive, "url": svc.url, "pids": svc.pids}))
        return 0
    if not args.service:
        parser.error("name a service: postgres, s3, spark or spark-connect")
    if args.action == "start":
        svc = STARTERS[args.service](args.dir)
        print(json.dumps({"service": svc.name, "url": svc.url, "pids": svc.pids, "dir": args.dir}))
    else:
        Service.load(args.dir, args.service).stop()
        print(json.dumps({"service": args.service, "stopped": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
