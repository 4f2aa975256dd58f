"""An SSH server per namespace host, so that ``ray up`` can work on the hosts of tests/cluster/netns.py for real.

Nothing is installed: Debian's openssh-server and rsync packages are downloaded once (``apt-get download``, the
package registry) and unpacked into a cache folder. Each sshd runs inside its host's namespace under a private
mount namespace that gives it its own ``/run``, ``/tmp/ray`` and ``/usr/local/bin`` (tmpfs) and a copy of
``/etc/passwd`` in which root's home is the host's scratch home and the ``sshd`` user exists. The real system
files are never touched. Every session carries the cluster's ``T2T_TEST_CLUSTER`` tag (sshd's ``SetEnv``), so the
cluster's teardown finds what ``ray up`` started over SSH.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

PACKAGES = ("openssh-server", "openssh-sftp-server", "rsync", "libwrap0", "libpopt0")
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "sshd"


def unpacked() -> Path:
    """The unpacked packages (downloaded on first use); raises with the reason when they cannot be had."""
    root = CACHE / "root"
    if (root / "usr/sbin/sshd").is_file() and (root / "usr/bin/rsync").is_file():
        return root
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    download = ["apt-get", "download", *PACKAGES]
    result = subprocess.run(download, cwd=debs, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
        result = subprocess.run(download, cwd=debs, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"cannot download {' '.join(PACKAGES)} from the Debian registry: {result.stderr[-500:]}")
    for deb in debs.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    return root


def libraries(root: Path) -> str:
    return f"{root}/usr/lib/x86_64-linux-gnu:{root}/lib/x86_64-linux-gnu"


def keypair(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path


def rsync_on_path(root: Path) -> str:
    """Shell lines (in a new mount namespace) that put the unpacked rsync on PATH: ``ray up`` needs it both ends."""
    wrapper = f'#!/bin/sh\\nLD_LIBRARY_PATH={libraries(root)} exec {root}/usr/bin/rsync "$@"\\n'
    return (
        "mount -t tmpfs tmpfs /usr/local/bin && "
        f"printf '{wrapper}' > /usr/local/bin/rsync && chmod 755 /usr/local/bin/rsync"
    )


def host_mounts(root: Path, passwd: Path) -> str:
    """An SSH host's own /run (sshd's privilege separation), /tmp/ray (its Ray sessions) and passwd, and rsync."""
    lines = [
        "mount -t tmpfs tmpfs /run",
        "mkdir -p /run/sshd && chmod 755 /run/sshd",
        "mount -t tmpfs tmpfs /tmp/ray",
        f"mount --bind {shlex.quote(str(passwd))} /etc/passwd",
        rsync_on_path(root),
    ]
    return " && ".join(lines)


def host_files(folder: Path, ip: str, home: Path, authorized: Path, tag: str) -> Path:
    """The sshd config, host key and passwd copy of one host; returns the config."""
    folder.mkdir(parents=True)
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "authorized_keys").write_text(authorized.read_text())
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "root":
            fields[5] = str(home)
        if fields[0] != "sshd":
            lines.append(":".join(fields))
    lines.append("sshd:x:65533:65534::/run/sshd:/usr/sbin/nologin")
    (folder / "passwd").write_text("\n".join(lines) + "\n")
    key = keypair(folder / "host_key")
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress {ip}\nPort 22\nHostKey {key}\nPidFile none\n"
        f"AuthorizedKeysFile {home}/.ssh/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nMaxStartups 50\nMaxSessions 50\n"
        f"SetEnv T2T_TEST_CLUSTER={tag}\n"
    )
    return config


def sshd_command(root: Path, config: Path) -> list[str]:
    """The command that runs sshd in the foreground, in a private mount namespace (run it inside the host's netns)."""
    passwd = config.parent / "passwd"
    script = f"{host_mounts(root, passwd)} && exec {root}/usr/sbin/sshd -D -e -f {config}"
    return ["unshare", "--mount", "--propagation", "private", "env", f"LD_LIBRARY_PATH={libraries(root)}",
            "sh", "-c", script]  # fmt: skip
