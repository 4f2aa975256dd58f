"""A real two-host Ray cluster on this machine: two network namespaces with their own addresses, joined by a veth.

Host A (the head, 10.77.0.1) runs the GCS, a raylet, the MLflow server (``python -m search.cluster mlflow-server``,
as cluster.yaml starts it: basic auth) and the search driver; host B (10.77.0.2) runs a worker raylet. Both use
token auth. Every process started here carries ``T2T_TEST_CLUSTER=<id>`` in its environment, so ``down`` finds
and SIGKILLs all of them by PID (Ray daemonizes some), even after a failure; it never runs ``ray stop``.

Traffic: the namespaces have no route out and the root namespace has no leg into them, so every probe runs
inside a namespace (``ip netns exec``); nothing goes to an address outside them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from tests.processes import kill_all, kill_sid, session_pids, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]
HEAD_IP, WORKER_IP = "10.77.0.1", "10.77.0.2"
GCS_PORT, MLFLOW_PORT = 6379, 5000
MLFLOW_PASSWORD = "cluster-test-" + uuid.uuid4().hex[:12]
TAG = "T2T_TEST_CLUSTER"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def pids_tagged(tag: str) -> list[int]:
    """Every live process whose environment holds ``T2T_TEST_CLUSTER=tag`` (read from /proc)."""
    needle = f"{TAG}={tag}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


class Cluster:
    """Two namespaces, a Ray head and worker, an MLflow server; ``down()`` undoes all of it."""

    def __init__(self, folder: Path) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.folder = folder
        self.ns = {HEAD_IP: f"t2t{self.id}a", WORKER_IP: f"t2t{self.id}b"}
        self.home = folder / "home"  # the token and the MLflow credentials live here, as in ~ on a real node
        self.temp = Path(f"/tmp/t2tc{self.id}")  # short: Ray's socket paths must stay under 108 characters
        self.storage = folder / "storage"  # "shared storage": both hosts see this filesystem
        self.mlflow = folder / "mlflow"
        self.nodes: dict[str, subprocess.Popen] = {}
        self.daemons: list[subprocess.Popen] = []  # sshd
        self.cluster_name = f"t2t-test-{self.id}"  # for `ray up`: its state files are named after it
        self.launched = False
        self.created: list[str] = []

    # --- setup ---

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "T2T_"))}
        env.update(
            HOME=str(self.home),
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            PYTHONPATH=str(ROOT),
            RAY_AUTH_MODE="token",
            RAY_USAGE_STATS_ENABLED="0",
            **{TAG: self.id},
            **extra,
        )
        return env

    def up(self) -> Cluster:
        (self.home / ".ray").mkdir(parents=True)
        (self.home / ".ray" / "auth_token").write_text(uuid.uuid4().hex + uuid.uuid4().hex)
        (self.home / ".mlflow").mkdir()
        credentials = self.home / ".mlflow" / "credentials"
        credentials.write_text(
            f"[mlflow]\nmlflow_tracking_username = admin\nmlflow_tracking_password = {MLFLOW_PASSWORD}\n"
        )
        credentials.chmod(0o600)
        self.storage.mkdir()
        a, b = self.ns[HEAD_IP], self.ns[WORKER_IP]
        for ns in (a, b):
            _ip("netns", "add", ns)
            self.created.append(ns)
        _ip("link", "add", f"v{self.id}a", "type", "veth", "peer", "name", f"v{self.id}b")
        for ns, leg, ip in ((a, f"v{self.id}a", HEAD_IP), (b, f"v{self.id}b", WORKER_IP)):
            _ip("link", "set", leg, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", leg)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", leg, "up")
            # Ray finds a host's own address by routing towards a public one (no packet is sent); without a default
            # route it falls back to 127.0.0.1 and a head started without --node-ip-address serves only loopback.
            # The route leads into the veth, whose only other end is the other namespace: nothing can leave.
            _ip("-n", ns, "route", "add", "default", "dev", leg)
        return self

    def spawn_in(self, ip: str, args: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """``args`` inside host ``ip``'s namespace, in its own session, output to ``folder/log``."""
        command = ["ip", "netns", "exec", self.ns[ip], *args]
        return spawn(command, self.folder / log, cwd=self.folder, env=env or self.env())

    def run_in(self, ip: str, args: list[str], timeout_s: float = 60, **env: str) -> subprocess.CompletedProcess:
        command = ["ip", "netns", "exec", self.ns[ip], *args]
        return subprocess.run(command, env=self.env(**env), capture_output=True, text=True, timeout=timeout_s)

    def start_node(
        self, ip: str, cpus: int = 1, private_storage: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """``ray start --block`` on host ``ip`` (the head if it is HEAD_IP), connected when this returns; ``env``
        is the host's own (its trials' processes inherit it from the raylet).

        ``private_storage``: the host gets its own empty tmpfs over the storage folder (a worker without the
        shared storage), through a private mount namespace; the real filesystem is untouched.
        """
        ray = str(Path(sys.executable).parent / "ray")
        common = [
            f"--node-ip-address={ip}",
            f"--num-cpus={cpus}",
            "--num-gpus=0",
            "--memory=3000000000",
            "--object-store-memory=200000000",
            f"--temp-dir={self.temp}/{ip.rsplit('.', 1)[1]}",
            "--disable-usage-stats",
            "--block",
        ]
        if ip == HEAD_IP:
            args = [ray, "start", "--head", f"--port={GCS_PORT}", "--include-dashboard=false", *common]
        else:
            args = [ray, "start", f"--address={HEAD_IP}:{GCS_PORT}", *common]
        if private_storage:
            script = f'mount -t tmpfs tmpfs "{self.storage}" && exec "$@"'
            args = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *args]
        proc = self.spawn_in(ip, args, f"ray-{ip}.log", env=self.env(**(env or {})))
        self.nodes[ip] = proc
        wait_for(lambda: self._alive_nodes(proc) >= (1 if ip == HEAD_IP else 2), 120, f"the Ray node on {ip}", 2)
        return proc

    def _alive_nodes(self, proc: subprocess.Popen) -> int:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}: {self.log(proc)}")
        # The head's address, never 'auto': that reads /tmp/ray/ray_current_cluster, which another Ray may own.
        connect = f"ray.init(address='{HEAD_IP}:{GCS_PORT}', log_to_driver=False)"
        check = f"import ray; {connect}; print(sum(n['Alive'] for n in ray.nodes()))"
        out = self.run_in(HEAD_IP, [sys.executable, "-c", check], timeout_s=60)
        if out.returncode != 0:
            return 0
        return int(out.stdout.strip().splitlines()[-1])

    def log(self, proc: subprocess.Popen) -> str:
        name = {p.pid: f"ray-{ip}.log" for ip, p in self.nodes.items()}.get(proc.pid)
        return (self.folder / name).read_text()[-3000:] if name else ""

    def start_mlflow(self) -> None:
        """The head's tracking server exactly as cluster.yaml starts it (basic auth), on the head's address."""
        out = self.run_in(
            HEAD_IP,
            [
                sys.executable,
                "-m",
                "search.cluster",
                "mlflow-server",
                "--host",
                HEAD_IP,
                "--port",
                str(MLFLOW_PORT),
                "--workers",
                "1",
                "--state-dir",
                str(self.mlflow),
                "--backend-store-uri",
                f"sqlite:///{self.mlflow}/mlflow.db",
                "--artifacts-destination",
                str(self.mlflow / "artifacts"),
            ],
            timeout_s=180,
        )
        assert out.returncode == 0, out.stdout + out.stderr

    def stop_mlflow(self) -> None:
        pid = int((self.mlflow / "server.pid").read_text())
        kill_sid(pid)

    @property
    def tracking_uri(self) -> str:
        return f"http://{HEAD_IP}:{MLFLOW_PORT}"

    def search(
        self, *args: str, tracking_uri: str | None = None, log: str = "search.log", env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """``python -m search.run --address HEAD ARGS`` on the head host, as a user runs it there (with ``env``)."""
        env = self.env(MLFLOW_TRACKING_URI=tracking_uri or self.tracking_uri, **(env or {}))
        command = [sys.executable, "-m", "search.run", "--address", f"{HEAD_IP}:{GCS_PORT}", *args]
        return self.spawn_in(HEAD_IP, command, log, env=env)

    def raylet_pid(self, ip: str) -> int:
        """The raylet of host ``ip``: the process named raylet in its ``ray start`` session."""
        for pid in session_pids(self.nodes[ip].pid):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/raylet"):
                    return pid
        raise LookupError(f"no raylet in the session of host {ip}")

    # --- SSH hosts and `ray up` ---

    def start_sshd(self, ip: str) -> Path:
        """An SSH server on host ``ip`` whose root home is the host's own scratch home; returns that home."""
        from tests.cluster import sshd

        root = sshd.unpacked()
        if not (self.home / ".ssh" / "id_ed25519").is_file():
            (self.home / ".ssh").mkdir(exist_ok=True)
            sshd.keypair(self.home / ".ssh" / "id_ed25519")
        Path("/tmp/ray").mkdir(exist_ok=True)  # the mount point of each host's private /tmp/ray
        home = self.folder / "hosts" / ip
        public = self.home / ".ssh" / "id_ed25519.pub"
        config = sshd.host_files(self.folder / "sshd" / ip, ip, home, public, self.id)
        proc = self.spawn_in(ip, sshd.sshd_command(root, config), f"sshd-{ip}.log")
        self.daemons.append(proc)
        probe = ["ssh", *self.ssh_options(), f"root@{ip}", "true"]
        wait_for(lambda: self.run_in(ip, probe, timeout_s=20).returncode == 0, 60, f"sshd on {ip}", 1)
        return home

    def ssh_options(self) -> list[str]:
        key = self.home / ".ssh" / "id_ed25519"
        return ["-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]  # fmt: skip

    def ray_cli(self, *args: str, log: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
        """``ray ARGS`` (up, exec, ...) as a user runs it, from the head host's namespace with rsync on PATH."""
        from tests.cluster import sshd

        ray = str(Path(sys.executable).parent / "ray")
        script = f'{sshd.rsync_on_path(sshd.unpacked())} && exec "$@"'
        command = ["ip", "netns", "exec", self.ns[HEAD_IP], "unshare", "--mount", "--propagation", "private",
                   "sh", "-c", script, "sh", ray, *args]  # fmt: skip
        env = self.env(RAY_UP_enable_autoscaler_v2="0")  # v2 never launches a local provider's workers
        with open(self.folder / log, "ab") as out:
            code = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
        self.launched = True
        return code

    # --- teardown ---

    def down(self) -> None:
        """SIGKILL every process of this cluster by PID, then remove the namespaces and the scratch folder."""
        started = [*self.nodes.values(), *self.daemons]

        def ours() -> set[int]:
            pids = set(pids_tagged(self.id))
            for proc in started:
                pids.update(session_pids(proc.pid))
            return pids

        kill_all(ours, timeout_s=30)
        for proc in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.launched:  # what `ray up` leaves on the machine: its state file and SSH control sockets
            import getpass
            import hashlib

            Path(f"/tmp/ray/cluster-{self.cluster_name}.state").unlink(missing_ok=True)
            Path(f"/tmp/ray/cluster-{self.cluster_name}.lock").unlink(missing_ok=True)
            user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
            name = hashlib.sha256(self.cluster_name.encode()).hexdigest()[:10]
            shutil.rmtree(f"/tmp/ray_ssh_{user}/{name}", ignore_errors=True)
        for ns in self.created:
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "delete", ns)  # the veth pair goes with them
        shutil.rmtree(self.temp, ignore_errors=True)
